#!/usr/bin/env bash
# Fuzzes the parsers that read bytes from outside, with libFuzzer, ASan and UBSan:
#   spec  manifests and the agent config        (src/spec/manifest_fuzz.cc)
#   auth  JWS/JWT, JWKS, claims, API keys, Authorization headers (src/auth/auth_fuzz.cc)
#   gateway  HTTP/1.1 request and response heads, chunked bodies, path normalization, the
#            header filter and the upstream head (src/gateway/http1_fuzz.cc)
#   drivers  image references, the Docker Engine's answers and log stream, OCI image documents
#            (src/drivers/drivers_fuzz.cc)
#   dns   DNS queries and the answers the resolver makes of them (src/dns/dns_fuzz.cc)
#   secrets  unseal shares as an operator pastes them (src/secrets/shamir_fuzz.cc)
# Usage: scripts/fuzz.sh [SECONDS] [spec] [auth] [gateway] [drivers] [dns] [secrets]
#        (default: 30 s each, all)
# Configures one clang build (build-fuzz), builds the chosen targets, runs each on a copy of its
# seed corpus (src/<module>/fuzz_corpus), and exits non-zero when a fuzzer finds a crash, leak
# or timeout (the reproducer lands in build-fuzz/<target>_artifacts/).
# Environment: BATON_FUZZ_BUILD (build dir), JOBS (ninja -j, default 2).
set -euo pipefail

seconds="${1:-30}"
if ! [[ "$seconds" =~ ^[0-9]+$ ]]; then
  echo "usage: $0 [SECONDS] [spec] [auth] [gateway]" >&2
  exit 2
fi
shift || true
modules=("$@")
((${#modules[@]})) || modules=(spec auth gateway drivers dns secrets)

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
build="${BATON_FUZZ_BUILD:-$repo/build-fuzz}"
export CCACHE_BASEDIR="$repo" CCACHE_NOHASHDIR=1

declare -A target=([spec]=spec_fuzz [auth]=auth_fuzz [gateway]=gateway_fuzz [drivers]=drivers_fuzz
                   [dns]=dns_fuzz [secrets]=secrets_fuzz)
declare -A dict=([spec]=manifest_fuzz.dict [auth]=auth_fuzz.dict [gateway]=http1_fuzz.dict
                 [drivers]=drivers_fuzz.dict [dns]=dns_fuzz.dict [secrets]=shamir_fuzz.dict)
declare -A max_len=([spec]=8192 [auth]=20000 [gateway]=4096 [drivers]=8192 [dns]=2048 [secrets]=512)
targets=()
for m in "${modules[@]}"; do
  [[ -n "${target[$m]:-}" ]] || { echo "$0: unknown module $m (spec, auth, gateway, drivers, dns, secrets)" >&2; exit 2; }
  targets+=("${target[$m]}")
done

CXX=clang++ cmake -S "$repo" -B "$build" -G Ninja -DBATON_FUZZ=ON -DBATON_BENCH=OFF \
  -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
ninja -C "$build" -j"${JOBS:-2}" "${targets[@]}"

for m in "${modules[@]}"; do
  t="${target[$m]}"
  fuzzer="$(find "$build" -name "$t" -type f -perm -u+x | head -n1)"
  work="$build/${t}_corpus"
  artifacts="$build/${t}_artifacts"
  mkdir -p "$work" "$artifacts"
  "$fuzzer" "$work" "$repo/src/$m/fuzz_corpus" -dict="$repo/src/$m/${dict[$m]}" \
    -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -max_len="${max_len[$m]}" \
    -artifact_prefix="$artifacts/" -print_final_stats=0 >"$build/$t.log" 2>&1 || {
      tail -40 "$build/$t.log" >&2
      echo "$t: the fuzzer found a problem; see $artifacts" >&2
      exit 1
    }
  echo "$t: no crash in ${seconds}s"
done
