#!/usr/bin/env bash
# Every speed comparison with a peer in one run, on one kdump input, side by side:
#   convert vs makedumpfile: -c, -l at dump levels 1 and 31; vmcore -z against makedumpfile -l
#     (makedumpfile 1.7.2 as Debian ships it has no zstd) and its size against makedumpfile -c;
#   convert -d 31 against convert -d 1 (filtering must cost less than it saves);
#   the same at dump level 1 from an ELF of the same memory (made once with vmcore convert
#     --format elf -d 0: every page as data, as /proc/vmcore gives it): vmcore -l, -c, -z against
#     makedumpfile -l, -c, so that compression stays measured (a kdump input's pages stored in
#     the output's codec pass through uncompressed);
#   hash vs libkdumpfile reading the same pages, 256 pages per kdump_read() (test/interop/convert-lkdf.py --batch=256);
#   with BASE_CLI: kdump -> kdump with another codec (-z, -c) against an older build;
#   with QMP_FILL: dump --qmp vs QEMU's own kdump-zlib (bench/qmp-dump.sh boots the guest).
# Prints one table of ratios (peer / vmcore, wall and CPU seconds, each with its goal) and writes
# WORKDIR/all.json (every run, the ratios, the load average before each run and at the end).
#
#   bash bench/all.sh INPUT.kdump [WORKDIR]
#
# INPUT: a kdump file of a real guest with a correct header (makedumpfile must filter it), e.g.
# bench/convert-make-guest.sh's 4 GiB guest dump. Environment: RUNS (measured runs per command
# after one warm-up, default 1; dump level 31: ROUNDS_31 rounds, below), LEVELS (default "1 31"), ELF_INPUT (0: no ELF-input rows; the
# ELF, WORKDIR/in.elf, as large as the guest's memory, is removed at the end unless KEEP_ELF=1
# and reused while newer than INPUT), BASE_CLI (an older build's
# dist/src/cli/vmcore.js), FRESH_CLI (the CLI of a checkout installed as on a fresh machine, with no
# system package, e.g. the README's two commands on a machine without libdeflate-dev, for the
# "-c with no system package" rows), QMP_RAM (default 2G) and QMP_FILL (MiB of tmpfs data in the guest; unset:
# the dump --qmp comparison is skipped with a message).
# Every command starts with its output removed (rm -f, inside the measured command for every
# tool alike): a file overwritten in place, or kept until a rename replaces it, costs the kernel
# differently from a new one.
# Needs: the built CLI (npm run build), makedumpfile, GNU time, /usr/bin/python3 with libkdumpfile.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(dirname "$HERE")
IN=${1:?usage: all.sh INPUT.kdump [WORKDIR]}
WORK=${2:-${TMPDIR:-/tmp}/vmcore-bench/all}
RUNS=${RUNS:-1}
LEVELS=${LEVELS:-1 31}
mkdir -p "$WORK"
JSONL=$WORK/all.jsonl
SIZES=$WORK/sizes.jsonl
: > "$JSONL"
: > "$SIZES"
# shellcheck source=bench/measure.sh
. "$HERE/measure.sh"
CLI=(node "$ROOT/dist/src/cli/vmcore.js")
size() { printf '{"name":"%s","bytes":%s}\n' "$1" "$(stat -c %s "$2")" >> "$SIZES"; }
cat "$IN" > /dev/null

