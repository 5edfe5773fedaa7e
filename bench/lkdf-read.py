#!/usr/bin/python3
"""The memory digest of a kdump file as libkdumpfile reads it in its C loop: every present page of
the page map (file.pagemap), read up to 256 pages per kdump_read() call, then SHA-256 over
(pfn as u64 LE || page) per page, the definition of `vmcore hash` (src/core/hash.ts).
Prints JSON {sha256, pages, zero_pages}. Run with /usr/bin/python3 (libkdumpfile 0.5.1 binding)."""
import hashlib, json, struct, sys
import kdumpfile

k = kdumpfile.kdumpfile(sys.argv[1])
max_pfn = k.attr['max_pfn']
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
    e = max(min(pm.find_clear(s), max_pfn), s + 1)
    for b0 in range(s, e, 256):
        n = min(256, e - b0)
        buf = memoryview(k.read(kdumpfile.KDUMP_MACHPHYSADDR, b0 * psize, n * psize))
        for i in range(n):
            page = buf[i * psize:(i + 1) * psize]
            if page == zero:
                zeros += 1
            h.update(struct.pack('<Q', b0 + i))
            h.update(page)
            pages += 1
    pfn = e
print(json.dumps({'sha256': h.hexdigest(), 'pages': pages, 'zero_pages': zeros}))
