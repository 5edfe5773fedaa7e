/**
 * Page-type classification of `struct page` records for dump filtering (makedumpfile dump
 * levels), from VMCOREINFO alone. Architecture-neutral: it works on the bytes of struct page
 * arrays; finding those arrays is `pagefilter.ts`.
 *
 * Facts (reference analysis.md §4; kernel `include/linux/page-flags.h`, `include/linux/mm_types.h`,
 * `kernel/vmcore_info.c`; makedumpfile `__exclude_unnecessary_pages`):
 *  - dump level bits: 1 zero, 2 page cache without PG_private, 4 all page cache, 8 user data
 *    (anonymous and hugetlbfs), 16 free (buddy). Hardware-poisoned and logically offline pages
 *    are always left out.
 *  - page types live in the 32-bit `_mapcount`/`page_type` word. Up to 6.11 a type is a cleared
 *    bit in a word initialised to -1 (`PAGE_BUDDY_MAPCOUNT_VALUE` = ~PG_buddy, e.g. -129; -128
 *    before 4.18) and the whole word is compared. From 6.12 (kernel commit 4ffca5a96678c) the
 *    type is the top byte (PGTY_buddy 0xf0, offline 0xf1, table 0xf2, guard 0xf3, hugetlb 0xf4,
 *    slab 0xf5, ...), VMCOREINFO exports PGTY << 24, and the low 24 bits belong to the owner:
 *    only the top byte may be compared.
 *  - free pages: buddy type, block order in `private`; unaccepted memory (6.16+): a block of
 *    2^(LENGTH(zone.free_area)-1) pages.
 *  - slab: `PAGE_SLAB_MAPCOUNT_VALUE` (6.10+) or bit `PG_slab`; slab reuses `mapping`, so a slab
 *    page is never anonymous.
 *  - compound pages: head has `PG_head_mask` in flags, tails have bit 0 of `compound_head`
 *    (`compound_info` from 7.1). Order and hugetlb-ness come from the first tail page:
 *    6.9+ order = low byte of its flags and hugetlb iff the head's type is hugetlb; 6.6-6.8 the
 *    same order and bit `PG_hugetlb` in the tail's flags; older kernels `compound_order` /
 *    `compound_dtor` (u8 from 4.16, u16 from 4.4) compared with `HUGETLB_PAGE_DTOR`.
 */
import { VmcoreError } from '../errors.js';
import type { Vmcoreinfo } from './vmcoreinfo.js';

export const DL_ZERO = 1;
export const DL_CACHE = 2;
export const DL_CACHE_PRI = 4;
export const DL_USER = 8;
export const DL_FREE = 16;
/** Levels that need struct page (every bit but zero pages). */
export const DL_PAGE_TYPES = DL_CACHE | DL_CACHE_PRI | DL_USER | DL_FREE;

/** Why a page frame is left out. */
export type PageKind = 'free' | 'cache' | 'cachePrivate' | 'user' | 'hwpoison' | 'offline';
export const PAGE_KINDS: readonly PageKind[] = ['cache', 'cachePrivate', 'user', 'free', 'hwpoison', 'offline'];

/** A 32-bit page-type value and the bits of `_mapcount` it is compared on. */
export interface TypeMatch {
  value: number;
  mask: number;
}

export type PageTypeEncoding = 'page_type top byte (6.12+)' | 'mapcount value (2.6.38-6.11)';

type Hugetlb =
  | { kind: 'type' } // 6.9+: head's page type is hugetlb
  | { kind: 'flag'; bit: number } // 6.6-6.8: PG_hugetlb in the first tail's flags
  | { kind: 'dtor'; dtorOff: number; dtorSize: 1 | 2; value: number } // older: compound_dtor id
  | { kind: 'none' };

