/**
 * kdump-compressed reader: header versions 1-6, 32/64-bit layouts, both byte orders, two
 * bitmaps (or the single bitmap of old diskdump files), page descriptors, the four codecs, the
 * shared zero page, split sets and incomplete dumps. Random access: bitmap blocks and
 * descriptors are read on demand; a per-block prefix count (built once by streaming the
 * dumpable bitmap) turns "descriptor index of pfn" into O(1) plus one small popcount.
 */
import { warning, type Warning } from '../../warnings.js';
import { KDUMP_LIMITS } from '../../limits.js';
import { VmcoreError } from '../../errors.js';
import { readExact, type ByteSource } from '../../io/source.js';
import type { Codec, CodecName, CodecRegistry } from '../../codec/types.js';
import type { DetailsOptions, Dump, FormatDetails, MapRun, PageRun, PageState, ProducerHint, ProducerHintCode, ReadPhysOptions } from '../../dump.js';
import { isZeroPage, notPresent, readPhysGeneric } from '../../memory.js';
import { findVmcoreinfoNote, parseNotes, producerNoteText, type ElfNote } from '../elf/notes.js';
import {
  DISKDUMP_SIGNATURE,
  DUMP_DH_COMPRESSED_INCOMPLETE,
  DUMP_DH_COMPRESSED_LZO,
  DUMP_DH_COMPRESSED_SNAPPY,
  DUMP_DH_COMPRESSED_ZLIB,
  DUMP_DH_COMPRESSED_ZSTD,
  DUMP_DH_EXCLUDED_VMEMMAP,
  DiskDumpHeader64,
  KDUMP_SIGNATURE,
  PAGE_DESC_SIZE,
  PageDescTable,
  kdumpAbiOf,
  kdumpStructs,
  type KdumpAbi,
  type KdumpLayoutChoice,
} from './structs.js';
import { LruCache } from '../../io/lru.js';
import { headerText, latin1 } from '../../text.js';

const MAX_NOTE_BYTES = KDUMP_LIMITS.maxNoteBytes;
const MAX_BLOCK_SIZE = KDUMP_LIMITS.maxBlockSize;

export interface KdumpHeaderInfo {
  signature: string;
  headerVersion: number;
  layout: '64' | '32';
  /** The C ABI of the headers (structs.ts KdumpAbi) and the width of the timestamp's time_t. */
  abi: KdumpAbi;
  time64: boolean;
  /** Which layout was used and why (machine name, or plausibility against the file). */
  layoutReason: string;
  /** Set when the layout could not be chosen from the machine name alone. */
  layoutWarnings: Warning[];
  littleEndian: boolean;
  utsname: { sysname: string; nodename: string; release: string; version: string; machine: string; domainname: string };
  timestampSec: number;
  timestampUsec: number;
  status: number;
  blockSize: number;
  subHdrSize: number;
  bitmapBlocks: number;
  maxMapnr32: number;
  nrCpus: number;
  currentCpu: number;
  // sub-header (normalised; zero where the header version lacks the field)
  physBase: bigint;
  dumpLevel: number;
  split: number;
  startPfn: number;
  endPfn: number;
  offsetVmcoreinfo: number;
  sizeVmcoreinfo: number;
  offsetNote: number;
  sizeNote: number;
  offsetEraseinfo: number;
  sizeEraseinfo: number;
  maxMapnr: number;
}

export function isKdump(head: Uint8Array): boolean {
  const sig = latin1(head.subarray(0, 8));
  return sig === KDUMP_SIGNATURE || sig === DISKDUMP_SIGNATURE;
}

function isPow2(n: number): boolean {
  return n > 0 && (n & (n - 1)) === 0;
}

const ABI_TEXT: Record<KdumpAbi, string> = {
  lp64: '64-bit layout',
  i386: 'i386 layout (64-bit members 4-aligned)',
  ilp32: '32-bit layout with 64-bit members 8-aligned (ARM EABI, MIPS o32, PowerPC, s390)',
};

const CHOICES: KdumpLayoutChoice[] = [
  { abi: 'lp64', time64: true },
  { abi: 'i386', time64: false },
  { abi: 'ilp32', time64: false },
  { abi: 'i386', time64: true },
  { abi: 'ilp32', time64: true },
];

interface Candidate {
  choice: KdumpLayoutChoice;
  le: boolean;
  h: ReturnType<typeof DiskDumpHeader64.read>;
  sub?: Record<string, number | bigint>;
  /** what makes the sub-header implausible in this layout (empty: plausible) */
  problems: string[];
}

/** Reasons a main header read in one layout cannot be right (empty: plausible). */
function mainProblems(h: ReturnType<typeof DiskDumpHeader64.read>, time64: boolean): string[] {
  const out: string[] = [];
  const bs = h.block_size;
  if (!isPow2(bs) || bs < 512 || bs > MAX_BLOCK_SIZE) out.push(`block_size ${bs}`);
  if (h.sub_hdr_size < 0 || h.sub_hdr_size > 1 << 20) out.push(`sub_hdr_size ${h.sub_hdr_size}`);
  if (h.header_version < 0 || h.header_version > 100) out.push(`header_version ${h.header_version}`);
  // The bitmaps must be able to describe max_mapnr pages.
  if (h.signature === KDUMP_SIGNATURE && isPow2(bs) && h.bitmap_blocks * bs * 8 < h.max_mapnr) out.push(`bitmap_blocks ${h.bitmap_blocks} cannot hold max_mapnr ${h.max_mapnr}`);
  const usec = Number(h.timestamp_usec);
  if (usec < 0 || usec >= 1_000_000) out.push(`timestamp usec ${usec}`);
  if (time64 && (h.timestamp_sec < 0n || h.timestamp_sec > 1n << 40n)) out.push(`timestamp ${h.timestamp_sec}`);
  return out;
}

/** Reasons a sub-header read in one layout cannot be right, against the file size. */
function subProblems(s: Record<string, number | bigint>, h: ReturnType<typeof DiskDumpHeader64.read>, subSize: number, fileSize: number): string[] {
  const out: string[] = [];
  const hv = h.header_version;
  const bs = h.block_size;
  const n = (k: string) => Number(s[k] ?? 0);
  const region = (off: string, size: string) => {
    const o = n(off);
    const z = n(size);
    if (z === 0) return;
    if (o < bs || o + z > fileSize) out.push(`${off} 0x${o.toString(16)} + ${size} ${z} outside the file`);
  };
  if (hv >= 3) region('offset_vmcoreinfo', 'size_vmcoreinfo');
  if (hv >= 4) {
    region('offset_note', 'size_note');
    // makedumpfile and QEMU put the notes right after the sub-header
    if (n('size_note') > 0 && n('offset_note') < bs + subSize) out.push(`offset_note 0x${n('offset_note').toString(16)} inside the sub-header`);
  }
  if (hv >= 6 && h.signature === KDUMP_SIGNATURE) {
    const m64 = n('max_mapnr_64');
    // from version 6 on, max_mapnr is max_mapnr_64 truncated to 32 bits (makedumpfile, QEMU)
    if (Math.min(m64, 0xffffffff) !== h.max_mapnr) out.push(`max_mapnr_64 ${m64} disagrees with max_mapnr ${h.max_mapnr}`);
    if (h.bitmap_blocks * bs * 8 < m64) out.push(`bitmap_blocks ${h.bitmap_blocks} cannot hold max_mapnr_64 ${m64}`);
  }
  return out;
}

/**
 * Parse main and sub header. The layout is chosen from the machine name (utsname.machine:
 * i386 → `i386`, 32-bit ARM/MIPS/PowerPC/s390 → `ilp32`, 64-bit machines → `lp64`), in both
 * byte orders and both time_t widths, and checked for plausibility against the file (block
 * size, bitmap capacity, notes and VMCOREINFO inside the file, max_mapnr_64 against
 * max_mapnr). When no layout of the machine's family is plausible, every other layout is
 * tried, and the choice and its reason are reported in `layoutReason`/`layoutWarnings`.
 * Throws BAD_FIELD when no layout gives a sane main header.
 */
