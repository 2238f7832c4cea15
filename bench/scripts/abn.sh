#!/bin/sh
# Shared by the results folders that compare builds (run from the folder: sh ../../scripts/abn.sh).
# Interleaved rounds of `bench --quick --no-e2e --one-worker --sizes $SIZES` over several builds.
# BINS: "label=path label=path ..." (run in this order every round); ROUNDS; OUT; SIZES.
set -eu
ROUNDS=${ROUNDS:-4}
OUT=${OUT:-raw}
SIZES=${SIZES:-64}
mkdir -p "$OUT"
i=1
while [ "$i" -le "$ROUNDS" ]; do
  for lb in $BINS; do
    label=${lb%%=*}; bin=${lb#*=}
    d=$(mktemp -d)
    printf 'round %s %s start %s load %s\n' "$i" "$label" "$(date -u +%T)" "$(cut -d' ' -f1-3 /proc/loadavg)" >> "$OUT/log.txt"
    "$bin" --quick --no-e2e --one-worker --sizes "$SIZES" --out "$d" 2> "$OUT/r$i-$label.stderr" >/dev/null
    cp "$d/results.md" "$OUT/r$i-$label.md"
    rm -rf "$d"
  done
  i=$((i+1))
done
printf 'done %s\n' "$(date -u +%T)" >> "$OUT/log.txt"
