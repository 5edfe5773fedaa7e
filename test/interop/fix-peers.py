#!/usr/bin/python3
"""What the peer Python readers see in a dump, as one JSON line (run with /usr/bin/python3,
which has python3-libkdumpfile and python3-drgn from Debian).

  fix-peers.py lkdf DUMP [--digest] [--max-pfn N]
      libkdumpfile: {"phys_base", "release", "max_pfn", "format"} and with --digest the memory
      digest {"sha256", "pages"}: SHA-256 over the present pages below N (default max_pfn) in
      ascending pfn order of (pfn as u64 LE || page bytes).
  fix-peers.py drgn DUMP VMLINUX [MARKER]
      drgn: {"release", "records", "marker": [console lines containing MARKER]}.
  fix-peers.py drgn-modules DUMP VMLINUX
      drgn: {"head": address of the kernel's `modules`, "modules": [{"name", "module", "base",
      "size", "symbols": [[name, value], ...]}]}: the list read through the -dbg vmlinux's types,
      base and size as /proc/modules prints them (core_layout), symbols from mod->kallsyms.
Failures print {"error": "..."} and exit 1.
"""
import hashlib, json, struct, sys


def out(d, rc=0):
    print(json.dumps(d))
    sys.exit(rc)


def lkdf(path, digest, max_pfn_arg):
    import kdumpfile
    try:
        k = kdumpfile.kdumpfile(path)
        k.attr['addrxlat.ostype'] = 'linux'
    except Exception as e:
        out({'error': '%s: %s' % (type(e).__name__, e)}, 1)
    r = {'format': k.attr['file.format'], 'max_pfn': k.attr['max_pfn']}
    try:
        r['phys_base'] = hex(k.attr['linux.phys_base'] & (2 ** 64 - 1))
    except Exception as e:
        r['phys_base'] = None
        r['phys_base_error'] = '%s: %s' % (type(e).__name__, e)
    try:
        r['release'] = k.attr['linux.uts.release']
    except Exception:
        r['release'] = None
    if digest:
        psize = k.attr['arch.page_size']
        limit = min(r['max_pfn'], max_pfn_arg) if max_pfn_arg is not None else r['max_pfn']
        pm = k.attr['file.pagemap']
        h = hashlib.sha256()
        pages = 0
        pfn = 0
        while pfn < limit:
            s = pm.find_set(pfn)
            if s >= limit:
                break
            e = min(pm.find_clear(s), limit)
            if e <= s:
                # libkdumpfile 0.5.1's ELF page map can say a pfn is set (find_set) and clear
                # (find_clear) at once where overlapping PT_LOADs meet: take it page by page
                e = s + 1
            for p in range(s, e):
                h.update(struct.pack('<Q', p))
                h.update(k.read(kdumpfile.KDUMP_MACHPHYSADDR, p * psize, psize))
                pages += 1
            pfn = e
        r['sha256'] = h.hexdigest()
        r['pages'] = pages
    out(r)


def drgn_(path, vmlinux, marker):
    try:
        import drgn
        from drgn.helpers.linux.printk import get_printk_records
        prog = drgn.Program()
        prog.set_core_dump(path)
        prog.load_debug_info([vmlinux])
        recs = get_printk_records(prog)
        release = prog['init_uts_ns'].name.release.string_().decode()
    except Exception as e:
        out({'error': '%s: %s' % (type(e).__name__, e)}, 1)
    lines = [r.text.decode(errors='replace') for r in recs]
    out({'release': release, 'records': len(lines), 'marker': [l for l in lines if marker and marker in l]})


def drgn_modules(path, vmlinux):
    try:
        import drgn
        from drgn.helpers.linux.list import list_for_each_entry
        prog = drgn.Program()
        prog.set_core_dump(path)
        prog.load_debug_info([vmlinux])
        head = prog['modules'].address_of_()
        mods = []
        for m in list_for_each_entry('struct module', head, 'list'):
            ks = m.kallsyms
            syms = []
            for i in range(1, int(ks.num_symtab)):
                st = ks.symtab[i]
                name = (ks.strtab + st.st_name).string_().decode()
                if name and int(st.st_shndx) != 0:
                    syms.append([name, hex(int(st.st_value))])
            mods.append({'name': m.name.string_().decode(), 'module': hex(m.value_()),
                         'base': hex(m.core_layout.base.value_()),
                         'size': int(m.core_layout.size) + int(m.init_layout.size), 'symbols': syms})
    except Exception as e:
        out({'error': '%s: %s' % (type(e).__name__, e)}, 1)
    out({'head': hex(head.value_()), 'modules': mods})


def main():
    a = sys.argv[1:]
    if len(a) >= 2 and a[0] == 'lkdf':
        mp = None
        if '--max-pfn' in a:
            mp = int(a[a.index('--max-pfn') + 1], 0)
        lkdf(a[1], '--digest' in a, mp)
    elif len(a) >= 3 and a[0] == 'drgn-modules':
        drgn_modules(a[1], a[2])
    elif len(a) >= 3 and a[0] == 'drgn':
        drgn_(a[1], a[2], a[3] if len(a) > 3 else '')
    else:
        out({'error': 'usage: fix-peers.py lkdf DUMP [--digest] [--max-pfn N] | drgn DUMP VMLINUX [MARKER]'}, 2)


main()
