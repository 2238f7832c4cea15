#!/usr/bin/env bash
# Runs container/compose.yaml with podman on this machine: builds both images FROM scratch
# (build-image.sh, from the debug binary the test run already built), writes a gw.toml and a
# peer with the image itself (`init`, `peer add` in /config), starts the layout with
# podman-compose (the gateway and the HTTP server on one bridge network, 51820/udp published),
# and has a wireguard-go client in a network namespace of its own download 32 MiB from the HTTP
# server through the tunnel, reaching the gateway through the published port on the host
# (the host's address on the client's veth, DNAT by podman's port mapping), as a phone reaches
# the article's host. Checks: the default seccomp profile refuses bpf(2) with CAP_BPF (why
# seccomp.json exists); the gateway runs with exactly NET_ADMIN, NET_RAW, BPF and IPC_LOCK, no
# new privileges, a seccomp filter, XDP in driver mode on the container's eth0; its log is in
# `podman logs`; the server's veth keeps tx checksum offload on (the bridge's defaults) and the
# gateway completed partial checksums; the 32 MiB arrive intact (sha256); `dataplane stats` and
# `dataplane peer add` work through `podman exec`; `podman stop` exits 0.
#
# Root only (skips with the reason otherwise). podman's settings for this VM (runc, no default
# ulimits, cgroupfs) come from a containers.conf in a temporary directory (CONTAINERS_CONF);
# nothing in /etc is changed. Everything it creates (containers, network, images, namespace,
# veth) is removed on exit, also on failure. About 30 s.
set -euo pipefail
repo="$(cd "$(dirname "$0")/.." && pwd)"
cd "$repo"

skip() { echo "test-podman: skip: $*" >&2; exit 0; }
fail() { echo "test-podman: FAIL: $*" >&2; exit 1; }
ok() { echo "test-podman: ok: $*"; }

[ "$(id -u)" -eq 0 ] || skip "not root (podman, network namespaces and XDP need root)"
for tool in podman runc podman-compose wireguard-go wg curl busybox sha256sum; do
    command -v "$tool" >/dev/null || fail "$tool not installed (dataplane/scripts/install-deps.sh installs it)"
done

target="${CARGO_TARGET_DIR:-$repo/target}"
binary="${DATAPLANE_BIN:-$target/debug/dataplane}"
if [ ! -x "$binary" ]; then
    cargo build -p dataplane --bin dataplane
fi

id="dptest$$"
work="$(mktemp -d /tmp/dataplane-podman.XXXXXX)"
ns="$id-client"
hostif="dpc$$"
host_addr=198.18.77.1
client_addr=198.18.77.2
export CONTAINERS_CONF="$work/containers.conf"
export DATAPLANE_IMAGE="localhost/dataplane:$id" HTTPD_IMAGE="localhost/dataplane-httpd:$id"
export DATAPLANE_NAME="$id-gw" HTTPD_NAME="$id-web"
export DATAPLANE_CONFIG="$work/config" HTTPD_ROOT="$work/www" DATAPLANE_SECCOMP="$repo/container/seccomp.json"
compose() { podman-compose -f "$repo/container/compose.yaml" -p "$id" "$@"; }

cleanup() {
    local rc=$?
    if [ "$rc" -ne 0 ]; then
        echo "test-podman: the gateway's log (podman logs):" >&2
        podman logs "$DATAPLANE_NAME" 2>&1 | tail -25 >&2 || true
    fi
    for pid in $(ip netns pids "$ns" 2>/dev/null); do kill "$pid" 2>/dev/null || true; done
    ip netns del "$ns" 2>/dev/null || true
    ip link del "$hostif" 2>/dev/null || true
    podman rm -f -t 0 "$DATAPLANE_NAME" "$HTTPD_NAME" "$id-defseccomp" >/dev/null 2>&1 || true
    podman network rm -f "${id}_lan" >/dev/null 2>&1 || true
    podman rmi -f "$DATAPLANE_IMAGE" "$HTTPD_IMAGE" >/dev/null 2>&1 || true
    rm -rf "$work"
}
trap cleanup EXIT

