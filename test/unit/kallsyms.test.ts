/**
 * kallsyms decoding on synthetic tables built here byte by byte, in each layout the kernel has
 * used (scripts/kallsyms.c): one- and two-byte name lengths, absolute addresses,
 * base-relative offsets with and without absolute per-CPU values, PC-relative offsets; and
 * corrupt tables, which must give a typed error naming the table, never a hang or a wrong table.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { VmcoreError } from '../../src/core/errors.js';
import { decodeKallsyms, loadKernelSymbols, KernelSymbols, PackedSymbolNames, type KallsymsLocations, type ReadVirt } from '../../src/core/kernel/kallsyms.js';
import { Vmcoreinfo } from '../../src/core/kernel/vmcoreinfo.js';
import { scanKallsyms } from '../../src/core/kernel/kallsyms-scan.js';

interface Sym {
  name: string;
  type: string;
  address: bigint;
}

/** Kernel virtual memory made of a few regions; reads elsewhere fail as a missing page would. */
class VirtMem {
  regions: { va: bigint; bytes: Uint8Array }[] = [];
  add(va: bigint, bytes: Uint8Array): void {
    this.regions.push({ va, bytes });
  }
  read: ReadVirt = async (va, n) => {
    for (const r of this.regions) {
      if (va >= r.va && va + BigInt(n) <= r.va + BigInt(r.bytes.length)) {
        const o = Number(va - r.va);
        return r.bytes.slice(o, o + n);
      }
    }
    throw new VmcoreError('PAGE_NOT_PRESENT', `0x${va.toString(16)} not present`);
  };
}

type Mode = 'absolute' | 'absolute-percpu' | 'relative' | 'pc-relative';

interface BuildOpts {
  mode: Mode;
  /** Two-byte lengths for names of 128+ tokens (6.1+); false writes the old single byte. */
  longNames?: boolean;
  /** Write kallsyms_markers as u32 (newer) or u64. */
  markers?: 'u32' | 'u64';
  /** Where the tables start (default BASE). */
  base?: bigint;
  /**
   * 'new' (6.4+): the addresses after kallsyms_token_index; 'old': before kallsyms_num_syms,
   * with kallsyms_seqs_of_names (u32, 6.2) between the markers and the token table when `seqs`.
   */
  layout?: 'new' | 'old';
  seqs?: boolean;
}

const BASE_DEFAULT = 0xffffffff90000000n; // where the tables live

/**
 * Encode `syms` (already in address order) the way scripts/kallsyms.c does: tokens 0..255
 * (single characters, plus a few multi-character tokens), names as token sequences prefixed by
 * their length, markers every 256 symbols, the token table and index, and the addresses.
 */
