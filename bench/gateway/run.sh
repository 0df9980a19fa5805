#!/usr/bin/env bash
# Gateway benchmark (issue 3, "bench/gateway"): wrk against Baton's gateway, nginx and HAProxy
# proxying the SAME backend, in one run, interleaved round-robin. Prints a Markdown report.
#
#   core 0 (PROXY_CPU):  nginx (1 worker) | HAProxy (nbthread 1) | baton agent (gateway threads=1)
#   core 1 (CLIENT_CPU): wrk -t1 + the backend (nginx, 1 worker, `return 200 "hello\n"`)
#
# The backend is deployed as a Baton service (its instance IS the backend nginx, so Baton has no
# extra hop) and re-pinned to core 1; nginx and HAProxy point at the same address:port.
#
# Usage: bench/gateway/run.sh            (see README.md; env knobs below)
#   ROUNDS=10 DURATION=3 CONNS=50 WARMUP=3  rounds, seconds per wrk run, connections, warm-up s
#                                         (short runs, many rounds: this host's speed drifts over
#                                         tens of seconds, so every round compares its proxies
#                                         within a few seconds of each other)
#   MAX_LOAD=1.0 LOAD_WAIT=180            wait up to LOAD_WAIT s for the 1-min load < MAX_LOAD
#   PERF=1                                perf stat pass (context switches, CPU per request)
#   PROFILE=0                             1: perf record the Baton agent (HTTP and JWT cases)
#   HOLD=0                                1: set up, write OUT_DIR/hold.env, wait for OUT_DIR/release
#   BATON=build/src/cli/baton  OUT_DIR=/tmp/baton-gw-bench.<time>  KEEP=0 (keep the work dir)
set -euo pipefail

here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"
BATON="$(realpath "${BATON:-$root/build/src/cli/baton}")"
ROUNDS="${ROUNDS:-10}"
DURATION="${DURATION:-3}"
CONNS="${CONNS:-50}"
WARMUP="${WARMUP:-3}"
MAX_LOAD="${MAX_LOAD:-1.0}"
LOAD_WAIT="${LOAD_WAIT:-180}"
PERF="${PERF:-1}"
PROFILE="${PROFILE:-0}"
KEEP="${KEEP:-0}"
PROXY_CPU="${PROXY_CPU:-0}"
CLIENT_CPU="${CLIENT_CPU:-1}"
OUT_DIR="${OUT_DIR:-/tmp/baton-gw-bench.$(date +%Y%m%d-%H%M%S)}"
command_line="$0 (ROUNDS=$ROUNDS DURATION=$DURATION CONNS=$CONNS WARMUP=$WARMUP)"

die() { echo "run.sh: $*" >&2; exit 1; }
log() { echo "[$(date +%H:%M:%S)] $*" >&2; }

[[ -x "$BATON" ]] || die "no baton binary at $BATON (ninja -C build -j2 baton)"
[[ $(nproc) -ge 2 ]] || die "needs at least 2 cores"

