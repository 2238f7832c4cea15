#!/bin/sh
# One more `--sink xdp` run with the CPU watched during dataplane's 64 B `max` points: when the
# progress line of the point before (reverse, 40 kpps) appears, record 8 s system-wide
# (perf record -a: the generator sealing its pool, the forward `max` second, the drain, the
# reverse `max` second), with /proc/softirqs before and after. Under the root-test lock.
# Read with: perf script -F comm,tid,cpu,time | awk (per 250 ms bucket, per core and thread).
set -u
BIN=${BIN:-/tmp/sinkm}
OUT=${OUT:-/tmp/sinkm/perf}
mkdir -p "$OUT"
flock /tmp/roottests.lock sh -c "
  '$BIN/bench' --quick --no-pipeline --generator xdp --sink xdp --dataplane '$BIN/dataplane' \
    --out '$OUT' > /dev/null 2> '$OUT/progress.txt'" &
bench=$!
while ! grep -q "sink -> generator 64 B at 40 kpps" "$OUT/progress.txt" 2>/dev/null; do sleep 0.1; done
cat /proc/softirqs > "$OUT/softirqs-64.before"
perf record -a -F 999 -o "$OUT/perf-64.data" -- sleep 8 2> "$OUT/perf-64.log"
cat /proc/softirqs > "$OUT/softirqs-64.after"
wait $bench
echo done
