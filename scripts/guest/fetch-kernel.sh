#!/usr/bin/env bash
# Download (never install) the current Debian cloud kernel and, optionally, its debug symbols,
# and unpack them into a cache directory outside the repository.
#
#   scripts/guest/fetch-kernel.sh [--dbg] [--headers]
#
# Environment:
#   VMCORE_GUEST_CACHE  cache directory (default /tmp/vmcore-guest)
#   VMCORE_KERNEL_ABI   force an ABI such as 6.1.0-56 (default: what the linux-image-cloud-<arch>
#                       meta-package currently depends on)
#   VMCORE_KERNEL_ARCH  amd64 (default) or arm64 (needs `dpkg --add-architecture arm64` and
#                       `apt-get update` first; the packages are downloaded, never installed)
#   VMCORE_KERNEL_FLAVOUR  the kernel flavour (default cloud-<arch>), e.g. arm64-16k for the 16 KiB
#                       page kernel; flavours without a signed package come from <package>-unsigned
#
# Prints shell assignments on stdout (eval-able):
#   KVER=6.1.0-56-cloud-amd64 VMLINUZ=... VMLINUX=... (VMLINUX only with --dbg)
#   HEADERS=... HEADERS_MAKEFILE=... (only with --headers): the kernel's build tree for
#   out-of-tree modules, from linux-headers-<KVER>, its -common package and the linux-kbuild
#   package it depends on, unpacked into one directory, and the -common tree's Makefile. Build
#   with `make -C $HEADERS -f $HEADERS_MAKEFILE M=DIR modules` (Debian's per-flavour Makefile
#   includes the -common one by its installed path, which an unpacked tree does not have).
set -euo pipefail

CACHE=${VMCORE_GUEST_CACHE:-/tmp/vmcore-guest}
KARCH=${VMCORE_KERNEL_ARCH:-amd64}
case "$KARCH" in amd64) QUAL= ;; arm64) QUAL=:arm64 ;; *) echo "VMCORE_KERNEL_ARCH must be amd64 or arm64" >&2; exit 2 ;; esac
FLAVOUR=${VMCORE_KERNEL_FLAVOUR:-cloud-$KARCH}
WANT_DBG=0 WANT_HEADERS=0
for a in "$@"; do
  case "$a" in
    --dbg) WANT_DBG=1 ;;
    --headers) WANT_HEADERS=1 ;;
    *) echo "usage: $0 [--dbg] [--headers]" >&2; exit 2 ;;
  esac
done
mkdir -p "$CACHE/debs"

log() { echo "fetch-kernel: $*" >&2; }

if [ -n "${VMCORE_KERNEL_ABI:-}" ]; then
  KVER="${VMCORE_KERNEL_ABI}-$FLAVOUR"
else
  # The meta-package always points at the current ABI; Debian drops old ones from the archive.
  KVER=$(apt-cache depends "linux-image-$FLAVOUR$QUAL" 2>/dev/null \
    | sed -n "s/^ *Depends: linux-image-\([0-9][^ :]*-$FLAVOUR\)\(-unsigned\)\{0,1\}\(:$KARCH\)\{0,1\}\$/\1/p" | head -n1)
  if [ -z "$KVER" ]; then
    log "cannot find the current cloud kernel with apt-cache (run apt-get update?)"
    exit 1
  fi
fi

fetch_pkg() { # $1 package name, $2 unpack dir
  local pkg=$1 dir=$2
  if [ -f "$dir/.done" ]; then return 0; fi
  local deb
  deb=$(ls "$CACHE/debs/${pkg}_"*.deb 2>/dev/null | head -n1 || true)
  [ -n "$deb" ] || deb=$(ls "$CACHE/debs/${pkg}-unsigned_"*.deb 2>/dev/null | head -n1 || true)
  if [ -z "$deb" ]; then
    log "downloading $pkg"
    if ! (cd "$CACHE/debs" && apt-get download "$pkg$QUAL" >&2); then
      log "no $pkg: trying $pkg-unsigned"
      (cd "$CACHE/debs" && apt-get download "$pkg-unsigned$QUAL" >&2)
    fi
    deb=$(ls "$CACHE/debs/${pkg}_"*.deb "$CACHE/debs/${pkg}-unsigned_"*.deb 2>/dev/null | head -n1 || true)
    [ -n "$deb" ] || { log "no package $pkg"; exit 1; }
  fi
  log "unpacking $(basename "$deb")"
  rm -rf "$dir.tmp" && mkdir -p "$dir.tmp"
  dpkg-deb -x "$deb" "$dir.tmp"
  rm -rf "$dir" && mv "$dir.tmp" "$dir"
  touch "$dir/.done"
}

fetch_pkg "linux-image-$KVER" "$CACHE/image-$KVER"
VMLINUZ="$CACHE/image-$KVER/boot/vmlinuz-$KVER"
[ -f "$VMLINUZ" ] || { log "no $VMLINUZ in the package"; exit 1; }
echo "KVER=$KVER"
echo "VMLINUZ=$VMLINUZ"
echo "SYSTEM_MAP=$CACHE/image-$KVER/boot/System.map-$KVER"

if [ "$WANT_DBG" = 1 ]; then
  fetch_pkg "linux-image-$KVER-dbg" "$CACHE/dbg-$KVER"
  VMLINUX="$CACHE/dbg-$KVER/usr/lib/debug/boot/vmlinux-$KVER"
  [ -f "$VMLINUX" ] || VMLINUX="$CACHE/dbg-$KVER/usr/lib/debug/vmlinux-$KVER"
  echo "VMLINUX=$VMLINUX"
fi

if [ "$WANT_HEADERS" = 1 ]; then
  HROOT=$CACHE/headers-$KVER
  if [ ! -f "$HROOT/.done" ]; then
    get_deb() { # $1 package: the cached .deb's path (downloaded when absent)
      local deb
      deb=$(ls "$CACHE/debs/${1}_"*.deb 2>/dev/null | head -n1 || true)
      if [ -z "$deb" ]; then
        log "downloading $1"
        (cd "$CACHE/debs" && apt-get download "$1$QUAL" >&2)
        deb=$(ls "$CACHE/debs/${1}_"*.deb | head -n1)
      fi
      echo "$deb"
    }
    hdeb=$(get_deb "linux-headers-$KVER")
    # its dependencies: linux-headers-<abi>-common and linux-kbuild-<version> (the compiler
    # package it also names is the host's gcc, which is not downloaded)
    deps=$(dpkg-deb -f "$hdeb" Depends | tr ',' '\n' | sed -n 's/^ *\(linux-headers-[^ ]*-common\|linux-kbuild-[^ ]*\).*/\1/p')
    rm -rf "$HROOT.tmp" && mkdir -p "$HROOT.tmp"
    dpkg-deb -x "$hdeb" "$HROOT.tmp"
    for d in $deps; do dpkg-deb -x "$(get_deb "$d")" "$HROOT.tmp"; done
    rm -rf "$HROOT" && mv "$HROOT.tmp" "$HROOT"
    touch "$HROOT/.done"
  fi
  HDIR=$HROOT/usr/src/linux-headers-$KVER
  COMMON=$(sed -n 's|^include /usr/src/\(linux-headers-[^/]*\)/Makefile$|\1|p' "$HDIR/Makefile")
  [ -n "$COMMON" ] && [ -f "$HROOT/usr/src/$COMMON/Makefile" ] || { log "no -common Makefile for $KVER in $HROOT"; exit 1; }
  echo "HEADERS=$HDIR"
  echo "HEADERS_MAKEFILE=$HROOT/usr/src/$COMMON/Makefile"
fi