function build(syms: Sym[], o: BuildOpts): { mem: VirtMem; loc: KallsymsLocations; relativeBase: bigint; bytes: Uint8Array } {
  const BASE = o.base ?? BASE_DEFAULT;
  const tokens: string[] = [];
  for (let c = 0; c < 256; c++) tokens.push(c >= 0x20 && c < 0x7f ? String.fromCharCode(c) : '');
  // multi-character tokens in the unused slots (as the compressor does with its best pairs)
  const multi = ['sys_', 'init', '_t', 'kallsyms_'];
  for (let i = 0; i < multi.length; i++) tokens[0x80 + i] = multi[i]!;
  for (let c = 0; c < 256; c++) if (tokens[c] === '') tokens[c] = '~'; // never used (printable, as every real token is)
  const encode = (s: string): number[] => {
    const out: number[] = [];
    for (let i = 0; i < s.length; ) {
      const m = multi.findIndex((t) => s.startsWith(t, i));
      if (m >= 0) {
        out.push(0x80 + m);
        i += multi[m]!.length;
      } else {
        out.push(s.charCodeAt(i));
        i++;
      }
    }
    return out;
  };
  const names: number[] = [];
  const markers: number[] = [];
  syms.forEach((s, i) => {
    if (i % 256 === 0) markers.push(names.length);
    const t = encode(s.type + s.name);
    if (t.length >= 0x80 && (o.longNames ?? true)) names.push((t.length & 0x7f) | 0x80, t.length >> 7);
    else {
      assert.ok(t.length < 256);
      names.push(t.length);
    }
    names.push(...t);
  });
  // table: [num_syms u32 (pad 8)] [names] [pad] [markers] [pad] [token_table] [pad] [token_index] [pad] [offsets|addresses] [relative_base]
  const bytes: number[] = [];
  const at = (n: number) => BASE + BigInt(n);
  const align = (a: number) => {
    while (bytes.length % a) bytes.push(0);
  };
  const u32 = (v: number) => bytes.push(v & 0xff, (v >>> 8) & 0xff, (v >>> 16) & 0xff, (v >>> 24) & 0xff);
  const u64 = (v: bigint) => {
    for (let k = 0n; k < 8n; k++) bytes.push(Number((BigInt.asUintN(64, v) >> (8n * k)) & 0xffn));
  };
  const text = syms.filter((s) => s.address >= 0xffffffff80000000n);
  const relativeBase = text.length ? text[0]!.address : 0n;
  const addressTable = () => {
    align(8);
    const tableVa = at(bytes.length);
    syms.forEach((s, i) => {
      switch (o.mode) {
        case 'absolute':
          return u64(s.address);
        case 'relative':
          return u32(Number(s.address - relativeBase));
        case 'absolute-percpu':
          return u32(s.address < 0x80000000n ? Number(s.address) : Number(BigInt.asUintN(32, relativeBase - 1n - s.address)));
        case 'pc-relative':
          return u32(Number(BigInt.asUintN(32, s.address - (tableVa + BigInt(4 * i)))));
      }
    });
    align(8);
    const relVa = at(bytes.length);
    if (o.mode === 'relative' || o.mode === 'absolute-percpu') u64(relativeBase);
    return { tableVa, relVa };
  };
  const old = o.layout === 'old' ? addressTable() : undefined;
  align(8);
  const numSyms = at(bytes.length);
  u32(syms.length);
  align(8);
  const namesVa = at(bytes.length);
  bytes.push(...names);
  align(o.markers === 'u64' ? 8 : 4);
  for (const m of markers) (o.markers === 'u64' ? u64(BigInt(m)) : u32(m));
  if (o.seqs) {
    align(8);
    syms.forEach((_, i) => u32(syms.length - 1 - i));
  }
  align(8);
  const tokenTable = at(bytes.length);
  const tokOff: number[] = [];
  for (const t of tokens) {
    tokOff.push(bytes.length - Number(tokenTable - BASE));
    for (const ch of t) bytes.push(ch.charCodeAt(0));
    bytes.push(0);
  }
  align(8);
  const tokenIndex = at(bytes.length);
  for (const t of tokOff) bytes.push(t & 0xff, t >> 8);
  const { tableVa, relVa } = old ?? addressTable();
  const mem = new VirtMem();
  mem.add(BASE, Uint8Array.from(bytes));
  const image = Uint8Array.from(bytes);
  const loc: KallsymsLocations = {
    names: namesVa,
    numSyms,
    tokenTable,
    tokenIndex,
    ...(o.mode === 'absolute' ? { addresses: tableVa } : { offsets: tableVa }),
    ...(o.mode === 'relative' || o.mode === 'absolute-percpu' ? { relativeBase: relVa } : {}),
  };
  return { mem, loc, relativeBase, bytes: image };
}

const TEXT = 0xffffffff81000000n;
function kernelSyms(): Sym[] {
  return [
    { name: '_text', type: 'T', address: TEXT },
    { name: 'startup_64', type: 'T', address: TEXT },
    { name: '_stext', type: 'T', address: TEXT },
    { name: 'sys_read', type: 'T', address: TEXT + 0x100n },
    { name: 'do_init_thing', type: 't', address: TEXT + 0x180n },
    { name: 'helper', type: 't', address: TEXT + 0x200n },
    { name: 'helper', type: 't', address: TEXT + 0x260n }, // two locals of the same name
    { name: 'kallsyms_lookup_buf', type: 'R', address: TEXT + 0x1000n },
    { name: 'jiffies_64', type: 'D', address: TEXT + 0x2000n },
    { name: 'tainted_mask', type: 'b', address: TEXT + 0x3000n },
    { name: '_end', type: 'B', address: TEXT + 0x4000n },
  ];
}
const PERCPU: Sym[] = [
  { name: '__per_cpu_start', type: 'A', address: 0n },
  { name: 'fixed_percpu_data', type: 'A', address: 0n },
  { name: 'current_task', type: 'A', address: 0x1fb80n },
  { name: '__per_cpu_end', type: 'A', address: 0x30000n },
];