export async function readKdumpHeader(src: ByteSource): Promise<KdumpHeaderInfo> {
  const file = src.name;
  const head = await readExact(src, 0, Math.min(src.size, 4096), 'disk_dump_header');
  if (!isKdump(head)) throw new VmcoreError('BAD_MAGIC', 'not a kdump-compressed file', { file, offset: 0, field: 'signature' });
  if (head.length < DiskDumpHeader64.size) throw new VmcoreError('TRUNCATED', 'file ends inside the kdump header', { file, offset: 0 });
  const cands: Candidate[] = [];
  for (const le of [true, false]) {
    for (const choice of CHOICES) {
      const { main, sub } = kdumpStructs(choice);
      const h = main.read(head, 0, le, { file }) as ReturnType<typeof DiskDumpHeader64.read>;
      if (typeof h.timestamp_sec === 'number') h.timestamp_sec = BigInt(h.timestamp_sec);
      if (typeof h.timestamp_usec === 'number') h.timestamp_usec = BigInt(h.timestamp_usec);
      if (mainProblems(h, choice.time64).length) continue;
      const c: Candidate = { choice, le, h, problems: [] };
      if (h.signature === KDUMP_SIGNATURE && h.header_version >= 1) {
        const sb = await src.read(h.block_size, sub.size);
        if (sb.length < sub.size) c.problems.push('file ends inside the sub-header');
        else {
          try {
            c.sub = sub.read(sb, 0, le, { file, base: h.block_size }) as Record<string, number | bigint>;
            c.problems.push(...subProblems(c.sub, h, sub.size, src.size));
          } catch (e) {
            if (!(e instanceof VmcoreError)) throw e;
            c.problems.push(e.message);
          }
        }
      }
      cands.push(c);
    }
  }
  if (!cands.length) {
    const h = DiskDumpHeader64.read(head, 0, true, { file });
    throw new VmcoreError(
      'BAD_FIELD',
      `no byte order / layout gives a sane header (as 64-bit LE: block_size ${h.block_size}, sub_hdr_size ${h.sub_hdr_size}, bitmap_blocks ${h.bitmap_blocks}, max_mapnr ${h.max_mapnr}, machine "${h.machine}")`,
      { file, offset: 428, field: 'disk_dump_header.block_size' },
    );
  }
  const machine = cands[0]!.h.machine;
  const family = kdumpAbiOf(machine);
  const layoutWarnings: Warning[] = [];
  const fits = (c: Candidate) => c.problems.length === 0;
  let chosen = cands.find((c) => c.choice.abi === family && fits(c));
  let why: string;
  if (chosen) why = `machine "${machine}"`;
  else {
    chosen = cands.find(fits);
    if (chosen) {
      why = family ? `the ${ABI_TEXT[family]} of machine "${machine}" does not fit this file (${cands.find((c) => c.choice.abi === family)?.problems[0] ?? 'implausible main header'}); this is the only layout that does` : `machine "${machine}" does not name an ABI; this is the layout that fits the file`;
      // (a family whose main header does not even parse is a mislabelled machine, e.g. QEMU's
      // "i386" in the 64-bit header of a guest not in long mode: the reason says so, no warning)
      if (family && cands.some((c) => c.choice.abi === family)) layoutWarnings.push(warning('HEADER_LAYOUT_GUESSED', `${file}: header layout: ${why}`));
    } else {
      chosen = cands.find((c) => c.choice.abi === family) ?? cands[0]!;
      why = `no layout fits this file; using the ${ABI_TEXT[chosen.choice.abi]} (${chosen.problems.join('; ')})`;
      layoutWarnings.push(warning('HEADER_LAYOUT_GUESSED', `${file}: header layout: ${why}`));
    }
  }
  const { h, le, choice } = chosen;
  const layout: '64' | '32' = choice.abi === 'lp64' ? '64' : '32';
  const bs = h.block_size;
  const info: KdumpHeaderInfo = {
    signature: h.signature,
    headerVersion: h.header_version,
    layout,
    abi: choice.abi,
    time64: choice.time64,
    layoutReason: `${ABI_TEXT[choice.abi]}${choice.abi !== 'lp64' ? `, ${choice.time64 ? '64' : '32'}-bit time_t` : ''}, ${le ? 'little' : 'big'}-endian: ${why}`,
    layoutWarnings,
    littleEndian: le,
    utsname: { sysname: h.sysname, nodename: h.nodename, release: h.release, version: h.version, machine: h.machine, domainname: h.domainname },
    timestampSec: Number(h.timestamp_sec),
    timestampUsec: Number(h.timestamp_usec),
    status: h.status,
    blockSize: bs,
    subHdrSize: h.sub_hdr_size,
    bitmapBlocks: h.bitmap_blocks,
    maxMapnr32: h.max_mapnr,
    nrCpus: h.nr_cpus,
    currentCpu: h.current_cpu,
    physBase: 0n,
    dumpLevel: 0,
    split: 0,
    startPfn: 0,
    endPfn: 0,
    offsetVmcoreinfo: 0,
    sizeVmcoreinfo: 0,
    offsetNote: 0,
    sizeNote: 0,
    offsetEraseinfo: 0,
    sizeEraseinfo: 0,
    maxMapnr: h.max_mapnr,
  };
  const hv = h.header_version;
  if (h.signature === KDUMP_SIGNATURE && hv >= 1) {
    const S = kdumpStructs(choice).sub;
    const sb = await readExact(src, bs, S.size, 'kdump_sub_header');
    const s = S.read(sb, 0, le, { file, base: bs });
    info.physBase = typeof s.phys_base === 'bigint' ? s.phys_base : BigInt(s.phys_base);
    info.dumpLevel = s.dump_level;
    if (hv >= 2) {
      info.split = s.split;
      info.startPfn = s.start_pfn;
      info.endPfn = s.end_pfn;
    }
    if (hv >= 3) {
      info.offsetVmcoreinfo = s.offset_vmcoreinfo;
      info.sizeVmcoreinfo = s.size_vmcoreinfo;
    }
    if (hv >= 4) {
      info.offsetNote = s.offset_note;
      info.sizeNote = s.size_note;
    }
    if (hv >= 5) {
      info.offsetEraseinfo = s.offset_eraseinfo;
      info.sizeEraseinfo = s.size_eraseinfo;
    }
    if (hv >= 6) {
      info.startPfn = s.start_pfn_64;
      info.endPfn = s.end_pfn_64;
      info.maxMapnr = s.max_mapnr_64;
    }
  }
  return info;
}

/** The DUMP_DH_COMPRESSED_* bits of disk_dump_header.status that name a codec. */
const CODEC_STATUS_BITS = DUMP_DH_COMPRESSED_ZLIB | DUMP_DH_COMPRESSED_LZO | DUMP_DH_COMPRESSED_SNAPPY | DUMP_DH_COMPRESSED_ZSTD;
const CODEC_BY_FLAG: [number, CodecName][] = [
  [DUMP_DH_COMPRESSED_ZLIB, 'zlib'],
  [DUMP_DH_COMPRESSED_LZO, 'lzo'],
  [DUMP_DH_COMPRESSED_SNAPPY, 'snappy'],
  [DUMP_DH_COMPRESSED_ZSTD, 'zstd'],
];

/**
 * Why two kdump headers cannot be parts of one split set, or undefined when they can: both
 * carry the split flag (sub-header `split`, header_version 2+) and describe one machine and one
 * dump, as makedumpfile --split writes every part from one header (same utsname, timestamp,
 * max_mapnr, block_size, phys_base, nr_cpus; makedumpfile.c write_kdump_header), and their
 * own pfn ranges [start_pfn, end_pfn) do not overlap.
 */
export function splitSetMismatch(a: KdumpHeaderInfo, b: KdumpHeaderInfo): string | undefined {
  if (!a.split || !b.split) return 'no split flag in the kdump sub-header';
  const ua = a.utsname;
  const ub = b.utsname;
  const fields: [string, unknown, unknown][] = [
    ['max_mapnr', a.maxMapnr, b.maxMapnr],
    ['block_size', a.blockSize, b.blockSize],
    ['utsname', `${ua.sysname}|${ua.nodename}|${ua.release}|${ua.version}|${ua.machine}|${ua.domainname}`, `${ub.sysname}|${ub.nodename}|${ub.release}|${ub.version}|${ub.machine}|${ub.domainname}`],
    ['timestamp', `${a.timestampSec}.${a.timestampUsec}`, `${b.timestampSec}.${b.timestampUsec}`],
    ['phys_base', a.physBase, b.physBase],
    ['nr_cpus', a.nrCpus, b.nrCpus],
  ];
  const bad = fields.filter(([, x, y]) => x !== y).map(([n]) => n);
  if (bad.length) return `the headers differ in ${bad.join(', ')}`;
  if (a.startPfn < b.endPfn && b.startPfn < a.endPfn) return `their pfn ranges overlap (0x${a.startPfn.toString(16)}-0x${a.endPfn.toString(16)} and 0x${b.startPfn.toString(16)}-0x${b.endPfn.toString(16)})`;
  return undefined;
}