# ---- tools -----------------------------------------------------------------------------------
missing=()
for t in nginx haproxy wrk; do command -v "$t" >/dev/null || [[ -x /usr/sbin/$t ]] || missing+=("$t"); done
if ((${#missing[@]})); then
  log "installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get install -y --no-install-recommends nginx haproxy wrk >/dev/null 2>&1 ||
    { apt-get update >/dev/null && apt-get install -y --no-install-recommends nginx haproxy wrk >/dev/null; }
fi
export PATH="$PATH:/usr/sbin:/sbin"
NGINX="$(command -v nginx)"
HAPROXY="$(command -v haproxy)"
# The Debian packages' own services must not stay up (port 80, stray workers).
for svc in nginx haproxy; do
  if command -v systemctl >/dev/null && systemctl is-active --quiet "$svc" 2>/dev/null; then
    systemctl stop "$svc" || true
  elif [[ -f /run/$svc.pid ]] && kill -0 "$(cat /run/$svc.pid)" 2>/dev/null; then
    kill "$(cat /run/$svc.pid)" || true
  fi
done
have_perf=0
if [[ "$PERF" == 1 || "$PROFILE" == 1 ]] && perf stat -e task-clock true >/dev/null 2>&1; then
  have_perf=1
fi

# ---- work dir, ports, cleanup -----------------------------------------------------------------
work="$(mktemp -d /tmp/baton-gw-bench-work.XXXXXX)"
chmod 755 "$work"  # the backend service runs as its own user, in the manifest's directory
mkdir -p "$OUT_DIR" "$work/backend/tmp" "$work/nginx/tmp" "$work/wrk"
# The backend nginx runs as the service's own (dynamic) user: its error log and temp files.
chmod 1777 "$work/backend" "$work/backend/tmp"
pids=()
agent_pid=""
cleanup() {
  set +e
  if [[ -n "$agent_pid" ]] && kill -0 "$agent_pid" 2>/dev/null; then
    timeout 20 "$BATON" down gwbench >/dev/null 2>&1
    kill "$agent_pid" 2>/dev/null
    for _ in $(seq 100); do kill -0 "$agent_pid" 2>/dev/null || break; sleep 0.1; done
  fi
  # Every process this run started (proxies, nginx workers, the backend if the agent left it):
  # TERM, then KILL what is still there; by pid only.
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null; done
  for _ in $(seq 30); do
    alive=0
    for p in "${pids[@]}"; do kill -0 "$p" 2>/dev/null && alive=1; done
    ((alive)) || break
    sleep 0.1
  done
  for p in "${pids[@]}"; do kill -9 "$p" 2>/dev/null; done
  for p in $(pgrep -f "$work" 2>/dev/null); do [[ "$p" != "$$" ]] && kill -9 "$p" 2>/dev/null; done
  [[ "$KEEP" == 1 ]] || rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM
trap 'echo "run.sh: command failed at line $LINENO: $BASH_COMMAND" >&2' ERR

port_free() { ! ss -tanH "sport = :$1" | grep -q .; }
next_port=$((12000 + RANDOM % 18000))
alloc_port() {  # alloc_port VAR: the next free port (no subshell: next_port must advance)
  while ! port_free "$next_port"; do next_port=$((next_port + 1)); done
  printf -v "$1" '%s' "$next_port"
  next_port=$((next_port + 1))
}
for v in BACKEND_PORT NGINX_HTTP NGINX_HTTPS HAP_HTTP HAP_HTTPS BATON_HTTP BATON_HTTPS API_PORT; do
  alloc_port "$v"
done
export BATON_ADDR="http://127.0.0.1:$API_PORT"

render() {  # render TEMPLATE OUT [KEY=VALUE...]
  local in="$1" out="$2"; shift 2
  local args=(-e "s|@WORK@|$work|g" -e "s|@NGINX@|$NGINX|g" -e "s|@BACKEND_PORT@|$BACKEND_PORT|g")
  for kv in "$@"; do args+=(-e "s|@${kv%%=*}@|${kv#*=}|g"); done
  sed "${args[@]}" "$in" >"$out"
  ! grep -n '@[A-Z_]*@' "$out" || die "unrendered placeholder in $out"
}

# ---- wait for a quiet machine -----------------------------------------------------------------
load1() { cut -d' ' -f1 /proc/loadavg; }
waited=0
while awk -v l="$(load1)" -v m="$MAX_LOAD" 'BEGIN {exit !(l >= m)}' && ((waited < LOAD_WAIT)); do
  ((waited % 30 == 0)) && log "load average $(load1) >= $MAX_LOAD, waiting (up to ${LOAD_WAIT}s)"
  sleep 5; waited=$((waited + 5))
done
load_start="$(cut -d' ' -f1-3 /proc/loadavg)"

# ---- keys: TLS (ECDSA P-256, self-signed) and the JWT key + JWKS + token ------------------------
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 2 \
  -keyout "$work/tls.key" -out "$work/tls.crt" -subj "/CN=localhost" \
  -addext "subjectAltName=DNS:localhost,IP:127.0.0.1" >/dev/null 2>&1
cat "$work/tls.crt" "$work/tls.key" >"$work/tls.pem"
openssl ecparam -name prime256v1 -genkey -noout -out "$work/jwt.key" 2>/dev/null
TOKEN="$(python3 "$here/jwt.py" "$work/jwt.key" "$work/jwks.json")"

# ---- Baton agent (core 0) and the backend (a Baton service, re-pinned to core 1) ----------------
render "$here/baton.toml.in" "$work/baton.toml" "API_PORT=$API_PORT" "HTTP_PORT=$BATON_HTTP" \
  "HTTPS_PORT=$BATON_HTTPS"
render "$here/backend.nginx.conf.in" "$work/backend.conf"
render "$here/app.toml.in" "$work/app.toml"
log "starting the baton agent on core $PROXY_CPU"
taskset -a -c "$PROXY_CPU" "$BATON" agent --dev --config "$work/baton.toml" >"$work/agent.log" 2>&1 &
agent_pid=$!
for _ in $(seq 100); do curl -fsS "$BATON_ADDR/v1/health" >/dev/null 2>&1 && break; sleep 0.1; done
curl -fsS "$BATON_ADDR/v1/health" >/dev/null || { tail -20 "$work/agent.log" >&2; die "agent not up"; }
"$BATON" up "$work/app.toml" --wait --timeout 60s >/dev/null || { tail -20 "$work/agent.log" >&2; die "baton up failed"; }
read -r BACKEND_ADDR inst_port < <(curl -fsS "$BATON_ADDR/v1/instances?app=gwbench" |
  python3 -c 'import json,sys; i=[x for x in json.load(sys.stdin)["instances"] if x["state"]=="healthy"][0]; print(i["address"], i["port"])')
[[ "$inst_port" == "$BACKEND_PORT" ]] || die "instance port $inst_port != $BACKEND_PORT"
[[ "$BACKEND_ADDR" == 127.0.0.1 || "$BACKEND_ADDR" == localhost ]] || BACKEND_ADDR=127.0.0.1
backend_master=$(pgrep -f "$work/backend.conf" | head -1 || true)
[[ -n "$backend_master" ]] || die "backend nginx not found"
backend_pids="$backend_master $(pgrep -P "$backend_master" | tr '\n' ' ')"
pids+=($backend_pids)
for p in $backend_pids; do taskset -a -p -c "$CLIENT_CPU" "$p" >/dev/null; done
# The exec driver puts the instance in a cgroup with cpu.max from `cpu`; less than a whole core
# would throttle the backend (and every proxy's figure with it).
cg="/sys/fs/cgroup$(awk -F: '$1 == "0" {print $3}' "/proc/$backend_master/cgroup")/cpu.max"
if [[ -r "$cg" ]]; then
  read -r quota period <"$cg"
  [[ "$quota" == max || "$quota" -ge "$period" ]] || die "backend cgroup cpu.max is '$quota $period'"
fi
for _ in $(seq 100); do curl -fsS "http://127.0.0.1:$BATON_HTTP/" 2>/dev/null | grep -q hello && break; sleep 0.1; done

# ---- nginx and HAProxy (core 0) ---------------------------------------------------------------
render "$here/proxy.nginx.conf.in" "$work/nginx.conf" "BACKEND_ADDR=$BACKEND_ADDR" \
  "HTTP_PORT=$NGINX_HTTP" "HTTPS_PORT=$NGINX_HTTPS"
render "$here/haproxy.cfg.in" "$work/haproxy.cfg" "BACKEND_ADDR=$BACKEND_ADDR" \
  "HTTP_PORT=$HAP_HTTP" "HTTPS_PORT=$HAP_HTTPS"
taskset -c "$PROXY_CPU" "$NGINX" -c "$work/nginx.conf" -p "$work/nginx" -e "$work/nginx/error.log" \
  -g "daemon off;" >"$work/nginx.out" 2>&1 &
nginx_master=$!; pids+=("$nginx_master")
taskset -c "$PROXY_CPU" "$HAPROXY" -db -f "$work/haproxy.cfg" >"$work/haproxy.out" 2>&1 &
haproxy_pid=$!; pids+=("$haproxy_pid")

declare -A http_url https_url pidset
http_url[backend]="http://127.0.0.1:$BACKEND_PORT/"
http_url[nginx]="http://127.0.0.1:$NGINX_HTTP/";  https_url[nginx]="https://127.0.0.1:$NGINX_HTTPS/"
http_url[haproxy]="http://127.0.0.1:$HAP_HTTP/";  https_url[haproxy]="https://127.0.0.1:$HAP_HTTPS/"
http_url[baton]="http://127.0.0.1:$BATON_HTTP/";  https_url[baton]="https://127.0.0.1:$BATON_HTTPS/"
jwt_url="http://127.0.0.1:$BATON_HTTP/jwt"
key_url="http://127.0.0.1:$BATON_HTTP/key"
API_KEY="$("$BATON" apikey create bench --json | python3 -c 'import json,sys; print(json.load(sys.stdin)["key"])')"

# ---- preflight: every proxy answers "hello" over HTTP and HTTPS; JWT route refuses/accepts ----
for _ in $(seq 50); do
  curl -fsS "${http_url[nginx]}" >/dev/null 2>&1 && curl -fsS "${http_url[haproxy]}" >/dev/null 2>&1 && break
  sleep 0.1
done
for p in backend nginx haproxy baton; do
  body="$(curl -fsS "${http_url[$p]}")" || die "$p: HTTP request failed"
  [[ "$body" == hello ]] || die "$p: unexpected body '$body'"
done
declare -A tls_info
for p in nginx haproxy baton; do
  body="$(curl -fsS -k "${https_url[$p]}")" || die "$p: HTTPS request failed"
  [[ "$body" == hello ]] || die "$p: unexpected HTTPS body '$body'"
  port="${https_url[$p]##*:}"; port="${port%/}"
  s_out="$(openssl s_client -connect "127.0.0.1:$port" -servername localhost </dev/null 2>/dev/null)"
  proto="$(grep -m1 -oE 'TLSv1\.[0-9], Cipher is [A-Z0-9_-]+' <<<"$s_out" || echo '?')"
  kx="$(grep -m1 -oE 'Server Temp Key: [^,]+' <<<"$s_out" | sed 's/Server Temp Key: //' || echo '?')"
  # Can a client resume (session ticket)? wrk keeps the session across reconnects (SSL_clear).
  (printf 'GET / HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n'; sleep 0.3) |
    openssl s_client -connect "127.0.0.1:$port" -servername localhost -sess_out "$work/sess.$p" >/dev/null 2>&1 || true
  resumed="no"
  if [[ -s "$work/sess.$p" ]]; then
    r="$( (printf 'GET / HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n'; sleep 0.3) |
      openssl s_client -connect "127.0.0.1:$port" -servername localhost -sess_in "$work/sess.$p" 2>/dev/null |
      grep -m1 -oE '^(New|Reused),' || true)"
    [[ "$r" == "Reused," ]] && resumed="yes"
  fi
  tls_info[$p]="$proto, key exchange $kx, session resumption offered: $resumed"
done
code() { curl -s -o /dev/null -w '%{http_code}' "$@"; }
[[ "$(code "$jwt_url")" == 401 ]] || die "baton JWT route without a token did not answer 401"
[[ "$(code -H "Authorization: Bearer ${TOKEN}x" "$jwt_url")" == 401 ]] || die "tampered token not refused"
[[ "$(code -H "Authorization: Bearer $TOKEN" "$jwt_url")" == 200 ]] || die "valid token not accepted"
[[ "$(code "$key_url")" == 401 ]] || die "baton api-key route without a key did not answer 401"
[[ "$(code -H "Authorization: Bearer $API_KEY" "$key_url")" == 200 ]] || die "API key not accepted"

# Processes whose CPU time is charged to each target.
nginx_worker=$(pgrep -P "$nginx_master" | head -1)
pids+=("$nginx_worker")
pidset[backend]="$backend_pids"
pidset[nginx]="$nginx_master $nginx_worker"
pidset[haproxy]="$haproxy_pid"
pidset[baton]="$agent_pid"
for p in $nginx_master $nginx_worker $haproxy_pid; do
  [[ "$(taskset -p "$p" | awk '{print $NF}')" == "$(printf '%x' $((1 << PROXY_CPU)))" ]] || die "pid $p not pinned"
done

# ---- HOLD=1: leave everything running for manual measurement ----------------------------------
if [[ "${HOLD:-0}" == 1 ]]; then
  {
    echo "work=$work"
    for t in backend nginx haproxy baton; do echo "http_$t=${http_url[$t]}"; done
    for t in nginx haproxy baton; do echo "https_$t=${https_url[$t]}"; done
    echo "jwt_url=$jwt_url"; echo "token=$TOKEN"
    for t in backend nginx haproxy baton; do echo "pids_$t=\"${pidset[$t]}\""; done
  } >"$OUT_DIR/hold.env"
  log "holding: see $OUT_DIR/hold.env; touch $OUT_DIR/release to stop"
  while [[ ! -e "$OUT_DIR/release" ]]; do sleep 1; done
  exit 0
fi

# ---- measurement ------------------------------------------------------------------------------
results="$OUT_DIR/results.tsv"
echo -e "round\tcase\ttarget\trps\tp99_ms\tp50_ms\tnon2xx\tsock_err\trequests\tcpu_ticks\tsys_ticks\tcore0_busy\tcore1_busy\tbackend_sleeps" >"$results"
cpu_ticks() {  # utime+stime and stime (clock ticks) summed over pids
  local u=0 s=0 f
  for p in "$@"; do
    f=($(sed 's/^.*) //' "/proc/$p/stat" 2>/dev/null)) || continue
    u=$((u + f[11] + f[12])); s=$((s + f[12]))
  done
  echo "$u $s"
}
backend_worker=$(pgrep -P "$backend_master" | head -1 || true)
backend_sleeps() {  # voluntary context switches of the backend worker (it blocked: no request)
  awk '/^voluntary_ctxt_switches/ {print $2}' "/proc/${backend_worker:-0}/status" 2>/dev/null || echo 0
}
core_busy() { awk -v c="cpu$1" '$1 == c {print $2+$3+$4+$7+$8+$9, $2+$3+$4+$5+$6+$7+$8+$9}' /proc/stat; }
to_ms() { awk -v v="$1" 'BEGIN { if (v ~ /us$/) print v/1000; else if (v ~ /ms$/) print v+0; else if (v ~ /m$/) print v*60000; else print v*1000 }'; }

# run_wrk ROUND CASE TARGET URL [wrk args...]
run_wrk() {
  local round="$1" case="$2" target="$3" url="$4"; shift 4
  local out="$work/wrk/$round.$case.$target.txt"
  read -r t0 s0 < <(cpu_ticks ${pidset[$target]})
  read -r b0a b0t < <(core_busy "$PROXY_CPU"); read -r b1a b1t < <(core_busy "$CLIENT_CPU")
  local sl0; sl0=$(backend_sleeps)
  taskset -c "$CLIENT_CPU" wrk -t1 -c"$CONNS" -d"${DURATION}s" --latency "$@" "$url" >"$out" 2>&1 ||
    { cat "$out" >&2; die "wrk failed: $case $target"; }
  read -r t1 s1 < <(cpu_ticks ${pidset[$target]})
  read -r b1a2 b1t2 < <(core_busy "$CLIENT_CPU"); read -r b0a2 b0t2 < <(core_busy "$PROXY_CPU")
  local sl1; sl1=$(backend_sleeps)
  local rps p99 p50 non2xx serr reqs
  rps=$(awk '/^Requests\/sec:/ {print $2}' "$out")
  p99=$(to_ms "$(awk '$1 == "99%" {print $2}' "$out")")
  p50=$(to_ms "$(awk '$1 == "50%" {print $2}' "$out")")
  non2xx=$(awk '/Non-2xx or 3xx responses:/ {print $NF}' "$out"); non2xx=${non2xx:-0}
  serr=$(awk -F'[ ,]+' '/Socket errors:/ {print $4+$6+$8+$10}' "$out"); serr=${serr:-0}
  reqs=$(awk '/requests in/ {print $1}' "$out")
  if [[ -z "$rps" || "$non2xx" != 0 || "${reqs:-0}" == 0 ]]; then
    cat "$out" >&2; die "$case via $target: non-2xx responses ($non2xx) or no requests"
  fi
  [[ "$serr" == 0 ]] || log "warning: $case via $target: socket errors: $(grep 'Socket errors' "$out")"
  echo -e "$round\t$case\t$target\t$rps\t$p99\t$p50\t$non2xx\t$serr\t$reqs\t$((t1 - t0))\t$((s1 - s0))\t$(( (b0a2 - b0a) * 100 / (b0t2 - b0t + 1) ))\t$(( (b1a2 - b1a) * 100 / (b1t2 - b1t + 1) ))\t$((sl1 - sl0))" >>"$results"
  log "$(printf '%-5s %-9s %-8s %10s req/s  p99 %s ms' "r$round" "$case" "$target" "$rps" "$p99")"
}

run_case() {  # run_case ROUND CASE TARGET
  local r="$1" c="$2" t="$3"
  case "$c" in
    http) run_wrk "$r" http "$t" "${http_url[$t]}" ;;
    https) run_wrk "$r" https "$t" "${https_url[$t]}" ;;
    handshake) run_wrk "$r" handshake "$t" "${https_url[$t]}" -H "Connection: close" ;;
    jwt) run_wrk "$r" jwt baton "$jwt_url" -H "Authorization: Bearer $TOKEN" ;;
    apikey) run_wrk "$r" apikey baton "$key_url" -H "Authorization: Bearer $API_KEY" ;;
  esac
}

