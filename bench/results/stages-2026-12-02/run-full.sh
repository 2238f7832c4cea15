#!/bin/sh
# Interleaved before/after runs of `bench --quick --no-e2e` (pipeline only).
# BEFORE / AFTER: the two bench binaries; rounds START..ROUNDS (default 1..3); OUT: raw output folder.
set -eu
BEFORE=${BEFORE:-/work/target-h-bench-old/release/bench}
AFTER=${AFTER:-/work/target-h-bench/release/bench}
ROUNDS=${ROUNDS:-3}   # last round number
OUT=${OUT:-raw}
mkdir -p "$OUT"
lscpu | grep 'Model name' > "$OUT/cpu.txt"
uname -r >> "$OUT/cpu.txt"
i=${START:-1}
while [ "$i" -le "$ROUNDS" ]; do
  for which in before after; do
    if [ "$which" = before ]; then bin=$BEFORE; else bin=$AFTER; fi
    d=$(mktemp -d)
    printf 'round %s %s start %s load %s\n' "$i" "$which" "$(date -u +%T)" "$(cut -d' ' -f1-3 /proc/loadavg)" | tee -a "$OUT/log.txt"
    "$bin" --quick --no-e2e --out "$d" 2> "$OUT/r$i-$which.stderr"
    cp "$d/results.md" "$OUT/r$i-$which.md"
    rm -rf "$d"
    printf 'round %s %s end   %s load %s\n' "$i" "$which" "$(date -u +%T)" "$(cut -d' ' -f1-3 /proc/loadavg)" | tee -a "$OUT/log.txt"
  done
  i=$((i+1))
done
