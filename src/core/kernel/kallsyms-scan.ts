/**
 * Finding the kallsyms tables in the kernel image by their structure, for kernels whose
 * VMCOREINFO does not name them (before Linux 6.0, or a VMCOREINFO without the
 * SYMBOL(kallsyms_*) entries).
 *
 * What the scan relies on is what scripts/kallsyms.c writes (every table label `.balign 8` on
 * 64-bit kernels, `.balign 4` on 32-bit ones):
 *  - `kallsyms_token_index`: u16[256], 0 first, each entry the previous one plus the length of
 *    the previous token plus its NUL; `kallsyms_token_table` (256 NUL-terminated printable
 *    strings) ends just before it. This is the anchor: it is searched for in the image.
 *  - `kallsyms_num_syms` (u32, an `unsigned long` before 4.20) is followed by
 *    `kallsyms_names`, which is followed by `kallsyms_markers` (the offset of every 256th name,
 *    u32 or native words). A candidate count is accepted only when walking that many
 *    length-prefixed names (one- or two-byte lengths, see kallsyms.ts) ends exactly where
 *    markers equal to the walked offsets begin. Between the markers and the token table, 6.2
 *    and 6.3 place `kallsyms_seqs_of_names`; nothing here depends on what lies there.
 *  - The addresses: `kallsyms_offsets` (+ `kallsyms_relative_base`) or `kallsyms_addresses`
 *    sit before `kallsyms_num_syms` in older kernels and after `kallsyms_token_index` in newer
 *    ones (6.4+), and lose `kallsyms_relative_base` with PC-relative offsets. Each placement is
 *    tried; `kallsyms_relative_base` must lie near `_stext`, the addresses must come out sorted,
 *    and `_stext` must get its VMCOREINFO address (checked by decodeKallsyms).
 * Time and memory are bounded: the image is read in 1 MiB pieces over at most `length` bytes,
 * and the names table is looked for over at most KERNEL_LIMITS.kallsyms.maxNamesBytes before the token
 * table.
 */
import { VmcoreError, isVmcoreError } from '../errors.js';
import { hex64 } from '../hex.js';
import { isPageLoss } from '../loss.js';
import { decodeKallsyms, type KallsymsLocations, type KernelSymbols, type ReadVirt } from './kallsyms.js';
import { KERNEL_LIMITS } from '../limits.js';

export interface KallsymsScanOptions {
  /** Kernel virtual address where the scan starts: `_stext` (or `_text`) of the image. */
  start: bigint;
  /** Bytes to scan from `start` (default 256 MiB). */
  length?: number;
  /** `_stext` as VMCOREINFO gives it: checks kallsyms_relative_base and the address encoding. */
  stext?: bigint;
  littleEndian?: boolean;
  wordSize?: 4 | 8;
  file?: string;
  /** Stop after this many consecutive unreadable bytes (past the end of the image; default 16 MiB). */
  maxUnreadableRun?: number;
}

export interface KallsymsScanResult {
  symbols: KernelSymbols;
  loc: KallsymsLocations;
  /** Bytes of the image read while looking for the token index. */
  scanned: number;
}

const CHUNK = 1 << 20;
const PAGE = 4096;

/** Read `n` bytes at `va`; unreadable pages come back as zeros, their count in `lost`. */
async function readLossy(read: ReadVirt, va: bigint, n: number): Promise<{ bytes: Uint8Array; lost: number }> {
  try {
    return { bytes: await read(va, n), lost: 0 };
  } catch (e) {
    if (!isPageLoss(e)) throw e;
  }
  const bytes = new Uint8Array(n);
  let lost = 0;
  for (let o = 0; o < n; ) {
    const pageEnd = Math.min(n, o + PAGE - Number((va + BigInt(o)) % BigInt(PAGE)));
    try {
      bytes.set(await read(va + BigInt(o), pageEnd - o), o);
    } catch (e) {
      if (!isPageLoss(e)) throw e;
      lost += pageEnd - o;
    }
    o = pageEnd;
  }
  return { bytes, lost };
}

/** The 256 offsets of a kallsyms_token_index at `p` in `b`, or undefined. */
function tokenIndexAt(dv: DataView, p: number, le: boolean): number[] | undefined {
  if (dv.getUint16(p, le) !== 0) return undefined;
  const offs = [0];
  let prev = 0;
  for (let i = 1; i < 256; i++) {
    const o = dv.getUint16(p + 2 * i, le);
    const d = o - prev;
    // a token is 1..255 characters plus its NUL
    if (d < 2 || d > 256) return undefined;
    offs.push(o);
    prev = o;
  }
  return offs;
}

const printable = (c: number) => c >= 0x20 && c < 0x7f;

