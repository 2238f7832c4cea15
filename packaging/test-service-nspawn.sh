#!/usr/bin/env bash
# Runs the packaged unit under a real systemd: boots this machine's own OS (its /usr through an
# overlay, a copy of its /etc and dpkg database) in systemd-nspawn with a private network,
# installs the .deb there with dpkg, and starts dataplane@gw on a veth whose other end is a
# wireguard-go client in a network namespace. Checks that the sandbox of dataplane@.service keeps
# the gateway working: it runs as the dataplane user with exactly the four capabilities, no new
# privileges and a seccomp filter; the client handshakes and pings the gateway's tunnel address;
# `wg show` answers; `dataplane peer add` as root applies live and leaves gw.toml owned by the
# service user; `systemctl reload` reloads the peers; `systemctl stop` leaves no wg0, no XDP
# program, no UAPI socket. Root only; skips with a reason without systemd-nspawn, wireguard-go
# or a container that boots. About a minute. Nothing outside the container's network namespace
# and a temporary directory is touched.
set -euo pipefail
repo="$(cd "$(dirname "$0")/.." && pwd)"
cd "$repo"

skip() { echo "test-service-nspawn: skip: $*" >&2; exit 0; }
fail() { echo "test-service-nspawn: FAIL: $*" >&2; exit 1; }

[ "$(id -u)" -eq 0 ] || skip "not root"
for tool in systemd-nspawn wireguard-go wg unshare nsenter; do
    command -v "$tool" >/dev/null || skip "$tool not installed (apt-get install systemd-container wireguard-go wireguard-tools)"
done
[ -L /bin ] || skip "the host is not merged-/usr; the container's root is built for that layout"

work="$(mktemp -d /tmp/dataplane-nspawn.XXXXXX)"
nspawn_pid=""
cleanup() {
    if [ -n "$nspawn_pid" ] && kill -0 "$nspawn_pid" 2>/dev/null; then
        init="$(pgrep -P "$nspawn_pid" | head -1 || true)"
        [ -z "$init" ] || nsenter -t "$init" -a systemctl poweroff >/dev/null 2>&1 || true
        for _ in $(seq 50); do kill -0 "$nspawn_pid" 2>/dev/null || break; sleep 0.2; done
        kill "$nspawn_pid" 2>/dev/null || true
        wait "$nspawn_pid" 2>/dev/null || true
    fi
    rm -rf "$work"
}
trap cleanup EXIT

deb="$(bash packaging/build-deb.sh --profile "${DEB_TEST_PROFILE:-debug}" --out "$work/deb")"

# The container's root: merged-/usr symlinks, a copy of /etc (without the host's enabled
# services, to boot light) and of the dpkg database; /usr is the host's under an overlay whose
# upper layer is in $work, so dpkg installs into the container only.
rootfs="$work/rootfs"
mkdir -p "$rootfs" "$work/usr-upper"
for d in bin lib lib64 sbin; do [ -L "/$d" ] && ln -s "usr/$d" "$rootfs/$d"; done
mkdir -p "$rootfs"/{usr,var/lib,var/log,var/cache,tmp,root,run,proc,sys,dev,mnt/deb}
cp -a /etc "$rootfs/"
rm -f "$rootfs/etc/machine-id" "$rootfs/etc/os-release"
cp /usr/lib/os-release "$rootfs/etc/os-release"
find "$rootfs/etc/systemd/system" -path '*.wants/*' -delete
# Nothing brings the container's network up, so the wait-online services would hold the boot
# for 2 minutes whenever something pulls in network-online.target at boot (podman's units do,
# once podman is installed): masked before the boot, in the container's /etc only.
for unit in systemd-networkd-wait-online.service NetworkManager-wait-online.service; do
    ln -sf /dev/null "$rootfs/etc/systemd/system/$unit"
done
cp -a /var/lib/dpkg "$rootfs/var/lib/"

