#!/bin/sh
set -u
for r in 1 2; do for v in base new; do
  echo "== $v round $r start $(date -u +%T) load $(cut -d' ' -f1-3 /proc/loadavg)"
  flock /tmp/roottests.lock /tmp/abk/$v/bench --quick --no-pipeline --generator xdp --dataplane /tmp/abk/$v/dataplane --out /tmp/abk/out-$v-$r > /dev/null 2>/tmp/abk/$v-$r.err
  echo "rc=$?"
done; done
echo ALLDONE
