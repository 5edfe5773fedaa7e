#!/usr/bin/env bash
# `vmcore bt -a` vs crash `bt -a` (with the -dbg vmlinux) on one real dump, in the same run.
#
#   bash bench/bt-bench.sh [WORKDIR] [--dump-only]
#
# The dump: a 6.1.0-56 guest (scripts/guest/boot.sh: SeaBIOS, 2 vCPUs, $BT_BENCH_RAM of RAM,
# default 4G, no KASLR) running $BT_BENCH_PROCS busybox sleep loops (init.sh vmcore_procs=,
# default 150: a few hundred tasks with the kernel's threads), panicked with sysrq-c and dumped
# by QEMU as ELF (paging=false). Made once, kept in WORKDIR (default /tmp/vmcore-bench/bt).
# Each command runs $RUNS times (default 3) under /usr/bin/time -v after one warm-up run, with
# the dump warm in the page cache: wall seconds, user+system CPU seconds, peak RSS. crash is
# measured twice: `bt -a` then quit, and quit alone (its start-up: reading the vmlinux and the
# dump's kernel data), so its `bt -a` is the difference. Results go to WORKDIR/bt-bench.jsonl
# and a Markdown table on stdout.
# Needs: the built CLI (npm run build), crash, qemu-system-x86, busybox-static, GNU time.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(dirname "$HERE")
WORK=${TMPDIR:-/tmp}/vmcore-bench/bt DUMP_ONLY=0
for a in "$@"; do
  case "$a" in
    --dump-only) DUMP_ONLY=1 ;;
    *) WORK=$a ;;
  esac
done
RAM=${BT_BENCH_RAM:-4G}
PROCS=${BT_BENCH_PROCS:-150}
RUNS=${RUNS:-3}
export VMCORE_KERNEL_ABI=${VMCORE_KERNEL_ABI:-6.1.0-56}
mkdir -p "$WORK"
DUMP=$WORK/guest-$RAM-$PROCS.vmcore
eval "$("$ROOT/scripts/guest/fetch-kernel.sh" --dbg)"

if [ ! -f "$DUMP" ]; then
  G=$WORK/guest
  rm -rf "$G"
  eval "$("$ROOT/scripts/guest/boot.sh" --dir "$G" --ram "$RAM" --smp 2 --nokaslr --mode panic --tag bt-bench \
    --append "vmcore_procs=$PROCS" --timeout 600)"
  /usr/bin/python3 "$ROOT/scripts/guest/qmp.py" "$QMP_SOCKET" stop '{}' \
    dump-guest-memory "{\"paging\": false, \"protocol\": \"file:$DUMP.tmp\", \"format\": \"elf\"}" quit '{}' > /dev/null
  for _ in $(seq 1 50); do kill -0 "$QEMU_PID" 2>/dev/null || break; sleep 0.2; done
  kill "$QEMU_PID" 2>/dev/null || true
  cp "$SERIAL_LOG" "$WORK/serial.log"
  mv "$DUMP.tmp" "$DUMP"
fi

[ "$DUMP_ONLY" = 1 ] && { echo "DUMP=$DUMP"; exit 0; }
CLI=(node "$ROOT/dist/src/cli/vmcore.js")
JSONL=$WORK/bt-bench.jsonl
: > "$JSONL"
cat "$DUMP" > /dev/null
printf 'bt -a\nquit\n' > "$WORK/crash-bt.in"
printf 'quit\n' > "$WORK/crash-quit.in"

# shellcheck source=bench/measure.sh
. "$HERE/measure.sh"

measure 'vmcore bt -a' /dev/null "$WORK/vmcore-bt-a.txt" "${CLI[@]}" bt -a "$DUMP"
measure 'vmcore bt -a --json' /dev/null "$WORK/vmcore-bt-a.json" "${CLI[@]}" bt -a --json "$DUMP"
measure 'crash: bt -a, quit' "$WORK/crash-bt.in" "$WORK/crash-bt-a.txt" crash -s "$VMLINUX" "$DUMP"
measure 'crash: quit (start-up)' "$WORK/crash-quit.in" "$WORK/crash-quit.txt" crash -s "$VMLINUX" "$DUMP"

tasks_vmcore=$(grep -c '^PID:' "$WORK/vmcore-bt-a.txt" || true)
tasks_crash=$(grep -c '^PID:' "$WORK/crash-bt-a.txt" || true)
echo "| command | wall s (median of $RUNS) | CPU s (median) | peak RSS MiB | tasks shown |"
echo "|---|---|---|---|---|"
node -e '
const rows = require("fs").readFileSync(process.argv[1], "utf8").trim().split("\n").map((l) => JSON.parse(l));
const med = (a) => { const s = [...a].sort((x, y) => x - y); return s[Math.floor(s.length / 2)]; };
const names = [...new Set(rows.map((r) => r.name))];
const tasks = { "vmcore bt -a": process.argv[2], "vmcore bt -a --json": process.argv[2], "crash: bt -a, quit": process.argv[3], "crash: quit (start-up)": "-" };
for (const n of names) {
  const r = rows.filter((x) => x.name === n);
  console.log(`| ${n} | ${med(r.map((x) => x.wall_s)).toFixed(2)} | ${med(r.map((x) => x.cpu_s)).toFixed(2)} | ${(med(r.map((x) => x.peak_rss_kib)) / 1024).toFixed(0)} | ${tasks[n]} |`);
}' "$JSONL" "$tasks_vmcore" "$tasks_crash"
echo "dump: $DUMP ($(du -h "$DUMP" | cut -f1)), $(cut -d' ' -f1-3 /proc/loadavg) load at the end" >&2