export interface PageModel {
  release: string;
  encoding: PageTypeEncoding;
  littleEndian: boolean;
  /** SIZE(page) */
  structSize: number;
  off: { flags: number; mapping: number; mapcount: number; private: number | undefined; compoundHead: number | undefined };
  pg: { lru: number; private: number; swapcache: number; swapbacked: number | undefined; hwpoison: number | undefined; slab: number | undefined; headMask: bigint };
  types: { buddy?: TypeMatch; slab?: TypeMatch; offline?: TypeMatch; hugetlb?: TypeMatch; unaccepted?: TypeMatch };
  hugetlb: Hugetlb;
  /** Order of a tail page's compound: low byte of the first tail's flags, or a field. */
  order: { kind: 'flags1' } | { kind: 'field'; off: number; size: 1 | 2 } | { kind: 'none' };
  /** LENGTH(zone.free_area): buddy orders are below it. */
  nrOrders: number | undefined;
  /** Dump-level bits this model can evaluate (the others are refused with `missing`). */
  supported: number;
  missing: string[];
}

function kernelVersion(release: string): [number, number] | undefined {
  const m = /^(\d+)\.(\d+)/.exec(release);
  return m ? [Number(m[1]), Number(m[2])] : undefined;
}

function bitNumber(vi: Vmcoreinfo, name: string, file: string | undefined): number | undefined {
  const v = vi.number(name);
  if (v === undefined) return undefined;
  if (v > 63n) throw new VmcoreError('UNSUPPORTED', `NUMBER(${name})=${vi.get(`NUMBER(${name})`)} is not a page-flag bit number (0-63)`, { ...(file ? { file } : {}), field: `NUMBER(${name})` });
  return Number(v);
}

/**
 * Build the struct page model of a kernel from its VMCOREINFO and check that the page-type
 * numbers fit an encoding this code knows.
 *
 * @param vi       the dump's VMCOREINFO
 * @param opts.littleEndian byte order of the dump
 * @param opts.file file name for errors
 * @returns the model; `supported` has the dump-level bits that can be evaluated, `missing` the
 *          keys that keep the others out
 * @throws VmcoreError UNSUPPORTED when the page-type values exported by the kernel fit neither
 *         the 2.6.38-6.11 mapcount encoding nor the 6.12+ top-byte encoding, or when a
 *         struct page field lies outside SIZE(page) (the message names the kernel and key)
 */