for level in $LEVELS; do
  # Dump level 31 runs take about a second and differ by a few percent: ROUNDS_31 rounds (default
  # 7) of every command in turn, one measured run each (after one warm-up in the first), so that
  # the machine's drift falls on both tools alike and the table's medians compare like with like.
  rounds=1
  [ "$level" = 31 ] && rounds=${ROUNDS_31:-7}
  for ((round = 0; round < rounds; round++)); do
    if [ "$round" -gt 0 ]; then RUNS_SAVED=$RUNS WARMUP_SAVED=${WARMUP:-1}; RUNS=1 WARMUP=0; fi
    for c in -c -l; do
      measure "makedumpfile $c -d $level" /dev/null /dev/null bash -c 'rm -f "$1"; exec makedumpfile "$2" -d "$3" "$4" "$1"' _ "$WORK/m.kdump" "$c" "$level" "$IN"
      size "makedumpfile $c -d $level" "$WORK/m.kdump"
    done
    for c in -c -l -z; do
      measure "vmcore convert $c -d $level" /dev/null /dev/null bash -c 'rm -f "$1"; shift; exec "$@"' _ "$WORK/v.kdump" "${CLI[@]}" convert "$IN" "$WORK/v.kdump" "$c" -d "$level" --quiet
      size "vmcore convert $c -d $level" "$WORK/v.kdump"
      if [ -n "${FRESH_CLI:-}" ] && [ "$level" = 1 ] && [ "$c" = -c ]; then
        measure "fresh convert -c -d 1" /dev/null /dev/null bash -c 'rm -f "$1"; shift; exec "$@"' _ "$WORK/f.kdump" node "$FRESH_CLI" convert "$IN" "$WORK/f.kdump" -c -d 1 --quiet
        size "fresh convert -c -d 1" "$WORK/f.kdump"
        rm -f "$WORK/f.kdump"
      fi
      if [ -n "${BASE_CLI:-}" ] && [ "$level" = 1 ] && [ "$c" != -l ]; then
        measure "base convert $c -d $level" /dev/null /dev/null bash -c 'rm -f "$1"; shift; exec "$@"' _ "$WORK/b.kdump" node "$BASE_CLI" convert "$IN" "$WORK/b.kdump" "$c" -d "$level" --quiet
        if cmp -s "$WORK/v.kdump" "$WORK/b.kdump"; then echo "base convert $c -d $level: output identical" >&2; else echo "base convert $c -d $level: OUTPUT DIFFERS" >&2; fi
      fi
    done
    if [ "$round" -gt 0 ]; then RUNS=$RUNS_SAVED WARMUP=$WARMUP_SAVED; fi
  done
done

if [ "${ELF_INPUT:-1}" != 0 ]; then
  ELF=$WORK/in.elf
  if ! [ -s "$ELF" ] || ! [ "$ELF" -nt "$IN" ]; then
    echo "making $ELF (vmcore convert --format elf -d 0)" >&2
    "${CLI[@]}" convert "$IN" "$ELF" --format elf -d 0 --force --quiet
  fi
  cat "$ELF" > /dev/null
  for c in -c -l; do
    measure "makedumpfile $c -d 1 (ELF input)" /dev/null /dev/null bash -c 'rm -f "$1"; exec makedumpfile "$2" -d 1 "$3" "$1"' _ "$WORK/m.kdump" "$c" "$ELF"
    size "makedumpfile $c -d 1 (ELF input)" "$WORK/m.kdump"
  done
  if [ -n "${FRESH_CLI:-}" ]; then
    measure "fresh convert -c -d 1 (ELF input)" /dev/null /dev/null bash -c 'rm -f "$1"; shift; exec "$@"' _ "$WORK/f.kdump" node "$FRESH_CLI" convert "$ELF" "$WORK/f.kdump" -c -d 1 --quiet
    rm -f "$WORK/f.kdump"
  fi
  for c in -c -l -z; do
    measure "vmcore convert $c -d 1 (ELF input)" /dev/null /dev/null bash -c 'rm -f "$1"; shift; exec "$@"' _ "$WORK/v.kdump" "${CLI[@]}" convert "$ELF" "$WORK/v.kdump" "$c" -d 1 --quiet
    size "vmcore convert $c -d 1 (ELF input)" "$WORK/v.kdump"
  done
  [ "${KEEP_ELF:-0}" = 1 ] || rm -f "$ELF"
fi
rm -f "$WORK/m.kdump" "$WORK/v.kdump" "$WORK/b.kdump"