export function codecOfFlags(flags: number): CodecName | 'raw' | undefined {
  if (flags === 0) return 'raw';
  for (const [f, n] of CODEC_BY_FLAG) if (flags === f) return n;
  return undefined;
}

export function statusNames(status: number): string[] {
  const out: string[] = [];
  for (const [f, n] of CODEC_BY_FLAG) if (status & f) out.push(n);
  if (status & DUMP_DH_COMPRESSED_INCOMPLETE) out.push('incomplete');
  if (status & DUMP_DH_EXCLUDED_VMEMMAP) out.push('excluded-vmemmap');
  return out;
}

const POP8 = new Uint8Array(256).map((_, i) => {
  let c = 0;
  for (let v = i; v; v >>= 1) c += v & 1;
  return c;
});

function popcount(b: Uint8Array, from: number, to: number): number {
  let c = 0;
  for (let i = from; i < to; i++) c += POP8[b[i]!]!;
  return c;
}

interface Desc {
  offset: number;
  size: number;
  flags: number;
}

/** Entry `i` of a descriptor table as an object, or undefined past its end (area cut short). */
function descOf(t: PageDescTable, i: number): Desc | undefined {
  return t.has(i) ? { offset: t.offset(i), size: t.size(i), flags: t.flags(i) } : undefined;
}

/**
 * Why a page descriptor cannot describe a page, or undefined when it can. makedumpfile and QEMU
 * store a page compressed (size below block_size, one codec flag) or raw (flags 0, size
 * block_size); anything else is damage, and costs that page only (it reads as missing).
 */
export function descDamage(size: number, flags: number, blockSize: number): string | undefined {
  if (size === 0) return 'size 0';
  if (size > blockSize * 2 + 4096) return `size ${size}, larger than any compressed page`;
  const kind = codecOfFlags(flags);
  if (kind === undefined) return `unknown compression flags 0x${flags.toString(16)}`;
  if (kind === 'raw' && size !== blockSize) return `uncompressed page of size ${size}, not ${blockSize}`;
  return undefined;
}

/**
 * One kdump file. In a split set each file owns [startPfn, endPfn); a standalone file owns
 * [0, maxMapnr).
 */
export class KdumpFile {
  readonly file: string;
  readonly bitmapOffset: number;
  readonly bitmapBytes: number; // bytes of ONE bitmap
  readonly twoBitmaps: boolean;
  readonly descOffset: number;
  readonly ownStart: number;
  readonly ownEnd: number;
  /** Number of page descriptors (set bits of the dumpable bitmap inside the owned range). */
  numDescs = 0;
  /** Offset of the shared zero page, or -1. */
  zeroOffset = -1;
  readonly warnings: Warning[] = [];
  /** cumulative dumpable-bit count at the start of each bitmap block, relative to ownStart */
  private prefix = new Float64Array(0);
  private readonly bitmapCache = new LruCache<number, { bits: Uint8Array; sub: Uint16Array }>(64);
  private readonly descCache = new LruCache<number, Uint8Array>(64);
  private readonly pageCache = new LruCache<number, Uint8Array>(256);
  private readonly bitsPerBlock: number;

  /**
   * The one codec the header's status names (makedumpfile diskdump_mod.h DUMP_DH_COMPRESSED_*),
   * as makedumpfile and QEMU write it; undefined for none or several.
   */
  get fileCodec(): CodecName | undefined {
    const named = statusNames(this.h.status & CODEC_STATUS_BITS);
    return named.length === 1 ? (named[0] as CodecName) : undefined;
  }

  constructor(
    readonly src: ByteSource,
    readonly h: KdumpHeaderInfo,
    private readonly codecs: CodecRegistry,
  ) {
    this.file = src.name;
    const bs = h.blockSize;
    this.bitsPerBlock = bs * 8;
    this.bitmapOffset = (1 + h.subHdrSize) * bs;
    const total = h.bitmapBlocks * bs;
    const need = Math.ceil(h.maxMapnr / 8);
    this.twoBitmaps = total / 2 >= need;
    this.bitmapBytes = this.twoBitmaps ? total / 2 : total;
    this.descOffset = (1 + h.subHdrSize + h.bitmapBlocks) * bs;
    if (h.split) {
      this.ownStart = h.startPfn;
      this.ownEnd = Math.min(h.endPfn, h.maxMapnr);
    } else {
      this.ownStart = 0;
      this.ownEnd = h.maxMapnr;
    }
  }

  /** Validate geometry and build the prefix index (streams the dumpable bitmap once). */
  async init(): Promise<void> {
    const { h, src, file } = this;
    const bs = h.blockSize;
    if (h.maxMapnr > KDUMP_LIMITS.maxMapnr) throw new VmcoreError('OUT_OF_BOUNDS', `max_mapnr ${h.maxMapnr} is beyond any real machine (limit ${KDUMP_LIMITS.maxMapnr})`, { file, field: 'max_mapnr_64' });
    if (!this.twoBitmaps && this.bitmapBytes < Math.ceil(h.maxMapnr / 8)) {
      throw new VmcoreError('BAD_FIELD', `bitmap_blocks ${h.bitmapBlocks} too small for max_mapnr ${h.maxMapnr}`, { file, offset: 436, field: 'bitmap_blocks' });
    }
    if (this.descOffset > src.size) {
      throw new VmcoreError('TRUNCATED', `bitmaps end at 0x${this.descOffset.toString(16)}, beyond the end of the file (0x${src.size.toString(16)})`, {
        file,
        offset: this.bitmapOffset,
        field: 'bitmap_blocks',
      });
    }
    if (this.ownStart > this.ownEnd) throw new VmcoreError('BAD_FIELD', `split range start ${this.ownStart} > end ${this.ownEnd}`, { file, field: 'start_pfn_64' });
    const blocks = Math.ceil(h.maxMapnr / this.bitsPerBlock) + 1;
    this.prefix = new Float64Array(blocks + 1);
    const dumpBase = this.bitmapOffset + (this.twoBitmaps ? this.bitmapBytes : 0);
    let count = 0;
    const CH = 256 * bs;
    for (let blk = 0; blk * bs < this.bitmapBytes; ) {
      const n = Math.min(CH, this.bitmapBytes - blk * bs);
      const buf = await readExact(src, dumpBase + blk * bs, n, 'dumpable bitmap');
      for (let o = 0; o < n; o += bs, blk++) {
        if (blk < this.prefix.length) this.prefix[blk] = count;
        count += this.countOwned(buf.subarray(o, Math.min(n, o + bs)), blk * this.bitsPerBlock);
      }
    }
    for (let b = Math.ceil(this.bitmapBytes / bs); b < this.prefix.length; b++) this.prefix[b] = count;
    this.numDescs = count;
    if (this.descOffset + count * PAGE_DESC_SIZE > src.size) {
      const msg = `page descriptors end beyond the file (${count} descriptors); pages without one are reported missing`;
      if (!(h.status & DUMP_DH_COMPRESSED_INCOMPLETE)) this.warnings.push(warning('PAGES_MISSING', `${file}: ${msg}`));
    }
    // Shared zero page: the first page of the data area when it is all zeros.
    const dataStart = this.descOffset + count * PAGE_DESC_SIZE;
    if (count > 0 && dataStart + bs <= src.size) {
      const d0 = await this.descAt(0);
      if (d0 && d0.offset === dataStart && d0.flags === 0 && d0.size === bs) {
        const z = await src.read(dataStart, bs);
        if (z.length === bs && z.every((x) => x === 0)) this.zeroOffset = dataStart;
      } else {
        const z = await src.read(dataStart, bs);
        if (z.length === bs && z.every((x) => x === 0)) this.zeroOffset = dataStart;
      }
    }
  }

  /** Count set bits of a bitmap block, restricted to the owned pfn range. */
  private countOwned(bits: Uint8Array, firstPfn: number): number {
    const lo = Math.max(this.ownStart, firstPfn);
    const hi = Math.min(this.ownEnd, firstPfn + bits.length * 8);
    if (lo >= hi) return 0;
    return countBits(bits, lo - firstPfn, hi - firstPfn);
  }