export function pageModel(vi: Vmcoreinfo, opts: { littleEndian?: boolean; file?: string } = {}): PageModel {
  const file = opts.file;
  const release = vi.osrelease ?? 'unknown kernel';
  const where = (field: string) => ({ ...(file ? { file } : {}), field });
  const missing: string[] = [];
  const need = <T>(v: T | undefined, key: string): T | undefined => {
    if (v === undefined) missing.push(key);
    return v;
  };
  const structSize = need(vi.size('page'), 'SIZE(page)');
  const flags = need(vi.offset('page.flags'), 'OFFSET(page.flags)');
  const mapping = need(vi.offset('page.mapping'), 'OFFSET(page.mapping)');
  const mapcount = need(vi.offset('page._mapcount'), 'OFFSET(page._mapcount)');
  const priv = vi.offset('page.private');
  const compoundHead = vi.offset('page.compound_head') ?? vi.offset('page.compound_info');
  const lru = need(bitNumber(vi, 'PG_lru', file), 'NUMBER(PG_lru)');
  const pgPrivate = need(bitNumber(vi, 'PG_private', file), 'NUMBER(PG_private)');
  const swapcache = need(bitNumber(vi, 'PG_swapcache', file), 'NUMBER(PG_swapcache)');
  const headMask = need(vi.number('PG_head_mask'), 'NUMBER(PG_head_mask)');
  if (structSize === undefined || flags === undefined || mapping === undefined || mapcount === undefined) {
    throw new VmcoreError('UNSUPPORTED', `${release}: VMCOREINFO lacks ${missing.join(', ')}: struct page cannot be read, so pages cannot be classified`, where('VMCOREINFO'));
  }
  // struct page is an array of longs and pointers in every kernel: the fields read here are at
  // least 4-byte aligned (classifyStructPages reads them as 32-bit words)
  if (structSize < 16 || structSize > 512 || structSize % 4 !== 0) throw new VmcoreError('UNSUPPORTED', `${release}: SIZE(page)=${structSize} is implausible`, where('SIZE(page)'));
  const fieldFits = (name: string, off: number | undefined, width: number) => {
    if (off !== undefined && off + width > structSize) {
      throw new VmcoreError('UNSUPPORTED', `${release}: OFFSET(page.${name})=${off} + ${width} lies outside SIZE(page)=${structSize}`, where(`OFFSET(page.${name})`));
    }
    if (off !== undefined && off % 4 !== 0) {
      throw new VmcoreError('UNSUPPORTED', `${release}: OFFSET(page.${name})=${off} is not 4-byte aligned: not a struct page layout`, where(`OFFSET(page.${name})`));
    }
  };
  fieldFits('flags', flags, 8);
  fieldFits('mapping', mapping, 8);
  fieldFits('_mapcount', mapcount, 4);
  fieldFits('private', priv, 8);
  fieldFits('compound_head', compoundHead, 8);
  if (headMask !== undefined && (headMask === 0n || headMask >= 1n << 64n || (headMask & (headMask - 1n)) !== 0n)) {
    throw new VmcoreError('UNSUPPORTED', `${release}: NUMBER(PG_head_mask)=${vi.get('NUMBER(PG_head_mask)')} is not a single bit`, where('NUMBER(PG_head_mask)'));
  }

  // ---- page-type encoding: every exported *_MAPCOUNT_VALUE must fit one scheme
  const names = ['BUDDY', 'SLAB', 'OFFLINE', 'HUGETLB', 'UNACCEPTED'] as const;
  const raw: Partial<Record<(typeof names)[number], number>> = {};
  for (const n of names) {
    const key = `PAGE_${n}_MAPCOUNT_VALUE`;
    const v = vi.number(key);
    if (v === undefined) continue;
    const s = BigInt.asIntN(64, v);
    if (s < -(1n << 31n) || s >= 1n << 32n) {
      throw new VmcoreError('UNSUPPORTED', `${release}: NUMBER(${key})=${vi.get(`NUMBER(${key})`)} does not fit the 32-bit page_type word`, where(`NUMBER(${key})`));
    }
    raw[n] = Number(BigInt.asUintN(32, s));
  }
  const vals = Object.entries(raw) as [string, number][];
  const topByte = vals.length > 0 && vals.every(([, u]) => (u & 0xffffff) === 0 && u >>> 24 >= 0x80 && u >>> 24 < 0xff);
  // 2.6.38-6.11: -1 with one bit cleared (~PG_x, x from 7 to 23), or -128 (before 4.18)
  const clearedBit = (u: number) => {
    const inv = ~u >>> 0;
    return (inv !== 0 && (inv & (inv - 1)) === 0 && inv >= 0x80 && inv <= 0x800000) || u === 0xffffff80;
  };
  const mapcountEnc = vals.length > 0 && vals.every(([, u]) => clearedBit(u));
  const distinct = new Set(vals.map(([, u]) => (topByte ? u >>> 24 : u))).size === vals.length;
  let encoding: PageTypeEncoding;
  if (topByte && distinct) encoding = 'page_type top byte (6.12+)';
  else if (mapcountEnc && distinct) encoding = 'mapcount value (2.6.38-6.11)';
  else if (vals.length === 0) {
    throw new VmcoreError('UNSUPPORTED', `${release}: VMCOREINFO exports no PAGE_*_MAPCOUNT_VALUE: free and slab pages cannot be told apart (kernels before 2.6.38 are not supported)`, where('NUMBER(PAGE_BUDDY_MAPCOUNT_VALUE)'));
  } else {
    const list = vals.map(([n, u]) => `PAGE_${n}_MAPCOUNT_VALUE=0x${u.toString(16)}`).join(', ');
    throw new VmcoreError(
      'UNSUPPORTED',
      `${release}: the page-type numbers in VMCOREINFO (${list}) fit no known encoding (a cleared bit in -1 up to 6.11, a type in the top byte from 6.12): refusing to classify pages rather than keep or drop the wrong ones`,
      where('NUMBER(PAGE_BUDDY_MAPCOUNT_VALUE)'),
    );
  }
  const mask = topByte ? 0xff000000 : 0xffffffff;
  const types: PageModel['types'] = {};
  const key = { BUDDY: 'buddy', SLAB: 'slab', OFFLINE: 'offline', HUGETLB: 'hugetlb', UNACCEPTED: 'unaccepted' } as const;
  for (const [n, u] of vals) types[key[n as keyof typeof key]] = { value: (u & mask) >>> 0, mask };

  const ver = kernelVersion(release);
  const slabBit = bitNumber(vi, 'PG_slab', file);
  if (!types.slab && slabBit === undefined) missing.push('NUMBER(PG_slab) or NUMBER(PAGE_SLAB_MAPCOUNT_VALUE)');

  // ---- compound order and hugetlb
  let hugetlb: Hugetlb = { kind: 'none' };
  let order: PageModel['order'] = { kind: 'none' };
  const pgHugetlb = bitNumber(vi, 'PG_hugetlb', file);
  const folioOrder = vi.offset('folio._folio_order');
  const folioDtor = vi.offset('folio._folio_dtor');
  const orderField = folioOrder !== undefined ? folioOrder - structSize : vi.offset('page.compound_order');
  const dtorField = folioDtor !== undefined ? folioDtor - structSize : vi.offset('page.compound_dtor');
  const wide = ver !== undefined && (ver[0] < 4 || (ver[0] === 4 && ver[1] < 16)) ? 2 : 1;
  if (types.hugetlb) {
    hugetlb = { kind: 'type' };
    order = { kind: 'flags1' };
  } else if (pgHugetlb !== undefined) {
    hugetlb = { kind: 'flag', bit: pgHugetlb };
    order = { kind: 'flags1' };
  } else {
    if (orderField !== undefined && orderField >= 0 && orderField + wide <= structSize) order = { kind: 'field', off: orderField, size: wide };
    const dv = vi.number('HUGETLB_PAGE_DTOR');
    if (dtorField !== undefined && dtorField >= 0 && dtorField + wide <= structSize && dv !== undefined && ver !== undefined && (ver[0] > 4 || (ver[0] === 4 && ver[1] >= 4))) {
      hugetlb = { kind: 'dtor', dtorOff: dtorField, dtorSize: wide, value: Number(BigInt.asUintN(16, dv)) };
    }
  }
  if (order.kind === 'none' && headMask !== undefined) missing.push('the compound order (OFFSET(page.compound_order) or newer keys)');

  let supported = DL_ZERO;
  if (lru !== undefined && pgPrivate !== undefined && swapcache !== undefined && (types.slab || slabBit !== undefined)) supported |= DL_CACHE | DL_CACHE_PRI | DL_USER;
  if (types.buddy && priv !== undefined) supported |= DL_FREE;
  else missing.push(priv === undefined ? 'OFFSET(page.private)' : 'NUMBER(PAGE_BUDDY_MAPCOUNT_VALUE)');
  if (compoundHead === undefined) {
    supported &= DL_ZERO | DL_FREE;
    missing.push('OFFSET(page.compound_head)');
  }
  return {
    release,
    encoding,
    littleEndian: opts.littleEndian ?? true,
    structSize,
    off: { flags, mapping, mapcount, private: priv, compoundHead },
    pg: { lru: lru ?? -1, private: pgPrivate ?? -1, swapcache: swapcache ?? -1, swapbacked: bitNumber(vi, 'PG_swapbacked', file), hwpoison: bitNumber(vi, 'PG_hwpoison', file), slab: slabBit, headMask: headMask ?? 0n },
    types,
    hugetlb,
    order,
    nrOrders: vi.length('zone.free_area'),
    supported,
    missing,
  };
}

