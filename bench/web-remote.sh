#!/usr/bin/env bash
# Remote reading: `vmcore info URL` through `vmcore serve` on loopback against `vmcore info FILE`
# (farm-bench, paired runs), the bytes fetched, and the web page's time to the summary.
#   bench/web-remote.sh DUMP
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
dump=$1
vmcore="node $here/dist/src/cli/vmcore.js"
coproc SERVE { exec $vmcore serve --json --quiet "$dump"; }
trap 'kill $SERVE_PID 2>/dev/null || true' EXIT
read -r line <&"${SERVE[0]}"
url=$(printf '%s' "$line" | python3 -c 'import json,sys; print(json.load(sys.stdin)["dumps"][0])')
echo "## vmcore info over loopback HTTP vs the local file ($(du -h "$dump" | cut -f1))"
$vmcore info --stats "$url" > /dev/null
farm-bench -n 5 --timeout 600 --vs "$vmcore info $dump" -- $vmcore info "$url"
echo "## the web page (chromium) on the same dump through vmcore serve"
node "$here/bench/web-page.mjs" "$dump" 3
