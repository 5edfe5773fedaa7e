#!/usr/bin/env bash
# Build the test guest's initramfs: busybox-static, scripts/guest/init.sh as /init, the
# kernel's qemu_fw_cfg module (for -device vmcoreinfo) and a seed of realistic data that /init
# copies into a tmpfs when asked to fill memory.
#
#   scripts/guest/build-initramfs.sh OUT.cpio.gz [--seed-mib N] [--module NAME|PATH.ko]... [--plant] [--kdump]
#
# --module NAME adds the kernel's NAME.ko (a module without dependencies) under
# /lib/modules/extra, which /init loads after qemu_fw_cfg; --module PATH/NAME.ko adds a module
# built out of tree (such as scripts/guest/crashmod; its parameters come from the kernel command
# line as NAME.param=value).
# --plant adds /bin/plant (scripts/guest/plant.c, built static with cc), which init.sh runs
# with vmcore_plant=1: marker-filled anonymous, freed and page-cache memory.
# --kdump adds what a kdump capture needs (init.sh vmcore_kdump=1 and vmcore_mode=capture): the
# host's kexec (kexec-tools) and makedumpfile with the shared libraries ldd names, the kernel's
# virtio block modules, and, in a second cpio archive appended to OUT, the kernel image and the
# first archive as /boot/vmlinuz and /boot/capture.cpio.gz (the capture kernel and its initramfs).
# Needs: busybox-static, cpio, gzip, readelf (binutils), the kernel unpacked by fetch-kernel.sh (KVER and the
# cache from the environment or found by running fetch-kernel.sh).
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
OUT=${1:?usage: $0 OUT.cpio.gz [--seed-mib N]}
shift
SEED_MIB=16
EXTRA=()
PLANT=0
KDUMP=0
while [ $# -gt 0 ]; do
  case "$1" in
    --seed-mib) SEED_MIB=$2; shift 2 ;;
    --module) EXTRA+=("$2"); shift 2 ;;
    --plant) PLANT=1; shift ;;
    --kdump) KDUMP=1; shift ;;
    *) echo "unknown option $1" >&2; exit 2 ;;
  esac
done
eval "$("$HERE/fetch-kernel.sh")"
KDIR=$(dirname "$(dirname "$VMLINUZ")")
if [ "${VMCORE_KERNEL_ARCH:-amd64}" = arm64 ]; then
  # the arm64 guest needs Debian's arm64 busybox-static (downloaded, never installed)
  CACHE=${VMCORE_GUEST_CACHE:-/tmp/vmcore-guest}
  BB=$CACHE/busybox-arm64
  if [ ! -x "$BB/bin/busybox" ]; then
    mkdir -p "$CACHE/debs"
    deb=$(ls "$CACHE/debs"/busybox-static_*_arm64.deb 2>/dev/null | head -n1 || true)
    [ -n "$deb" ] || { (cd "$CACHE/debs" && apt-get download busybox-static:arm64 >&2); deb=$(ls "$CACHE/debs"/busybox-static_*_arm64.deb | head -n1); }
    rm -rf "$BB" && mkdir -p "$BB" && dpkg-deb -x "$deb" "$BB"
  fi
  BUSYBOX=$BB/bin/busybox
else
  BUSYBOX=$(command -v busybox || true)
  [ -x /bin/busybox ] && BUSYBOX=/bin/busybox
fi
# A dynamically linked busybox has a program interpreter; the initramfs has no libc.
if [ -z "$BUSYBOX" ] || readelf -lW "$BUSYBOX" 2>/dev/null | grep -q 'program interpreter'; then
  echo "build-initramfs: need busybox-static (apt-get install busybox-static)" >&2; exit 1
fi

WORK=$(mktemp -d "${TMPDIR:-/tmp}/vmcore-initramfs.XXXXXX")
trap 'rm -rf "$WORK"' EXIT
R=$WORK/root
mkdir -p "$R"/{bin,sbin,dev,proc,sys,tmp,lib/modules/extra,seed}
cp "$BUSYBOX" "$R/bin/busybox"
cp "$HERE/init.sh" "$R/init"
chmod 755 "$R/init" "$R/bin/busybox"
FWCFG=$(find "$KDIR/lib/modules" -name 'qemu_fw_cfg.ko*' | head -n1)
case "$FWCFG" in
  *.ko) cp "$FWCFG" "$R/lib/modules/qemu_fw_cfg.ko" ;;
  *.ko.xz) xz -dc "$FWCFG" > "$R/lib/modules/qemu_fw_cfg.ko" ;;
  *.ko.zst) zstd -qdc "$FWCFG" > "$R/lib/modules/qemu_fw_cfg.ko" ;;
  *) echo "build-initramfs: no qemu_fw_cfg module; -device vmcoreinfo will stay empty" >&2 ;;
