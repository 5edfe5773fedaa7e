#!/usr/bin/env bash
# Print the true phys_base of a guest booted by boot.sh, from its serial log:
#   phys_base = phys(Kernel code) - (virt(_text) - 0xffffffff80000000), as 64-bit hex.
#   scripts/guest/phys-base.sh SERIAL_LOG
set -euo pipefail
LOG=${1:?usage: $0 SERIAL_LOG}
# Each pipeline reads its input to the end (no `exit`, no `head`): a reader that stops early
# kills the writer with SIGPIPE, which pipefail turns into exit 141 when the log is large.
TEXT=$(tr -d '\r' < "$LOG" | awk '$2 == "T" && $3 == "_text" && t == "" { t = $1 } END { print t }')
CODE=$(tr -d '\r' < "$LOG" | sed -n 's/^ *\([0-9a-f]*\)-[0-9a-f]* : Kernel code$/\1/p' | awk 'NR == 1 { c = $0 } END { print c }')
[ -n "$TEXT" ] && [ -n "$CODE" ] || { echo "phys-base.sh: no _text or Kernel code line in $LOG" >&2; exit 1; }
python3 -c "import sys; print(hex((int(sys.argv[1],16) - (int(sys.argv[2],16) - 0xffffffff80000000)) & 0xffffffffffffffff))" "$CODE" "$TEXT"
