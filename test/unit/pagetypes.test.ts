import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Vmcoreinfo } from '../../src/core/kernel/vmcoreinfo.js';
import { classifyStructPages, pageModel, checkLevel, type PageKind } from '../../src/core/kernel/pagetypes.js';
import { subtractExcluded, type ExcludedRun } from '../../src/core/kernel/pagefilter.js';
import { isVmcoreError } from '../../src/core/errors.js';

// struct page layout and page flags of Debian's 6.1.0-56-cloud-amd64 (its VMCOREINFO)
const COMMON = `OSRELEASE=@REL@
SIZE(page)=64
OFFSET(page.flags)=0
OFFSET(page._refcount)=52
OFFSET(page.mapping)=24
OFFSET(page.lru)=8
OFFSET(page._mapcount)=48
OFFSET(page.private)=40
OFFSET(page.compound_head)=8
LENGTH(zone.free_area)=11
NUMBER(PG_lru)=4
NUMBER(PG_private)=13
NUMBER(PG_swapcache)=10
NUMBER(PG_swapbacked)=19
NUMBER(PG_head_mask)=65536
`;
// 6.1: a type is a cleared bit in -1; hugetlb is compound_dtor 2 in the first tail page
const V61 = COMMON.replace('@REL@', '6.1.0-56-cloud-amd64') + `NUMBER(PG_slab)=9
OFFSET(page.compound_dtor)=16
OFFSET(page.compound_order)=17
NUMBER(HUGETLB_PAGE_DTOR)=2
NUMBER(PAGE_BUDDY_MAPCOUNT_VALUE)=-129
NUMBER(PAGE_OFFLINE_MAPCOUNT_VALUE)=-257
`;
// 6.12: the type is the top byte (PGTY_buddy 0xf0, offline 0xf1, hugetlb 0xf4, slab 0xf5), order in the tail's flags
const V612 = COMMON.replace('@REL@', '6.12.107+deb12-cloud-amd64') + `NUMBER(PAGE_BUDDY_MAPCOUNT_VALUE)=${(0xf0 << 24) | 0}
NUMBER(PAGE_OFFLINE_MAPCOUNT_VALUE)=${0xf1 << 24}
NUMBER(PAGE_HUGETLB_MAPCOUNT_VALUE)=${0xf4 << 24}
NUMBER(PAGE_SLAB_MAPCOUNT_VALUE)=${0xf5 << 24}
`;

type Enc = '6.1' | '6.12';
const S = 64;
const NONE = 0xffffffff; // _mapcount -1

/** A synthetic struct page array of 32 frames, the same pages in either encoding. */
function pages(enc: Enc, le = true): Uint8Array {
  const buf = new Uint8Array(32 * S);
  const dv = new DataView(buf.buffer);
  const type = (t: 'buddy' | 'offline' | 'hugetlb' | 'slab', low = 0) =>
    enc === '6.1' ? ({ buddy: ~0x80, offline: ~0x100, slab: NONE, hugetlb: NONE }[t] >>> 0) : ((({ buddy: 0xf0, offline: 0xf1, hugetlb: 0xf4, slab: 0xf5 }[t] << 24) | low) >>> 0);
  const set = (pfn: number, o: { flags?: number; mapping?: bigint; mapcount?: number; priv?: bigint; head?: bigint }) => {
    const p = pfn * S;
    dv.setBigUint64(p, BigInt(o.flags ?? 0), le);
    dv.setBigUint64(p + 8, o.head ?? 0n, le);
    dv.setBigUint64(p + 24, o.mapping ?? 0n, le);
    dv.setBigUint64(p + 40, o.priv ?? 0n, le);
    dv.setUint32(p + 48, o.mapcount ?? NONE, le);
  };
  const LRU = 1 << 4, PRIV = 1 << 13, SWAPCACHE = 1 << 10, SWAPBACKED = 1 << 19, HEAD = 1 << 16, SLAB = 1 << 9;
  for (let i = 0; i < 32; i++) set(i, {});
  set(0, { mapcount: type('buddy'), priv: 2n }); // free block of 4
  set(4, { flags: LRU, mapping: 0xffff888001000000n }); // file page cache
  set(5, { flags: LRU | PRIV, mapping: 0xffff888001000000n }); // cache with buffers
  set(6, { flags: LRU | SWAPBACKED, mapping: 0xffff888002000001n }); // anonymous
  // slab page whose mapping word happens to be odd; 6.12 owner bits in the low 24 bits
  set(7, { flags: enc === '6.1' ? SLAB : 0, mapping: 0xffff888003000001n, mapcount: enc === '6.1' ? NONE : type('slab', 0x123) });
  // THP: anonymous compound page of order 3
  set(8, { flags: HEAD | LRU | SWAPBACKED, mapping: 0xffff888002000001n });
  for (let i = 9; i < 16; i++) set(i, { head: 0xffffea0000000200n | 1n });
  if (enc === '6.1') buf[9 * S + 17] = 3; // compound_order
  else dv.setBigUint64(9 * S, 3n, le); // folio._flags_1 low byte
  // hugetlb page of order 1 (not anonymous, not on the LRU)
  set(16, { flags: HEAD, mapping: 0xffff888004000000n, mapcount: enc === '6.1' ? NONE : type('hugetlb') });
  set(17, { head: 0xffffea0000000400n | 1n });
  if (enc === '6.1') {
    buf[17 * S + 16] = 2; // compound_dtor = HUGETLB_PAGE_DTOR
    buf[17 * S + 17] = 1;
  } else dv.setBigUint64(17 * S, 1n, le);
  set(18, { mapcount: type('offline') });
  set(19, { flags: 1 << 2 }); // kernel page (PG_referenced)
  set(20, { flags: SWAPCACHE | SWAPBACKED, mapping: 0xffff888002000001n }); // swap cache of anon memory: user
  set(21, { flags: SWAPCACHE | SWAPBACKED, mapping: 0xffff888005000000n }); // shmem in swap cache: cache
  set(22, { flags: SWAPCACHE, mapping: 0xffff888005000000n }); // PG_swapcache without PG_swapbacked: PG_owner_priv_1, not cache
  set(24, { mapcount: type('buddy'), priv: 40n }); // impossible order: kept
  // an order whose low word has the top bit set (negative as the int32 the words are read as): kept
  set(25, { mapcount: type('buddy'), priv: 0x80000002n });
  return buf;
}