function check(ks: KernelSymbols, syms: Sym[]): void {
  assert.equal(ks.count, syms.length);
  const got = [...ks];
  syms.forEach((s, i) => {
    assert.equal(got[i]!.name, s.name, `name ${i}`);
    assert.equal(got[i]!.type, s.type, `type of ${s.name}`);
    assert.equal(got[i]!.address, s.address, `address of ${s.name}`);
  });
}

for (const mode of ['absolute', 'relative', 'absolute-percpu', 'pc-relative'] as const) {
  test(`kallsyms ${mode}: names, types, addresses, lookups`, async () => {
    const syms = mode === 'absolute-percpu' ? [...PERCPU, ...kernelSyms()] : kernelSyms();
    const { mem, loc } = build(syms, { mode });
    const ks = await decodeKallsyms(mem.read, loc, { stext: TEXT });
    assert.equal(ks.addressMode, mode);
    assert.deepEqual(ks.warnings, []);
    check(ks, syms);
    assert.equal(ks.addressOf('sys_read'), TEXT + 0x100n);
    assert.equal(ks.addressOf('nope'), undefined);
    assert.deepEqual(ks.lookup('helper').map((s) => s.address), [TEXT + 0x200n, TEXT + 0x260n]);
    // the kernel's size rule: up to the next higher address
    assert.equal(ks.lookup('sys_read')[0]!.size, 0x80n);
    assert.equal(ks.lookup('_text')[0]!.size, 0x100n);
    // an address inside: the first alias, offset into it
    const s = ks.symbolize(TEXT + 0x10n)!;
    assert.deepEqual([s.name, s.offset, s.size, s.type], ['_text', 0x10n, 0x100n, 'T']);
    assert.equal(ks.symbolize(TEXT + 0x27fn)!.name, 'helper');
    assert.equal(ks.symbolize(TEXT + 0x27fn)!.offset, 0x1fn);
    assert.equal(ks.symbolize(TEXT - 1n), undefined);
    assert.equal(ks.symbolize(TEXT + 0x4000n), undefined, '_end is outside the image');
    if (mode === 'absolute-percpu') {
      assert.equal(ks.addressOf('current_task'), 0x1fb80n);
      assert.equal(ks.symbolize(0x1fb88n)!.name, 'current_task');
      assert.equal(ks.symbolize(0x30000n), undefined);
    }
  });
}

test('kallsyms: without _stext the encoding that sorts the addresses is chosen', async () => {
  const syms = [...PERCPU, ...kernelSyms()];
  const { mem, loc } = build(syms, { mode: 'absolute-percpu' });
  const ks = await decodeKallsyms(mem.read, loc);
  assert.equal(ks.addressMode, 'absolute-percpu');
  check(ks, syms);
});

test('kallsyms: _stext that no encoding gives is a typed error', async () => {
  const { mem, loc } = build(kernelSyms(), { mode: 'relative' });
  await assert.rejects(decodeKallsyms(mem.read, loc, { stext: TEXT + 0x1000n }), (e: VmcoreError) => e.code === 'BAD_FIELD' && e.field === 'kallsyms_offsets');
});

function longName(n: number): string {
  let s = 'rust_';
  while (s.length < n) s += String.fromCharCode(0x61 + (s.length % 26));
  return s;
}

