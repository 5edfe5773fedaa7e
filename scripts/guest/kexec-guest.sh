#!/usr/bin/env bash
# The kdump guest: a dump made by the kernel itself. One guest per kernel boots with crashkernel=,
# loads a capture kernel with kexec-tools (`kexec -p`: the same kernel and an initramfs), then
# panics with sysrq-c on CPU 0 while CPU 1 is busy in the kernel, so the panic stops CPU 1 by NMI.
# The capture kernel saves /proc/vmcore to a virtio disk as ELF and through makedumpfile -d 31 -c;
# the host cuts both out of the disk image and records what the real tools read from them.
# Cached: a second run with the same kernel and the same scripts only prints the paths.
#
#   VMCORE_KERNEL_ABI=6.1.0-56 scripts/guest/kexec-guest.sh
#
# The guest: 2 vCPUs, 384 MiB with crashkernel=128M, KASLR, SeaBIOS, the initramfs of
# build-initramfs.sh --kdump with the loop and dummy modules besides qemu_fw_cfg, 4 busybox
# sleep loops and a plain sleep (vmcore_procs=4 of init.sh), `dd if=/dev/zero of=/dev/null` on
# CPU 1 (vmcore_kdump=1); /init prints ps, /proc/modules and a sample of /proc/kallsyms on the
# console, loads the capture kernel and panics from CPU 0.
#
# Output directory $VMCORE_GUEST_CACHE/kexec/<KVER>-<boot hash>/ (see BOOT_VERSION below):
#   kernel-elf.vmcore         /proc/vmcore as the capture kernel read it (ELF, kernel-made notes)
#   makedumpfile.kdump        `makedumpfile -d 31 -c /proc/vmcore` run in the capture kernel
#   serial.log, qemu.cmdline  the console (first kernel, then the capture kernel) and QEMU's command
#   truth-drgn.json           scripts/guest/truth-drgn.py on kernel-elf.vmcore
#   crash-sys.txt crash-bt-a.txt crash-ps.txt crash.log   crash 8.0.2 on kernel-elf.vmcore
#   timings.env               seconds: BOOT_S (initramfs, boot, panic, capture and save),
#                             EXTRACT_S, DRGN_S, CRASH_S
#   truth.hash                which truth script made the truth files
# Prints eval-able assignments: KEXEC_DIR= KVER= VMLINUX= (VMLINUX is the -dbg vmlinux).
#
# Needs what boot.sh needs, kexec-tools and makedumpfile (their binaries and libraries are copied
# into the initramfs), the -dbg package (fetch-kernel.sh --dbg), python3-drgn and crash.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
CACHE=${VMCORE_GUEST_CACHE:-/tmp/vmcore-guest}
PY=/usr/bin/python3
log() { echo "kexec-guest: $*" >&2; }

eval "$("$HERE/fetch-kernel.sh" --dbg)"
[ -f "$VMLINUX" ] || { log "no -dbg vmlinux for $KVER at $VMLINUX"; exit 1; }
# The boot is keyed by the guest's scripts and BOOT_VERSION (raise it when the boot or the
# extraction below change); the truth by truth-drgn.py and TRUTH_VERSION (raise it when the crash
# commands change): a new truth script reads the cached dumps again without booting.
BOOT_VERSION=1
TRUTH_VERSION=1
HASH=$( (echo "$BOOT_VERSION"; cat "$HERE/init.sh" "$HERE/build-initramfs.sh" "$HERE/boot.sh" "$0") | sha256sum | cut -c1-12)
THASH=$( (echo "$TRUTH_VERSION"; cat "$HERE/truth-drgn.py") | sha256sum | cut -c1-12)
OUT=$CACHE/kexec/$KVER-$HASH
mkdir -p "$CACHE/kexec"
exec 9>"$CACHE/kexec/.lock"
flock 9

