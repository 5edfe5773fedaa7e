#!/usr/bin/env bash
# The page-filtering guest: a panicked guest whose memory holds planted content (plant.c:
# 8 MiB anonymous memory, an 8 MiB file in the page cache, 32 MiB freed, each page filled with
# its own marker), dumped by QEMU through QMP as kdump-zlib. Cached: a second run with the same
# kernel and the same scripts only prints the paths.
#
#   VMCORE_KERNEL_ABI=6.12.107+deb12 scripts/guest/filter-guest.sh
#
# Output directory $VMCORE_GUEST_CACHE/filter/<KVER>-<hash>/: qemu-kdump-zlib.vmcore, serial.log,
# timings.env. Prints eval-able assignments: FILTER_DIR= KVER= VMLINUX= (VMLINUX is empty when
# the -dbg package is not in the cache; it is never downloaded here).
# Needs what boot.sh needs, and a C compiler with a static libc for plant.c.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
CACHE=${VMCORE_GUEST_CACHE:-/tmp/vmcore-guest}
log() { echo "filter-guest: $*" >&2; }

eval "$("$HERE/fetch-kernel.sh")"
VMLINUX=
for p in "dbg-$KVER/usr/lib/debug/boot/vmlinux-$KVER" "dbg-$KVER/usr/lib/debug/vmlinux-$KVER"; do
  [ -f "$CACHE/$p" ] && VMLINUX=$CACHE/$p
done
BOOT_VERSION=1
HASH=$( (echo "$BOOT_VERSION"; cat "$HERE/init.sh" "$HERE/build-initramfs.sh" "$HERE/boot.sh" "$HERE/plant.c") | sha256sum | cut -c1-12)
OUT=$CACHE/filter/$KVER-$HASH
mkdir -p "$CACHE/filter"
exec 9>"$CACHE/filter/.lock"
flock 9

if [ ! -f "$OUT/.done" ]; then
  rm -rf "$OUT.tmp" && mkdir -p "$OUT.tmp"
  W=$OUT.tmp
  t0=$(date +%s)
  "$HERE/build-initramfs.sh" "$W/initramfs.cpio.gz" --seed-mib 0 --plant
  PID=
  cleanup() { [ -n "$PID" ] && kill "$PID" 2>/dev/null || true; }
  trap cleanup EXIT
  set +e
  "$HERE/boot.sh" --dir "$W/run" --ram 256M --vmcoreinfo --mode panic --tag filter \
    --initrd "$W/initramfs.cpio.gz" --append 'vmcore_plant=1' --timeout 400 > "$W/boot.env"
  rc=$?
  set -e
  PID=$(cat "$W/run/qemu.pid" 2>/dev/null || true)
  [ "$rc" = 0 ] || { log "boot failed; console in $W/run/serial.log"; exit 1; }
  grep -q 'GUEST: plant: ' "$W/run/serial.log" || { log "plant did not run; console in $W/run/serial.log"; exit 1; }
  t1=$(date +%s)
  /usr/bin/python3 "$HERE/qmp.py" "$W/run/qmp.sock" stop '{}' \
    dump-guest-memory "{\"paging\": false, \"protocol\": \"file:$W/qemu-kdump-zlib.vmcore\", \"format\": \"kdump-zlib\"}" \
    quit '{}' > /dev/null
  for _ in $(seq 1 50); do kill -0 "$PID" 2>/dev/null || break; sleep 0.2; done
  kill "$PID" 2>/dev/null || true
  PID=
  cp "$W/run/serial.log" "$W/"
  t2=$(date +%s)
  printf 'BOOT_S=%s\nDUMP_S=%s\n' $((t1 - t0)) $((t2 - t1)) > "$W/timings.env"
  rm -rf "$W/run" "$W/initramfs.cpio.gz"
  touch "$W/.done"
  rm -rf "$OUT" && mv "$W" "$OUT"
  log "$KVER dumped in $OUT ($((t2 - t0)) s)"
fi
echo "FILTER_DIR=$OUT"
echo "KVER=$KVER"
echo "VMLINUX=$VMLINUX"
