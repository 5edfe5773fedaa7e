#!/usr/bin/env bash
# Make a real, filled QEMU guest vmcore for the convert benchmark (the "filled guest" of the
# performance baseline): boot the test guest with RAM and a tmpfs fill, stop it, dump it with
# QMP dump-guest-memory (ELF), then write a copy whose program headers follow the ELF header
# (makedumpfile 1.7.2 ignores e_phoff and cannot read QEMU 7.2's layout).
#
#   bash bench/convert-make-guest.sh OUTDIR [RAM=4G] [FILL_MIB=2900]
# Produces OUTDIR/guest.qemu.elf and OUTDIR/guest.elf (the one to benchmark).
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(dirname "$HERE")
OUT=${1:?usage: convert-make-guest.sh OUTDIR [RAM] [FILL_MIB]}
RAM=${2:-4G}
FILL=${3:-2900}
mkdir -p "$OUT/guest"
eval "$("$ROOT/scripts/guest/boot.sh" --dir "$OUT/guest" --ram "$RAM" --fill "$FILL" --vmcoreinfo --tag bench --timeout 1200)"
/usr/bin/python3 - "$QMP_SOCKET" "$OUT/guest.qemu.elf" <<'PY'
import json, socket, sys, time
s = socket.socket(socket.AF_UNIX); s.connect(sys.argv[1]); f = s.makefile('rw')
def cmd(c, **a):
    f.write(json.dumps({'execute': c, 'arguments': a} if a else {'execute': c}) + '\n'); f.flush()
    while True:
        m = json.loads(f.readline())
        if 'return' in m or 'error' in m:
            if 'error' in m: raise SystemExit(f"{c}: {m['error']}")
            return m['return']
json.loads(f.readline()); cmd('qmp_capabilities'); cmd('stop')
cmd('dump-guest-memory', paging=False, protocol='file:' + sys.argv[2], detach=True)
while cmd('query-dump')['status'] == 'active': time.sleep(0.2)
print('dump', cmd('query-dump'), file=sys.stderr)
cmd('quit')
PY
# program headers right after the ELF header, everything else identical
if node "$ROOT/dist/src/cli/vmcore.js" --help 2>/dev/null | grep -qE '^\s+convert\b'; then
  node "$ROOT/dist/src/cli/vmcore.js" convert -E -d 0 --force --quiet "$OUT/guest.qemu.elf" "$OUT/guest.elf"
else
  node "$HERE/convert-run.mjs" "$OUT/guest.qemu.elf" "$OUT/guest.elf" '{"format":"elf","dumpLevel":0}' > /dev/null
fi
ls -la "$OUT"/guest*.elf