  private async bitmapBlock(which: 0 | 1, blk: number): Promise<{ bits: Uint8Array; sub: Uint16Array }> {
    const key = which * 2 ** 40 + blk;
    const hit = this.bitmapCache.get(key);
    if (hit) return hit;
    const bs = this.h.blockSize;
    const base = this.bitmapOffset + (which === 1 && this.twoBitmaps ? this.bitmapBytes : 0);
    const bits = await readExact(this.src, base + blk * bs, Math.min(bs, this.bitmapBytes - blk * bs), which ? 'dumpable bitmap' : 'RAM bitmap');
    // sub[i] = owned set bits in bytes [0, 64*i) of this block
    const sub = new Uint16Array(Math.ceil(bits.length / 64) + 1);
    if (which === 1) {
      const firstPfn = blk * this.bitsPerBlock;
      let c = 0;
      for (let i = 0; i * 64 < bits.length; i++) {
        sub[i] = c;
        c += this.countOwned(bits.subarray(i * 64, Math.min(bits.length, i * 64 + 64)), firstPfn + i * 512);
      }
      sub[sub.length - 1] = c;
    }
    const v = { bits, sub };
    this.bitmapCache.set(key, v);
    return v;
  }

  async bit(which: 0 | 1, pfn: number): Promise<boolean> {
    if (pfn < 0 || pfn >= this.h.maxMapnr) return false;
    const blk = Math.floor(pfn / this.bitsPerBlock);
    const { bits } = await this.bitmapBlock(which, blk);
    const i = pfn - blk * this.bitsPerBlock;
    return ((bits[i >> 3] ?? 0) & (1 << (i & 7))) !== 0;
  }

  /** Index of pfn's descriptor (pfn must be dumpable and owned). */
  private async descIndex(pfn: number): Promise<number> {
    const blk = Math.floor(pfn / this.bitsPerBlock);
    const { bits, sub } = await this.bitmapBlock(1, blk);
    const i = pfn - blk * this.bitsPerBlock;
    const chunk = i >> 9; // 512 bits per 64-byte chunk
    const firstPfn = blk * this.bitsPerBlock + chunk * 512;
    const lo = Math.max(this.ownStart, firstPfn);
    const extra = pfn > lo ? countBits(bits, lo - blk * this.bitsPerBlock, i) : 0;
    return this.prefix[blk]! + sub[chunk]! + extra;
  }

  private async descAt(index: number): Promise<Desc | undefined> {
    const DPB = 170; // descriptors per 4080-byte cache block
    const cb = Math.floor(index / DPB);
    let buf = this.descCache.get(cb);
    if (!buf) {
      const start = this.descOffset + cb * DPB * PAGE_DESC_SIZE;
      const n = Math.min(DPB, this.numDescs - cb * DPB) * PAGE_DESC_SIZE;
      buf = await this.src.read(start, n);
      this.descCache.set(cb, buf);
    }
    return descOf(new PageDescTable(buf, this.h.littleEndian), index % DPB);
  }

  /** Sequential access to descriptors (1 MiB reads), for whole-dump walks. */
  descCursor(): (index: number) => Promise<Desc | undefined> {
    const PER = 43690; // descriptors per ~1 MiB read
    let start = -1;
    let table = new PageDescTable(new Uint8Array(0), this.h.littleEndian);
    return async (index: number) => {
      if (index < 0 || index >= this.numDescs) return undefined;
      if (start < 0 || index < start || index >= start + table.count) {
        start = index;
        const n = Math.min(PER, this.numDescs - index);
        table = new PageDescTable(await this.src.read(this.descOffset + index * PAGE_DESC_SIZE, n * PAGE_DESC_SIZE), this.h.littleEndian);
      }
      return descOf(table, index - start);
    };
  }

  async desc(pfn: number): Promise<Desc | undefined> {
    return this.descAt(await this.descIndex(pfn));
  }

  /**
   * The stored form of the `count` page frames from `pfn` (see {@link StoredPages}), read with
   * one read of their descriptors and one of their data. Undefined unless every one of them is
   * owned by this file, dumpable and clean ('data' with a known codec, or the shared zero page)
   * and their data lie within about twice their page size of each other: the caller then reads
   * page by page, which names any damage. `opts.buffer(bytes)` may give the memory the data are
   * read into (a Uint8Array of at least `bytes`; the result's `blob` is then its start), e.g. a
   * recycled buffer that goes to a worker thread.
   */
  async storedPages(pfn: number, count: number, opts?: StoredPagesOptions): Promise<StoredPages | undefined> {
    const bs = this.h.blockSize;
    const last = pfn + count - 1;
    if (count < 1 || pfn < this.ownStart || last >= this.ownEnd) return undefined;
    if (!(await this.bit(1, pfn)) || !(await this.bit(1, last))) return undefined;
    const first = await this.descIndex(pfn);
    // both ends dumpable and count - 1 descriptors apart: every pfn between them is dumpable
    if ((await this.descIndex(last)) - first !== count - 1 || first + count > this.numDescs) return undefined;
    const t = new PageDescTable(await this.descBytes(first, count), this.h.littleEndian);
    if (t.count !== count) return undefined;
    const codes = new Uint8Array(count);
    const offsets = new Uint32Array(count);
    const sizes = new Uint32Array(count);
    let lo = Infinity;
    let hi = 0;
    for (let i = 0; i < count; i++) {
      const off = t.offset(i);
      const size = t.size(i);
      const flags = t.flags(i);
      const st = this.stateOf(off, size, flags);
      if (st === 'zero') continue; // STORED_ZERO
      if (st !== 'data') return undefined;
      const kind = codecOfFlags(flags);
      if (kind === undefined || (kind !== 'raw' && !this.codecs.get(kind))) return undefined;
      codes[i] = STORED_CODES.indexOf(kind);
      lo = Math.min(lo, off);
      hi = Math.max(hi, off + size);
    }
    // the codec the header names (one, as makedumpfile and QEMU write it): its raw pages are the
    // ones that codec did not make smaller
    const fileCodec = this.fileCodec;
    const file = fileCodec ? { fileCodec } : {};
    if (hi === 0) return { codes, offsets, sizes, blob: new Uint8Array(0), ...file };
    if (hi - lo > count * bs * 2 + 65536) return undefined;
    for (let i = 0; i < count; i++) {
      if (codes[i] === STORED_ZERO) continue;
      offsets[i] = t.offset(i) - lo;
      sizes[i] = t.size(i);
    }
    const blob = await readExact(this.src, lo, hi - lo, `page data of pfns 0x${pfn.toString(16)}-0x${last.toString(16)}`, opts?.buffer?.(hi - lo));
    return { codes, offsets, sizes, blob, ...file };
  }

  /** The registered codec `name` (undefined when none). */
  codec(name: CodecName) {
    return this.codecs.get(name);
  }

  owns(pfn: number): boolean {
    return pfn >= this.ownStart && pfn < this.ownEnd;
  }

  async pageState(pfn: number): Promise<PageState> {
    if (!this.owns(pfn)) return 'hole';
    const dumpable = await this.bit(1, pfn);
    if (!dumpable) return (await this.bit(0, pfn)) ? 'excluded' : 'hole';
    return this.stateOfDesc(await this.desc(pfn));
  }

  stateOfDesc(d: Desc | undefined): PageState {
    return d ? this.stateOf(d.offset, d.size, d.flags) : 'missing';
  }

  /** State of a page from its descriptor's fields (offset -1: none; see PageDescTable). */
  private stateOf(offset: number, size: number, flags: number): PageState {
    if (offset <= 0) return 'missing';
    if (offset === this.zeroOffset && flags === 0 && size === this.h.blockSize) return 'zero';
    if (offset + size > this.src.size) return 'missing';
    if (descDamage(size, flags, this.h.blockSize)) return 'missing';
    return 'data';
  }