measure "vmcore hash" /dev/null "$WORK/hash.vmcore.txt" "${CLI[@]}" hash "$IN"
measure "libkdumpfile read 256 + sha256" /dev/null "$WORK/hash.lkdf.json" /usr/bin/python3 "$HERE/../test/interop/convert-lkdf.py" --batch=256 "$IN"
a=$(cut -d' ' -f1 "$WORK/hash.vmcore.txt")
b=$(node -e 'console.log(JSON.parse(require("fs").readFileSync(process.argv[1], "utf8")).sha256)' "$WORK/hash.lkdf.json")
[ "$a" = "$b" ] && echo "hash: both digests $a" >&2 || echo "hash: DIGESTS DIFFER: vmcore $a, libkdumpfile $b" >&2

if [ -n "${QMP_FILL:-}" ]; then
  bash "$HERE/qmp-dump.sh" --ram "${QMP_RAM:-2G}" --fill "$QMP_FILL" --runs "$RUNS" --out "$WORK/qmp" >&2
  # QEMU's rows: QEMU's CPU; vmcore's: the client's CPU and QEMU's while it streamed
  awk -F'\t' '{ cpu = ($1 ~ /^qemu/) ? $6 : $5 + $6; printf "{\"name\":\"qmp %s\",\"wall_s\":%s,\"cpu_s\":%s,\"peak_rss_kib\":%s,\"load_before\":%s}\n", $1, $2, cpu, $4, $7 }' "$WORK/qmp/results.tsv" >> "$JSONL"
  awk -F'\t' '{ printf "{\"name\":\"qmp %s\",\"bytes\":%s}\n", $1, $3 }' "$WORK/qmp/results.tsv" >> "$SIZES"
else
  echo "dump --qmp vs QEMU: skipped (set QMP_FILL, e.g. QMP_FILL=1700 QMP_RAM=2G, to boot a guest for it)" >&2
fi