/** The runs of the fixture; `form` stores it big-endian, or at an odd byte offset (copied to words). */
function classify(enc: Enc, level: number, form: 'le' | 'be' | 'unaligned' = 'le'): ExcludedRun[] {
  const m = pageModel(new Vmcoreinfo(enc === '6.1' ? V61 : V612), { littleEndian: form !== 'be' });
  let buf = pages(enc, form !== 'be');
  if (form === 'unaligned') {
    const big = new Uint8Array(buf.length + 3);
    big.set(buf, 3);
    buf = big.subarray(3);
  }
  const runs: ExcludedRun[] = [];
  classifyStructPages(m, level, buf, 0, 32, { skipUntil: 0 }, (s, e, kind) => runs.push({ startPfn: s, endPfn: e, kind }));
  return runs;
}

const r = (s: number, e: number, kind: PageKind): ExcludedRun => ({ startPfn: s, endPfn: e, kind });

for (const enc of ['6.1', '6.12'] as Enc[]) {
  test(`struct pages ${enc}: each dump level leaves out its pages, compounds as a whole`, () => {
    assert.equal(pageModel(new Vmcoreinfo(enc === '6.1' ? V61 : V612)).encoding, enc === '6.1' ? 'mapcount value (2.6.38-6.11)' : 'page_type top byte (6.12+)');
    assert.deepEqual(classify(enc, 0), [r(18, 19, 'offline')]);
    assert.deepEqual(classify(enc, 16), [r(0, 4, 'free'), r(18, 19, 'offline')]);
    assert.deepEqual(classify(enc, 2), [r(4, 5, 'cache'), r(18, 19, 'offline'), r(21, 22, 'cache')]);
    assert.deepEqual(classify(enc, 4), [r(4, 5, 'cache'), r(5, 6, 'cachePrivate'), r(18, 19, 'offline'), r(21, 22, 'cache')]);
    assert.deepEqual(classify(enc, 8), [r(6, 7, 'user'), r(8, 16, 'user'), r(16, 18, 'user'), r(18, 19, 'offline'), r(20, 21, 'user')]);
    assert.deepEqual(classify(enc, 31), [
      r(0, 4, 'free'),
      r(4, 5, 'cache'),
      r(5, 6, 'cachePrivate'),
      r(6, 7, 'user'),
      r(8, 16, 'user'),
      r(16, 18, 'user'),
      r(18, 19, 'offline'),
      r(20, 21, 'user'),
      r(21, 22, 'cache'),
    ]);
  });
}

for (const enc of ['6.1', '6.12'] as Enc[]) {
  test(`struct pages ${enc}: a big-endian dump and a buffer at an odd byte offset classify the same`, () => {
    for (const level of [2, 4, 8, 16, 31]) {
      const le = classify(enc, level);
      assert.ok(le.length >= 2);
      assert.deepEqual(classify(enc, level, 'be'), le, `big-endian, level ${level}`);
      assert.deepEqual(classify(enc, level, 'unaligned'), le, `odd offset, level ${level}`);
    }
    // read as the wrong byte order, the same bytes say something else: the order is honoured
    const m = pageModel(new Vmcoreinfo(enc === '6.1' ? V61 : V612), { littleEndian: false });
    const runs: ExcludedRun[] = [];
    classifyStructPages(m, 31, pages(enc), 0, 32, { skipUntil: 0 }, (s, e, kind) => runs.push(r(s, e, kind)));
    assert.notDeepEqual(runs, classify(enc, 31));
  });
}

test('struct page fields that are not 4-byte aligned are refused', () => {
  assert.throws(() => pageModel(new Vmcoreinfo(V61.replace('OFFSET(page._mapcount)=48', 'OFFSET(page._mapcount)=50'))), (e: unknown) => isVmcoreError(e) && e.code === 'UNSUPPORTED' && /OFFSET\(page\._mapcount\)=50 is not 4-byte aligned/.test(e.message));
  assert.throws(() => pageModel(new Vmcoreinfo(V61.replace('SIZE(page)=64', 'SIZE(page)=66'))), (e: unknown) => isVmcoreError(e) && e.code === 'UNSUPPORTED' && /SIZE\(page\)=66/.test(e.message));
});

test('6.12: comparing the whole 32-bit word (makedumpfile before its 6.12 fix) would call the slab page anonymous', () => {
  const m = pageModel(new Vmcoreinfo(V612));
  assert.deepEqual(m.types.slab, { value: 0xf5000000, mask: 0xff000000 });
  const wrong = { ...m, types: { ...m.types, slab: { value: 0xf5000000, mask: 0xffffffff } } };
  const runs: ExcludedRun[] = [];
  classifyStructPages(wrong, 8, pages('6.12'), 0, 32, { skipUntil: 0 }, (s, e, kind) => runs.push(r(s, e, kind)));
  assert.ok(runs.some((x) => x.startPfn === 7), 'the slab page with owner bits is misread as user data');
  assert.ok(!classify('6.12', 8).some((x) => x.startPfn === 7));
});

test('a free block carries over into the next struct page block', () => {
  const m = pageModel(new Vmcoreinfo(V61));
  const buf = pages('6.1');
  const cursor = { skipUntil: 0 };
  const runs: ExcludedRun[] = [];
  const emit = (s: number, e: number, kind: PageKind) => runs.push(r(s, e, kind));
  // blocks of 2 frames: the order-2 block at 0 covers the next block; the THP at 8 covers 10..15
  for (let b = 0; b < 32; b += 2) classifyStructPages(m, 31, buf.subarray(b * S, (b + 2) * S), b, 2, cursor, emit);
  assert.deepEqual(runs.slice(0, 2), [r(0, 4, 'free'), r(4, 5, 'cache')]);
  // THP head at 8 sees its tail (9) in the same block
  assert.ok(runs.some((x) => x.startPfn === 8 && x.endPfn === 16));
});

function refuses(text: string, re: RegExp) {
  assert.throws(
    () => pageModel(new Vmcoreinfo(text)),
    (e: unknown) => isVmcoreError(e) && e.code === 'UNSUPPORTED' && re.test(e.message),
  );
}

test('page-type numbers that fit no known encoding are refused, naming the kernel', () => {
  // a mix of the two encodings
  refuses(V61.replace('NUMBER(PAGE_OFFLINE_MAPCOUNT_VALUE)=-257', `NUMBER(PAGE_OFFLINE_MAPCOUNT_VALUE)=${0xf1 << 24}`), /6\.1\.0-56-cloud-amd64: the page-type numbers .* fit no known encoding/);
  // a future scheme: small positive ids
  refuses(V612.replace(`NUMBER(PAGE_BUDDY_MAPCOUNT_VALUE)=${0xf0 << 24}`, 'NUMBER(PAGE_BUDDY_MAPCOUNT_VALUE)=5'), /6\.12\.107.*fit no known encoding/);
  // two types with one value
  refuses(V612.replace(`NUMBER(PAGE_OFFLINE_MAPCOUNT_VALUE)=${0xf1 << 24}`, `NUMBER(PAGE_OFFLINE_MAPCOUNT_VALUE)=${0xf0 << 24}`), /fit no known encoding/);
  // no page-type numbers at all
  refuses(V61.replace(/NUMBER\(PAGE_\w+\)=-?\d+\n/g, ''), /exports no PAGE_\*_MAPCOUNT_VALUE/);
  // a field outside struct page
  refuses(V61.replace('OFFSET(page.private)=40', 'OFFSET(page.private)=60'), /OFFSET\(page\.private\)=60 \+ 8 lies outside SIZE\(page\)=64/);
  refuses(V61.replace('SIZE(page)=64\n', ''), /lacks SIZE\(page\)/);
});

test('a level whose keys are missing is refused, the others still work', () => {
  const m = pageModel(new Vmcoreinfo(V61.replace('OFFSET(page.private)=40\n', '')));
  checkLevel(m, 8);
  assert.throws(() => checkLevel(m, 31), (e: unknown) => isVmcoreError(e) && e.code === 'UNSUPPORTED' && /dump level 31 needs OFFSET\(page\.private\)/.test(e.message));
});

test('subtractExcluded: present minus runs, counted per kind', () => {
  const present = [
    { startPfn: 0, endPfn: 10 },
    { startPfn: 20, endPfn: 30 },
  ];
  const res = subtractExcluded(present, [r(2, 4, 'free'), r(8, 22, 'user'), r(25, 26, 'cache'), r(29, 40, 'free')]);
  assert.deepEqual(res.present, [
    { startPfn: 0, endPfn: 2 },
    { startPfn: 4, endPfn: 8 },
    { startPfn: 22, endPfn: 25 },
    { startPfn: 26, endPfn: 29 },
  ]);
  assert.equal(res.total, 2 + 4 + 1 + 1);
  assert.equal(res.removed.user, 4);
  assert.equal(res.removed.free, 3);
  assert.equal(res.removed.cache, 1);
});