  async readPage(pfn: number): Promise<Uint8Array> {
    const hit = this.pageCache.get(pfn);
    if (hit) return hit;
    const bs = this.h.blockSize;
    const d = await this.desc(pfn);
    const st = this.stateOfDesc(d);
    if (st === 'zero') return new Uint8Array(bs);
    const descOff = this.descOffset + (await this.descIndex(pfn)) * PAGE_DESC_SIZE;
    if (d && d.offset > 0 && (d.size === 0 || d.size > bs * 2 + 4096)) {
      throw new VmcoreError('PAGE_DAMAGED', `page descriptor of pfn 0x${pfn.toString(16)} is damaged: size ${d.size}`, { file: this.file, offset: descOff, field: 'page_desc.size' });
    }
    if (d && d.offset > 0 && codecOfFlags(d.flags) === undefined) {
      throw new VmcoreError('PAGE_DAMAGED', `page descriptor of pfn 0x${pfn.toString(16)} is damaged: unknown compression flags 0x${d.flags.toString(16)}`, {
        file: this.file,
        offset: descOff + 12,
        field: 'page_desc.flags',
      });
    }
    if (st === 'missing' && d && d.offset > 0 && d.offset + d.size <= this.src.size && codecOfFlags(d.flags) === 'raw' && d.size !== bs) {
      throw new VmcoreError('DECOMPRESS', `uncompressed page of pfn 0x${pfn.toString(16)} has size ${d.size}, not ${bs}`, { file: this.file, offset: descOff, field: 'page_desc.size' });
    }
    if (st !== 'data' || !d) throw notPresent(pfn, st, bs, this.file);
    const raw = await readExact(this.src, d.offset, d.size, `page data of pfn 0x${pfn.toString(16)}`);
    let page: Uint8Array;
    const kind = codecOfFlags(d.flags);
    if (kind === 'raw') {
      if (d.size !== bs) {
        throw new VmcoreError('DECOMPRESS', `uncompressed page of pfn 0x${pfn.toString(16)} has size ${d.size}, not ${bs}`, {
          file: this.file,
          offset: descOff,
          field: 'page_desc.size',
        });
      }
      page = raw;
    } else if (kind === undefined) {
      throw new VmcoreError('BAD_FIELD', `unknown compression flags 0x${d.flags.toString(16)} for pfn 0x${pfn.toString(16)}`, {
        file: this.file,
        offset: descOff + 12,
        field: 'page_desc.flags',
      });
    } else {
      const codec = this.codecs.get(kind);
      if (!codec) throw new VmcoreError('CODEC_UNAVAILABLE', `no ${kind} codec available`, { file: this.file, offset: d.offset });
      try {
        page = codec.decompress(raw, bs);
      } catch (e) {
        throw new VmcoreError('DECOMPRESS', `${kind} page of pfn 0x${pfn.toString(16)} does not decompress to one page: ${(e as Error).message}`, {
          file: this.file,
          offset: d.offset,
          field: 'page data',
          cause: e,
        });
      }
    }
    this.pageCache.set(pfn, page);
    return page;
  }

  /** Runs over [start, end) ∩ owned range; pfns outside are not yielded. */
  /**
   * Descriptors [first, first + count) as raw bytes (fewer when the descriptor area is cut
   * short). Callers keep `count` bounded (one bitmap block's worth at most).
   */
  private async descBytes(first: number, count: number): Promise<Uint8Array> {
    const n = Math.max(0, Math.min(count, this.numDescs - first));
    if (n === 0) return new Uint8Array(0);
    return this.src.read(this.descOffset + first * PAGE_DESC_SIZE, n * PAGE_DESC_SIZE);
  }

  /** State of entry `i` of a descriptor table (no allocation: hot loop); past its end: missing. */
  private stateAt(t: PageDescTable, i: number): PageState {
    return t.has(i) ? this.stateOf(t.offset(i), t.size(i), t.flags(i)) : 'missing';
  }

  /**
   * The bitmap blocks over [start, end) ∩ owned range, in order: for each, the pfn of its bit 0
   * (`base`), the bits [i0, i1) of it inside the range, and its RAM (1st) and dumpable (2nd)
   * bitmap bytes. The one walk under `runs` and `mapRuns`.
   */
  private async *bitmapBlocks(start: number, end: number): AsyncGenerator<{ base: number; i0: number; i1: number; ram: Uint8Array; dmp: Uint8Array }> {
    const e0 = Math.min(end, this.ownEnd);
    const B = this.bitsPerBlock;
    for (let pfn = Math.max(start, this.ownStart); pfn < e0; ) {
      const blk = Math.floor(pfn / B);
      const base = blk * B;
      const blockEnd = Math.min(e0, base + B);
      yield { base, i0: pfn - base, i1: blockEnd - base, ram: (await this.bitmapBlock(0, blk)).bits, dmp: (await this.bitmapBlock(1, blk)).bits };
      pfn = blockEnd;
    }
  }

  /**
   * Runs over [start, end) ∩ owned range, block by block: two bitmap blocks and that block's
   * descriptors (at most 32768 × 24 bytes) are read, then classified in one synchronous pass.
   */
  async *runs(start: number, end: number): AsyncIterable<PageRun> {
    const runs = new RunBuilder<PageState>();
    const push = runs.push.bind(runs);
    for await (const { base, i0, i1, ram, dmp } of this.bitmapBlocks(start, end)) {
      const nd = countBits(dmp, i0, Math.min(i1, dmp.length * 8));
      const table = new PageDescTable(nd > 0 ? await this.descBytes(await this.descIndex(base + i0), nd) : new Uint8Array(0), this.h.littleEndian);
      let k = 0;
      for (let i = i0; i < i1; ) {
        const byte = i >> 3;
        const r = ram[byte] ?? 0;
        const m = dmp[byte] ?? 0;
        if ((i & 7) === 0 && i + 8 <= i1 && r === 0 && m === 0) {
          push(base + i, 8, 'hole');
          i += 8;
          continue;
        }
        const bit = 1 << (i & 7);
        const st: PageState = m & bit ? this.stateAt(table, k++) : r & bit ? 'excluded' : 'hole';
        push(base + i, 1, st);
        i++;
      }
      yield* runs.take();
    }
    yield* runs.finish();
  }

  /**
   * Runs over [start, end) ∩ owned range from the two bitmaps alone (no descriptor is read):
   * a dumpable page is 'stored' when its descriptor lies inside the file, else 'missing'.
   * Reads 2 bits a page (256 KiB of bitmaps for 4 GiB of 4 KiB pages).
   */
  async *mapRuns(start: number, end: number): AsyncIterable<MapRun> {
    // descriptors wholly inside the file; the ones after them are cut off
    const inFile = Math.max(0, Math.floor((this.src.size - this.descOffset) / PAGE_DESC_SIZE));
    let k = -1; // dumpable pages below the current one
    const runs = new RunBuilder<MapRun['state']>();
    const push = runs.push.bind(runs);
    for await (const { base, i0, i1, ram, dmp } of this.bitmapBlocks(start, end)) {
      if (k < 0) k = await this.descIndex(base + i0);
      for (let i = i0; i < i1; ) {
        const byte = i >> 3;
        const r = ram[byte] ?? 0;
        const m = dmp[byte] ?? 0;
        if ((i & 7) === 0 && i + 8 <= i1 && m === 0) {
          if (r === 0 || r === 0xff) {
            push(base + i, 8, r ? 'excluded' : 'hole');
            i += 8;
            continue;
          }
        } else if ((i & 7) === 0 && i + 8 <= i1 && m === 0xff && k + 8 <= inFile) {
          push(base + i, 8, 'stored');
          k += 8;
          i += 8;
          continue;
        }
        const bit = 1 << (i & 7);
        const st: MapRun['state'] = m & bit ? (k++ < inFile ? 'stored' : 'missing') : r & bit ? 'excluded' : 'hole';
        push(base + i, 1, st);
        i++;
      }
      yield* runs.take();
    }
    yield* runs.finish();
  }

  /**
   * Whether the file is cut short inside its page data: the last stored page (pages are stored
   * in pfn order, so it lies furthest) ends beyond the end of the file. Reads the descriptors
   * back from the last one inside the file, past shared zero pages, 4096 at most (96 KiB); used
   * when the descriptors are not all read.
   */
  async dataCutShort(): Promise<boolean> {
    const inFile = Math.min(this.numDescs, Math.max(0, Math.floor((this.src.size - this.descOffset) / PAGE_DESC_SIZE)));
    for (let i = inFile - 1; i >= Math.max(0, inFile - 4096); i--) {
      const d = await this.descAt(i);
      if (!d || d.offset <= 0 || d.offset === this.zeroOffset) continue;
      return d.offset + d.size > this.src.size;
    }
    return false;
  }

