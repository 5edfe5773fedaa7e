#!/usr/bin/env bash
# Reading speed: `vmcore hash` against libkdumpfile reading the same pages (same digest
# definition, test/interop/convert-lkdf.py), and `vmcore info` on a 1 GiB and a 4 GiB dump
# (info reads headers, bitmaps and descriptors, never page data).
#   bench/hash-info.sh [WORKDIR]        (default /tmp/vmcore-bench-hash; needs ~12 GB free)
# The kdump inputs are written by vmcore convert (the synthetic ELF has no kernel for
# makedumpfile to recognise). Tools: hyperfine, python3-libkdumpfile, /usr/bin/time.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
work=${1:-/tmp/vmcore-bench-hash}
mkdir -p "$work"
vmcore="node $here/dist/src/cli/vmcore.js"
for g in 1 4; do
  [ -f "$work/in${g}g.elf" ] || node "$here/bench/convert-make-input.mjs" "$work/in${g}g.elf" "$g"
  [ -f "$work/in${g}g.lzo.kdump" ] || $vmcore convert --quiet -l -d 1 "$work/in${g}g.elf" "$work/in${g}g.lzo.kdump"
  [ -f "$work/in${g}g.zlib.kdump" ] || $vmcore convert --quiet -c -d 1 "$work/in${g}g.elf" "$work/in${g}g.zlib.kdump"
done
cd "$work"
echo "## digests agree"
for f in in4g.lzo.kdump in4g.zlib.kdump; do
  a=$($vmcore hash --json "$f" | python3 -c 'import json,sys; print(json.load(sys.stdin)["sha256"])')
  b=$(/usr/bin/python3 "$here/test/interop/convert-lkdf.py" "$f" | python3 -c 'import json,sys; print(json.load(sys.stdin)["sha256"])')
  echo "$f vmcore=$a libkdumpfile=$b $([ "$a" = "$b" ] && echo SAME || echo DIFFERENT)"
done
echo "## hash: vmcore vs libkdumpfile (4 GiB input, lzo and zlib)"
hyperfine -w 1 -r 3 --export-markdown hash.md \
  -n 'vmcore hash (lzo)' "$vmcore hash in4g.lzo.kdump" \
  -n 'libkdumpfile read+sha256 (lzo)' "/usr/bin/python3 $here/test/interop/convert-lkdf.py in4g.lzo.kdump" \
  -n 'vmcore hash (zlib)' "$vmcore hash in4g.zlib.kdump" \
  -n 'libkdumpfile read+sha256 (zlib)' "/usr/bin/python3 $here/test/interop/convert-lkdf.py in4g.zlib.kdump"
echo "## info: 1 GiB vs 4 GiB"
hyperfine -w 1 -r 5 --export-markdown info.md \
  -n 'vmcore info 1 GiB' "$vmcore info --no-kernel in1g.lzo.kdump" \
  -n 'vmcore info 4 GiB' "$vmcore info --no-kernel in4g.lzo.kdump" \
  -n 'vmcore info 4 GiB (with kernel analysis)' "$vmcore info in4g.lzo.kdump"
for f in in4g.lzo.kdump; do /usr/bin/time -f "peak RSS vmcore hash $f: %M KB" $vmcore hash "$f" >/dev/null; done