/**
 * The kallsyms_token_table that ends just before the token index at `index`, whose offsets are
 * `offs`: its address and the tokens, or undefined when no aligned start gives 256 printable
 * NUL-terminated tokens at exactly those offsets.
 */
async function tokenTableBefore(read: ReadVirt, index: bigint, offs: number[], align: number): Promise<{ at: bigint; tokens: Uint8Array[] } | undefined> {
  const last = offs[255]!;
  const span = last + 256 + 2 * align;
  let buf: Uint8Array;
  try {
    buf = await read(index - BigInt(span), span);
  } catch (e) {
    if (isVmcoreError(e)) return undefined;
    throw e;
  }
  // the table starts `back` bytes before the index: the last token and its NUL end in the
  // alignment padding before the index
  for (let back = last + 2; back <= span; back++) {
    const t = span - back; // table start in buf
    if ((index - BigInt(back)) % BigInt(align) !== 0n) continue;
    let ok = true;
    const tokens: Uint8Array[] = [];
    for (let i = 0; i < 256 && ok; i++) {
      const s = t + offs[i]!;
      const e = i < 255 ? t + offs[i + 1]! - 1 : buf.indexOf(0, s);
      if (e < 0 || e <= s || buf[e] !== 0) ok = false;
      else {
        for (let k = s; k < e; k++) if (!printable(buf[k]!)) ok = false;
        tokens.push(buf.subarray(s, e));
      }
      if (ok && i === 255) {
        // only padding between the last NUL and the index
        const pad = span - (e + 1);
        if (pad < 0 || pad >= align) ok = false;
        for (let k = e + 1; k < span && ok; k++) if (buf[k] !== 0) ok = false;
      }
    }
    if (ok) return { at: index - BigInt(back), tokens };
  }
  return undefined;
}

/**
 * Walk `num` length-prefixed names from `o` in `b` (bounded by `end`): the end offset and the
 * offset of every 256th name, or undefined when a length is 0 or the walk leaves `b`.
 */
function walkNames(b: Uint8Array, o: number, end: number, num: number, long: boolean): { end: number; markers: number[]; sawLong: boolean } | undefined {
  const start = o;
  const markers: number[] = [];
  let sawLong = false;
  for (let i = 0; i < num; i++) {
    if ((i & 0xff) === 0) markers.push(o - start);
    if (o >= end) return undefined;
    let len = b[o++]!;
    if (len & 0x80) {
      sawLong = true;
      if (long) {
        if (o >= end) return undefined;
        len = (len & 0x7f) | (b[o++]! << 7);
      }
    }
    if (len === 0) return undefined;
    o += len;
    if (o > end) return undefined;
  }
  return { end: o, markers, sawLong };
}

/**
 * Whether kallsyms_markers (u32 or native words) equal to `markers` start at align(`e`) in `b`,
 * and the token table (at `limit`) follows them, directly or after kallsyms_seqs_of_names
 * (3 bytes or a u32 per symbol, 6.2+ when it sits there).
 */
function markersAt(dv: DataView, e: number, limit: number, markers: number[], num: number, le: boolean, word: number): boolean {
  const up = (v: number, a: number) => Math.ceil(v / a) * a;
  // entries of 4 or 8 bytes; the label aligned to 4 or to the word (`.balign 8` on 64-bit)
  const forms = word === 8 ? [[4, 8], [4, 4], [8, 8]] : [[4, 4]];
  for (const [w, align] of forms as [number, number][]) {
    const m = up(e, align);
    // the padding before the markers is zero
    let ok = m + markers.length * w <= limit;
    for (let k = e; k < m && ok; k++) if (dv.getUint8(k) !== 0) ok = false;
    for (let k = 0; k < markers.length && ok; k++) {
      const v = w === 8 ? dv.getBigUint64(m + 8 * k, le) : BigInt(dv.getUint32(m + 4 * k, le));
      if (v !== BigInt(markers[k]!)) ok = false;
    }
    if (!ok) continue;
    const rest = limit - up(m + markers.length * w, word);
    if (rest === 0 || rest === up(3 * num, word) || rest === up(4 * num, word)) return true;
  }
  return false;
}

/**
 * Find kallsyms_num_syms and kallsyms_names before the token table at `tokenTable`: the
 * candidate nearest the token table whose names walk ends where matching markers begin.
 */
