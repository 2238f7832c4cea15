#!/usr/bin/env bash
# The README's first command. On a fresh Debian 12 machine as root: installs what the build and
# the lab need, builds the gateway, then runs the namespace lab (dataplane::lab::run_demo): the
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
# The lab turns tx checksum offload off on its veths (see dataplane/src/lab/mod.rs) with ethtool.
if ! command -v ethtool >/dev/null; then
    echo "lab.sh: installing ethtool"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends ethtool >/dev/null
fi

target_dir="${CARGO_TARGET_DIR:-$PWD/target}"
echo "lab.sh: cargo build --release -p dataplane"
cargo build --release -p dataplane --bins
bin="$target_dir/release/dataplane"

# `dataplane lab` runs the demo with the binary itself as the gateway, once main.rs has it.
if help="$("$bin" lab --help 2>&1)" && grep -q "dataplane lab" <<<"$help"; then
    exec "$bin" lab "$@"
fi
# Until then the example does the same (it pulls in dev-dependencies, hence the separate build).
echo "lab.sh: \`dataplane lab\` is not available yet; running the lab example with $bin as the gateway"
cargo build --release -p dataplane --example lab
exec "$target_dir/release/examples/lab" --dataplane "$bin" "$@"