node - "$JSONL" "$SIZES" "$WORK/all.json" "$IN" <<'EOF'
const fs = require('fs');
const [jsonl, sizesFile, outFile, input] = process.argv.slice(2);
const rows = fs.readFileSync(jsonl, 'utf8').trim().split('\n').filter(Boolean).map((l) => JSON.parse(l));
const sizes = Object.fromEntries(fs.readFileSync(sizesFile, 'utf8').trim().split('\n').filter(Boolean).map((l) => JSON.parse(l)).map((s) => [s.name, s.bytes]));
const med = (a) => [...a].sort((x, y) => x - y)[Math.floor(a.length / 2)];
const m = {};
for (const r of rows) (m[r.name] ??= []).push(r);
const stat = (n) => m[n] && { wall: med(m[n].map((r) => r.wall_s)), cpu: med(m[n].map((r) => r.cpu_s)), rss: med(m[n].map((r) => r.peak_rss_kib)) / 1024, load: med(m[n].map((r) => r.load_before)), runs: m[n].length, bytes: sizes[n] };
// [what, vmcore row, peer row, goal (peer / vmcore at least this)]
const pairs = [
  ['convert -c -d 1 vs makedumpfile -c -d 1', 'vmcore convert -c -d 1', 'makedumpfile -c -d 1', 2.4],
  ['convert -c -d 1 with no system package vs makedumpfile -c -d 1', 'fresh convert -c -d 1', 'makedumpfile -c -d 1', 2.4],
  ['convert -l -d 1 vs makedumpfile -l -d 1', 'vmcore convert -l -d 1', 'makedumpfile -l -d 1', 1.7],
  ['convert -z -d 1 vs makedumpfile -l -d 1', 'vmcore convert -z -d 1', 'makedumpfile -l -d 1', 1],
  ['convert -c -d 31 vs makedumpfile -c -d 31', 'vmcore convert -c -d 31', 'makedumpfile -c -d 31', 1],
  ['convert -l -d 31 vs makedumpfile -l -d 31', 'vmcore convert -l -d 31', 'makedumpfile -l -d 31', 1],
  ['convert -z -d 31 vs makedumpfile -l -d 31', 'vmcore convert -z -d 31', 'makedumpfile -l -d 31', 1],
  ['convert -l: -d 31 vs -d 1', 'vmcore convert -l -d 31', 'vmcore convert -l -d 1', 1],
  ['convert -c -d 1 vs makedumpfile -c -d 1, ELF input', 'vmcore convert -c -d 1 (ELF input)', 'makedumpfile -c -d 1 (ELF input)', 2.4],
  ['convert -c -d 1 with no system package vs makedumpfile -c -d 1, ELF input', 'fresh convert -c -d 1 (ELF input)', 'makedumpfile -c -d 1 (ELF input)', 2.4],
  ['convert -l -d 1 vs makedumpfile -l -d 1, ELF input', 'vmcore convert -l -d 1 (ELF input)', 'makedumpfile -l -d 1 (ELF input)', 1.7],
  ['convert -z -d 1 vs makedumpfile -l -d 1, ELF input', 'vmcore convert -z -d 1 (ELF input)', 'makedumpfile -l -d 1 (ELF input)', 1],
  ['convert -z -d 1 (kdump -> kdump) vs the base build', 'vmcore convert -z -d 1', 'base convert -z -d 1', 2],
  ['convert -c -d 1 (kdump -> kdump) vs the base build', 'vmcore convert -c -d 1', 'base convert -c -d 1', 2],
  ['hash vs libkdumpfile (256 pages per read)', 'vmcore hash', 'libkdumpfile read 256 + sha256', 1.5],
  ['dump --qmp -z vs QEMU kdump-zlib', 'qmp vmcore-dump-z', 'qmp qemu-kdump-zlib', 4],
];
const out = [];
console.log('| comparison | vmcore wall / CPU s | peer wall / CPU s | wall ratio | CPU ratio | goal | met (wall) | met (CPU) | load before |');
console.log('|---|---|---|---|---|---|---|---|---|');
for (const [what, a, b, goal] of pairs) {
  const x = stat(a), y = stat(b);
  if (!x || !y) continue;
  const rw = y.wall / x.wall, rc = y.cpu / x.cpu;
  out.push({ what, vmcore: { name: a, ...x }, peer: { name: b, ...y }, wallRatio: rw, cpuRatio: rc, goal });
  console.log(`| ${what} | ${x.wall.toFixed(2)} / ${x.cpu.toFixed(2)} | ${y.wall.toFixed(2)} / ${y.cpu.toFixed(2)} | ${rw.toFixed(2)}x | ${rc.toFixed(2)}x | ${goal}x | ${rw >= goal ? 'yes' : 'no'} | ${rc >= goal ? 'yes' : 'no'} | ${x.load} / ${y.load} |`);
}
const zc = sizes['vmcore convert -z -d 1'], mc = sizes['makedumpfile -c -d 1'];
if (zc && mc) console.log(`\nconvert -z -d 1: ${zc} bytes, makedumpfile -c -d 1: ${mc} bytes (${(zc / mc).toFixed(3)}; goal: smaller)`);
const ze = sizes['vmcore convert -z -d 1 (ELF input)'], me = sizes['makedumpfile -c -d 1 (ELF input)'];
if (ze && me) console.log(`convert -z -d 1 (ELF input): ${ze} bytes, makedumpfile -c -d 1 (ELF input): ${me} bytes (${(ze / me).toFixed(3)}; goal: smaller)`);
console.log('\n| command | wall s | CPU s | peak RSS MiB | output bytes | runs |');
console.log('|---|---|---|---|---|---|');
for (const n of Object.keys(m)) { const s = stat(n); console.log(`| ${n} | ${s.wall.toFixed(2)} | ${s.cpu.toFixed(2)} | ${s.rss.toFixed(0)} | ${s.bytes ?? ''} | ${s.runs} |`); }
const loadEnd = fs.readFileSync('/proc/loadavg', 'utf8').split(' ').slice(0, 3).join(' ');
console.log(`\ninput ${input}; load average at the end: ${loadEnd}`);
fs.writeFileSync(outFile, JSON.stringify({ input, date: new Date().toISOString(), loadEnd, runs: rows, sizes, comparisons: out }, null, 1));
console.log(`JSON: ${outFile}`);
EOF