# This VM's podman: runc (crun is not installed), no default ulimits (the defaults raise
# RLIMIT_NOFILE above what the VM allows), cgroupfs and a file event log (no systemd as init).
cat > "$CONTAINERS_CONF" <<'CONF'
[containers]
default_ulimits = []
[engine]
runtime = "runc"
cgroup_manager = "cgroupfs"
events_logger = "file"
CONF

start=$SECONDS
bash container/build-image.sh --binary "$binary" --tag "$DATAPLANE_IMAGE" --httpd-tag "$HTTPD_IMAGE" >/dev/null \
    || fail "build-image.sh"
ok "images built FROM scratch: $DATAPLANE_IMAGE, $HTTPD_IMAGE ($((SECONDS - start)) s)"

mkdir -p "$work/config" "$work/www"
head -c $((32 << 20)) /dev/urandom > "$work/www/blob.bin"
want="$(sha256sum < "$work/www/blob.bin" | awk '{print $1}')"
podman run --rm -v "$work/config:/config" "$DATAPLANE_IMAGE" init --interface eth0 >/dev/null 2>&1 \
    || fail "dataplane init in the image"
podman run --rm -v "$work/config:/config" "$DATAPLANE_IMAGE" peer add peer1 \
    --server-url "$host_addr:51820" --no-qr >/dev/null 2>&1 || fail "dataplane peer add in the image"
[ -f "$work/config/gw.toml" ] && [ -f "$work/config/peers/peer1.conf" ] \
    || fail "init/peer add left no /config/gw.toml or /config/peers/peer1.conf in the volume"
ok "gw.toml and peers/peer1.conf written into the config volume by the image"

compose up -d > "$work/compose.log" 2>&1 || { cat "$work/compose.log" >&2; fail "podman-compose up"; }
# The gateway's log, as `podman logs` has it (into a file: grep -q on a pipe would cut it short).
gwlog="$work/gateway.log"
read_log() { podman logs "$DATAPLANE_NAME" > "$gwlog" 2>&1 || true; }
for _ in $(seq 50); do
    read_log
    grep -q 'gateway running' "$gwlog" && break
    [ "$(podman inspect -f '{{.State.Running}}' "$DATAPLANE_NAME")" = true ] || break
    sleep 0.2
done
grep -q 'gateway running' "$gwlog" || fail "the gateway did not start"
grep -q 'XDP program attached ifname="eth0" mode="driver"' "$gwlog" \
    || fail "no XDP program in driver mode on the container's eth0"
! grep -E ' (WARN|ERROR) ' "$gwlog" || fail "warnings or errors in the gateway's log (above)"
ok "podman-compose up: the gateway runs, XDP in driver mode on eth0, its log in podman logs, no warning"

# The capabilities and the sandbox, read from the host.
pid="$(podman inspect -f '{{.State.Pid}}' "$DATAPLANE_NAME")"
field() { sed -n "s/^$1:[[:space:]]*//p" "/proc/$pid/status"; }
# CAP_NET_ADMIN 12, CAP_NET_RAW 13, CAP_IPC_LOCK 14, CAP_BPF 39.
for set in CapEff CapPrm CapBnd; do
    [ "$(field $set)" = 0000008000007000 ] || fail "$set is $(field $set), not the four capabilities"
done
[ "$(field NoNewPrivs)" = 1 ] || fail "NoNewPrivs is $(field NoNewPrivs)"
[ "$(field Seccomp)" = 2 ] || fail "no seccomp filter (Seccomp $(field Seccomp))"
ok "the gateway holds exactly NET_ADMIN NET_RAW BPF IPC_LOCK, NoNewPrivs, seccomp filter"

# Why seccomp.json: the same capabilities under podman's default profile cannot load the program.
if timeout 20 podman run --rm --name "$id-defseccomp" --cap-drop ALL \
        --cap-add NET_ADMIN,NET_RAW,BPF,IPC_LOCK --device /dev/net/tun \
        -v "$work/config:/config" --net "${id}_lan" "$DATAPLANE_IMAGE" > "$work/defseccomp.log" 2>&1; then
    fail "the gateway ran under the default seccomp profile: seccomp.json is not needed?"
fi
grep -q 'loading the XDP program into the kernel failed: Operation not permitted' "$work/defseccomp.log" \
    || { cat "$work/defseccomp.log" >&2; fail "under the default seccomp profile: not the bpf(2) EPERM expected"; }