  /** Count pages by codec: one sequential pass over the descriptors, 1 MiB at a time. */
  async codecCounts(): Promise<Record<string, number>> {
    const out: Record<string, number> = {};
    const PER = 43690;
    for (let first = 0; first < this.numDescs; first += PER) {
      const t = new PageDescTable(await this.descBytes(first, PER), this.h.littleEndian);
      const n = Math.min(PER, this.numDescs - first);
      for (let i = 0; i < n; i++) {
        const st = this.stateAt(t, i);
        let k: string;
        if (st === 'zero') k = 'zero (shared)';
        else if (st === 'missing' && t.has(i) && !t.offsetIsZero(i) && descDamage(t.size(i), t.flags(i), this.h.blockSize)) k = 'damaged';
        else if (st === 'missing') k = 'missing';
        else {
          const flags = t.flags(i);
          k = codecOfFlags(flags) ?? `flags 0x${flags.toString(16)}`;
        }
        out[k] = (out[k] ?? 0) + 1;
      }
    }
    return out;
  }
}

function countBits(bits: Uint8Array, fromBit: number, toBit: number): number {
  if (toBit <= fromBit) return 0;
  let c = 0;
  let b = fromBit;
  while (b < toBit && b & 7) {
    if (bits[b >> 3]! & (1 << (b & 7))) c++;
    b++;
  }
  const fullEnd = toBit & ~7;
  if (b < fullEnd) {
    c += popcount(bits, b >> 3, fullEnd >> 3);
    b = fullEnd;
  }
  while (b < toBit) {
    if (bits[b >> 3]! & (1 << (b & 7))) c++;
    b++;
  }
  return c;
}

/** A kdump dump: one file or a split set. */
export class KdumpDump implements Dump {
  readonly format = 'kdump' as const;
  readonly variant: string;
  readonly files: { name: string; size: number }[];
  readonly arch: string;
  readonly littleEndian: boolean;
  readonly is64: boolean;
  readonly pageSize: number;
  readonly maxPfn: number;
  readonly warnings: Warning[] = [];
  /** readPhys's buffer for the stored form of large reads (BLOB_SCRATCH_MAX at most). */
  private blobScratch: Uint8Array | undefined;
  /**
   * Page frames that large reads (readPhys) decoded whole and found not all zeros, as runs
   * [start, end) laid flat, ascending, at most CHECKED_MAX_RUNS: storedPages marks them
   * (StoredPages.checked), and a conversion passes them on as they are stored without decoding
   * them a second time (page filtering reads every struct page before the pages are written).
   */
  private checkedRuns: number[] = [];
  notes: ElfNote[] = [];
  vmcoreinfoText: string | undefined;

  private constructor(
    readonly parts: KdumpFile[],
    readonly flattened: boolean,
  ) {
    const h = parts[0]!.h;
    this.files = parts.map((p) => ({ name: p.file, size: p.src.size }));
    this.pageSize = h.blockSize;
    this.maxPfn = h.maxMapnr;
    this.littleEndian = h.littleEndian;
    this.is64 = h.layout === '64';
    this.arch = normaliseArch(h.utsname.machine) ?? 'unknown';
    const codecs = statusNames(h.status).filter((s) => ['zlib', 'lzo', 'snappy', 'zstd'].includes(s));
    this.variant =
      `${h.signature === DISKDUMP_SIGNATURE ? 'diskdump' : 'kdump'} v${h.headerVersion}` +
      `${flattened ? ' flattened' : ''}${parts.length > 1 ? ` split ×${parts.length}` : ''}` +
      `${codecs.length ? ' ' + codecs.join('+') : ' uncompressed'}`;
  }

  static async open(sources: { src: ByteSource; flattened: boolean }[], codecs: CodecRegistry): Promise<KdumpDump> {
    const parts: KdumpFile[] = [];
    for (const { src } of sources) {
      const h = await readKdumpHeader(src);
      const f = new KdumpFile(src, h, codecs);
      await f.init();
      parts.push(f);
    }
    parts.sort((a, b) => a.ownStart - b.ownStart);
    if (parts.length > 1) {
      for (const p of parts) {
        if (!p.h.split) throw new VmcoreError('USAGE', 'several files given but this one is not part of a split set', { file: p.file, field: 'split' });
      }
      for (let i = 1; i < parts.length; i++) {
        const a = parts[i - 1]!;
        const b = parts[i]!;
        if (a.ownEnd > b.ownStart) throw new VmcoreError('BAD_FIELD', `split ranges overlap with ${a.file}`, { file: b.file, field: 'start_pfn_64' });
        const differ = splitSetMismatch(a.h, b.h);
        if (differ) throw new VmcoreError('USAGE', `not a part of one split set with ${a.file}: ${differ} (to compare two dumps: vmcore diff)`, { file: b.file });
      }
    }
    const d = new KdumpDump(
      parts,
      sources.some((s) => s.flattened),
    );
    await d.loadNotes();
    for (const p of parts) d.warnings.push(...p.h.layoutWarnings, ...p.warnings);
    if (parts.length === 1 && parts[0]!.h.split) {
      const p = parts[0]!;
      d.warnings.push(warning('SPLIT_SET_INCOMPLETE', `${p.file}: one part of a split set (pfns 0x${p.ownStart.toString(16)}-0x${p.ownEnd.toString(16)}); open all parts together`));
    } else if (parts.length > 1) {
      let expect = 0;
      for (const p of parts) {
        if (p.ownStart !== expect) d.warnings.push(warning('SPLIT_SET_INCOMPLETE', `split set has a gap: pfns 0x${expect.toString(16)}-0x${p.ownStart.toString(16)} are in no file`));
        expect = p.ownEnd;
      }
      if (expect < d.maxPfn) d.warnings.push(warning('SPLIT_SET_INCOMPLETE', `split set ends at pfn 0x${expect.toString(16)}, below max_mapnr 0x${d.maxPfn.toString(16)}`));
    }
    if (parts.some((p) => p.h.status & DUMP_DH_COMPRESSED_INCOMPLETE)) d.warnings.push(warning('MARKED_INCOMPLETE', 'the dump is marked incomplete (DUMP_DH_COMPRESSED_INCOMPLETE): its writer stopped early, or left out pages its input lacked'));
    return d;
  }

  private async loadNotes(): Promise<void> {
    const p = this.parts[0]!;
    const h = p.h;
    const file = p.file;
    const le = h.littleEndian;
    if (h.sizeNote > 0) {
      if (h.sizeNote > MAX_NOTE_BYTES) throw new VmcoreError('OUT_OF_BOUNDS', `size_note ${h.sizeNote} is too large`, { file, field: 'size_note' });
      const b = await readExact(p.src, h.offsetNote, h.sizeNote, 'note blob (offset_note/size_note)');
      this.notes = parseNotes(b, le, { file, base: h.offsetNote, warnings: this.warnings });
    }
    const vn = findVmcoreinfoNote(this.notes);
    if (vn) this.vmcoreinfoText = trimText(vn.desc);
    else if (h.sizeVmcoreinfo > 0 && h.offsetVmcoreinfo > 0) {
      if (h.sizeVmcoreinfo > MAX_NOTE_BYTES) throw new VmcoreError('OUT_OF_BOUNDS', `size_vmcoreinfo ${h.sizeVmcoreinfo} is too large`, { file, field: 'size_vmcoreinfo' });
      const b = await readExact(p.src, h.offsetVmcoreinfo, h.sizeVmcoreinfo, 'VMCOREINFO (offset_vmcoreinfo/size_vmcoreinfo)');
      this.vmcoreinfoText = trimText(b);
    }
  }

  private partFor(pfn: number): KdumpFile | undefined {
    for (const p of this.parts) if (p.owns(pfn)) return p;
    return undefined;
  }

  async pageState(pfn: number): Promise<PageState> {
    const p = this.partFor(pfn);
    return p ? p.pageState(pfn) : 'hole';
  }

  pageRuns(start = 0, end = this.maxPfn): AsyncIterable<PageRun> {
    return this.acrossParts(start, end, (p, s, e) => p.runs(s, e));
  }

  /** Runs from the bitmaps alone (see `Dump.mapRuns`). */
  mapRuns(start = 0, end = this.maxPfn): AsyncIterable<MapRun> {
    return this.acrossParts(start, end, (p, s, e) => p.mapRuns(s, e));
  }