/**
 * Throw unless `model` can evaluate every bit of `level`.
 * @throws VmcoreError UNSUPPORTED naming the kernel, the level and the missing VMCOREINFO keys
 */
export function checkLevel(model: PageModel, level: number, file?: string): void {
  const lacking = level & DL_PAGE_TYPES & ~model.supported;
  if (lacking) {
    throw new VmcoreError('UNSUPPORTED', `${model.release}: dump level ${level} needs ${model.missing.join(', ')}, which VMCOREINFO does not give: refusing level ${level} (bits ${lacking}) rather than guess`, {
      ...(file ? { file } : {}),
      field: 'dump_level',
    });
  }
}

/** Carried between consecutive blocks: a multi-page exclusion that runs past a block's end. */
export interface ClassifyCursor {
  /** Pfns below this are already decided (inside an excluded block started earlier). */
  skipUntil: number;
}

export type EmitRun = (startPfn: number, endPfn: number, kind: PageKind) => void;

/** Whether this machine stores typed-array words little-endian. */
const HOST_LE = new Uint8Array(new Uint32Array([1]).buffer)[0] === 1;
/** Scratch words for records that cannot be viewed in place (other byte order, unaligned). */
let scratch = new Int32Array(0);

/**
 * `bytes` (a whole number of 32-bit words) as 32-bit words with the dump's values: a view of
 * the same memory when it is aligned and in the host's byte order, else a copy (byte-swapped
 * words when the orders differ) in a scratch buffer reused by the next call.
 */