async function namesBefore(
  read: ReadVirt,
  tokenTable: bigint,
  tokens: Uint8Array[],
  le: boolean,
  word: number,
): Promise<{ numSyms: bigint; names: bigint; num: number } | undefined> {
  const typeLetter = (c: number) => (c >= 0x41 && c <= 0x5a) || (c >= 0x61 && c <= 0x7a);
  let size = 0;
  let region = new Uint8Array(0);
  while (size < KERNEL_LIMITS.kallsyms.maxNamesBytes) {
    // grow the region backwards (doubling); candidates in the older part were tried already
    const grow = Math.min(KERNEL_LIMITS.kallsyms.maxNamesBytes, Math.max(CHUNK, size * 2)) - size;
    let more: Uint8Array;
    try {
      more = (await readLossy(read, tokenTable - BigInt(size + grow), grow)).bytes;
    } catch (e) {
      if (isVmcoreError(e)) return undefined;
      throw e;
    }
    const next = new Uint8Array(size + grow);
    next.set(more, 0);
    next.set(region, grow);
    region = next;
    size += grow;
    const dv = new DataView(region.buffer, region.byteOffset, region.length);
    const base = tokenTable - BigInt(size); // aligned like the token table
    // candidates nearest the token table first
    for (let a = Math.min(grow, size - 8) - word; a >= 0; a -= word) {
      if (dv.getUint32(a + 4, le) !== 0) continue;
      const num = dv.getUint32(a, le);
      if (num === 0 || num > KERNEL_LIMITS.kallsyms.maxSymbols || num * 2 > size - a - 8) continue;
      // the first name's first token starts with a type letter
      const first = region[a + 8]!;
      const tok0 = first & 0x80 ? region[a + 10] : region[a + 9];
      if (tok0 === undefined || !typeLetter(tokens[tok0]?.[0] ?? 0)) continue;
      for (const long of [true, false]) {
        const w = walkNames(region, a + 8, size, num, long);
        if (w && markersAt(dv, w.end, size, w.markers, num, le, word)) return { numSyms: base + BigInt(a), names: base + BigInt(a + 8), num };
        if (w && !w.sawLong) break; // a failed two-byte walk may be a one-byte table (before 6.1)
      }
    }
  }
  return undefined;
}

/**
 * Search the kernel image for the kallsyms tables and decode them.
 * @param read kernel virtual memory reader.
 * @param opts where the image starts (`_stext`), how far to look, the true `_stext`.
 * @returns the decoded table (source 'scan') and where its parts were found.
 * @throws VmcoreError NO_SYMBOLS when no consistent set of tables is found within the bounds
 *   (the message says how much was scanned and how much of it was unreadable).
 */
export async function scanKallsyms(read: ReadVirt, opts: KallsymsScanOptions): Promise<KallsymsScanResult> {
  const le = opts.littleEndian ?? true;
  const word = opts.wordSize ?? 8;
  const length = opts.length ?? 256 << 20;
  const maxRun = opts.maxUnreadableRun ?? 16 << 20;
  const start = opts.start - (opts.start % BigInt(word));
  const file = opts.file;
  let scanned = 0;
  let unreadable = 0;
  let run = 0;
  const rejected: string[] = [];
  for (let off = 0; off < length && run < maxRun; off += CHUNK) {
    const n = Math.min(CHUNK + 512, length - off + 512);
    const va = start + BigInt(off);
    const { bytes, lost } = await readLossy(read, va, n);
    scanned += Math.min(CHUNK, n);
    unreadable += Math.min(lost, CHUNK);
    run = lost >= CHUNK ? run + CHUNK : 0;
    if (lost >= n) continue;
    const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.length);
    const limit = Math.min(CHUNK, bytes.length - 512);
    for (let p = 0; p < limit; p += word) {
      if (bytes[p] !== 0 || bytes[p + 1] !== 0) continue;
      const offs = tokenIndexAt(dv, p, le);
      if (!offs) continue;
      const tokenIndex = va + BigInt(p);
      const table = await tokenTableBefore(read, tokenIndex, offs, word);
      if (!table) continue;
      const names = await namesBefore(read, table.at, table.tokens, le, word);
      if (!names) {
        rejected.push(`token index at ${hex64(tokenIndex)}: no names table before it`);
        continue;
      }
      const found = await addressesFor(read, { ...names, tokenTable: table.at, tokenIndex }, opts, le, word);
      if (found) return { ...found, scanned };
      rejected.push(`token index at ${hex64(tokenIndex)}: no address table that gives sorted addresses near _stext`);
    }
  }
  throw new VmcoreError(
    'NO_SYMBOLS',
    `kallsyms tables not found by a scan of ${scanned >> 20} MiB of the kernel image from ${hex64(start)}` +
      (unreadable ? ` (${unreadable >> 10} KiB of it unreadable)` : '') +
      (rejected.length ? `: ${rejected.slice(0, 3).join('; ')}` : ''),
    { ...(file ? { file } : {}), offset: start, field: 'kallsyms' },
  );
}

