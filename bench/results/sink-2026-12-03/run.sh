#!/bin/sh
# Interleaved rounds: the end-to-end quick run with the sink on AF_XDP and on UDP, the same
# release build (bench + dataplane copied to $BIN), each run under the root-test lock (it builds
# namespaces). Per run: the progress lines, results.md, and the softirq/CPU counters per core
# before and after (/proc/softirqs, /proc/stat).
set -u
BIN=${BIN:-/tmp/sinkm}
OUT=${OUT:-/tmp/sinkm/out}
ROUNDS=${ROUNDS:-2}
mkdir -p "$OUT"
r=1
while [ "$r" -le "$ROUNDS" ]; do
  for sink in xdp udp; do
    d="$OUT/$sink-$r"; mkdir -p "$d"
    echo "== $sink round $r start $(date -u +%T) load $(cut -d' ' -f1-3 /proc/loadavg)"
    flock /tmp/roottests.lock sh -c "
      cat /proc/softirqs > '$d/softirqs.before'; grep '^cpu' /proc/stat > '$d/stat.before'
      '$BIN/bench' --quick --no-pipeline --generator xdp --sink $sink --dataplane '$BIN/dataplane' \
        --out '$d' > /dev/null 2> '$d/progress.txt'
      echo rc=\$? >> '$d/progress.txt'
      cat /proc/softirqs > '$d/softirqs.after'; grep '^cpu' /proc/stat > '$d/stat.after'"
    tail -1 "$d/progress.txt"
  done
  r=$((r+1))
done
echo "done $(date -u +%T)"
