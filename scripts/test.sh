#!/usr/bin/env bash
# The README's second command: installs every dependency, builds, and runs the whole test suite
# (unit tests, store and driver conformance suites, the gateway and auth unit tests again under
# ASan and UBSan, a fuzzing smoke run, integration tests).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
scripts/build.sh
# The gateway and auth unit tests built with ASan and UBSan (build-asan/); see scripts/sanitize.sh.
scripts/sanitize.sh
# Fuzzing smoke runs of the parsers that read bytes from outside (manifests and config; JWTs
# and JWKS; the gateway's HTTP framing; the container drivers' inputs); longer runs:
# scripts/fuzz.sh SECONDS.
scripts/fuzz.sh "${BATON_FUZZ_SECONDS:-20}" spec auth gateway drivers dns secrets
ctest --test-dir build --output-on-failure -j1