log "warm-up (${WARMUP}s each)"
saved_duration="$DURATION"; DURATION="$WARMUP"
for t in backend nginx haproxy baton; do run_case 0 http "$t"; done
for t in nginx haproxy baton; do run_case 0 https "$t"; done
run_case 0 jwt baton
run_case 0 apikey baton
DURATION="$saved_duration"

proxies=(nginx haproxy baton)
for ((r = 1; r <= ROUNDS; r++)); do
  # Round-robin: the order of the proxies rotates every round, so no proxy always goes first.
  order=()
  for ((i = 0; i < 3; i++)); do order+=("${proxies[$(((i + r - 1) % 3))]}"); done
  run_case "$r" http backend
  for c in http https handshake; do
    for t in "${order[@]}"; do run_case "$r" "$c" "$t"; done
  done
  run_case "$r" jwt baton
  run_case "$r" apikey baton
done
load_end="$(cut -d' ' -f1-3 /proc/loadavg)"

# ---- perf stat: context switches and CPU per request (one extra HTTP run per proxy) -----------
perf_file="$OUT_DIR/perfstat.tsv"
: >"$perf_file"
if [[ "$have_perf" == 1 && "$PERF" == 1 ]]; then
  log "perf stat pass"
  for spec in "http nginx" "http haproxy" "http baton" "jwt baton" "handshake nginx" "handshake haproxy" "handshake baton"; do
    read -r c t <<<"$spec"
    pid_csv=$(tr ' ' ',' <<<"${pidset[$t]}" | sed 's/,$//')
    perf stat -x, -e task-clock,context-switches,cpu-migrations,page-faults -p "$pid_csv" \
      -o "$work/perf.$c.$t.csv" -- sleep "$DURATION" &
    perf_pid=$!
    run_case perf "$c" "$t"
    wait "$perf_pid" || true
    reqs=$(awk -F'\t' -v c="$c" -v t="$t" '$1 == "perf" && $2 == c && $3 == t {print $9}' "$results")
    awk -F, -v c="$c" -v t="$t" -v n="$reqs" '
      $3 == "task-clock" {tc = $1} $3 == "context-switches" {cs = $1} $3 == "page-faults" {pf = $1}
      END {printf "%s\t%s\t%s\t%.2f\t%.3f\t%.3f\n", c, t, n, tc * 1000 / n, cs / n, pf / n}' \
      "$work/perf.$c.$t.csv" >>"$perf_file"
  done