  /** The runs of every part over [start, end), in pfn order, merged; pfns in no part are holes. */
  private async *acrossParts<R extends { startPfn: number; endPfn: number; state: string }>(start: number, end: number, runsOf: (p: KdumpFile, s: number, e: number) => AsyncIterable<R>): AsyncIterable<R> {
    end = Math.min(end, this.maxPfn);
    let cur: R | undefined;
    let pos = start;
    const emit = function* (r: R): Generator<R> {
      if (r.endPfn <= r.startPfn) return;
      if (cur && cur.state === r.state && cur.endPfn === r.startPfn) cur.endPfn = r.endPfn;
      else {
        if (cur) yield cur;
        cur = { ...r };
      }
    };
    const hole = (s: number, e: number) => ({ startPfn: s, endPfn: e, state: 'hole' }) as R;
    for (const p of this.parts) {
      if (p.ownEnd <= pos || p.ownStart >= end) continue;
      if (p.ownStart > pos) yield* emit(hole(pos, p.ownStart));
      for await (const r of runsOf(p, pos, end)) yield* emit(r);
      pos = Math.min(end, p.ownEnd);
    }
    if (pos < end) yield* emit(hole(pos, end));
    if (cur) yield cur;
  }

  /** Whether some part is cut short inside its page data (one descriptor read a part). */
  async dataCutShort(): Promise<boolean> {
    for (const p of this.parts) if (await p.dataCutShort()) return true;
    return false;
  }

  async readPage(pfn: number): Promise<Uint8Array> {
    const p = this.partFor(pfn);
    if (!p) throw notPresent(pfn, 'hole', this.pageSize, this.files[0]?.name);
    const st = await p.pageState(pfn);
    if (st === 'zero') return new Uint8Array(this.pageSize);
    // a missing page may have a damaged descriptor: the part names the damage
    if (st !== 'data' && st !== 'missing') throw notPresent(pfn, st, this.pageSize, p.file);
    return p.readPage(pfn);
  }

  /**
   * The stored form of `count` consecutive page frames from `pfn` when one file holds them all
   * cleanly (KdumpFile.storedPages, `scratch` as there), else undefined (read them page by page).
   */
  async storedPages(pfn: number, count: number, opts?: StoredPagesOptions): Promise<StoredPages | undefined> {
    const p = this.partFor(pfn);
    const st = p && p.owns(pfn + count - 1) ? await p.storedPages(pfn, count, opts) : undefined;
    if (st && this.checkedRuns.length > 0) {
      const checked = this.checkedIn(pfn, count);
      if (checked) st.checked = checked;
    }
    return st;
  }

  /** Records the pages of `st` (from `pfn`, decoded into `pages`) that are not all zeros (checkedRuns). */
  private noteChecked(pfn: number, st: StoredPages, pages: Uint8Array): void {
    const runs = this.checkedRuns;
    const ps = this.pageSize;
    const n = st.codes.length;
    for (let i = 0; i < n; ) {
      // runs of pages that decoded to something other than zeros
      while (i < n && (st.codes[i] === STORED_ZERO || isZeroPage(pages.subarray(i * ps, (i + 1) * ps)))) i++;
      const start = i;
      while (i < n && st.codes[i] !== STORED_ZERO && !isZeroPage(pages.subarray(i * ps, (i + 1) * ps))) i++;
      if (i === start) continue;
      const a = pfn + start;
      const b = pfn + i;
      const last = runs.length - 1;
      // ascending only (the struct page blocks are read in order); a read out of order is not noted
      if (last >= 0 && a < runs[last]!) continue;
      if (last >= 0 && a === runs[last]!) runs[last] = b;
      else if (runs.length < CHECKED_MAX_RUNS * 2) runs.push(a, b);
    }
  }

  /** checked for `count` page frames from `pfn` (StoredPages.checked), or undefined when none is. */
  private checkedIn(pfn: number, count: number): Uint8Array | undefined {
    const runs = this.checkedRuns;
    // the first run that ends after pfn
    let lo = 0;
    let hi = runs.length / 2;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (runs[mid * 2 + 1]! <= pfn) lo = mid + 1;
      else hi = mid;
    }
    let out: Uint8Array | undefined;
    for (let r = lo; r < runs.length / 2 && runs[r * 2]! < pfn + count; r++) {
      out ??= new Uint8Array(count);
      out.fill(1, Math.max(0, runs[r * 2]! - pfn), Math.min(count, runs[r * 2 + 1]! - pfn));
    }
    return out;
  }

  /**
   * Physical memory as readPhysGeneric reads it; a read of STORED_READ_MIN_PAGES pages or more
   * (the struct page blocks of page filtering) decompresses them from one read of the file
   * (storedPages) and falls back to the page-by-page path, which names the damage, when that is
   * not possible. Smaller reads go page by page through the decompressed-page cache.
   */
  async readPhys(addr: number, length: number, opts?: ReadPhysOptions): Promise<Uint8Array> {
    const ps = this.pageSize;
    const pfn = Math.floor(addr / ps);
    const end = Math.ceil((addr + length) / ps);
    if (Number.isSafeInteger(addr) && Number.isSafeInteger(length) && addr >= 0 && end - pfn >= STORED_READ_MIN_PAGES && end - pfn <= 4096 && end <= this.maxPfn) {
      // the stored bytes go to this reader's scratch (they do not leave this call; a concurrent
      // read finds it taken and allocates), the pages to the caller's `into` when it is large
      // enough: fresh memory for each large read costs a page fault per 4 KiB, on some machines
      // more than the decoding (bench/README.md, "Page faults")
      let scratch = this.blobScratch;
      this.blobScratch = undefined;
      try {
        const st = await this.storedPages(pfn, end - pfn, { buffer: (n) => (scratch && scratch.length >= n ? scratch : (scratch = new Uint8Array(n))) });
        if (st) {
          const n = (end - pfn) * ps;
          const buf = opts?.into && opts.into.length >= n ? opts.into.subarray(0, n) : new Uint8Array(n);
          if (decodeStoredPages(st, buf, ps, (name) => this.codec(name)) === undefined) {
            this.noteChecked(pfn, st, buf);
            return buf.subarray(addr - pfn * ps, addr - pfn * ps + length);
          }
        }
      } finally {
        if (scratch && scratch.length <= BLOB_SCRATCH_MAX) this.blobScratch = scratch;
      }
    }
    return readPhysGeneric(this, addr, length, opts, this.files[0]?.name);
  }

  private codec(name: CodecName) {
    return this.parts[0]!.codec(name);
  }

  /**
   * When every file opened is a split part whose own pfn range is empty (start_pfn == end_pfn,
   * kdump sub-header), why it holds no page frames and why that is normal; else undefined.
   * makedumpfile --split writes every file it is given, each with the next range of pfns
   * (makedumpfile.c, writeout_multiple_dumpfiles); once the ranges before a part reach
   * max_mapnr, the parts left get an empty range at max_mapnr (makedumpfile 1.7.2, `--split` of
   * the 128 MiB sample into four parts: the first holds every pfn, the other three 0x8000-0x8000;
   * test/fixtures/makedumpfile-split-empty-part.kdump.gz).
   */
  private emptySplitReason(): string | undefined {
    if (!this.parts.every((x) => x.h.split && x.ownStart === x.ownEnd)) return undefined;
    const at = this.parts.map((x) => `${x.file}: start_pfn == end_pfn == 0x${x.ownStart.toString(16)}`).join('; ');
    const why =
      this.parts.every((x) => x.ownStart >= this.maxPfn)
        ? `the parts before it already hold every pfn up to max_mapnr 0x${this.maxPfn.toString(16)}, and makedumpfile --split writes every file it is given, the ones left with an empty range`
        : 'makedumpfile --split writes every file it is given, and a part can get an empty range while the other parts hold the pages';
    return `the split part holds no page frames: its pfn range is empty (${at}). That is normal: ${why}; open all parts together for the memory`;
  }

  async details(opts: DetailsOptions = {}): Promise<FormatDetails> {
    const p = this.parts[0]!;
    const h = p.h;
    const census = (opts.codecs ?? 'all') === 'all';
    const codecs: Record<string, number> = {};
    if (census) for (const part of this.parts) for (const [k, v] of Object.entries(await part.codecCounts())) codecs[k] = (codecs[k] ?? 0) + v;
    const hints: ProducerHint[] = [];
    const hint = (code: ProducerHintCode, text: string) => hints.push({ code, text });
    const qemuNote = this.notes.some((n) => n.name.startsWith('QEMU'));
    const utsOnlyMachine = !h.utsname.sysname && !h.utsname.release && !!h.utsname.machine;
    if (qemuNote) hint('qemu_cpu_notes', 'QEMU CPU-state notes');
    if (utsOnlyMachine) hint('uts_only_machine', 'header utsname has only machine set');
    if (h.timestampSec === 0 && h.timestampUsec === 0) hint('timestamp_zero', 'header timestamp 0');
    if (this.flattened) hint('flattened', 'flattened format');
    {
      const made = producerNoteText(this.notes);
      if (made !== undefined) hint('vmcore_note', `vmcore producer note: written by ${made}`);
    }
    if (h.utsname.sysname === 'Linux' && h.utsname.release) hint('uts_from_kernel', 'header utsname filled from the kernel');
    return {
      header: {
        signature: h.signature,
        header_version: h.headerVersion,
        layout: h.layout === '64' ? '64-bit' : '32-bit',
        abi: h.abi,
        time64: h.time64,
        layout_reason: h.layoutReason,
        endian: h.littleEndian ? 'little' : 'big',
        // as text (UTF-8 when valid); the fields stay bytes for writers (headerText)
        utsname: Object.fromEntries(Object.entries(h.utsname).map(([k, v]) => [k, headerText(v)])),
        timestamp: { sec: h.timestampSec, usec: h.timestampUsec },
        status: h.status,
        status_flags: statusNames(h.status),
        block_size: h.blockSize,
        sub_hdr_size: h.subHdrSize,
        bitmap_blocks: h.bitmapBlocks,
        max_mapnr: h.maxMapnr32,
        max_mapnr_64: h.maxMapnr,
        nr_cpus: h.nrCpus,
        phys_base: '0x' + h.physBase.toString(16),
        dump_level: h.dumpLevel,
        split: h.split,
        start_pfn: h.startPfn,
        end_pfn: h.endPfn,
        offset_vmcoreinfo: h.offsetVmcoreinfo,
        size_vmcoreinfo: h.sizeVmcoreinfo,
        offset_note: h.offsetNote,
        size_note: h.sizeNote,
        offset_eraseinfo: h.offsetEraseinfo,
        size_eraseinfo: h.sizeEraseinfo,
        bitmaps: p.twoBitmaps ? 2 : 1,
        descriptors: this.parts.reduce((a, x) => a + x.numDescs, 0),
        parts: this.parts.map((x) => ({ file: x.file, start_pfn: x.ownStart, end_pfn: x.ownEnd })),
      },
      ...(census ? { codecs } : {}),
      headerPhysBase: h.physBase,
      utsname: h.utsname,
      timestamp: h.timestampSec || undefined,
      nrCpus: h.nrCpus,
      incomplete: this.parts.some((x) => (x.h.status & DUMP_DH_COMPRESSED_INCOMPLETE) !== 0),
      producerHints: hints,
      noMemoryReason: this.emptySplitReason(),
    };
  }

  async close(): Promise<void> {
    for (const p of this.parts) await p.src.close?.();
  }
}