/** 2^n for 0 <= n < 64, a small integer (not a heap number) below 2^30. */
function pow2(n: number): number {
  return n < 30 ? 1 << n : 2 ** n;
}

function wordsOf(bytes: Uint8Array, littleEndian: boolean): Int32Array {
  const n = bytes.length >> 2;
  if (littleEndian === HOST_LE && bytes.byteOffset % 4 === 0) return new Int32Array(bytes.buffer, bytes.byteOffset, n);
  if (scratch.length < n) scratch = new Int32Array(n);
  const w = scratch.subarray(0, n);
  new Uint8Array(w.buffer, 0, n * 4).set(bytes.subarray(0, n * 4));
  if (littleEndian !== HOST_LE) for (let i = 0; i < n; i++) { const x = w[i]!; w[i] = ((x & 0xff) << 24) | ((x & 0xff00) << 8) | ((x >>> 8) & 0xff00) | (x >>> 24); }
  return w;
}

/** What classifyStructPages tests, worked out once per page model and dump level (planOf). */
interface ClassifyPlan {
  /** Word of the flags in a record (32-bit words), of each flag's word and mask. */
  fw: number;
  lruW: number;
  lruM: number;
  privW: number;
  privM: number;
  swcW: number;
  swcM: number;
  sbW: number;
  sbM: number;
  noSwapbacked: boolean;
  hwpW: number;
  hwpM: number;
  slabW: number;
  slabM: number;
  headW: number;
  headM: number;
  hugeW: number;
  hugeM: number;
  mcW: number;
  mapW: number;
  chW: number;
  prLoW: number;
  prHiW: number;
  /** Page types as int32 mask and value (a type the kernel does not export matches nothing). */
  buddyMask: number;
  buddyVal: number;
  slabTMask: number;
  slabTVal: number;
  offMask: number;
  offVal: number;
  hugeMask: number;
  hugeVal: number;
  unaccMask: number;
  unaccVal: number;
  slabByType: boolean;
  wantFree: boolean;
  wantUnaccepted: boolean;
  wantCache: boolean;
  wantCachePri: boolean;
  wantUser: boolean;
  maxOrder: number;
}

const plans = new WeakMap<PageModel, Map<number, ClassifyPlan>>();

/**
 * The plan of classifyStructPages for model `m` at `level`, made on the first call and kept: it
 * is called for every 512 struct pages, and working these out each time (tuples, destructuring,
 * a BigInt made text) cost ~8 KB of garbage a call before the code is optimized.
 */
