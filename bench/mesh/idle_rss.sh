#!/bin/bash
# Idle agent RSS with the example app (examples/shop), isolated (mesh proxy and its DNS on) vs
# host network (mesh off): the difference is what the per-node proxy costs. Needs root.
#   bench/mesh/idle_rss.sh
set -e
for mode in host isolated; do
  d=$(mktemp -d /tmp/rss.XXXX); chmod 755 $d
  printf '[node]\nnetwork = "%s"\n' $mode > $d/baton.toml
  /work/main/build/src/cli/baton agent --dev --config $d/baton.toml --data-dir $d/data --api 127.0.0.1:4790 --http 127.0.0.1:4791 --https 127.0.0.1:4792 --dns 127.0.0.1:4793 > $d/log 2>&1 &
  pid=$!
  sleep 1
  BATON_ADDR=http://127.0.0.1:4790 /work/main/build/src/cli/baton up /work/main/examples/shop/app.toml --wait >/dev/null
  for i in 1 2 3 4 5; do curl -s http://127.0.0.1:4791/ | head -1; done
  sleep 8
  echo "$mode: agent RSS $(grep VmRSS /proc/$pid/status | awk '{print $2}') kB, threads $(ls /proc/$pid/task | wc -l)"
  BATON_ADDR=http://127.0.0.1:4790 /work/main/build/src/cli/baton down shop >/dev/null
  kill $pid; wait $pid 2>/dev/null || true
  rm -rf $d
done
