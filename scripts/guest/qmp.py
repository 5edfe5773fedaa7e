#!/usr/bin/env python3
"""Run QMP commands against a QEMU monitor socket (standard library only).

    scripts/guest/qmp.py SOCKET COMMAND [JSON-ARGUMENTS] [COMMAND [JSON-ARGUMENTS]] ...

Prints each command's return value as one JSON line; exits 1 on the first refused command.
"""
import json
import socket
import sys


def main() -> int:
    if len(sys.argv) < 3:
        print(__doc__, file=sys.stderr)
        return 2
    path, rest = sys.argv[1], sys.argv[2:]
    s = socket.socket(socket.AF_UNIX)
    s.connect(path)
    f = s.makefile('rw')

    def reply():
        while True:
            line = f.readline()
            if not line:
                raise SystemExit('QEMU closed the QMP connection')
            msg = json.loads(line)
            if 'event' not in msg:
                return msg

    json.loads(f.readline())  # greeting
    f.write(json.dumps({'execute': 'qmp_capabilities'}) + '\n')
    f.flush()
    reply()
    i = 0
    while i < len(rest):
        cmd = {'execute': rest[i]}
        i += 1
        if i < len(rest) and rest[i].startswith('{'):
            cmd['arguments'] = json.loads(rest[i])
            i += 1
        f.write(json.dumps(cmd) + '\n')
        f.flush()
        r = reply()
        if 'error' in r:
            print(f"{cmd['execute']}: {r['error'].get('desc')}", file=sys.stderr)
            return 1
        print(json.dumps(r.get('return')))
    return 0


if __name__ == '__main__':
    sys.exit(main())
