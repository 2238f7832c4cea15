#!/usr/bin/env bash
# Installs what building and testing the gateway needs on a Debian 12 machine, and mounts bpffs.
# Idempotent: packages already present are not reinstalled. libpcap-dev is there because xsk-rs
# builds libxdp from source and its configure step insists on pcap headers. systemd (for
# systemd-analyze and systemd-sysusers, not as init), dpkg-dev (dpkg-shlibdeps) and binutils (strip)
# are for packaging/test-deb.sh; systemd-container (systemd-nspawn) for test-service-nspawn.sh;
# podman, runc, podman-compose and busybox-static (the HTTP server's image) for
# container/test-podman.sh.
set -euo pipefail

PACKAGES=(clang llvm libelf-dev zlib1g-dev libpcap-dev pkg-config m4 make
          wireguard-go wireguard-tools iperf3 iproute2 iptables tshark python3 procps ethtool
          iputils-ping curl systemd systemd-container dpkg-dev binutils xz-utils
          podman runc podman-compose busybox-static)

if [ "$(id -u)" -ne 0 ]; then
    echo "install-deps: not root, skipping package installation and bpffs mount" >&2
    exit 0
fi

missing=()
for p in "${PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ "${#missing[@]}" -gt 0 ]; then
    echo "install-deps: installing ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    # tshark asks whether non-root users may capture; answer no without a prompt.
    echo "wireshark-common wireshark-common/install-setuid boolean false" | debconf-set-selections
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

if ! mountpoint -q /sys/fs/bpf; then
    echo "install-deps: mounting bpffs on /sys/fs/bpf"
    mount -t bpf bpf /sys/fs/bpf
fi

if ! command -v cargo >/dev/null; then
    echo "install-deps: cargo not found. Install the Rust toolchain (rustup, stable >= 1.83) and rerun." >&2
    exit 1
fi

# boringtun, the second independent WireGuard peer of the tests and a benchmark
# reference. Not packaged by Debian: built from crates.io into a fixed root, which the
# lab looks in (lab/src/userspace_wg.rs). Pinned to the version the lab was tested with;
# --locked uses the crate's own Cargo.lock. Takes about a minute on 2 cores; skipped when present.
BORINGTUN_VERSION=0.7.1
BORINGTUN_ROOT=/opt/boringtun
if [ "$("$BORINGTUN_ROOT/bin/boringtun-cli" --version 2>/dev/null)" = "boringtun $BORINGTUN_VERSION" ]; then
    :
else
    echo "install-deps: building boringtun-cli $BORINGTUN_VERSION into $BORINGTUN_ROOT (cargo install, about a minute)"
    start=$SECONDS
    cargo install --locked --quiet --force --version "=$BORINGTUN_VERSION" --root "$BORINGTUN_ROOT" boringtun-cli
    echo "install-deps: boringtun-cli $BORINGTUN_VERSION installed in $((SECONDS - start)) s"
fi