for (const markers of ['u32', 'u64'] as const) {
  test(`kallsyms: two-byte lengths of long names (6.1+), ${markers} markers`, async () => {
    // 600 symbols so that markers[1] and [2] exist; names of 127, 128, 300 and 500 tokens
    const syms: Sym[] = [{ name: '_stext', type: 'T', address: TEXT }];
    for (let i = 1; i < 600; i++) {
      const len = i === 5 ? 126 : i === 300 ? 127 : i === 301 ? 299 : i === 599 ? 499 : 0;
      syms.push({ name: len ? longName(len) : `fn_${i}`, type: 't', address: TEXT + BigInt(i * 16) });
    }
    syms.push({ name: '_end', type: 'B', address: TEXT + 0x10000n });
    const { mem, loc } = build(syms, { mode: 'relative', markers });
    const ks = await decodeKallsyms(mem.read, loc, { stext: TEXT });
    assert.deepEqual(ks.warnings, []);
    check(ks, syms);
    assert.equal(ks.at(599)!.name.length, 499);
  });
}

test('kallsyms: one-byte lengths of 128+ (before 6.1) are recognised by where the markers start', async () => {
  const syms: Sym[] = [{ name: '_stext', type: 'T', address: TEXT }];
  for (let i = 1; i < 300; i++) syms.push({ name: i === 7 ? longName(140) : `fn_${i}`, type: 't', address: TEXT + BigInt(i * 16) });
  const { mem, loc } = build(syms, { mode: 'relative', longNames: false });
  const ks = await decodeKallsyms(mem.read, loc, { stext: TEXT });
  check(ks, syms);
  assert.equal(ks.at(7)!.name.length, 140);
});

test('loadKernelSymbols: through VMCOREINFO SYMBOL(kallsyms_*) entries', async () => {
  const syms = [...PERCPU, ...kernelSyms()];
  const { mem, loc } = build(syms, { mode: 'absolute-percpu' });
  const h = (v: bigint) => v.toString(16);
  const text = [
    `SYMBOL(_stext)=${h(TEXT)}`,
    `SYMBOL(kallsyms_names)=${h(loc.names)}`,
    `SYMBOL(kallsyms_num_syms)=${h(loc.numSyms)}`,
    `SYMBOL(kallsyms_token_table)=${h(loc.tokenTable)}`,
    `SYMBOL(kallsyms_token_index)=${h(loc.tokenIndex)}`,
    `SYMBOL(kallsyms_offsets)=${h(loc.offsets!)}`,
    `SYMBOL(kallsyms_relative_base)=${h(loc.relativeBase!)}`,
  ].join('\n');
  const ks = await loadKernelSymbols({ vmcoreinfo: new Vmcoreinfo(text), readVirt: mem.read });
  assert.equal(ks.source, 'VMCOREINFO');
  check(ks, syms);
  await assert.rejects(loadKernelSymbols({ vmcoreinfo: new Vmcoreinfo('OSRELEASE=5.10.0\n'), readVirt: mem.read }), (e: VmcoreError) => e.code === 'NO_SYMBOLS');
  await assert.rejects(loadKernelSymbols({ vmcoreinfo: undefined, readVirt: mem.read }), (e: VmcoreError) => e.code === 'NO_SYMBOLS');
});

// ---- corrupt tables: typed errors naming the table, or a warning; never a hang ----

function poke(mem: VirtMem, va: bigint, bytes: number[]): void {
  const r = mem.regions[0]!;
  r.bytes.set(bytes, Number(va - r.va));
}

test('kallsyms corrupt: impossible symbol count', async () => {
  for (const n of [0, 0xffffffff]) {
    const { mem, loc } = build(kernelSyms(), { mode: 'relative' });
    poke(mem, loc.numSyms, [n & 0xff, (n >>> 8) & 0xff, (n >>> 16) & 0xff, n >>> 24]);
    await assert.rejects(decodeKallsyms(mem.read, loc), (e: VmcoreError) => e.code === 'BAD_FIELD' && e.field === 'kallsyms_num_syms');
  }
});

test('kallsyms corrupt: a count larger than the names table', async () => {
  const { mem, loc } = build(kernelSyms(), { mode: 'relative' });
  poke(mem, loc.numSyms, [0x00, 0x10, 0, 0]); // 4096 names in a table of 11
  await assert.rejects(decodeKallsyms(mem.read, loc), (e: VmcoreError) => ['BAD_FIELD', 'OUT_OF_BOUNDS'].includes(e.code) && e.field === 'kallsyms_names');
});