# where the makedumpfile output goes on the disk (MiB); the ELF starts at 0
KDUMP_OFF=512
if [ ! -f "$OUT/.done" ]; then
  rm -rf "$OUT.tmp" && mkdir -p "$OUT.tmp"
  W=$OUT.tmp
  t0=$(date +%s)
  "$HERE/build-initramfs.sh" "$W/initramfs.cpio.gz" --seed-mib 0 --module loop --module dummy --kdump
  truncate -s $((KDUMP_OFF + 256))M "$W/disk.img"
  PID=
  cleanup() { [ -n "$PID" ] && kill "$PID" 2>/dev/null || true; }
  trap cleanup EXIT
  set +e
  "$HERE/boot.sh" --dir "$W/run" --ram 384M --smp 2 --kaslr --mode panic --tag kexec \
    --initrd "$W/initramfs.cpio.gz" --drive "$W/disk.img" --wait 'VMCORE-CAPTURE-DONE' \
    --append "vmcore_procs=4 vmcore_kdump=1 vmcore_kdump_off=$KDUMP_OFF crashkernel=128M" --timeout 600 > "$W/boot.env"
  rc=$?
  set -e
  PID=$(cat "$W/run/qemu.pid" 2>/dev/null || true)
  [ "$rc" = 0 ] || { log "boot failed; console in $W/run/serial.log"; exit 1; }
  # the capture kernel powers the machine off after the done line
  for _ in $(seq 1 100); do kill -0 "$PID" 2>/dev/null || break; sleep 0.2; done
  kill "$PID" 2>/dev/null || true
  PID=
  t1=$(date +%s)
  cp "$W/run/serial.log" "$W/run/qemu.cmdline" "$W/"
  saved() { sed -n "s/.*VMCORE-CAPTURE-SAVED $1 \([0-9]*\) \([0-9]*\).*/\1 \2/p" "$W/serial.log" | tail -n1; }
  read -r off size <<< "$(saved elf)"
  [ -n "${size:-}" ] || { log "the capture kernel saved no ELF; console in $W/serial.log"; exit 1; }
  dd if="$W/disk.img" of="$W/kernel-elf.vmcore" bs=1M skip="$off" count="$size" iflag=count_bytes status=none
  read -r off size <<< "$(saved kdump)"
  [ -n "${size:-}" ] || { log "makedumpfile failed in the capture kernel; console in $W/serial.log"; exit 1; }
  dd if="$W/disk.img" of="$W/makedumpfile.kdump" bs=1M skip="$off" count="$size" iflag=count_bytes status=none
  t2=$(date +%s)
  printf 'BOOT_S=%s\nEXTRACT_S=%s\n' $((t1 - t0)) $((t2 - t1)) > "$W/timings.env"
  rm -rf "$W/run" "$W/initramfs.cpio.gz" "$W/disk.img"
  touch "$W/.done"
  rm -rf "$OUT" && mv "$W" "$OUT"
  log "$KVER captured in $OUT ($((t2 - t0)) s)"
fi

if [ "$(cat "$OUT/truth.hash" 2>/dev/null)" != "$THASH" ]; then
  rm -f "$OUT/truth.hash"
  t2=$(date +%s)
  "$PY" "$HERE/truth-drgn.py" "$OUT/kernel-elf.vmcore" "$VMLINUX" > "$OUT/truth-drgn.json.tmp"
  mv "$OUT/truth-drgn.json.tmp" "$OUT/truth-drgn.json"
  t3=$(date +%s)
  case "$KVER" in
    6.1.*)
      printf '%s\n' "sys > $OUT/crash-sys.txt" "bt -a > $OUT/crash-bt-a.txt" "ps > $OUT/crash-ps.txt" quit \
        | timeout 300 crash -s "$VMLINUX" "$OUT/kernel-elf.vmcore" > "$OUT/crash.log" 2>&1 || log "crash failed: see $OUT/crash.log"
      ;;
    *) echo "crash 8.0.2 cannot open $KVER dumps" > "$OUT/crash.log" ;;
  esac
  t4=$(date +%s)
  sed -i '/^DRGN_S=\|^CRASH_S=/d' "$OUT/timings.env"
  printf 'DRGN_S=%s\nCRASH_S=%s\n' $((t3 - t2)) $((t4 - t3)) >> "$OUT/timings.env"
  echo "$THASH" > "$OUT/truth.hash"
  log "$KVER truth in $OUT ($((t4 - t2)) s)"
fi
echo "KEXEC_DIR=$OUT"
echo "KVER=$KVER"
echo "VMLINUX=$VMLINUX"