/** Every kallsyms_* table the symbols name is at the address where the scan found it. */
function selfConsistent(symbols: KernelSymbols, loc: KallsymsLocations): boolean {
  const tables: [string, bigint | undefined][] = [
    ['kallsyms_names', loc.names],
    ['kallsyms_num_syms', loc.numSyms],
    ['kallsyms_token_table', loc.tokenTable],
    ['kallsyms_token_index', loc.tokenIndex],
    ['kallsyms_offsets', loc.offsets],
    ['kallsyms_relative_base', loc.relativeBase],
    ['kallsyms_addresses', loc.addresses],
  ];
  for (const [name, at] of tables) {
    const named = symbols.lookup(name);
    if (named.length > 0 && (at === undefined || !named.some((s) => s.address === at))) return false;
  }
  return true;
}

/** Whether the first u32 words of a candidate offsets table are not all equal. */
async function variedWords(read: ReadVirt, at: bigint, num: number): Promise<boolean> {
  const n = Math.min(num, 64);
  if (n < 2) return true;
  try {
    const b = await read(at, 4 * n);
    const dv = new DataView(b.buffer, b.byteOffset, b.length);
    for (let i = 1; i < n; i++) if (dv.getUint32(4 * i, true) !== dv.getUint32(0, true)) return true;
    return false;
  } catch (e) {
    if (isVmcoreError(e)) return false;
    throw e;
  }
}

/** Try each placement of the address table around the names and token tables; decode the first that holds. */
async function addressesFor(
  read: ReadVirt,
  t: { numSyms: bigint; names: bigint; num: number; tokenTable: bigint; tokenIndex: bigint },
  opts: KallsymsScanOptions,
  le: boolean,
  word: number,
): Promise<{ symbols: KernelSymbols; loc: KallsymsLocations } | undefined> {
  const W = BigInt(word);
  const n4 = BigInt(4 * t.num);
  const alignUp = (v: bigint) => ((v + W - 1n) / W) * W;
  const after = t.tokenIndex + 512n;
  const before = t.numSyms - W; // kallsyms_relative_base, the word before kallsyms_num_syms
  const beforeOffsets = ((before - n4) / W) * W; // the aligned start whose end is within a word of `before`
  const cands: Pick<KallsymsLocations, 'offsets' | 'relativeBase' | 'addresses'>[] = [
    { offsets: after, relativeBase: alignUp(after + n4) },
    { offsets: beforeOffsets, relativeBase: before },
    { offsets: after },
    { addresses: t.numSyms - BigInt(t.num * word) },
  ];
  const near = 256n << 20n;
  const ref = opts.stext ?? opts.start;
  const isNear = (a: bigint) => (a > ref ? a - ref : ref - a) <= near;
  for (const c of cands) {
    let b: bigint | undefined;
    if (c.relativeBase !== undefined) {
      // kallsyms_relative_base is a kernel address near _stext
      try {
        const buf = await read(c.relativeBase, word);
        const dv = new DataView(buf.buffer, buf.byteOffset, word);
        b = word === 8 ? dv.getBigUint64(0, le) : BigInt(dv.getUint32(0, le));
      } catch (e) {
        if (isVmcoreError(e)) continue;
        throw e;
      }
      if (!isNear(b)) continue;
    }
    const loc: KallsymsLocations = { names: t.names, numSyms: t.numSyms, tokenTable: t.tokenTable, tokenIndex: t.tokenIndex, ...c };
    try {
      const symbols = await decodeKallsyms(read, loc, {
        source: 'scan',
        littleEndian: le,
        wordSize: word as 4 | 8,
        ...(opts.stext !== undefined ? { stext: opts.stext } : { imageNear: opts.start }),
        ...(opts.file ? { file: opts.file } : {}),
      });
      // a real table is sorted and, when VMCOREINFO gives _stext, agrees with it
      if (symbols.unsortedPlaces > 0) continue;
      if (opts.stext !== undefined && symbols.addressOf('_stext') !== opts.stext) continue;
      const st = symbols.addressOf('_stext') ?? symbols.addressOf('_text');
      if (st !== undefined && !isNear(st)) continue;
      // kallsyms_relative_base is the lowest relative symbol's address (scripts/kallsyms.c)
      if (b !== undefined && !symbols.addresses.includes(b)) continue;
      // a table that lists itself (CONFIG_KALLSYMS_ALL) lists itself where it was found
      if (!selfConsistent(symbols, loc)) continue;
      // padding is not a table: real offsets differ from one another
      if (c.offsets !== undefined && b === undefined && !(await variedWords(read, c.offsets, t.num))) continue;
      return { symbols, loc };
    } catch (e) {
      if (isVmcoreError(e)) continue;
      throw e;
    }
  }
  return undefined;
}