test('kallsyms corrupt: token index beyond the token table', async () => {
  const { mem, loc } = build(kernelSyms(), { mode: 'relative' });
  poke(mem, loc.tokenIndex + 20n, [0xff, 0xff]);
  await assert.rejects(decodeKallsyms(mem.read, loc), (e: VmcoreError) => e.code === 'BAD_FIELD' && e.field === 'kallsyms_token_index');
});

test('kallsyms corrupt: a zero-length name', async () => {
  const { mem, loc } = build(kernelSyms(), { mode: 'relative' });
  poke(mem, loc.names, [0]);
  await assert.rejects(decodeKallsyms(mem.read, loc), (e: VmcoreError) => e.code === 'BAD_FIELD' && e.field === 'kallsyms_names' && e.address === loc.names && e.offset === undefined && e.message.includes(`address 0x${loc.names.toString(16)}`));
});

test('kallsyms corrupt: a name of the type letter alone, and one longer than KSYM_NAME_LEN allows, name the symbol and its address', async () => {
  // symbol 4's entry: after four entries of a length byte and that many tokens
  const at = async (mem: VirtMem, loc: KallsymsLocations) => {
    let off = 0;
    for (let i = 0; i < 4; i++) off += 1 + (await mem.read(loc.names + BigInt(off), 1))[0]!;
    return off;
  };
  for (const [bad, what] of [
    ['', 'decodes to 1 characters'],
    // 121 tokens (one length byte) that expand to 1,081 characters
    ['kallsyms_'.repeat(120), 'decodes to more than 1024 characters'],
  ] as const) {
    const syms = kernelSyms();
    syms[4] = { ...syms[4]!, name: bad };
    const { mem, loc } = build(syms, { mode: 'relative' });
    const off = await at(mem, loc);
    await assert.rejects(decodeKallsyms(mem.read, loc), (e: VmcoreError) => {
      assert.equal(e.code, 'BAD_FIELD');
      assert.equal(e.field, 'kallsyms_names');
      assert.ok(e.message.includes(`symbol 4 ${what}`), e.message);
      assert.equal(e.address, loc.names + BigInt(off));
      return true;
    });
  }
});

test('kallsyms corrupt: a table in a page that is not in the dump', async () => {
  const { mem, loc } = build(kernelSyms(), { mode: 'relative' });
  await assert.rejects(decodeKallsyms(mem.read, { ...loc, offsets: 0xffffffffa0000000n }), (e: VmcoreError) => e.code === 'PAGE_NOT_PRESENT' && e.field === 'kallsyms_offsets' && /0xffffffffa0000000/.test(e.message));
  await assert.rejects(decodeKallsyms(mem.read, { ...loc, names: 0xffffffffa0000000n }), (e: VmcoreError) => e.code === 'PAGE_NOT_PRESENT' && e.field === 'kallsyms_names');
});

test('kallsyms corrupt: unsorted addresses give a warning', async () => {
  const syms = kernelSyms();
  const { mem, loc } = build(syms, { mode: 'relative' });
  poke(mem, loc.offsets! + 4n * 4n, [0x00, 0x00, 0x01, 0x00]); // sys_read at +0x10000, above its successors
  const ks = await decodeKallsyms(mem.read, loc, { stext: TEXT });
  assert.ok(ks.warnings.some((w) => w.code === 'SYMBOLS_DAMAGED' && /not sorted \(1 places\)/.test(w.text)), JSON.stringify(ks.warnings));
});

test('kallsyms corrupt: random bytes in the names table never hang', async () => {
  let seed = 12345;
  const rnd = () => ((seed = (seed * 1103515245 + 12345) >>> 0) >>> 16) & 0xff;
  for (let round = 0; round < 200; round++) {
    const { mem, loc } = build(kernelSyms(), { mode: 'relative' });
    const r = mem.regions[0]!;
    const off = Number(loc.names - r.va);
    for (let k = 0; k < 4; k++) r.bytes[off + (rnd() % 40)] = rnd();
    try {
      const ks = await decodeKallsyms(mem.read, loc);
      assert.equal(ks.count, kernelSyms().length);
    } catch (e) {
      assert.ok(e instanceof VmcoreError, String(e));
    }
  }
});

// ---- finding the tables by a scan of the kernel image (kernels before 6.0, or VMCOREINFO without SYMBOL(kallsyms_*)) ----

const TABLES_AT = TEXT + 0x200000n;

/** A kernel image from TEXT: 2 MiB of pseudo-random "code", then the tables, padded to a page. */
function image(syms: Sym[], o: BuildOpts, decoy?: (img: Uint8Array) => void) {
  const b = build(syms, { ...o, base: TABLES_AT });
  const pad = (4096 - (b.bytes.length % 4096)) % 4096;
  const img = new Uint8Array(Number(TABLES_AT - TEXT) + b.bytes.length + pad);
  let seed = 7;
  for (let i = 0; i < Number(TABLES_AT - TEXT); i++) img[i] = (seed = (seed * 1103515245 + 12345) >>> 0) >>> 24;
  img.set(b.bytes, Number(TABLES_AT - TEXT));
  decoy?.(img);
  const mem = new VirtMem();
  mem.add(TEXT, img);
  return { mem, loc: b.loc, img };
}

const scanCases: [string, Mode, NonNullable<BuildOpts['layout']>, Partial<BuildOpts>][] = [
  ['6.4+ layout, relative', 'relative', 'new', {}],
  ['6.4+ layout, absolute per-CPU', 'absolute-percpu', 'new', {}],
  ['PC-relative (no relative_base)', 'pc-relative', 'new', {}],
  ['before 6.2: addresses first, absolute per-CPU, u64 markers', 'absolute-percpu', 'old', { markers: 'u64' }],
  ['before 6.2: offsets first, relative', 'relative', 'old', {}],
  ['6.2: seqs_of_names between markers and token table', 'absolute-percpu', 'old', { seqs: true }],
  ['no base-relative kallsyms: kallsyms_addresses', 'absolute', 'old', { markers: 'u64' }],
];
for (const [what, mode, layout, extra] of scanCases) {
  test(`kallsyms scan: ${what}`, async () => {
    const syms: Sym[] = mode === 'absolute-percpu' ? [...PERCPU, ...kernelSyms()] : kernelSyms();
    // enough symbols for several markers, and one long name
    const more: Sym[] = [];
    for (let i = 0; i < 700; i++) more.push({ name: i === 300 ? longName(200) : `fn_${i}`, type: i % 3 ? 't' : 'T', address: TEXT + 0x5000n + BigInt(i * 32) });
    const all = [...syms.slice(0, -1), ...more, { ...syms[syms.length - 1]!, address: TEXT + 0x40000n }];
    const { mem, loc } = image(all, { ...extra, mode, layout });
    const r = await scanKallsyms(mem.read, { start: TEXT, stext: TEXT });
    assert.deepEqual(r.loc, loc, 'every table where it was written');
    assert.equal(r.symbols.source, 'scan');
    assert.equal(r.symbols.addressMode, mode);
    check(r.symbols, all);
    // without the true _stext (start of the scan only): the same table
    check((await scanKallsyms(mem.read, { start: TEXT })).symbols, all);
  });
}

test('kallsyms scan: loadKernelSymbols scans when VMCOREINFO lacks SYMBOL(kallsyms_*), and says so', async () => {
  const syms = [...PERCPU, ...kernelSyms()];
  const { mem } = image(syms, { mode: 'absolute-percpu', layout: 'old' });
  const ks = await loadKernelSymbols({ vmcoreinfo: new Vmcoreinfo(`OSRELEASE=5.10.0-28-amd64\nSYMBOL(_stext)=${TEXT.toString(16)}\n`), readVirt: mem.read });
  assert.equal(ks.source, 'scan');
  check(ks, syms);
  // no _stext: x86_64 __START_KERNEL + KERNELOFFSET is where the image starts (here 0)
  const ks2 = await loadKernelSymbols({ vmcoreinfo: new Vmcoreinfo('OSRELEASE=5.10.0-28-amd64\nKERNELOFFSET=0\n'), readVirt: mem.read });
  check(ks2, syms);
});

