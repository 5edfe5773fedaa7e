#!/usr/bin/env bash
# Crashes on other paths than sysrq-c: guests that crash in the test module scripts/guest/crashmod
# (built out of tree against Debian's linux-headers package of the guest kernel) and their QEMU
# dumps, for test/interop/crash-kinds.test.ts. Cached: a second run with the same kernel and the
# same scripts only prints the paths; an interrupted run resumes with the kinds not yet dumped.
#
#   VMCORE_KERNEL_ABI=6.1.0-56 scripts/guest/crash-kinds.sh [RUN...]
#
# RUN is a crash kind (crashmod's mode=) and a boot number; the default is every run:
#   workqueue-1  NULL dereference in a work item (an oops in a kworker)
#   bug-1        BUG() in the write handler of /proc/crashmod (written by the guest's /init)
#   softlockup-1 the write handler spins with preemption disabled; softlockup_panic=1 and
#                watchdog_thresh=5 make the watchdog's hrtimer panic after 10 s
#   timer-1      NULL dereference in a hard-interrupt hrtimer callback (the IRQ stack)
#   workqueue-2  the workqueue crash again on a second boot with another KASLR offset
# Every guest: SeaBIOS, 2 vCPUs, 192 MiB, KASLR, -device vmcoreinfo, oops=panic,
# crashmod.mode=<kind>, the initramfs of build-initramfs.sh with crashmod.ko; QEMU (stopped)
# dumps it through QMP as ELF (paging=false).
#
# Output directory $VMCORE_GUEST_CACHE/crash-kinds/<KVER>-<hash>/<run>/:
#   qemu-elf.vmcore            QEMU's dump
#   serial.log, qemu.cmdline   the console (the kernel's own oops report and call trace) and the
#                              QEMU command line
#   truth.env                  KIND, KVER, KASLR_OFFSET (the console's "Kernel Offset:"), BOOT_S
# Prints eval-able assignments: CRASH_KINDS_DIR= KVER= VMLINUX= (VMLINUX: the -dbg vmlinux).
#
# Needs what boot.sh needs, make and the compiler the kernel was built with (gcc-12 for 6.1);
# the linux-headers packages are downloaded (fetch-kernel.sh --headers), never installed.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
CACHE=${VMCORE_GUEST_CACHE:-/tmp/vmcore-guest}
PY=/usr/bin/python3
log() { echo "crash-kinds: $*" >&2; }

RUNS=("$@")
[ ${#RUNS[@]} -gt 0 ] || RUNS=(workqueue-1 bug-1 softlockup-1 timer-1 workqueue-2)
for r in "${RUNS[@]}"; do
  case "$r" in
    workqueue-[0-9] | bug-[0-9] | softlockup-[0-9] | timer-[0-9]) ;;
    *) echo "crash-kinds.sh: unknown run $r (KIND-N, KIND: workqueue bug softlockup timer)" >&2; exit 2 ;;
  esac
done

eval "$("$HERE/fetch-kernel.sh" --dbg --headers)"
# Keyed by the module, the guest's scripts and BOOT_VERSION (raise it when the boot or dump steps
# below change).
BOOT_VERSION=1
HASH=$( (echo "$BOOT_VERSION"; cat "$HERE/crash-kinds.sh" "$HERE/crashmod/crashmod.c" "$HERE/crashmod/Kbuild" \
  "$HERE/init.sh" "$HERE/build-initramfs.sh" "$HERE/boot.sh") | sha256sum | cut -c1-12)
OUT=$CACHE/crash-kinds/$KVER-$HASH
mkdir -p "$OUT"
exec 9>"$OUT/.lock"
flock 9

# the module and the initramfs, once
if [ ! -f "$OUT/initramfs.cpio.gz" ]; then
  rm -rf "$OUT/build" && mkdir -p "$OUT/build"
  cp "$HERE/crashmod/crashmod.c" "$HERE/crashmod/Kbuild" "$OUT/build/"
  make -s -C "$HEADERS" -f "$HEADERS_MAKEFILE" M="$OUT/build" modules >&2
  "$HERE/build-initramfs.sh" "$OUT/initramfs.cpio.gz.tmp" --seed-mib 0 --module "$OUT/build/crashmod.ko"
  mv "$OUT/initramfs.cpio.gz.tmp" "$OUT/initramfs.cpio.gz"
fi

offset_of() { sed -n 's/.*Kernel Offset: \(0x[0-9a-f]*\) from.*/\1/p' "$1" | head -n1; }

PID=
cleanup() { [ -n "$PID" ] && kill "$PID" 2>/dev/null || true; }
trap cleanup EXIT
for r in "${RUNS[@]}"; do
  [ -f "$OUT/$r/.done" ] && continue
  kind=${r%-*}
  append="oops=panic crashmod.mode=$kind"
  [ "$kind" = softlockup ] && append="$append softlockup_panic=1 watchdog_thresh=5"
  # a repeated kind must have another KASLR offset than the first boot (1 in ~500 boots has the same)
  avoid=
  [ "${r#*-}" != 1 ] && [ -f "$OUT/$kind-1/truth.env" ] && avoid=$(sed -n 's/^KASLR_OFFSET=//p' "$OUT/$kind-1/truth.env")
  for attempt in 1 2 3; do
    W=$OUT/$r.tmp
    rm -rf "$W" && mkdir -p "$W"
    t0=$(date +%s)
    set +e
    "$HERE/boot.sh" --dir "$W/run" --ram 192M --smp 2 --kaslr --vmcoreinfo --mode panic --tag "crash-$kind" \
      --initrd "$OUT/initramfs.cpio.gz" --append "$append" --timeout 300 > "$W/boot.env"
    rc=$?
    set -e
    PID=$(cat "$W/run/qemu.pid" 2>/dev/null || true)
    [ "$rc" = 0 ] || { log "$r: boot failed; console in $W/run/serial.log"; exit 1; }
    off=$(offset_of "$W/run/serial.log")
    [ -n "$off" ] || { log "$r: no Kernel Offset line on the console ($W/run/serial.log)"; exit 1; }
    [ "$off" != "$avoid" ] && break
    log "$r: same KASLR offset $off as $kind-1, booting again"
    kill "$PID" 2>/dev/null || true
    PID=
  done
  t1=$(date +%s)
  "$PY" "$HERE/qmp.py" "$W/run/qmp.sock" stop '{}' \
    dump-guest-memory "{\"paging\": false, \"protocol\": \"file:$W/qemu-elf.vmcore\", \"format\": \"elf\"}" \
    quit '{}' > /dev/null
  for _ in $(seq 1 50); do kill -0 "$PID" 2>/dev/null || break; sleep 0.2; done
  kill "$PID" 2>/dev/null || true
  PID=
  cp "$W/run/serial.log" "$W/run/qemu.cmdline" "$W/"
  printf 'KIND=%s\nKVER=%s\nKASLR_OFFSET=%s\nBOOT_S=%s\n' "$kind" "$KVER" "$off" $((t1 - t0)) > "$W/truth.env"
  rm -rf "$W/run" "$W/boot.env"
  touch "$W/.done"
  rm -rf "${OUT:?}/$r" && mv "$W" "$OUT/$r"
  log "$r dumped in $OUT/$r ($(( $(date +%s) - t0 )) s)"
done
echo "CRASH_KINDS_DIR=$OUT"
echo "KVER=$KVER"
echo "VMLINUX=$VMLINUX"
