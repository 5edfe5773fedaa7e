#!/usr/bin/env bash
# Boot the test guest under QEMU (TCG) with a QMP socket and wait until its /init is ready.
#
#   scripts/guest/boot.sh --dir DIR [--ram 256M] [--bios seabios|ovmf] [--vmcoreinfo]
#        [--kaslr|--nokaslr] [--fill MIB] [--mode idle|panic] [--tag NAME] [--smp N]
#        [--initrd FILE] [--timeout SECONDS] [--append 'KERNEL ARGS'] [--drive FILE]...
#        [--wait TEXT]
#
# DIR receives serial.log, qmp.sock and qemu.pid. QEMU runs daemonized; stop it with
# `kill $(cat DIR/qemu.pid)` or the QMP command `quit`. Prints eval-able assignments:
#   QMP_SOCKET=DIR/qmp.sock SERIAL_LOG=DIR/serial.log QEMU_PID=... KVER=... VMLINUZ=...
# The true phys_base follows from the serial log (see phys-base.sh).
# --drive FILE attaches a raw image as a virtio disk; --wait TEXT waits for TEXT on the console
# instead of the ready line (or, with --mode panic, the end of the panic).
# VMCORE_KERNEL_ARCH=arm64 boots the arm64 cloud kernel under qemu-system-aarch64 (machine virt,
# cpu max, TCG); --bios ovmf then means the AAVMF/QEMU_EFI firmware (qemu-efi-aarch64), with a
# virtio-rng device so that the EFI stub can randomise the kernel's placement (KASLR).
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
DIR= RAM=256M BIOS=seabios VMCI=0 KASLR=0 FILL=0 MODE=idle TAG=guest SMP=1 INITRD= TIMEOUT=300 XAPPEND= WAIT=
DRIVES=()
while [ $# -gt 0 ]; do
  case "$1" in
    --dir) DIR=$2; shift 2 ;;
    --ram) RAM=$2; shift 2 ;;
    --bios) BIOS=$2; shift 2 ;;
    --vmcoreinfo) VMCI=1; shift ;;
    --kaslr) KASLR=1; shift ;;
    --nokaslr) KASLR=0; shift ;;
    --fill) FILL=$2; shift 2 ;;
    --mode) MODE=$2; shift 2 ;;
    --tag) TAG=$2; shift 2 ;;
    --smp) SMP=$2; shift 2 ;;
    --initrd) INITRD=$2; shift 2 ;;
    --timeout) TIMEOUT=$2; shift 2 ;;
    --append) XAPPEND=$2; shift 2 ;;
    --drive) DRIVES+=(-drive "file=$2,format=raw,if=virtio"); shift 2 ;;
    --wait) WAIT=$2; shift 2 ;;
    *) echo "boot.sh: unknown option $1" >&2; exit 2 ;;
  esac
done
[ -n "$DIR" ] || { echo "boot.sh: --dir is required" >&2; exit 2; }
mkdir -p "$DIR"
DIR=$(cd "$DIR" && pwd)
CACHE=${VMCORE_GUEST_CACHE:-/tmp/vmcore-guest}
eval "$("$HERE/fetch-kernel.sh")"
if [ -z "$INITRD" ]; then
  INITRD=$CACHE/initramfs-$KVER.cpio.gz
  if [ ! -f "$INITRD" ] || [ "$HERE/init.sh" -nt "$INITRD" ] || [ "$HERE/build-initramfs.sh" -nt "$INITRD" ]; then
    "$HERE/build-initramfs.sh" "$INITRD" >&2
  fi
fi
if [ "${VMCORE_KERNEL_ARCH:-amd64}" = arm64 ]; then QEMU=qemu-system-aarch64 CONSOLE=ttyAMA0 PKG=qemu-system-arm; else QEMU=qemu-system-x86_64 CONSOLE=ttyS0 PKG=qemu-system-x86; fi
command -v "$QEMU" >/dev/null || { echo "boot.sh: $QEMU not found (apt-get install $PKG)" >&2; exit 1; }

APPEND="console=$CONSOLE panic=0 vmcore_tag=$TAG vmcore_fill=$FILL vmcore_mode=$MODE"
[ "$KASLR" = 1 ] || APPEND="$APPEND nokaslr"
[ -z "$XAPPEND" ] || APPEND="$APPEND $XAPPEND"
if [ "$QEMU" = qemu-system-aarch64 ]; then
  MACHINE=(-machine virt -cpu max,pauth-impdef=on -accel tcg)
else
  MACHINE=(-machine pc,accel=tcg)
fi
ARGS=("${MACHINE[@]}" -m "$RAM" -smp "$SMP" -nodefaults -display none
  -serial "file:$DIR/serial.log" -qmp "unix:$DIR/qmp.sock,server=on,wait=off"
  -kernel "$VMLINUZ" -initrd "$INITRD" -append "$APPEND"
  -daemonize -pidfile "$DIR/qemu.pid")
case "$BIOS" in
  seabios) ;;
  ovmf)
    if [ "$QEMU" = qemu-system-aarch64 ]; then
      OVMF=/usr/share/qemu-efi-aarch64/QEMU_EFI.fd PKG=qemu-efi-aarch64
      ARGS+=(-device virtio-rng-pci)
    else
      OVMF=/usr/share/ovmf/OVMF.fd PKG=ovmf
    fi
    [ -f "$OVMF" ] || { echo "boot.sh: $OVMF not found (apt-get install $PKG)" >&2; exit 1; }
    ARGS+=(-bios "$OVMF") ;;
  *) echo "boot.sh: --bios seabios|ovmf" >&2; exit 2 ;;
esac
[ "$VMCI" = 1 ] && ARGS+=(-device vmcoreinfo)
ARGS+=("${DRIVES[@]}")
rm -f "$DIR/serial.log" "$DIR/qmp.sock" "$DIR/qemu.pid"
printf '%q ' "$QEMU" "${ARGS[@]}" > "$DIR/qemu.cmdline"
"$QEMU" "${ARGS[@]}" >&2

if [ -n "$WAIT" ]; then WANT=$WAIT; elif [ "$MODE" = panic ]; then WANT='end Kernel panic'; else WANT="VMCORE-GUEST-READY $TAG"; fi
t=0
until grep -q "$WANT" "$DIR/serial.log" 2>/dev/null; do
  if ! kill -0 "$(cat "$DIR/qemu.pid" 2>/dev/null || echo 0)" 2>/dev/null; then
    echo "boot.sh: QEMU exited before the guest was ready; see $DIR/serial.log" >&2; exit 1
  fi
  if [ "$t" -ge "$((TIMEOUT * 2))" ]; then
    echo "boot.sh: guest not ready after ${TIMEOUT}s; see $DIR/serial.log" >&2
    kill "$(cat "$DIR/qemu.pid")" 2>/dev/null || true
    exit 1
  fi
  sleep 0.5; t=$((t + 1))
done
echo "QMP_SOCKET=$DIR/qmp.sock"
echo "SERIAL_LOG=$DIR/serial.log"
echo "QEMU_PID=$(cat "$DIR/qemu.pid")"
echo "KVER=$KVER"
echo "VMLINUZ=$VMLINUZ"
