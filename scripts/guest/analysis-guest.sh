#!/usr/bin/env bash
# The analysis guest: one panicked guest per kernel, its QEMU dumps and the truth the real tools
# read from them, for the symbol, type and backtrace interop tests. Cached: a second run with the
# same kernel and the same scripts only prints the paths.
#
#   VMCORE_KERNEL_ABI=6.1.0-56 scripts/guest/analysis-guest.sh
#
# The guest: 2 vCPUs, KASLR, 256 MiB, SeaBIOS, -device vmcoreinfo, the initramfs of
# build-initramfs.sh with the loop and dummy modules besides qemu_fw_cfg, 4 busybox sleep loops
# and a plain sleep (vmcore_procs=4 of init.sh), kernel threads; /init prints ps, /proc/modules
# and a sample of /proc/kallsyms on the console, then panics with sysrq-c. QEMU (stopped) dumps
# it through QMP as ELF (paging=false) and kdump-zlib.
#
# Output directory $VMCORE_GUEST_CACHE/analysis/<KVER>-<boot hash>/ (see BOOT_VERSION below):
#   qemu-elf.vmcore, qemu-kdump-zlib.vmcore   QEMU's dumps
#   fixed-elf.vmcore                          `vmcore fix` of the ELF (drgn cannot read QEMU's)
#   serial.log, qemu.cmdline                  the console and the QEMU command line
#   truth-drgn.json                           scripts/guest/truth-drgn.py on fixed-elf.vmcore
#   crash-ps.txt crash-mod.txt crash-bt-a.txt crash-task.txt   crash 8.0.2 on qemu-elf.vmcore
#                                             (6.1 kernels only: it cannot open 6.12 dumps)
#   timings.env                               seconds spent in boot, dump, drgn and crash
#   truth.hash                                which truth script made the truth files
# Prints eval-able assignments: ANALYSIS_DIR= KVER= VMLINUX= (VMLINUX is the -dbg vmlinux).
#
# Needs what boot.sh needs, the -dbg package (fetch-kernel.sh --dbg, downloaded if absent),
# python3-drgn, crash, and the built CLI (npm run build; VMCORE_CLI overrides the command).
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
CACHE=${VMCORE_GUEST_CACHE:-/tmp/vmcore-guest}
PY=/usr/bin/python3
log() { echo "analysis-guest: $*" >&2; }

eval "$("$HERE/fetch-kernel.sh" --dbg)"
[ -f "$VMLINUX" ] || { log "no -dbg vmlinux for $KVER at $VMLINUX"; exit 1; }
# The boot is keyed by the guest's scripts and BOOT_VERSION (raise it when the boot or dump steps
# below change); the truth by truth-drgn.py and TRUTH_VERSION (raise it when the crash commands
# change): a new truth script reads the cached dumps again without booting.
BOOT_VERSION=1
TRUTH_VERSION=1
HASH=$( (echo "$BOOT_VERSION"; cat "$HERE/init.sh" "$HERE/build-initramfs.sh" "$HERE/boot.sh") | sha256sum | cut -c1-12)
THASH=$( (echo "$TRUTH_VERSION"; cat "$HERE/truth-drgn.py") | sha256sum | cut -c1-12)
OUT=$CACHE/analysis/$KVER-$HASH
mkdir -p "$CACHE/analysis"
exec 9>"$CACHE/analysis/.lock"
flock 9

if [ ! -f "$OUT/.done" ]; then
  rm -rf "$OUT.tmp" && mkdir -p "$OUT.tmp"
  W=$OUT.tmp
  t0=$(date +%s)
  "$HERE/build-initramfs.sh" "$W/initramfs.cpio.gz" --seed-mib 0 --module loop --module dummy
  PID=
  cleanup() { [ -n "$PID" ] && kill "$PID" 2>/dev/null || true; }
  trap cleanup EXIT
  set +e
  "$HERE/boot.sh" --dir "$W/run" --ram 256M --smp 2 --kaslr --vmcoreinfo --mode panic --tag analysis \
    --initrd "$W/initramfs.cpio.gz" --append 'vmcore_procs=4' --timeout 300 > "$W/boot.env"
  rc=$?
  set -e
  PID=$(cat "$W/run/qemu.pid" 2>/dev/null || true)
  [ "$rc" = 0 ] || { log "boot failed; console in $W/run/serial.log"; exit 1; }
  t1=$(date +%s)
  "$PY" "$HERE/qmp.py" "$W/run/qmp.sock" stop '{}' \
    dump-guest-memory "{\"paging\": false, \"protocol\": \"file:$W/qemu-elf.vmcore\", \"format\": \"elf\"}" \
    dump-guest-memory "{\"paging\": false, \"protocol\": \"file:$W/qemu-kdump-zlib.vmcore\", \"format\": \"kdump-zlib\"}" \
    quit '{}' > /dev/null
  for _ in $(seq 1 50); do kill -0 "$PID" 2>/dev/null || break; sleep 0.2; done
  kill "$PID" 2>/dev/null || true
  PID=
  cp "$W/run/serial.log" "$W/run/qemu.cmdline" "$W/"
  CLI=${VMCORE_CLI:-node $ROOT/dist/src/cli/vmcore.js}
  $CLI fix "$W/qemu-elf.vmcore" -o "$W/fixed-elf.vmcore" >&2
  t2=$(date +%s)
  printf 'BOOT_S=%s\nDUMP_S=%s\n' $((t1 - t0)) $((t2 - t1)) > "$W/timings.env"
  rm -rf "$W/run" "$W/initramfs.cpio.gz"
  touch "$W/.done"
  rm -rf "$OUT" && mv "$W" "$OUT"
  log "$KVER dumped in $OUT ($((t2 - t0)) s)"
fi

if [ "$(cat "$OUT/truth.hash" 2>/dev/null)" != "$THASH" ]; then
  rm -f "$OUT/truth.hash"
  t2=$(date +%s)
  "$PY" "$HERE/truth-drgn.py" "$OUT/fixed-elf.vmcore" "$VMLINUX" > "$OUT/truth-drgn.json.tmp"
  mv "$OUT/truth-drgn.json.tmp" "$OUT/truth-drgn.json"
  t3=$(date +%s)
  case "$KVER" in
    6.1.*)
      TASK=$("$PY" -c 'import json,sys; d=json.load(open(sys.argv[1])); print(next(t["task"] for t in d["tasks"] if t["pid"]==1))' "$OUT/truth-drgn.json")
      printf '%s\n' "ps > $OUT/crash-ps.txt" "mod > $OUT/crash-mod.txt" "bt -a > $OUT/crash-bt-a.txt" \
        "struct task_struct $TASK > $OUT/crash-task.txt" quit \
        | timeout 300 crash -s "$VMLINUX" "$OUT/qemu-elf.vmcore" > "$OUT/crash.log" 2>&1 || log "crash failed: see $OUT/crash.log"
      ;;
    *) echo "crash 8.0.2 cannot open $KVER dumps" > "$OUT/crash.log" ;;
  esac
  t4=$(date +%s)
  sed -i '/^DRGN_S=\|^CRASH_S=/d' "$OUT/timings.env"
  printf 'DRGN_S=%s\nCRASH_S=%s\n' $((t3 - t2)) $((t4 - t3)) >> "$OUT/timings.env"
  echo "$THASH" > "$OUT/truth.hash"
  log "$KVER truth in $OUT ($((t4 - t2)) s)"
fi
echo "ANALYSIS_DIR=$OUT"
echo "KVER=$KVER"
echo "VMLINUX=$VMLINUX"
