#!/usr/bin/env bash
# Agent footprint benchmark: stripped binary size, idle RSS with 10 running services, and the
# time from `baton up` to all instances healthy. Prints a Markdown table for BENCHMARKS.md.
# Usage: bench/agent/run.sh [path/to/baton]   (default: build/src/cli/baton)
set -euo pipefail
cd "$(dirname "$0")/../.."
baton="$(realpath "${1:-build/src/cli/baton}")"
work="$(mktemp -d /tmp/baton-bench-agent.XXXXXX)"
chmod 755 "$work"  # the services run as their own users, in the manifest's directory
port=$((20000 + RANDOM % 20000))
export BATON_ADDR="http://127.0.0.1:$port"
agent_pid=""
cleanup() {
  [[ -n "$agent_pid" ]] && kill "$agent_pid" 2>/dev/null || true
  BATON_ADDR="$BATON_ADDR" "$baton" down bench >/dev/null 2>&1 || true
  sleep 1
  pkill -9 -f "$work" 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

strip -o "$work/baton-stripped" "$baton"
size_bytes=$(stat -c %s "$work/baton-stripped")
# The instances' supervisor, where the agent looks for it (beside itself).
if [[ -x "$(dirname "$baton")/baton-supervise" ]]; then
  strip -o "$work/baton-supervise" "$(dirname "$baton")/baton-supervise"
fi

{
  echo 'app = "bench"'
  for i in $(seq 1 10); do
    cat <<EOT
[services.s$i]
run = ["python3", "-m", "http.server", "--bind", "0.0.0.0", "\${PORT}"]
memory = "64MiB"
cpu = 0.05
EOT
  done
} >"$work/app.toml"

"$work/baton-stripped" agent --dev --data-dir "$work/data" --api "127.0.0.1:$port" \
  --http 127.0.0.1:0 --https 127.0.0.1:0 >"$work/agent.log" 2>&1 &
agent_pid=$!
for _ in $(seq 100); do curl -fsS "$BATON_ADDR/v1/health" >/dev/null 2>&1 && break; sleep 0.1; done

t0=$(date +%s.%N)
"$baton" up "$work/app.toml" --wait --timeout 120s >/dev/null
t1=$(date +%s.%N)
up_seconds=$(python3 -c "print(f'{$t1 - $t0:.2f}')")

sleep 15   # idle: no deploys, no requests
rss_kb=$(awk '/VmRSS/ {print $2}' "/proc/$agent_pid/status")
pss_kb=$(awk '/^Pss:/ {print $2}' "/proc/$agent_pid/smaps_rollup")
sup_pids=$(pgrep -f "supervise .*$work" || true)
sup_n=$(echo "$sup_pids" | grep -c . || true)
sup_rss=0; sup_pss=0; sup_priv=0
for p in $sup_pids; do
  sup_rss=$((sup_rss + $(awk '/VmRSS/ {print $2}' /proc/$p/status)))
  sup_pss=$((sup_pss + $(awk '/^Pss:/ {print $2}' /proc/$p/smaps_rollup)))
  sup_priv=$((sup_priv + $(awk '/^Private_(Clean|Dirty):/ {s+=$2} END {print s}' /proc/$p/smaps_rollup)))
done
n=$((sup_n > 0 ? sup_n : 1))
mib() { awk -v k="$1" 'BEGIN {printf "%.1f", k / 1024}'; }

echo "| metric | value | goal |"
echo "|---|---|---|"
echo "| stripped binary size | $((size_bytes / 1024)) KiB | - |"
echo "| agent idle RSS, 10 services running | $(mib "$rss_kb") MiB (PSS $(mib "$pss_kb") MiB) | ≤ 16 MiB |"
echo "| per-instance supervisor, mean of $sup_n | RSS $((sup_rss / n)) KiB, PSS $((sup_pss / n)) KiB, private $((sup_priv / n)) KiB | - |"
echo "| agent + 10 supervisors, PSS | $(mib $((pss_kb + sup_pss))) MiB | - |"
echo "| \`baton up\` to 10 instances healthy | ${up_seconds} s | - |"