function trimText(b: Uint8Array): string {
  let end = b.length;
  while (end > 0 && b[end - 1] === 0) end--;
  return latin1(b.subarray(0, end));
}

export function normaliseArch(machine: string): string | undefined {
  if (!machine) return undefined;
  if (/^i[3-6]86$/.test(machine)) return 'i386';
  if (machine === 'arm64') return 'aarch64';
  return machine;
}

/** The largest stored-page buffer a KdumpDump keeps between large reads (readPhys). */
const BLOB_SCRATCH_MAX = 8 << 20;

/** At most this many runs of checked pages are kept (KdumpDump.checkedRuns: 1 MiB). */
const CHECKED_MAX_RUNS = 65536;

/** Reads of at least this many pages go through storedPages (fewer: the page cache serves repeats). */
export const STORED_READ_MIN_PAGES = 8;

/** Codes of {@link StoredPages.codes}: index into this list. */
export const STORED_CODES = ['zero', 'raw', 'zlib', 'lzo', 'snappy', 'zstd'] as const;
/** The shared zero page: nothing stored. */
export const STORED_ZERO = 0;
export const STORED_RAW = 1;

/**
 * Consecutive pages as a kdump file stores them: per page a code (STORED_CODES), the offset of
 * its bytes in `blob` and their size. Made by KdumpFile.storedPages; decoded by
 * {@link decodeStoredPages} (on the reading thread or on a worker).
 */
export interface StoredPages {
  codes: Uint8Array;
  offsets: Uint32Array;
  sizes: Uint32Array;
  blob: Uint8Array;
  /**
   * The one codec the file's header names (disk_dump_header.status DUMP_DH_COMPRESSED_*,
   * makedumpfile diskdump_mod.h): its writer stored a page raw when that codec did not make it
   * smaller. Absent when the header names none or several.
   */
  fileCodec?: CodecName;
  /**
   * 1 for a page that this reader has already decoded whole from these stored bytes and found
   * not all zeros (KdumpDump.storedPages): it need not be decoded again to be passed on.
   */
  checked?: Uint8Array;
}

/** Options of KdumpFile.storedPages. */
export interface StoredPagesOptions {
  /** Memory for the stored bytes: a Uint8Array of at least `bytes` (else the source's own). */
  buffer?: (bytes: number) => Uint8Array | undefined;
}

/** Where {@link decodeStoredPages} puts page i: at `base + i * stride` of `out`. */
export interface StoredLayout {
  base: number;
  stride: number;
}

/**
 * Decode stored pages into `out` (codes.length × pageSize bytes; zero pages are written as zeros,
 * so `out` may be a recycled buffer). `layout` places page i at base + i × stride instead of
 * i × pageSize (stride ≥ pageSize: room between the pages, e.g. for a record header). Codecs
 * with `decompressInto` decode in place, the others through a buffer of their own. Returns
 * undefined on success, else the index of the first page that does not decode to exactly one
 * page (the caller then reads page by page, which reports the damage with its file offset).
 */
export function decodeStoredPages(
  st: StoredPages,
  out: Uint8Array,
  pageSize: number,
  codec: (name: CodecName) => Pick<Codec, 'decompress' | 'decompressInto'> | undefined,
  layout: StoredLayout = { base: 0, stride: pageSize },
): number | undefined {
  const n = st.codes.length;
  for (let i = 0; i < n; i++) {
    const o = layout.base + i * layout.stride;
    if (!decodeStoredPage(st, i, out.subarray(o, o + pageSize), codec)) return i;
  }
  return undefined;
}

/**
 * Decode stored page `i` of `st` into `page` (one page: zeros for the shared zero page). True
 * when it decodes to exactly `page.length` bytes; false for a damaged page (wrong raw size, a
 * codec not in `codec`, a stream that fails or is too short or too long).
 */
export function decodeStoredPage(
  st: StoredPages,
  i: number,
  page: Uint8Array,
  codec: (name: CodecName) => Pick<Codec, 'decompress' | 'decompressInto'> | undefined,
): boolean {
  const pageSize = page.length;
  const c = st.codes[i]!;
  if (c === STORED_ZERO) {
    page.fill(0);
    return true;
  }
  const src = st.blob.subarray(st.offsets[i]!, st.offsets[i]! + st.sizes[i]!);
  if (c === STORED_RAW) {
    if (src.length !== pageSize) return false;
    page.set(src);
    return true;
  }
  const name = STORED_CODES[c] as CodecName | undefined;
  const impl = name ? codec(name) : undefined;
  if (!impl) return false;
  try {
    if (impl.decompressInto) return impl.decompressInto(src, page) === pageSize;
    const d = impl.decompress(src, pageSize);
    if (d.length !== pageSize) return false;
    page.set(d);
    return true;
  } catch {
    return false;
  }
}

/** Joins consecutive pieces of one state into runs; `take` hands over the runs already closed. */
class RunBuilder<S> {
  private cur: { startPfn: number; endPfn: number; state: S } | undefined;
  private closed: { startPfn: number; endPfn: number; state: S }[] = [];

  push(pfn: number, n: number, state: S): void {
    const c = this.cur;
    if (c && c.state === state && c.endPfn === pfn) c.endPfn = pfn + n;
    else {
      if (c) this.closed.push(c);
      this.cur = { startPfn: pfn, endPfn: pfn + n, state };
    }
  }

  take(): { startPfn: number; endPfn: number; state: S }[] {
    const out = this.closed;
    this.closed = [];
    return out;
  }

  /** The closed runs and the open one. */
  finish(): { startPfn: number; endPfn: number; state: S }[] {
    const out = this.take();
    if (this.cur) out.push(this.cur);
    this.cur = undefined;
    return out;
  }
}
