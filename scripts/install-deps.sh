#!/usr/bin/env bash
# Installs every build, test and benchmark dependency of Baton from Debian 12's archive.
# Idempotent: packages already present are skipped quickly. Run as root.
set -euo pipefail

packages=(
  build-essential cmake ninja-build ccache pkg-config clang libclang-rt-14-dev
  libboost1.81-dev libssl-dev libsqlite3-dev libgfshare-dev
  libtomlplusplus-dev nlohmann-json3-dev libspdlog-dev libfmt-dev libcli11-dev
  libhowardhinnant-date-dev
  libgtest-dev libgmock-dev libbenchmark-dev
  python3 python3-pytest python3-h11 curl procps iproute2 psmisc wrk openssl nginx haproxy nodejs python3-gunicorn python3-uvicorn
  podman runc busybox-static libarchive-dev
  dnsutils
)

missing=()
for p in "${packages[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done

if ((${#missing[@]})); then
  if [[ $(id -u) -ne 0 ]]; then
    echo "install-deps: missing packages: ${missing[*]}; run as root" >&2
    exit 1
  fi
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi
