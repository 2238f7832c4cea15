#!/bin/sh
# Interleaved A/B rounds of `bench --quick --no-e2e --sizes 64,1420 --one-worker`.
# A / B: the two bench binaries; ROUNDS (default 5); OUT: raw output folder; SIZES (default 64,1420).
set -eu
ROUNDS=${ROUNDS:-5}
OUT=${OUT:-raw}
SIZES=${SIZES:-64,1420}
mkdir -p "$OUT"
i=1
while [ "$i" -le "$ROUNDS" ]; do
  for which in A B; do
    if [ "$which" = A ]; then bin=$A; else bin=$B; fi
    d=$(mktemp -d)
    printf 'round %s %s start %s load %s\n' "$i" "$which" "$(date -u +%T)" "$(cut -d' ' -f1-3 /proc/loadavg)" >> "$OUT/log.txt"
    "$bin" --quick --no-e2e --one-worker --sizes "$SIZES" --out "$d" 2> "$OUT/r$i-$which.stderr" >/dev/null
    cp "$d/results.md" "$OUT/r$i-$which.md"
    rm -rf "$d"
  done
  i=$((i+1))
done
printf 'done %s\n' "$(date -u +%T)" >> "$OUT/log.txt"