fi

# ---- optional: where the Baton gateway spends its CPU (perf record) ----------------------------
if [[ "$have_perf" == 1 && "$PROFILE" == 1 ]]; then
  for c in http jwt https; do
    log "perf record: baton $c"
    perf record -e cpu-clock -F 2999 -g -p "$agent_pid" -o "$work/perf.$c.data" -- sleep "$DURATION" \
      >/dev/null 2>&1 &
    perf_pid=$!
    run_case profile "$c" baton
    wait "$perf_pid" || true
    # (head closes the pipe early: no pipefail here, a profile must not fail the run)
    set +o pipefail
    perf report -i "$work/perf.$c.data" --no-children --sort dso --stdio -g none 2>/dev/null |
      grep -v '^#' | grep -v '^$' | head -15 >"$OUT_DIR/profile.$c.dso.txt" || true
    perf report -i "$work/perf.$c.data" --no-children --sort dso,sym --stdio -g none 2>/dev/null |
      grep -v '^#' | grep -v '^$' | head -60 >"$OUT_DIR/profile.$c.sym.txt" || true
    perf report -i "$work/perf.$c.data" --children --sort sym --stdio -g none 2>/dev/null |
      grep -v '^#' | grep -v '^$' | head -80 >"$OUT_DIR/profile.$c.children.txt" || true
    set -o pipefail
  done
