#!/usr/bin/env bash
# Fuzzes the manifest and agent-config parsers (src/spec/manifest_fuzz.cc) with libFuzzer,
# ASan and UBSan. Usage: scripts/fuzz-spec.sh [SECONDS]   (default 30)
# Configures a separate clang build (build-fuzz), builds only spec_fuzz, runs it on a copy of
# src/spec/fuzz_corpus, and exits non-zero when the fuzzer finds a crash, leak or timeout
# (the reproducer lands in build-fuzz/spec_fuzz_artifacts/).
# Environment: BATON_SRC (source dir, default: this repo), BATON_FUZZ_BUILD (build dir),
# JOBS (ninja -j, default 2).
set -euo pipefail
export CCACHE_BASEDIR="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)" CCACHE_NOHASHDIR=1

seconds="${1:-30}"
if ! [[ "$seconds" =~ ^[0-9]+$ ]]; then
  echo "usage: $0 [SECONDS]" >&2
  exit 2
fi

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
src="${BATON_SRC:-$repo}"
build="${BATON_FUZZ_BUILD:-$repo/build-fuzz}"
jobs="${JOBS:-2}"

CXX=clang++ cmake -S "$src" -B "$build" -G Ninja -DBATON_FUZZ=ON -DBATON_BENCH=OFF \
  -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
ninja -C "$build" -j"$jobs" spec_fuzz

fuzzer="$(find "$build" -name spec_fuzz -type f -perm -u+x | head -n1)"
work="$build/spec_fuzz_corpus"
artifacts="$build/spec_fuzz_artifacts"
mkdir -p "$work" "$artifacts"

# libFuzzer returns non-zero on a crash, leak, timeout or OOM; set -e propagates it.
"$fuzzer" "$work" "$repo/src/spec/fuzz_corpus" \
  -dict="$repo/src/spec/manifest_fuzz.dict" \
  -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -max_len=8192 \
  -print_final_stats=1 -artifact_prefix="$artifacts/"
echo "spec_fuzz: no crash in ${seconds}s"