# nspawn keeps state in /run/systemd/nspawn and refuses to clean it on a disk /run: give it a
# tmpfs in a mount namespace of its own. --register=no --keep-unit: no systemd on the host needed.
mkdir -p /run/systemd/nspawn
setsid unshare -m --propagation private sh -c '
    mount -t tmpfs dataplane-nspawn /run/systemd/nspawn
    exec systemd-nspawn -q -D "$1" --register=no --keep-unit -M dataplane-test -b \
        --overlay=/usr:"$2":/usr --private-network --capability=all --system-call-filter=bpf \
        --bind-ro="$3":/mnt/deb --console=read-only' sh "$rootfs" "$work/usr-upper" "$work/deb" \
    > "$work/boot.log" 2>&1 &
nspawn_pid=$!

init=""
for _ in $(seq 450); do
    kill -0 "$nspawn_pid" 2>/dev/null || break
    init="$(pgrep -P "$nspawn_pid" | head -1 || true)"
    state=""
    [ -z "$init" ] || state="$(nsenter -t "$init" -a systemctl is-system-running 2>/dev/null || true)"
    case "$state" in running|degraded) break ;; esac
    init=""
    sleep 0.2
done
if [ -z "$init" ]; then
    tail -5 "$work/boot.log" >&2
    skip "the container did not boot within 90 s (cgroups or nspawn unsupported here?)"
fi
echo "test-service-nspawn: container booted (init pid $init on the host)"

in_container() { nsenter -t "$init" -a "$@"; }
in_container env DEB="/mnt/deb/$(basename "$deb")" bash -s <<'CONTAINER' || fail "in the container (above)"
set -euo pipefail
fail() { echo "test-service-nspawn: FAIL: $*" >&2; journalctl -u dataplane@gw --no-pager | tail -20 >&2; exit 1; }
ok() { echo "test-service-nspawn: ok: $*"; }

dpkg -i "$DEB" > /tmp/dpkg.log 2>&1 || { cat /tmp/dpkg.log >&2; fail "dpkg -i"; }
uid="$(id -u dataplane)" || fail "postinst created no dataplane user"
ok "installed with dpkg; service user dataplane ($uid)"

# As the udev rule of the README gives it, where /dev/net/tun is 0600 root.
chgrp dataplane /dev/net/tun && chmod 0660 /dev/net/tun
ip netns add client
ip link add gw0 type veth peer name client0
ip link set client0 netns client
ip addr add 172.23.0.3/24 dev gw0 && ip link set gw0 up
ip -n client addr add 172.23.0.2/24 dev client0
ip -n client link set client0 up && ip -n client link set lo up

dataplane init --config /etc/dataplane/gw.toml --interface gw0 --subnet 10.13.13.0/24 >/dev/null
mkdir -p /root/peers
dataplane peer add client --config /etc/dataplane/gw.toml --server-url 172.23.0.3:51820 \
    --allowed-ips 10.13.13.0/24 --out-dir /root/peers --no-qr >/dev/null
chown dataplane: /etc/dataplane/gw.toml

# The unit waits for network-online.target; in this container nothing brings the network up,
# so the wait-online services would only time out (2 min). Masked here, not in the unit.
for wait_online in $(systemctl list-unit-files --no-legend '*wait-online*' | awk '{print $1}'); do
    systemctl mask "$wait_online" >/dev/null 2>&1 || true
done
systemctl start dataplane@gw || fail "systemctl start"
for _ in $(seq 50); do [ -S /run/wireguard/wg0.sock ] && break; sleep 0.2; done
[ "$(systemctl is-active dataplane@gw)" = active ] || fail "dataplane@gw is not active"
[ -S /run/wireguard/wg0.sock ] || fail "no UAPI socket /run/wireguard/wg0.sock"
pid="$(systemctl show -p MainPID --value dataplane@gw)"
field() { sed -n "s/^$1:[[:space:]]*//p" "/proc/$pid/status"; }
[ "$(field Uid | awk '{print $1}')" = "$uid" ] || fail "runs as uid $(field Uid)"
# CAP_NET_ADMIN 12, CAP_NET_RAW 13, CAP_IPC_LOCK 14, CAP_BPF 39.
for set in CapEff CapPrm CapBnd CapAmb; do
    [ "$(field $set)" = 0000008000007000 ] || fail "$set is $(field $set), not the four capabilities"