function planOf(m: PageModel, level: number): ClassifyPlan {
  let byLevel = plans.get(m);
  if (!byLevel) plans.set(m, (byLevel = new Map()));
  const known = byLevel.get(level);
  if (known) return known;
  const L = m.littleEndian ? 0 : 1; // word of the low half of a 64-bit field
  const H = 1 - L;
  const { off, pg, types } = m;
  const fw = off.flags >> 2;
  /** [word in the record, mask] of flag bit b; bits outside 0-63 test nothing. */
  const flag = (b: number | undefined): [number, number] => (b === undefined || b < 0 || b > 63 ? [fw + L, 0] : b < 32 ? [fw + L, 1 << b] : [fw + H, 1 << (b - 32)]);
  // a type that is not exported matches nothing: mask 0 and a value no masked word equals
  // (as int32, the words' type: a uint32 above 2^31 would be a heap number in code not yet
  // optimized, ~40 MB of them for a 4 GiB machine's struct pages)
  const tm = (t: TypeMatch | undefined): [number, number] => (t ? [t.mask | 0, t.value | 0] : [0, -1]);
  const [lruW, lruM] = flag(pg.lru);
  const [privW, privM] = flag(pg.private);
  const [swcW, swcM] = flag(pg.swapcache);
  const [sbW, sbM] = flag(pg.swapbacked);
  const [hwpW, hwpM] = flag(pg.hwpoison);
  const [slabW, slabM] = flag(types.slab ? undefined : pg.slab);
  const [headW, headM] = flag(pg.headMask === 0n ? -1 : pg.headMask.toString(2).length - 1);
  const [hugeW, hugeM] = flag(m.hugetlb.kind === 'flag' ? m.hugetlb.bit : undefined);
  const [buddyMask, buddyVal] = tm(types.buddy);
  const [slabTMask, slabTVal] = tm(types.slab);
  const [offMask, offVal] = tm(types.offline);
  const [hugeMask, hugeVal] = tm(types.hugetlb);
  const [unaccMask, unaccVal] = tm(types.unaccepted);
  const plan: ClassifyPlan = {
    fw,
    lruW,
    lruM,
    privW,
    privM,
    swcW,
    swcM,
    sbW,
    sbM,
    noSwapbacked: pg.swapbacked === undefined,
    hwpW,
    hwpM,
    slabW,
    slabM,
    headW,
    headM,
    hugeW,
    hugeM,
    mcW: off.mapcount >> 2,
    mapW: (off.mapping >> 2) + L,
    chW: off.compoundHead === undefined ? -1 : (off.compoundHead >> 2) + L,
    prLoW: off.private === undefined ? -1 : (off.private >> 2) + L,
    prHiW: off.private === undefined ? -1 : (off.private >> 2) + H,
    buddyMask,
    buddyVal,
    slabTMask,
    slabTVal,
    offMask,
    offVal,
    hugeMask,
    hugeVal,
    unaccMask,
    unaccVal,
    slabByType: types.slab !== undefined,
    wantFree: (level & DL_FREE) !== 0 && types.buddy !== undefined && off.private !== undefined,
    wantUnaccepted: (level & DL_FREE) !== 0 && types.unaccepted !== undefined && m.nrOrders !== undefined && m.nrOrders > 0 && m.nrOrders < 64,
    wantCache: (level & DL_CACHE) !== 0,
    wantCachePri: (level & DL_CACHE_PRI) !== 0,
    wantUser: (level & DL_USER) !== 0,
    maxOrder: Math.min(64, m.nrOrders ?? 64),
  };
  byLevel.set(level, plan);
  return plan;
}

/**
 * Classify `count` struct pages held in `buf` (page frames `firstPfn` …, one SIZE(page) record
 * each) for dump level `level`, in makedumpfile's order: compound tail → free → cache without
 * private → any cache → user → hwpoison → offline. Every page frame to leave out is passed to
 * `emit` as a run (a free block or a compound page is one run of 2^order frames, which may
 * end past this block: `cursor.skipUntil` carries it into the next call).
 *
 * `firstPfn` should be a multiple of `count` (a compound head on the block's last record cannot
 * see its first tail page and counts as order 0, as in makedumpfile's 512-page cache).
 *
 * The records are read as 32-bit words (pageModel checks that the fields are 4-byte aligned) in
 * one pass without per-record objects; a buffer in the other byte order or not 4-byte aligned
 * is copied once into a reused scratch buffer.
 */
