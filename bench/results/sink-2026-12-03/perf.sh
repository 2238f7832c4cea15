#!/bin/sh
# One more `--sink xdp` run with the CPU watched during dataplane's `max` points: when the
# progress line of the point before (reverse, 40 kpps) appears, record 3 s system-wide
# (perf record -a, covering the forward and the reverse `max` point) with mpstat per core and
# /proc/softirqs before and after. Under the root-test lock.
set -u
BIN=${BIN:-/tmp/sinkm}
OUT=${OUT:-/tmp/sinkm/perf}
mkdir -p "$OUT"
watch_point() { # $1 size label, $2 tag
  while ! grep -q "sink -> generator $1 at 40 kpps" "$OUT/progress.txt" 2>/dev/null; do sleep 0.1; done
  cat /proc/softirqs > "$OUT/softirqs-$2.before"
  mpstat -P ALL 1 3 > "$OUT/mpstat-$2.txt" &
  perf record -a -F 999 -o "$OUT/perf-$2.data" -- sleep 3 2> "$OUT/perf-$2.log"
  cat /proc/softirqs > "$OUT/softirqs-$2.after"
  wait
}
flock /tmp/roottests.lock sh -c "
  '$BIN/bench' --quick --no-pipeline --generator xdp --sink xdp --dataplane '$BIN/dataplane' \
    --out '$OUT' > /dev/null 2> '$OUT/progress.txt'
  wait" &
watch_point "64 B" 64
watch_point "1420 B" 1420
wait
echo done