done
[ "$(field NoNewPrivs)" = 1 ] || fail "NoNewPrivs is $(field NoNewPrivs)"
[ "$(field Seccomp)" = 2 ] || fail "no seccomp filter (Seccomp $(field Seccomp))"
journalctl -u dataplane@gw --no-pager | grep -q 'gateway running' || fail "no 'gateway running' in the journal"
ok "running as dataplane with the four capabilities, NoNewPrivs, seccomp; XDP attached, AF_XDP bound"

grep -v '^Address\|^DNS' /root/peers/client.conf > /root/client.wg
ip netns exec client wireguard-go wgc >/dev/null 2>&1
ip netns exec client wg setconf wgc /root/client.wg
ip -n client addr add 10.13.13.2/32 dev wgc && ip -n client link set wgc up
ip -n client route add 10.13.13.0/24 dev wgc
answered=0
for _ in $(seq 15); do
    if ip netns exec client ping -c 1 -W 1 10.13.13.1 >/dev/null 2>&1; then answered=1; break; fi
done
[ "$answered" = 1 ] || fail "the client's pings to 10.13.13.1 through the tunnel got no answer"
ip netns exec client ping -c 3 -i 0.2 -W 1 10.13.13.1 >/dev/null || fail "pings after the handshake lost"
[ "$(wg show wg0 latest-handshakes | awk '{print $2}')" != 0 ] || fail "wg show: no handshake"
ok "client handshake, pings through the tunnel, wg show answers"

dataplane peer add second --config /etc/dataplane/gw.toml --server-url 172.23.0.3:51820 \
    --out-dir /root/peers --no-qr 2>&1 | grep -q 'applied to the running gateway' \
    || fail "peer add did not apply to the running gateway"
[ "$(stat -c %U /etc/dataplane/gw.toml)" = dataplane ] || fail "peer add left gw.toml owned by $(stat -c %U /etc/dataplane/gw.toml)"
[ "$(wg show wg0 peers | wc -l)" = 2 ] || fail "wg show lists $(wg show wg0 peers | wc -l) peers after peer add"
systemctl reload dataplane@gw
for _ in $(seq 25); do
    journalctl -u dataplane@gw --no-pager | grep -q 'configuration reloaded.*peers=2' && break; sleep 0.2
done
journalctl -u dataplane@gw --no-pager | grep -q 'configuration reloaded.*peers=2' || fail "systemctl reload: no reload in the journal"
[ "$(systemctl show -p MainPID --value dataplane@gw)" = "$pid" ] || fail "reload restarted the gateway"
ok "peer add as root: applied live, gw.toml still owned by dataplane; systemctl reload reloaded 2 peers"

systemctl stop dataplane@gw
[ "$(systemctl is-active dataplane@gw)" = inactive ] || fail "not inactive after stop: $(systemctl is-active dataplane@gw)"
! ip link show wg0 >/dev/null 2>&1 || fail "wg0 left after stop"
! ip link show gw0 | grep -q 'prog/xdp' || fail "XDP program left on gw0 after stop"
[ ! -e /run/wireguard/wg0.sock ] || fail "UAPI socket left after stop"
journalctl -u dataplane@gw --no-pager | grep -E ' (ERROR|WARN) ' | grep -v 'AF_XDP bind failed, trying the next mode' \
    && fail "errors or warnings in the journal (above)"
ok "systemctl stop: no wg0, no XDP program, no UAPI socket; no error in the journal"

# After SIGKILL the XDP program stays attached; without CAP_SYS_ADMIN the next start cannot read
# its name, and knows it as its own by the id it recorded under /run/dataplane: Restart=on-failure
# must bring the gateway back.
running() { journalctl -u dataplane@gw --no-pager | grep -c 'gateway running' || true; }
systemctl start dataplane@gw
for _ in $(seq 50); do [ "$(running)" -ge 2 ] && break; sleep 0.2; done  # the second start
before="$(running)"
systemctl kill -s KILL dataplane@gw
for _ in $(seq 40); do [ "$(running)" -gt "$before" ] && break; sleep 0.25; done
[ "$(running)" -gt "$before" ] \
    || fail "after SIGKILL, Restart=on-failure did not bring the gateway back: $(journalctl -u dataplane@gw --no-pager | grep -E 'ERROR' | tail -2)"
ok "after SIGKILL, Restart=on-failure brought the gateway back"
systemctl stop dataplane@gw || true
CONTAINER
echo "test-service-nspawn: all checks passed"