export function classifyStructPages(m: PageModel, level: number, buf: Uint8Array, firstPfn: number, count: number, cursor: ClassifyCursor, emit: EmitRun): void {
  const S = m.structSize;
  const n = Math.min(count, Math.floor(buf.length / S));
  if (n <= 0) return;
  const le = m.littleEndian;
  const w = wordsOf(buf.subarray(0, n * S), le);
  const dv = new DataView(buf.buffer, buf.byteOffset, buf.byteLength); // rare fields of first tail pages
  const R = S >> 2; // words per record
  const L = le ? 0 : 1; // word of the low half of a 64-bit field
  const plan = planOf(m, level);
  const { fw, lruW, lruM, privW, privM, swcW, swcM, sbW, sbM, noSwapbacked, hwpW, hwpM, slabW, slabM, headW, headM, hugeW, hugeM } = plan;
  const { mcW, mapW, chW, prLoW, prHiW, buddyMask, buddyVal, slabTMask, slabTVal, offMask, offVal, hugeMask, hugeVal, unaccMask, unaccVal } = plan;
  const { slabByType, wantFree, wantUnaccepted, wantCache, wantCachePri, wantUser, maxOrder } = plan;
  const order = m.order;
  const hugetlb = m.hugetlb;
  for (let i = 0; i < n; i++) {
    const pfn = firstPfn + i;
    if (pfn < cursor.skipUntil) continue;
    const b = i * R;
    const mc = w[b + mcW]!;
    let ord = 0;
    let huge = false;
    if (i + 1 < n && (w[b + headW]! & headM) !== 0) {
      const t = b + R; // first tail page
      const tp = (i + 1) * S;
      if (order.kind === 'flags1') ord = w[t + fw + L]! & 0xff;
      else if (order.kind === 'field') ord = order.size === 1 ? dv.getUint8(tp + order.off) : dv.getUint16(tp + order.off, le);
      if (hugetlb.kind === 'type') huge = (mc & hugeMask) === hugeVal;
      else if (hugetlb.kind === 'flag') huge = (w[t + hugeW]! & hugeM) !== 0;
      else if (hugetlb.kind === 'dtor') huge = (hugetlb.dtorSize === 1 ? dv.getUint8(tp + hugetlb.dtorOff) : dv.getUint16(tp + hugetlb.dtorOff, le)) === hugetlb.value;
      if (ord >= 64 || pfn % pow2(ord) !== 0) ord = 0;
    }
    if (chW >= 0 && (w[b + chW]! & 1) === 1) continue; // tail: its head decides
    const slab = slabByType ? (mc & slabTMask) === slabTVal : (w[b + slabW]! & slabM) !== 0;
    const anon = (w[b + mapW]! & 1) === 1 && !slab;
    let nr = pow2(ord);
    let kind: PageKind;
    if (wantFree && !slab && (mc & buddyMask) === buddyVal) {
      const prLo = w[b + prLoW]!;
      if (w[b + prHiW]! !== 0 || prLo < 0 || prLo >= maxOrder) continue; // invalid order: keep
      nr = pow2(prLo);
      kind = 'free';
    } else if (wantUnaccepted && (mc & unaccMask) === unaccVal) {
      nr = pow2(m.nrOrders! - 1);
      kind = 'free';
    } else {
      const fl = w[b + lruW]!;
      const cache = (fl & lruM) !== 0 || ((noSwapbacked || (w[b + sbW]! & sbM) !== 0) && (w[b + swcW]! & swcM) !== 0);
      const priv = (w[b + privW]! & privM) !== 0;
      if (wantCache && cache && !priv && !anon) kind = 'cache';
      else if (wantCachePri && cache && !anon) kind = priv ? 'cachePrivate' : 'cache';
      else if (wantUser && (anon || huge)) kind = 'user';
      else if ((w[b + hwpW]! & hwpM) !== 0) kind = 'hwpoison';
      else if (!slab && (mc & offMask) === offVal) kind = 'offline';
      else continue;
    }
    emit(pfn, pfn + nr, kind);
    if (nr > 1) cursor.skipUntil = pfn + nr;
  }
}
