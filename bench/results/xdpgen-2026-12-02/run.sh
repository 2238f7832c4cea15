#!/bin/sh
# The end-to-end quick benchmark with both load generators, one after the other in one run of
# this script: AF_XDP first, then sendmmsg, each against dataplane, wireguard-go + MASQUERADE
# and boringtun + MASQUERADE in the same bench invocation (so the ratios are per generator).
# Needs root and release builds of bench and dataplane:
#   cargo build --release -p bench -p dataplane
#   sudo flock /tmp/roottests.lock sh bench/results/xdpgen-2026-12-02/run.sh target/release run1
# NICE=-10 runs the bench (and the gateways it starts) at that niceness.
set -eu
bin=${1:-target/release}
out=$(dirname "$0")/${2:-run}
mkdir -p "$out"
lscpu > "$out/lscpu.txt"
for gen in xdp sendmmsg; do
    echo "== $gen, start $(date -u +%H:%M:%S), load $(cut -d' ' -f1-3 /proc/loadavg), nice ${NICE:-0}" | tee "$out/$gen.stderr.txt"
    nice -n "${NICE:-0}" "$bin/bench" --quick --no-pipeline --generator "$gen" --out "$out/$gen" >/dev/null 2>>"$out/$gen.stderr.txt"
done
