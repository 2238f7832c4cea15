#!/usr/bin/env bash
# The README's first command. On a fresh Debian 12 machine as root: installs what the build and
# the lab need, builds the gateway, then runs the namespace lab (`dataplane-lab`, lab/): the
# article's client (wireguard-go, 10.13.13.2), gateway and HTTP server (172.23.0.2) in network
# namespaces, a ping and an HTTP GET through the gateway, each packet explained the way the
# article's diagram does, counters, and cleanup.
#
# Arguments go to the lab, e.g.:  sudo bash dataplane/scripts/lab.sh --topology both --keep
set -euo pipefail
cd "$(dirname "$0")/../.."

if [ "$(id -u)" -ne 0 ]; then
    echo "lab.sh: run as root (sudo bash $0): the lab creates network namespaces and TUN devices" >&2
    exit 1
fi

bash dataplane/scripts/install-deps.sh
target_dir="${CARGO_TARGET_DIR:-$PWD/target}"
echo "lab.sh: cargo build --release -p dataplane -p lab (the gateway and the lab demo)"
cargo build --release -p dataplane -p lab --bins
# dataplane-lab runs the `dataplane` binary built beside it as the gateway.
exec "$target_dir/release/dataplane-lab" "$@"