esac
for m in "${EXTRA[@]}"; do
  case "$m" in
    */*.ko) cp "$m" "$R/lib/modules/extra/$(basename "$m")"; continue ;;
  esac
  f=$(find "$KDIR/lib/modules" -name "$m.ko*" | head -n1)
  case "$f" in
    *.ko) cp "$f" "$R/lib/modules/extra/$m.ko" ;;
    *.ko.xz) xz -dc "$f" > "$R/lib/modules/extra/$m.ko" ;;
    *.ko.zst) zstd -qdc "$f" > "$R/lib/modules/extra/$m.ko" ;;
    *) echo "build-initramfs: no module $m in $KVER" >&2; exit 1 ;;
  esac
done

if [ "$PLANT" = 1 ]; then
  command -v cc >/dev/null || { echo "build-initramfs: --plant needs a C compiler (apt-get install gcc libc6-dev)" >&2; exit 1; }
  cc -static -O2 -o "$R/bin/plant" "$HERE/plant.c"
fi
if [ "$KDUMP" = 1 ]; then
  for b in kexec makedumpfile; do
    p=$(command -v "$b" || true)
    [ -n "$p" ] || { echo "build-initramfs: --kdump needs $b (apt-get install kexec-tools makedumpfile)" >&2; exit 1; }
    mkdir -p "$R$(dirname "$p")" && cp -L "$p" "$R$p"
    # the libraries and the program interpreter, at the paths the binary asks for
    for lib in $(ldd "$p" | grep -o '/[^ ]*'); do
      mkdir -p "$R$(dirname "$lib")" && cp -L "$lib" "$R$lib"
    done
  done
  mkdir -p "$R/lib/modules/kdump"
  # load order (modinfo depends): virtio needs virtio_ring; virtio_pci and virtio_blk need both
  for m in virtio_ring virtio virtio_pci_legacy_dev virtio_pci_modern_dev virtio_pci virtio_blk; do
    f=$(find "$KDIR/lib/modules" -name "$m.ko*" | head -n1)
    case "$f" in
      *.ko) cp "$f" "$R/lib/modules/kdump/$m.ko" ;;
      *.ko.xz) xz -dc "$f" > "$R/lib/modules/kdump/$m.ko" ;;
      *.ko.zst) zstd -qdc "$f" > "$R/lib/modules/kdump/$m.ko" ;;
      *) echo "build-initramfs: no module $m in $KVER (built in?)" >&2; continue ;;
    esac
    echo "$m" >> "$R/lib/modules/kdump/order"
  done
fi
if [ "$SEED_MIB" -gt 0 ]; then
  set +o pipefail # head closes the pipes early
  q=$((SEED_MIB * 1048576 / 4))
  # text: kernel config, symbol map, licences, a number listing
  { cat "$KDIR/boot/config-$KVER" "$KDIR/boot/System.map-$KVER"; cat /usr/share/common-licenses/* 2>/dev/null;
    seq 1 2000000; } | head -c "$q" > "$R/seed/text"
  # binaries: kernel modules and busybox
  { find "$KDIR/lib/modules" -name '*.ko' -print0 | sort -z | xargs -0 cat; cat "$BUSYBOX"; } 2>/dev/null \
    | head -c "$q" > "$R/seed/binary"
  # compressed: the kernel image and gzip of the modules
  { cat "$VMLINUZ"; find "$KDIR/lib/modules" -name '*.ko' -print0 | sort -z | xargs -0 cat | gzip -1; } 2>/dev/null \
    | head -c "$q" > "$R/seed/compressed"
  head -c "$q" /dev/urandom > "$R/seed/random"
  set -o pipefail
fi
(cd "$R" && find . -print0 | LC_ALL=C sort -z | cpio --null -o -H newc --quiet) | gzip -1 > "$OUT.tmp"
if [ "$KDUMP" = 1 ]; then
  # the capture kernel's initramfs is this archive; the first kernel's adds the kernel image and
  # that archive under /boot (the kernel unpacks concatenated archives in order)
  B=$WORK/boot && mkdir -p "$B/boot"
  cp "$VMLINUZ" "$B/boot/vmlinuz" && cp "$OUT.tmp" "$B/boot/capture.cpio.gz"
  (cd "$B" && find . -print0 | LC_ALL=C sort -z | cpio --null -o -H newc --quiet) | gzip -1 >> "$OUT.tmp"
fi
mv "$OUT.tmp" "$OUT"
echo "build-initramfs: $OUT ($(du -h "$OUT" | cut -f1)) for $KVER, seed ${SEED_MIB} MiB" >&2