fi

# ---- report ------------------------------------------------------------------------------------
cp -r "$work/wrk" "$OUT_DIR/" 2>/dev/null || true
cpu_model="$(awk -F': ' '/model name/ {print $2; exit}' /proc/cpuinfo)"
{
  echo "machine=$(uname -srm), $(nproc) cores, ${cpu_model:-unknown CPU}, $(awk '/MemTotal/ {printf "%.1f GiB", $2/1048576}' /proc/meminfo)"
  echo "nginx=$("$NGINX" -v 2>&1 | sed 's/.*: //')"
  echo "haproxy=$("$HAPROXY" -v | head -1 | awk '{print $3}')"
  echo "wrk=$(wrk -v 2>&1 | head -1 | awk '{print $2}')"
  echo "openssl=$(openssl version | awk '{print $2}')"
  echo "baton=$BATON ($(grep -m1 CMAKE_BUILD_TYPE "$(dirname "$BATON")/../../CMakeCache.txt" 2>/dev/null | cut -d= -f2 || echo '?') build)"
  echo "command=$command_line"
  echo "date=$(date -u '+%Y-%m-%d %H:%M UTC')"
  echo "load=start $load_start, end $load_end"
  echo "tls_nginx=${tls_info[nginx]}"
  echo "tls_haproxy=${tls_info[haproxy]}"
  echo "tls_baton=${tls_info[baton]}"
  echo "setup=proxies on core $PROXY_CPU (nginx worker_processes 1, haproxy nbthread 1, baton [gateway] threads = 1, agent pinned with taskset -a); wrk -t1 -c$CONNS -d${DURATION}s --latency and the backend nginx (1 worker) on core $CLIENT_CPU"
  echo "out=$OUT_DIR"
} >"$OUT_DIR/meta.txt"
python3 "$here/summarize.py" "$OUT_DIR/meta.txt" "$results" "$perf_file" "$OUT_DIR" | tee "$OUT_DIR/report.md"
