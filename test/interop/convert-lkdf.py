#!/usr/bin/python3
"""Memory digest of a kdump file (or split set) as read by libkdumpfile: SHA-256 over each
page the file's page map marks present, in ascending pfn order, of (pfn as u64 LE || page).
Prints JSON {sha256, pages, zero_pages, max_pfn, format, phys_base}. --skip-zero leaves
all-zero pages out; --max-pfn=N hashes only pages below N; --batch=N reads up to N pages per
kdump_read() call (default 1; the benchmarks, bench/all.sh, read 256 as libkdumpfile's own C
loop would). Run with /usr/bin/python3 (libkdumpfile 0.5.1 binding)."""
import ctypes, hashlib, json, os, struct, sys
import kdumpfile

class Attr(ctypes.Structure):
    _fields_ = [('type', ctypes.c_int), ('val', ctypes.c_uint64)]

def hash_split(paths, skip_zero):
    """Split sets through the C API (kdump_open_fdset): the 0.5.1 Python binding has no way to
    open several files (setting file.set.* through it aborts)."""
    L = ctypes.CDLL('libkdumpfile.so.10')
    L.kdump_new.restype = ctypes.c_void_p
    L.kdump_get_err.restype = ctypes.c_char_p
    L.kdump_get_err.argtypes = [ctypes.c_void_p]
    L.kdump_open_fdset.argtypes = [ctypes.c_void_p, ctypes.c_uint, ctypes.POINTER(ctypes.c_int)]
    L.kdump_get_attr.argtypes = [ctypes.c_void_p, ctypes.c_char_p, ctypes.POINTER(Attr)]
    L.kdump_read.argtypes = [ctypes.c_void_p, ctypes.c_int, ctypes.c_uint64, ctypes.c_void_p, ctypes.POINTER(ctypes.c_size_t)]
    ctx = L.kdump_new()
    fds = (ctypes.c_int * len(paths))(*[os.open(p, os.O_RDONLY) for p in paths])
    if L.kdump_open_fdset(ctx, len(paths), fds) != 0:
        raise SystemExit('kdump_open_fdset: %s' % L.kdump_get_err(ctx))
    a = Attr()
    if L.kdump_get_attr(ctx, b'max_pfn', ctypes.byref(a)) != 0:
        raise SystemExit('max_pfn: %s' % L.kdump_get_err(ctx))
    max_pfn = a.val
    a = Attr()
    L.kdump_get_attr(ctx, b'arch.page_size', ctypes.byref(a))
    psize = a.val
    buf = ctypes.create_string_buffer(psize)
    h = hashlib.sha256()
    zero = bytes(psize)
    pages = zeros = 0
    for p in range(max_pfn):
        sz = ctypes.c_size_t(psize)
        if L.kdump_read(ctx, kdumpfile.KDUMP_MACHPHYSADDR, p * psize, buf, ctypes.byref(sz)) != 0:
            continue  # not in the dump
        b = buf.raw
        if b == zero:
            zeros += 1
            if skip_zero:
                continue
        h.update(struct.pack('<Q', p))
        h.update(b)
        pages += 1
    print(json.dumps({'sha256': h.hexdigest(), 'pages': pages, 'zero_pages': zeros, 'max_pfn': max_pfn, 'format': 'diskdump split', 'files': len(paths)}))

skip_zero = '--skip-zero' in sys.argv
limit = None
batch = 1
for a in sys.argv[1:]:
    if a.startswith('--max-pfn='):
        limit = int(a.split('=', 1)[1], 0)
    elif a.startswith('--batch='):
        batch = max(1, int(a.split('=', 1)[1], 0))
paths = [a for a in sys.argv[1:] if not a.startswith('--')]
if len(paths) > 1:
    hash_split(paths, skip_zero)
    sys.exit(0)
k = kdumpfile.kdumpfile(paths[0])
max_pfn = k.attr['max_pfn'] if limit is None else min(limit, k.attr['max_pfn'])
psize = k.attr['arch.page_size']
pm = k.attr['file.pagemap']
h = hashlib.sha256()
zero = bytes(psize)
pages = zeros = 0
pfn = 0
while pfn < max_pfn:
    try:
        s = pm.find_set(pfn)
    except kdumpfile.exceptions.NoDataException:
        break
    if s >= max_pfn:
        break
    e = min(pm.find_clear(s), max_pfn)
    if e <= s:  # overlapping PT_LOADs (kernel-image alias) can make find_clear lag behind
        e = s + 1
    for b0 in range(s, e, batch):
        n = min(batch, e - b0)
        buf = memoryview(k.read(kdumpfile.KDUMP_MACHPHYSADDR, b0 * psize, n * psize))
        for i in range(n):
            b = buf[i * psize:(i + 1) * psize]
            if b == zero:
                zeros += 1
                if skip_zero:
                    continue
            h.update(struct.pack('<Q', b0 + i))
            h.update(b)
            pages += 1
    pfn = e
pb = None
try:
    pb = hex(k.attr['linux.phys_base'])
except Exception:
    pass
print(json.dumps({'sha256': h.hexdigest(), 'pages': pages, 'zero_pages': zeros, 'max_pfn': max_pfn,
                  'format': k.attr['file.format'] if 'file.format' in k.attr else None, 'phys_base': pb}))
