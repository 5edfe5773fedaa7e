#!/usr/bin/env bash
# vmcore convert vs makedumpfile on one large ELF vmcore, side by side.
#
#   bash bench/convert-bench.sh [INPUT.elf] [WORKDIR]
#
# Without INPUT, makes a 4 GiB synthetic vmcore (bench/convert-make-input.mjs: ~27 % zero
# pages, text, binaries, compressed data, random). Every command runs under /usr/bin/time -v
# (wall, peak RSS) with the input warm in the page cache and the output in WORKDIR; results go
# to WORKDIR/convert-bench.jsonl and a Markdown table on stdout. Also converts a 1 GiB and an
# 8 GiB input with the same settings to show that peak RSS does not grow with the dump size.
# Needs: node, makedumpfile, GNU time; zstd/snappy runs need the optional native modules.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(dirname "$HERE")
WORK=${2:-${TMPDIR:-/tmp}/vmcore-bench}
mkdir -p "$WORK"
IN=${1:-$WORK/synthetic-4g.elf}
RUNS=${RUNS:-1}
[ -f "$IN" ] || node "$HERE/convert-make-input.mjs" "$IN" 4
OUT=$WORK/out
JSONL=$WORK/convert-bench.jsonl
: > "$JSONL"

CLI_OK=
node "$ROOT/dist/src/cli/vmcore.js" --help 2>/dev/null | grep -qE '^\s+convert\b' && CLI_OK=1
VMC_DESC="vmcore convert"
[ -n "$CLI_OK" ] || VMC_DESC="vmcore convert (library runner)"
# vmc JSON CLIFLAGS... -> sets CMD to the command line for IN -> OUT
vmc() {
  local json=$1; shift
  if [ -n "$CLI_OK" ]; then CMD=(node "$ROOT/dist/src/cli/vmcore.js" convert --force --quiet "$@" "$IN" "$OUT")
  else CMD=(node "$HERE/convert-run.mjs" "$IN" "$OUT" "$json"); fi
}

measure() { # name, command...
  local name=$1; shift
  local i
  for ((i = 0; i < RUNS; i++)); do
    rm -f "$OUT"
    sync
    cat "$IN" > /dev/null # warm input
    local load; load=$(cut -d' ' -f1 /proc/loadavg)
    /usr/bin/time -v -o "$WORK/time.txt" "$@" > /dev/null 2> "$WORK/stderr.txt" || { echo "FAILED: $name" >&2; tail -3 "$WORK/stderr.txt" >&2; }
    local wall rss size cpu
    wall=$(awk -F': ' '/Elapsed \(wall clock\)/ {n=split($2,a,":"); s=0; for(i=1;i<=n;i++) s=s*60+a[i]; print s}' "$WORK/time.txt")
    rss=$(awk -F': ' '/Maximum resident set size/ {print $2}' "$WORK/time.txt")
    cpu=$(awk -F': ' '/User time|System time/ {s+=$2} END {print s}' "$WORK/time.txt")
    size=$(stat -c %s "$OUT" 2>/dev/null || echo 0)
    printf '{"name":"%s","wall_s":%s,"cpu_s":%s,"peak_rss_kib":%s,"out_bytes":%s,"in_bytes":%s,"load_before":%s}\n' "$name" "$wall" "$cpu" "$rss" "$size" "$(stat -c %s "$IN")" "$load" | tee -a "$JSONL" >&2
  done
}

measure "makedumpfile -c -d 1" makedumpfile -c -d 1 "$IN" "$OUT"
measure "makedumpfile -l -d 1" makedumpfile -l -d 1 "$IN" "$OUT"
if [ -z "${SKIP_THREADS:-}" ]; then # makedumpfile's threads are slower on 2 cores (minutes)
  measure "makedumpfile -c -d 1 --num-threads 2" makedumpfile -c -d 1 --num-threads 2 "$IN" "$OUT"
  measure "makedumpfile -l -d 1 --num-threads 2" makedumpfile -l -d 1 --num-threads 2 "$IN" "$OUT"
fi
vmc '{"codec":"zlib","dumpLevel":1}' -c -d 1; measure "$VMC_DESC -c -d 1 (libdeflate addon)" "${CMD[@]}"
vmc '{"codec":"zlib","dumpLevel":1,"noNative":true}' -c -d 1 --no-native; measure "$VMC_DESC -c -d 1 --no-native (node:zlib)" "${CMD[@]}"
vmc '{"codec":"lzo","dumpLevel":1}' -l -d 1; measure "$VMC_DESC -l -d 1" "${CMD[@]}"
vmc '{"codec":"zstd","dumpLevel":1}' -z -d 1; measure "$VMC_DESC -z -d 1" "${CMD[@]}"
vmc '{"codec":"snappy","dumpLevel":1}' -p -d 1; measure "$VMC_DESC -p -d 1" "${CMD[@]}"

if [ -z "${SKIP_SCALING:-}" ]; then
  MAIN_IN=$IN
  for g in 1 8; do
    IN=$WORK/synthetic-${g}g.elf
    [ -f "$IN" ] || node "$HERE/convert-make-input.mjs" "$IN" "$g"
    vmc '{"codec":"lzo","dumpLevel":1}' -l -d 1; measure "$VMC_DESC -l -d 1, ${g} GiB input" "${CMD[@]}"
  done
  IN=$MAIN_IN
fi

python3 - "$JSONL" <<'PY'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
print('| command | wall s | CPU s (user+sys) | input MiB/s | peak RSS MiB | output bytes | load avg before |')
print('|---|---|---|---|---|---|---|')
for r in rows:
    mibs = r['in_bytes'] / 1048576 / r['wall_s'] if r['wall_s'] else 0
    print(f"| `{r['name']}` | {r['wall_s']:.1f} | {r.get('cpu_s', 0):.1f} | {mibs:.0f} | {r['peak_rss_kib']/1024:.0f} | {r['out_bytes']} | {r['load_before']} |")
PY
