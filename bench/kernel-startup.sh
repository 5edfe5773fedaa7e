#!/usr/bin/env bash
# Start-up cost of looking at the kernel in a dump: vmcore (symbols and BTF from the dump itself,
# no vmlinux) against crash and drgn (with the -dbg vmlinux), each as a whole process, in the
# same run, interleaved (vmcore, crash, drgn, vmcore, ...) so that machine load drifts alike.
#
#   vmcore ps DUMP          kallsyms + BTF loaded from the dump, the task list printed
#   vmcore sym DUMP ...     kallsyms loaded, a few names and an address resolved
#   crash -s VMLINUX DUMP   `ps`, then `exit` (crash's own start-up + task list)
#   drgn                    program_from core dump + load_debug_info(VMLINUX), every task listed
#
# Usage: bash bench/kernel-startup.sh DUMP VMLINUX [RUNS]   (build first: npm run build)
# Prints per run and tool the wall, user+sys (CPU) seconds and peak RSS from /usr/bin/time, then
# the median of each and the ratios of the medians to vmcore ps; and the load average before and
# after. Needs /usr/bin/time, crash, and drgn in /usr/bin/python3 (PYTHON to override).
set -euo pipefail
DUMP=${1:?usage: kernel-startup.sh DUMP VMLINUX [RUNS]}
VMLINUX=${2:?usage: kernel-startup.sh DUMP VMLINUX [RUNS]}
RUNS=${3:-5}
PYTHON=${PYTHON:-/usr/bin/python3}
HERE=$(cd "$(dirname "$0")/.." && pwd)
CLI="$HERE/dist/src/cli/vmcore.js"
[ -f "$CLI" ] || { echo "build first: npm run build" >&2; exit 2; }
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
printf 'ps\nexit\n' > "$TMP/crash.in"
# not named drgn.py: the script's own directory comes first on sys.path
cat > "$TMP/drgn_tasks.py" <<'EOF'
import sys, drgn
from drgn.helpers.linux.pid import for_each_task
prog = drgn.Program()
prog.set_core_dump(sys.argv[1])
prog.load_debug_info([sys.argv[2]])
n = 0
for t in for_each_task(prog):
    print(t.pid.value_(), t.comm.string_().decode())
    n += 1
print(n, "tasks", file=sys.stderr)
EOF

# one measured run: NAME then the command; appends "name wall cpu rss_kib exit" to $TMP/runs
measure() {
  local name=$1; shift
  local rc=0
  /usr/bin/time -f '%e %U %S %M' -o "$TMP/time" "$@" > "$TMP/$name.out" 2> "$TMP/$name.err" < "${STDIN:-/dev/null}" || rc=$?
  read -r wall user sys rss < <(tail -1 "$TMP/time")
  echo "$name $wall $(echo "$user + $sys" | bc -l) $rss $rc" >> "$TMP/runs"
}

echo "dump:    $DUMP ($(du -h --apparent-size "$DUMP" | cut -f1))"
echo "vmlinux: $VMLINUX"
echo "load average before: $(cut -d' ' -f1-3 /proc/loadavg)   cpus: $(nproc)"
# warm-up: the files in the page cache, and each tool's outputs kept for a check
node "$CLI" ps "$DUMP" > "$TMP/warm.vmcore-ps" 2>/dev/null || true
crash -s "$VMLINUX" "$DUMP" < "$TMP/crash.in" > "$TMP/warm.crash" 2>&1 || true
"$PYTHON" "$TMP/drgn_tasks.py" "$DUMP" "$VMLINUX" > "$TMP/warm.drgn" 2>&1 || true
echo "tasks listed: vmcore $(($(wc -l < "$TMP/warm.vmcore-ps") - 1)), crash $(grep -cE '^[ >*]+[0-9]+ +[0-9]+ +[0-9]+ ' "$TMP/warm.crash" || true), drgn $(($(wc -l < "$TMP/warm.drgn") - 1))"
: > "$TMP/runs"
for _ in $(seq "$RUNS"); do
  measure vmcore-ps node "$CLI" ps "$DUMP"
  measure vmcore-sym node "$CLI" sym "$DUMP" init_task panic schedule
  STDIN="$TMP/crash.in" measure crash-ps crash -s "$VMLINUX" "$DUMP"
  measure drgn-tasks "$PYTHON" "$TMP/drgn_tasks.py" "$DUMP" "$VMLINUX"
done
echo "load average after:  $(cut -d' ' -f1-3 /proc/loadavg)"
echo
echo "runs (tool wall_s cpu_s peak_rss_kib exit):"
cat "$TMP/runs"
echo
node - "$TMP/runs" <<'EOF'
const fs = require('fs');
const rows = fs.readFileSync(process.argv[2], 'utf8').trim().split('\n').map((l) => l.split(' '));
const med = (a) => { const s = [...a].sort((x, y) => x - y); const m = s.length >> 1; return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2; };
const tools = [...new Set(rows.map((r) => r[0]))];
const stat = {};
for (const t of tools) {
  const rs = rows.filter((r) => r[0] === t);
  stat[t] = { wall: med(rs.map((r) => +r[1])), cpu: med(rs.map((r) => +r[2])), rss: med(rs.map((r) => +r[3])), fails: rs.filter((r) => r[4] !== '0').length };
}
const base = stat['vmcore-ps'];
console.log('| tool | wall s (median) | CPU s (median) | peak RSS MiB | wall / vmcore ps | CPU / vmcore ps | failed runs |');
console.log('|---|---|---|---|---|---|---|');
for (const t of tools) {
  const s = stat[t];
  console.log(`| ${t} | ${s.wall.toFixed(2)} | ${s.cpu.toFixed(2)} | ${(s.rss / 1024).toFixed(0)} | ${(s.wall / base.wall).toFixed(2)} | ${(s.cpu / base.cpu).toFixed(2)} | ${s.fails} |`);
}
EOF
