#!/usr/bin/env bash
# Measure `vmcore dump --qmp` against QEMU's own dump paths on one filled guest, in one run:
#   QEMU kdump-zlib (file), QEMU ELF (file), vmcore dump -z / -p / -l / -c (kdump via FIFO).
# The guest: Debian cloud kernel, busybox initramfs (scripts/guest), SeaBIOS, KASLR on,
# -device vmcoreinfo, RAM and tmpfs fill as given; it is paused before the first dump so every
# dump holds the same memory.
#
#   bench/qmp-dump.sh [--ram 2G] [--fill MIB] [--runs N] [--out DIR]
#
# Results: DIR/results.tsv (one line per run: what, wall seconds, output bytes, max RSS KiB of
# the measured client process, its user+sys CPU seconds, QEMU's CPU seconds during the run,
# the 1-minute load average before the run) and a Markdown table on stdout.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
REPO=$(dirname "$HERE")
RAM=2G FILL=1700 RUNS=1 OUT=${TMPDIR:-/tmp}/vmcore-bench-qmp
while [ $# -gt 0 ]; do
  case "$1" in
    --ram) RAM=$2; shift 2 ;;
    --fill) FILL=$2; shift 2 ;;
    --runs) RUNS=$2; shift 2 ;;
    --out) OUT=$2; shift 2 ;;
    *) echo "unknown option $1" >&2; exit 2 ;;
  esac
done
CLI=${VMCORE_CLI:-$REPO/dist/src/cli/vmcore.js}
PY=python3
[ -x /usr/bin/python3 ] && PY=/usr/bin/python3
QMP="$PY $REPO/scripts/guest/qmp.py"
mkdir -p "$OUT"
rm -f "$OUT"/*.vmcore "$OUT"/*.kdump

eval "$("$REPO/scripts/guest/boot.sh" --dir "$OUT/guest" --ram "$RAM" --kaslr --vmcoreinfo --fill "$FILL" --tag bench --timeout 1800)"
trap 'kill $QEMU_PID 2>/dev/null || true' EXIT
grep -a 'GUEST: filled' "$SERIAL_LOG" >&2 || true
$QMP "$QMP_SOCKET" stop >/dev/null

RES=$OUT/results.tsv
: > "$RES"
qemu_cpu() { # QEMU's utime+stime in seconds
  awk -v hz="$(getconf CLK_TCK)" '{ sub(/.*\) /, ""); printf "%.2f", ($12 + $13) / hz }' "/proc/$QEMU_PID/stat"
}
measure() { # name outfile command...
  local name=$1 out=$2; shift 2
  rm -f "$out"
  sync
  local load q0 q1
  load=$(cut -d' ' -f1 /proc/loadavg)
  q0=$(qemu_cpu)
  /usr/bin/time -f '%e %M %U %S' -o "$OUT/time.txt" "$@" > "$OUT/$name.stdout" 2> "$OUT/$name.stderr" || { echo "$name failed:" >&2; cat "$OUT/$name.stderr" >&2; return 1; }
  q1=$(qemu_cpu)
  read -r wall rss usr sys < <(tail -n1 "$OUT/time.txt")
  printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$name" "$wall" "$(stat -c %s "$out")" "$rss" "$(awk "BEGIN { print $usr + $sys }")" "$(awk "BEGIN { printf \"%.2f\", $q1 - $q0 }")" "$load" >> "$RES"
  echo "$name: $wall s, $(stat -c %s "$out") bytes, load $load" >&2
}

for run in $(seq "$RUNS"); do
  measure qemu-kdump-zlib "$OUT/qemu.kdump-zlib.vmcore" \
    $QMP "$QMP_SOCKET" dump-guest-memory "{\"paging\": false, \"protocol\": \"file:$OUT/qemu.kdump-zlib.vmcore\", \"format\": \"kdump-zlib\"}"
  measure qemu-elf "$OUT/qemu.elf.vmcore" \
    $QMP "$QMP_SOCKET" dump-guest-memory "{\"paging\": false, \"protocol\": \"file:$OUT/qemu.elf.vmcore\"}"
  [ "$run" = "$RUNS" ] || rm -f "$OUT/qemu.elf.vmcore"
  for c in z p l c; do
    measure "vmcore-dump-$c" "$OUT/vmcore-$c.kdump" node "$CLI" dump --qmp "$QMP_SOCKET" "$OUT/vmcore-$c.kdump" "-$c" --json --force
    [ "$run" = "$RUNS" ] || rm -f "$OUT/vmcore-$c.kdump"
  done
done

echo "| what | wall s (runs) | output bytes | output / QEMU kdump-zlib | speed-up vs QEMU kdump-zlib (mean wall) | client CPU s | QEMU CPU s | load avg before | client max RSS MiB |"
echo "|---|---|---|---|---|---|---|---|---|"
awk -F'\t' '
  { n[$1]++; w[$1] = w[$1] (w[$1] ? " / " : "") $2; sum[$1] += $2; sz[$1] = $3; rss[$1] = $4; cpu[$1] = cpu[$1] (cpu[$1] ? " / " : "") $5
    q[$1] = q[$1] (q[$1] ? " / " : "") $6; ld[$1] = ld[$1] (ld[$1] ? " / " : "") $7; if (!($1 in ord)) { ord[$1] = ++k; names[k] = $1 } }
  END {
    qz = sum["qemu-kdump-zlib"] / n["qemu-kdump-zlib"]; qs = sz["qemu-kdump-zlib"]
    for (i = 1; i <= k; i++) { x = names[i]; m = sum[x] / n[x]
      printf "| %s | %s | %.0f | %.3f | %.2fx | %s | %s | %s | %.0f |\n", x, w[x], sz[x], sz[x] / qs, qz / m, cpu[x], q[x], ld[x], rss[x] / 1024 }
  }' "$RES"
for c in z p l c; do
  f=$OUT/vmcore-dump-$c.stdout
  [ -s "$f" ] && node -e '
    const s = JSON.parse(require("fs").readFileSync(process.argv[1], "utf8"));
    console.log(`vmcore -${process.argv[2]}: ${s.codec} (${s.codecImpl}), ${s.threads} threads, stream ${s.timings.streamMs} ms, ` +
      `QEMU verdict ${s.timings.qemuDoneMs} ms, analysis ${s.timings.analysisMs} ms, guest paused ${s.guestPausedMs ?? "?"} ms, ` +
      `phys_base ${s.physBase ? s.physBase.value : "?"}, VMCOREINFO ${s.vmcoreinfo.source}`);' "$f" "$c"
done
