#!/usr/bin/python3
"""Memory digest of a dump as drgn reads it (run with /usr/bin/python3, which has Debian's
python3-drgn).

  peer-digest.py drgn DUMP [VMLINUX]  < ranges.json

ranges.json is a JSON list of [start_pfn, end_pfn) pairs: the pages to read (the pages the
other readers report present). drgn reads each page physically; the digest is SHA-256 over
(pfn as u64 LE || page bytes) in ascending pfn order, as `vmcore hash` defines it, plus the
pages drgn could not read. Prints one JSON line {sha256, pages, unreadable, first_unreadable};
a failure to open prints {"error": ...} and exits 1.
"""
import hashlib, json, struct, sys


def main():
    a = sys.argv[1:]
    if len(a) < 2 or a[0] != 'drgn':
        print(__doc__, file=sys.stderr)
        sys.exit(2)
    ranges = json.load(sys.stdin)
    try:
        import drgn
        prog = drgn.Program()
        prog.set_core_dump(a[1])
        if len(a) > 2:
            prog.load_debug_info([a[2]])
    except Exception as e:
        print(json.dumps({'error': '%s: %s' % (type(e).__name__, e)}))
        sys.exit(1)
    psize = 4096
    h = hashlib.sha256()
    pages = 0
    bad = 0
    first_bad = None
    for s, e in ranges:
        for p in range(s, e):
            try:
                b = prog.read(p * psize, psize, True)
            except Exception:
                bad += 1
                if first_bad is None:
                    first_bad = p
                continue
            h.update(struct.pack('<Q', p))
            h.update(b)
            pages += 1
    print(json.dumps({'sha256': h.hexdigest(), 'pages': pages, 'unreadable': bad, 'first_unreadable': first_bad}))


main()
