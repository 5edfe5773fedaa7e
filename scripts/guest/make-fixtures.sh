#!/usr/bin/env bash
# Make real dumps of the current Debian cloud kernel for interop tests: for each case a guest
# is booted (scripts/guest/boot.sh), panicked with sysrq-c, paused, and dumped by QEMU itself
# as ELF (qemu-elf.vmcore) and kdump-zlib (qemu-kdump-zlib.vmcore, flattened in QEMU 7.2).
# Each case directory also gets serial.log, qemu.cmdline and truth.env (KVER, the true
# PHYS_BASE from the guest's console, VMCOREINFO_DEVICE, FIRMWARE, KASLR).
# makedumpfile output is not made: it needs a kdump kernel inside the guest.
#
#   scripts/guest/make-fixtures.sh [OUTDIR]        (default $VMCORE_GUEST_CACHE/fixtures)
#
# Prints eval-able lines at the end: FIXTURES=OUTDIR VMLINUX=<debug vmlinux of the kernel>.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
CACHE=${VMCORE_GUEST_CACHE:-/tmp/vmcore-guest}
OUT=${1:-$CACHE/fixtures}
mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)
eval "$("$HERE/fetch-kernel.sh" --dbg)"
PY=python3
[ -x /usr/bin/python3 ] && PY=/usr/bin/python3

# name bios kaslr(0/1) vmcoreinfo(0/1) ram
CASES=(
  "seabios-nokaslr-128M-vmci-panic seabios 0 1 128M"
  "ovmf-nokaslr-256M-novmci-panic ovmf 0 0 256M"
  "ovmf-kaslr-256M-vmci-panic ovmf 1 1 256M"
)
for c in "${CASES[@]}"; do
  read -r name bios kaslr vmci ram <<<"$c"
  dir=$OUT/$name
  if [ -f "$dir/truth.env" ]; then echo "make-fixtures: $name exists, skipped" >&2; continue; fi
  rm -rf "$dir" && mkdir -p "$dir"
  args=(--dir "$dir/run" --bios "$bios" --ram "$ram" --mode panic --fill 8 --tag "$name")
  [ "$kaslr" = 1 ] && args+=(--kaslr)
  [ "$vmci" = 1 ] && args+=(--vmcoreinfo)
  echo "make-fixtures: booting $name" >&2
  eval "$("$HERE/boot.sh" "${args[@]}")"
  "$PY" "$HERE/qmp.py" "$QMP_SOCKET" stop >/dev/null
  "$PY" "$HERE/qmp.py" "$QMP_SOCKET" dump-guest-memory "{\"paging\": false, \"protocol\": \"file:$dir/qemu-elf.vmcore\"}" >/dev/null
  "$PY" "$HERE/qmp.py" "$QMP_SOCKET" dump-guest-memory "{\"paging\": false, \"protocol\": \"file:$dir/qemu-kdump-zlib.vmcore\", \"format\": \"kdump-zlib\"}" >/dev/null
  "$PY" "$HERE/qmp.py" "$QMP_SOCKET" quit >/dev/null || true
  for _ in $(seq 50); do kill -0 "$QEMU_PID" 2>/dev/null || break; sleep 0.1; done
  chmod 644 "$dir"/qemu-*.vmcore
  cp "$SERIAL_LOG" "$dir/serial.log"
  cp "$dir/run/qemu.cmdline" "$dir/qemu.cmdline"
  rm -rf "$dir/run"
  {
    echo "KVER=$KVER"
    echo "PHYS_BASE=$("$HERE/phys-base.sh" "$dir/serial.log")"
    echo "FIRMWARE=$bios"
    echo "KASLR=$kaslr"
    echo "VMCOREINFO_DEVICE=$vmci"
    echo "RAM=$ram"
  } > "$dir/truth.env"
  echo "make-fixtures: $name done (phys_base $(sed -n 's/^PHYS_BASE=//p' "$dir/truth.env"))" >&2
done
echo "FIXTURES=$OUT"
echo "VMLINUX=$VMLINUX"
