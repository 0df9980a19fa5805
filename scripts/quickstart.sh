#!/usr/bin/env bash
# The README's first command: installs every dependency, builds, starts an agent with the
# embedded SQLite store (`baton agent --dev`) in the background and deploys the example app,
# then prints the URLs to try. Run as root on Debian 12.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
scripts/build.sh

baton="$PWD/build/src/cli/baton"
# The README's bare `baton` commands: a link on the PATH (left alone if one is there already).
if [ ! -e /usr/local/bin/baton ] && [ -w /usr/local/bin ]; then
  ln -s "$baton" /usr/local/bin/baton
  echo "linked /usr/local/bin/baton -> $baton"
elif [ "$(readlink -f /usr/local/bin/baton 2>/dev/null)" != "$baton" ]; then
  echo "to use the README's commands: export PATH=\"$PWD/build/src/cli:\$PATH\""
fi
data_dir="${BATON_DATA_DIR:-/tmp/baton-dev}"
export BATON_ADDR="${BATON_ADDR:-http://127.0.0.1:4646}"
mkdir -p "$data_dir"

if ! curl -fsS "$BATON_ADDR/v1/health" >/dev/null 2>&1; then
  nohup "$baton" agent --dev --data-dir "$data_dir" >"$data_dir/agent.log" 2>&1 &
  echo "started the agent (pid $!), log: $data_dir/agent.log"
  for _ in $(seq 100); do
    curl -fsS "$BATON_ADDR/v1/health" >/dev/null 2>&1 && break
    sleep 0.1
  done
fi

# Services run as their own unprivileged users, in their manifest's directory: a checkout under
# a private directory (/root) is out of their reach, so the example is deployed from a copy.
app_dir="$PWD/examples/shop"
if ! python3 -c 'import os, sys, pathlib
p = pathlib.Path(sys.argv[1]).resolve()
sys.exit(0 if all(os.stat(d).st_mode & 1 for d in [p, *p.parents]) else 1)' "$app_dir"; then
  rm -rf /tmp/baton-examples-shop
  cp -r "$app_dir" /tmp/baton-examples-shop
  chmod -R go+rX /tmp/baton-examples-shop
  app_dir=/tmp/baton-examples-shop
  echo "deploying a copy of examples/shop from $app_dir (the checkout is private to $(id -un))"
fi
"$baton" up "$app_dir/app.toml" --wait --timeout 60s
echo
"$baton" ps shop
echo
echo "Try:"
echo "  curl http://127.0.0.1:8080/                 # the shop, through the gateway (HTTPS: curl -k https://127.0.0.1:8443/)"
"$baton" ps shop --instances --json | python3 -c '
import json, sys
for i in json.load(sys.stdin)["instances"]:
    if i["service"] == "web" and i["state"] == "healthy":
        url = "http://%s:%d/" % (i["address"], i["port"])
        print("  curl %-32s # the shop (web instance %s)" % (url, i["id"]))
'
echo "  curl $BATON_ADDR/v1/instances    # the catalog API"
echo "  $baton ps shop --instances"
echo "  $baton logs shop/web -f"
echo "  $baton down shop                 # and: kill \$(pgrep -f 'baton agent --dev')"
