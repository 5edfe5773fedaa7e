#!/usr/bin/env bash
# Page filtering: `vmcore convert -d 31` vs `-d 1` vs makedumpfile `-d 31` / `-d 1`, on one real
# kdump file, in the same run, same codec (lzo by default).
#
#   bash bench/filter-bench.sh INPUT.kdump [WORKDIR]
#
# INPUT: a kdump file of a real guest with a correct header (for example `vmcore dump --qmp -l`
# of a 4 GiB guest, or a makedumpfile -d 1 dump): makedumpfile must be able to filter it.
# Each command: one warm-up run, then $RUNS runs (default 2) under /usr/bin/time -v; the input
# is warm in the page cache. Prints a Markdown table (ratios to makedumpfile -d 31) and each
# output's size; JSON lines in WORKDIR/filter-bench.jsonl. CODEC=-c|-l|-p (default -l).
# Needs: the built CLI (npm run build), makedumpfile, GNU time.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(dirname "$HERE")
IN=${1:?usage: filter-bench.sh INPUT.kdump [WORKDIR]}
WORK=${2:-${TMPDIR:-/tmp}/vmcore-bench/filter}
RUNS=${RUNS:-2}
CODEC=${CODEC:--l}
mkdir -p "$WORK"
JSONL=$WORK/filter-bench.jsonl
: > "$JSONL"
# shellcheck source=bench/measure.sh
. "$HERE/measure.sh"
CLI=(node "$ROOT/dist/src/cli/vmcore.js")
cat "$IN" > /dev/null
sizes=()
for level in 31 1; do
  rm -f "$WORK/m$level.kdump" "$WORK/v$level.kdump"
  # makedumpfile refuses an existing output: remove it before every run
  measure "makedumpfile $CODEC -d $level" /dev/null /dev/null bash -c 'rm -f "$1"; exec makedumpfile "$2" -d "$3" "$4" "$1"' _ "$WORK/m$level.kdump" "$CODEC" "$level" "$IN"
  measure "vmcore convert $CODEC -d $level" /dev/null /dev/null "${CLI[@]}" convert "$IN" "$WORK/v$level.kdump" "$CODEC" -d "$level" --force --quiet
  sizes+=("makedumpfile -d $level: $(stat -c %s "$WORK/m$level.kdump") bytes" "vmcore -d $level: $(stat -c %s "$WORK/v$level.kdump") bytes")
done
measure_table "makedumpfile $CODEC -d 31"
printf '%s\n' "${sizes[@]}"
echo "input: $IN ($(du -h "$IN" | cut -f1)), load average at the end: $(cut -d' ' -f1-3 /proc/loadavg)" >&2