ok "under podman's default seccomp profile the same capabilities get EPERM from bpf(2)"

web_pid="$(podman inspect -f '{{.State.Pid}}' "$HTTPD_NAME")"
web_addr="$(podman inspect -f '{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}' "$HTTPD_NAME")"
subnet="$(podman network inspect -f '{{range .Subnets}}{{.Subnet}}{{end}}' "${id}_lan")"
[ -n "$web_addr" ] && [ -n "$subnet" ] || fail "no address for the HTTP server or no subnet"
if command -v ethtool >/dev/null; then
    nsenter -t "$web_pid" -n ethtool -k eth0 | grep -q '^tx-checksumming: on' \
        || fail "the HTTP server's eth0 has tx checksum offload off: the bridge's defaults are expected"
fi

# The client: a namespace whose veth's other end is on the host, the endpoint the host's address.
ip netns add "$ns"
ip link add "$hostif" type veth peer name eth0 netns "$ns"
ip addr add "$host_addr/30" dev "$hostif"
ip link set "$hostif" up
ip -n "$ns" addr add "$client_addr/30" dev eth0
ip -n "$ns" link set eth0 up
ip -n "$ns" link set lo up
ip -n "$ns" route add default via "$host_addr"
grep -v '^Address\|^DNS' "$work/config/peers/peer1.conf" > "$work/client.wg"
ip netns exec "$ns" wireguard-go wgc >/dev/null 2>&1
ip netns exec "$ns" wg setconf wgc "$work/client.wg"
ip -n "$ns" addr add 10.13.13.2/32 dev wgc
ip -n "$ns" link set wgc up
ip -n "$ns" route add "$subnet" dev wgc
answered=0
for _ in $(seq 15); do
    if ip netns exec "$ns" ping -c 1 -W 1 "$web_addr" >/dev/null 2>&1; then answered=1; break; fi
done
[ "$answered" = 1 ] || fail "the client's pings to the HTTP server $web_addr through the tunnel got no answer"
ok "wireguard-go client -> $host_addr:51820 (published) -> gateway container: handshake, ping $web_addr"

t0=$SECONDS
got="$(ip netns exec "$ns" curl -sS --max-time 90 "http://$web_addr/blob.bin" | sha256sum | awk '{print $1}')"
[ "$got" = "$want" ] || fail "the 32 MiB download through the tunnel differs (sha256 $got, want $want)"
ok "32 MiB downloaded through the tunnel intact in $((SECONDS - t0)) s (sha256 $want)"

completed="$(podman exec "$DATAPLANE_NAME" dataplane stats --json \
    | python3 -c 'import json,sys; print(sum(w["csum_completed"] for w in json.load(sys.stdin)["workers"]))')"
[ "$completed" -gt 0 ] || fail "no partial checksum completed: the bridge's offload was not exercised"
ok "dataplane stats (podman exec): csum_completed $completed"

podman exec "$DATAPLANE_NAME" dataplane peer add second --server-url "$host_addr:51820" --no-qr \
    > "$work/peer-add.log" 2>&1 || { cat "$work/peer-add.log" >&2; fail "peer add in the running container"; }
grep -q 'applied to the running gateway' "$work/peer-add.log" \
    || { cat "$work/peer-add.log" >&2; fail "peer add (podman exec) did not apply to the running gateway"; }
[ -f "$work/config/peers/second.conf" ] || fail "peer add (podman exec) wrote no peers/second.conf in the volume"
ok "podman exec ... dataplane peer add: applied live, peers/second.conf in the config volume"

podman stop -t 10 "$DATAPLANE_NAME" >/dev/null
[ "$(podman inspect -f '{{.State.ExitCode}}' "$DATAPLANE_NAME")" = 0 ] || fail "the gateway exited non-zero on SIGTERM"
read_log
grep -q 'stopped: XDP programs detached, wg0 removed' "$gwlog" || fail "no clean stop in the log"
compose down > "$work/compose.log" 2>&1 || { cat "$work/compose.log" >&2; fail "podman-compose down"; }
ok "podman stop: exit 0, XDP detached; podman-compose down"
echo "test-podman: all checks passed in $((SECONDS - start)) s"
