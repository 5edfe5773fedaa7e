#!/usr/bin/env bash
# Peak RSS against the size of the machine: for each size (GiB of RAM), a sparse synthetic kdump
# (bench/rss-make-input.mjs: max_mapnr covers the whole size, 256 MiB of stored pages and as
# many shared zero pages spread over it, the rest excluded), then under GNU time:
#   vmcore hash, vmcore convert -z / -l / -c -d 1 (kdump -> kdump), vmcore info.
# hash's digest is checked against the generator's. Prints one table (peak RSS MiB per command
# and size, with wall and CPU seconds) and writes WORKDIR/rss.json (every run, the load average
# before each run and at the end). Each input and output is deleted once measured.
#
#   bash bench/rss.sh [WORKDIR]
#
# Environment: SIZES (GiB, default "1 4 16 64"), DATA_MIB (stored MiB per input, default 256),
# RUNS (measured runs per command, default 1; no warm-up run). Scratch: about DATA_MIB of
# input plus the same again of output at a time.
# Needs: the built CLI (npm run build), GNU time.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(dirname "$HERE")
WORK=${1:-${TMPDIR:-/tmp}/vmcore-bench/rss}
SIZES=${SIZES:-1 4 16 64}
RUNS=${RUNS:-1}
WARMUP=0
mkdir -p "$WORK"
JSONL=$WORK/rss.jsonl
INPUTS=$WORK/inputs.jsonl
: > "$JSONL"
: > "$INPUTS"
# shellcheck source=bench/measure.sh
. "$HERE/measure.sh"
CLI=(node "$ROOT/dist/src/cli/vmcore.js")

for g in $SIZES; do
  in=$WORK/in$g.kdump
  node "$HERE/rss-make-input.mjs" "$in" "$g" "${DATA_MIB:-256}" lzo | tee -a "$INPUTS" >&2
  want=$(tail -1 "$INPUTS" | node -e 'console.log(JSON.parse(require("fs").readFileSync(0, "utf8")).sha256)')
  cat "$in" > /dev/null
  measure "$g hash" /dev/null "$WORK/hash.txt" "${CLI[@]}" hash --quiet "$in"
  got=$(cut -d' ' -f1 "$WORK/hash.txt")
  [ "$got" = "$want" ] && echo "$g GiB: hash digest as generated ($got)" >&2 || { echo "$g GiB: HASH DIGEST DIFFERS: $got, generated $want" >&2; exit 1; }
  for c in -z -l -c; do
    measure "$g convert $c -d 1" /dev/null /dev/null "${CLI[@]}" convert "$in" "$WORK/out.kdump" "$c" -d 1 --force --quiet
    rm -f "$WORK/out.kdump"
  done
  measure "$g info" /dev/null /dev/null "${CLI[@]}" info "$in"
  rm -f "$in"
done

node - "$JSONL" "$INPUTS" "$WORK/rss.json" <<'EOF'
const fs = require('fs');
const [jsonl, inputsFile, outFile] = process.argv.slice(2);
const rows = fs.readFileSync(jsonl, 'utf8').trim().split('\n').filter(Boolean).map((l) => JSON.parse(l));
const inputs = fs.readFileSync(inputsFile, 'utf8').trim().split('\n').filter(Boolean).map((l) => JSON.parse(l));
const med = (a) => [...a].sort((x, y) => x - y)[Math.floor(a.length / 2)];
const sizes = [...new Set(rows.map((r) => r.name.split(' ')[0]))];
const cmds = [...new Set(rows.map((r) => r.name.split(' ').slice(1).join(' ')))];
const cell = (g, c) => {
  const r = rows.filter((x) => x.name === `${g} ${c}`);
  return r.length ? { rssMiB: med(r.map((x) => x.peak_rss_kib)) / 1024, wall: med(r.map((x) => x.wall_s)), cpu: med(r.map((x) => x.cpu_s)), load: med(r.map((x) => x.load_before)) } : undefined;
};
console.log(`| peak RSS MiB (wall s / CPU s) | ${sizes.map((g) => `${g} GiB`).join(' | ')} |`);
console.log(`|---|${sizes.map(() => '---').join('|')}|`);
const table = {};
let worst = 0;
for (const c of cmds) {
  const cells = sizes.map((g) => cell(g, c));
  table[c] = Object.fromEntries(sizes.map((g, i) => [g, cells[i]]));
  for (const x of cells) if (x) worst = Math.max(worst, x.rssMiB);
  console.log(`| \`vmcore ${c}\` | ${cells.map((x) => (x ? `**${x.rssMiB.toFixed(0)}** (${x.wall.toFixed(1)} / ${x.cpu.toFixed(1)})` : '-')).join(' | ')} |`);
}
console.log(`\ninputs: ${inputs.map((i) => `${i.gib} GiB: ${i.maxPfn} pfns, ${i.pages} dumped pages, ${i.bytes} bytes`).join('; ')}`);
const loads = rows.map((r) => r.load_before);
const loadEnd = fs.readFileSync('/proc/loadavg', 'utf8').split(' ').slice(0, 3).join(' ');
console.log(`largest peak RSS ${worst.toFixed(0)} MiB (goal: under 256); load average before the runs ${Math.min(...loads)}-${Math.max(...loads)}, at the end ${loadEnd}`);
fs.writeFileSync(outFile, JSON.stringify({ date: new Date().toISOString(), loadEnd, inputs, table, runs: rows, worstRssMiB: worst }, null, 1));
console.log(`JSON: ${outFile}`);
EOF