test('kallsyms scan: a decoy token index without a token table, and corrupt tables, are passed over', async () => {
  const syms = kernelSyms();
  // a well-formed u16 index in the "code" before the tables, with nothing valid before it
  const { mem, loc } = image(syms, { mode: 'relative', layout: 'new' }, (img) => {
    const at = 0x10000;
    for (let i = 0; i < 256; i++) {
      img[at + 2 * i] = (i * 3) & 0xff;
      img[at + 2 * i + 1] = (i * 3) >> 8;
    }
  });
  assert.deepEqual((await scanKallsyms(mem.read, { start: TEXT, stext: TEXT })).loc, loc);
  // a token table with one NUL overwritten: no consistent table anywhere, a typed error naming the scan
  const r = mem.regions[0]!;
  const tt = Number(loc.tokenTable - TEXT);
  r.bytes[r.bytes.indexOf(0, tt)] = 0x41;
  await assert.rejects(scanKallsyms(mem.read, { start: TEXT, stext: TEXT }), (e: VmcoreError) => e.code === 'NO_SYMBOLS' && /scan of \d+ MiB/.test(e.message) && e.field === 'kallsyms');
});

test('kallsyms scan: an image with no tables, or none readable, is a typed error, bounded', async () => {
  const mem = new VirtMem();
  mem.add(TEXT, new Uint8Array(1 << 20).fill(0x90));
  const t0 = Date.now();
  await assert.rejects(scanKallsyms(mem.read, { start: TEXT }), (e: VmcoreError) => e.code === 'NO_SYMBOLS' && /unreadable/.test(e.message));
  await assert.rejects(scanKallsyms(new VirtMem().read, { start: TEXT, length: 64 << 20 }), (e: VmcoreError) => e.code === 'NO_SYMBOLS');
  assert.ok(Date.now() - t0 < 60_000);
});

test('packed names: a table made from packed bytes answers as one made from strings (ISO-8859-1 names too)', () => {
  const names = ['_stext', 'start_kernel', 'caf\u00e9', 'ctl\u0085x', 'start_kernel', '_end'];
  const bytes = new Uint8Array(names.reduce((n, s) => n + s.length, 0));
  const starts = new Uint32Array(names.length + 1);
  let o = 0;
  names.forEach((s, i) => {
    starts[i] = o;
    for (const c of s) bytes[o++] = c.charCodeAt(0);
  });
  starts[names.length] = o;
  const packed = new PackedSymbolNames(bytes, starts);
  assert.deepEqual(packed.all(), names);
  assert.equal(packed.indexOf('start_kernel'), 1);
  assert.equal(packed.indexOf('start_kerne'), -1);
  assert.ok(packed.equals(3, 'ctl\u0085x') && !packed.equals(3, 'ctl\u2026x'), 'byte 0x85 is U+0085, not windows-1252');
  const addresses = BigUint64Array.from([0x1000n, 0x1100n, 0x1200n, 0x1300n, 0x1400n, 0x2000n]);
  const a = new KernelSymbols({ addresses, names, types: 'TTtdtA' }, 'VMCOREINFO', 'absolute');
  const b = new KernelSymbols({ addresses, names: packed, types: 'TTtdtA' }, 'VMCOREINFO', 'absolute');
  for (const k of [a, b]) {
    assert.deepEqual(k.lookup('start_kernel').map((s) => s.address), [0x1100n, 0x1400n]);
    assert.equal(k.addressOf('caf\u00e9'), 0x1200n);
    assert.equal(k.addressOf('ctl\u0085x'), 0x1300n);
    assert.equal(k.symbolize(0x1210n)?.name, 'caf\u00e9');
    assert.equal(k.nameAt(3), 'ctl\u0085x');
  }
  assert.deepEqual(b.names, names);
  assert.deepEqual([...b].map((s) => s.name), names);
});
