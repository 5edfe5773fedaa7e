/**
 * kdump-compressed writer: pure layout, header, bitmap and descriptor builders (portable, no
 * I/O). Pages arrive already compressed; the caller places the returned byte ranges.
 *
 * File layout (reference formats.md §1.2), block = page size:
 *   block 0                      disk_dump_header (header_version 6)
 *   block 1                      kdump_sub_header, immediately followed by the ELF note blob
 *   block 1+sub_hdr_size         1st bitmap (RAM), then 2nd bitmap (dumped pages)
 *   descOffset                   page_desc[numDumpable], ascending pfn
 *   dataOffset                   [shared zero page] then page data, concatenated
 *
 * Streaming design: the number of dumped pages (set bits of the 2nd bitmap) is known before any
 * data is read (it comes from the source's page states or the declared memory ranges; zero pages
 * stay "dumped" and point at the one shared zero page, as makedumpfile -d 1 and QEMU do). So the
 * descriptor area can be reserved up front, data written in one pass, and each batch's
 * descriptors placed at their final offset as soon as the batch is written: no descriptor table
 * is ever held in memory. Bitmaps (max_pfn/8 bytes each) and the headers are written last.
 */
import { KDUMP_LIMITS } from '../../limits.js';
import { PAGE_RAW, PAGE_ZERO, type CompressedBatch, type OutputCodec } from '../batch.js';
import { VmcoreError } from '../../errors.js';
import { buildNotes, type ElfNote } from '../elf/notes.js';
import {
  DiskDumpHeader32,
  DiskDumpHeader64,
  DUMP_DH_COMPRESSED_INCOMPLETE,
  DUMP_DH_COMPRESSED_LZO,
  DUMP_DH_COMPRESSED_SNAPPY,
  DUMP_DH_COMPRESSED_ZLIB,
  DUMP_DH_COMPRESSED_ZSTD,
  KDUMP_SIGNATURE,
  KdumpSubHeader32Pad,
  KdumpSubHeader64,
  PAGE_DESC_SIZE,
  PageDescTable,
  kdumpStructs,
  type KdumpAbi,
  type KdumpLayoutChoice,
} from './structs.js';

export const KDUMP_HEADER_VERSION = 6;

export type { OutputCodec, CompressedBatch };

export function codecFlag(c: OutputCodec): number {
  switch (c) {
    case 'zlib': return DUMP_DH_COMPRESSED_ZLIB;
    case 'lzo': return DUMP_DH_COMPRESSED_LZO;
    case 'snappy': return DUMP_DH_COMPRESSED_SNAPPY;
    case 'zstd': return DUMP_DH_COMPRESSED_ZSTD;
    case 'none': return 0;
  }
}

import type { Utsname } from '../../dump.js';
export type { Utsname };

/** One write of `bytes` at `offset` of an output file. */
export interface Placement {
  offset: number;
  bytes: Uint8Array;
}

/** LSB-first page bitmap indexed by absolute pfn (kdump bitmaps). */
export class PfnBitmap {
  readonly bytes: Uint8Array;
  constructor(readonly maxPfn: number, byteLength = Math.ceil(maxPfn / 8)) {
    this.bytes = new Uint8Array(byteLength);
  }
  get(pfn: number): boolean {
    return (this.bytes[pfn >>> 3]! & (1 << (pfn & 7))) !== 0;
  }
  set(pfn: number): void {
    this.bytes[Math.floor(pfn / 8)]! |= 1 << (pfn & 7);
  }
  /** Set bits [start, end). */
  setRange(start: number, end: number): void {
    let p = start;
    while (p < end && (p & 7) !== 0) this.set(p++);
    const fullEnd = end - (end & 7);
    if (p < fullEnd) {
      this.bytes.fill(0xff, p / 8, fullEnd / 8);
      p = fullEnd;
    }
    while (p < end) this.set(p++);
  }
  /** Clear every bit outside [start, end). */
  keepOnly(start: number, end: number): void {
    for (let p = 0; p < start && p < this.maxPfn; ) {
      if ((p & 7) === 0 && p + 8 <= start) {
        this.bytes[p / 8] = 0;
        p += 8;
      } else {
        this.bytes[p >>> 3]! &= ~(1 << (p & 7));
        p++;
      }
    }
    for (let p = end; p < this.bytes.length * 8; ) {
      if ((p & 7) === 0) {
        this.bytes.fill(0, p / 8);
        break;
      }
      this.bytes[p >>> 3]! &= ~(1 << (p & 7));
      p++;
    }
  }
  /** Number of set bits in [start, end). */
  count(start = 0, end = this.maxPfn): number {
    let n = 0;
    let p = start;
    while (p < end && (p & 7) !== 0) n += this.get(p++) ? 1 : 0;
    while (p + 8 <= end) {
      let b = this.bytes[p / 8]!;
      while (b) {
        b &= b - 1;
        n++;
      }
      p += 8;
    }
    while (p < end) n += this.get(p++) ? 1 : 0;
    return n;
  }
}

export interface KdumpLayoutParams {
  pageSize: number;
  /** One past the highest pfn covered (max_mapnr). */
  maxPfn: number;
  is64: boolean;
  /**
   * The C ABI to lay the headers out in (structs.ts KdumpAbi); default `lp64` for 64-bit,
   * else `i386`. A 32-bit ARM/MIPS/PowerPC dump needs `ilp32`, as makedumpfile writes it there.
   */
  abi?: KdumpAbi;
  littleEndian: boolean;
  /** ELF notes copied from the source (PRSTATUS, QEMU, VMCOREINFO ...). */
  notes: readonly Pick<ElfNote, 'name' | 'type' | 'desc'>[];
  /** Number of pages with a descriptor (set bits of the 2nd bitmap in this file). */
  numDumpable: number;
  /** Reserve the shared zero page at the start of the data area. */
  sharedZeroPage: boolean;
}

/** Sanity limit on max_mapnr: the reader's (KDUMP_LIMITS.maxMapnr). */
const MAX_PFN_LIMIT = KDUMP_LIMITS.maxMapnr;

export class KdumpLayout {
  readonly pageSize: number;
  readonly maxPfn: number;
  readonly noteBlob: Uint8Array;
  readonly subHeaderSize: number;
  readonly noteOffset: number;
  readonly subHdrSize: number;
  readonly bitmapLen: number;
  readonly bitmapBlocks: number;
  readonly bitmap1Offset: number;
  readonly bitmap2Offset: number;
  readonly descOffset: number;
  readonly dataOffset: number;
  /** Offset and size of the VMCOREINFO text (note descriptor) inside the note blob, or 0/0. */
  readonly vmcoreinfoOffset: number;
  readonly vmcoreinfoSize: number;

  constructor(readonly params: KdumpLayoutParams) {
    const { pageSize, maxPfn, numDumpable } = params;
    if (!Number.isInteger(pageSize) || pageSize < 512 || pageSize > 1 << 18 || (pageSize & (pageSize - 1)) !== 0) {
      throw new VmcoreError('BAD_FIELD', `page size ${pageSize} is not a power of two between 512 and 256 KiB`, { field: 'block_size' });
    }
    if (!Number.isSafeInteger(maxPfn) || maxPfn < 0 || maxPfn > MAX_PFN_LIMIT) {
      throw new VmcoreError('OUT_OF_BOUNDS', `max_mapnr ${maxPfn} is out of range`, { field: 'max_mapnr' });
    }
    this.pageSize = pageSize;
    this.maxPfn = maxPfn;
    this.noteBlob = buildNotes(params.notes, params.littleEndian);
    this.subHeaderSize = kdumpStructs(writerAbi(params)).sub.size;
    this.noteOffset = pageSize + this.subHeaderSize;
    this.subHdrSize = Math.ceil((this.subHeaderSize + this.noteBlob.length) / pageSize);
    this.bitmapLen = Math.max(1, Math.ceil(Math.ceil(maxPfn / 8) / pageSize)) * pageSize;
    this.bitmapBlocks = (2 * this.bitmapLen) / pageSize;
    this.bitmap1Offset = (1 + this.subHdrSize) * pageSize;
    this.bitmap2Offset = this.bitmap1Offset + this.bitmapLen;
    this.descOffset = this.bitmap2Offset + this.bitmapLen;
    this.dataOffset = this.descOffset + PAGE_DESC_SIZE * numDumpable;
    // VMCOREINFO: the descriptor of the note named VMCOREINFO inside the blob.
    let off = 0;
    let vo = 0;
    let vs = 0;
    for (const n of params.notes) {
      const descAt = off + 12 + align4(n.name.length + 1);
      if (n.name === 'VMCOREINFO' && vs === 0) {
        vo = this.noteOffset + descAt;
        vs = n.desc.length;
      }
      off = descAt + align4(n.desc.length);
    }
    this.vmcoreinfoOffset = vo;
    this.vmcoreinfoSize = vs;
  }
}

const align4 = (n: number) => (n + 3) & ~3;

export interface KdumpHeaderInfo {
  utsname: Utsname;
  /** Seconds and microseconds since the epoch (0 when unknown). */
  timestampSec: number;
  timestampUsec?: number;
  codec: OutputCodec;
  incomplete?: boolean;
  nrCpus: number;
  physBase: bigint;
  dumpLevel: number;
  /** For one file of a split set: its half-open pfn range. */
  split?: { startPfn: number; endPfn: number };
}

function writerAbi(p: KdumpLayoutParams): KdumpLayoutChoice {
  return { abi: p.abi ?? (p.is64 ? 'lp64' : 'i386'), time64: p.is64 };
}

/** Block 0: disk_dump_header, zero-padded to one block. */
export function encodeKdumpHeader(layout: KdumpLayout, info: KdumpHeaderInfo): Uint8Array {
  const { littleEndian: le } = layout.params;
  const choice = writerAbi(layout.params);
  const is64 = choice.abi === 'lp64' || choice.time64;
  const S = kdumpStructs(choice).main;
  const block = new Uint8Array(layout.pageSize);
  let status = codecFlag(info.codec);
  if (info.incomplete) status |= DUMP_DH_COMPRESSED_INCOMPLETE;
  const hdr = {
    signature: KDUMP_SIGNATURE,
    header_version: KDUMP_HEADER_VERSION,
    ...info.utsname,
    status,
    block_size: layout.pageSize,
    sub_hdr_size: layout.subHdrSize,
    bitmap_blocks: layout.bitmapBlocks,
    max_mapnr: Math.min(layout.maxPfn, 0xffffffff),
    total_ram_blocks: 0,
    device_blocks: 0,
    written_blocks: 0,
    current_cpu: 0,
    nr_cpus: info.nrCpus,
  };
  if (is64) {
    (S as typeof DiskDumpHeader64).write({ ...hdr, timestamp_sec: BigInt(info.timestampSec), timestamp_usec: BigInt(info.timestampUsec ?? 0) }, block, 0, le);
  } else {
    DiskDumpHeader32.write({ ...hdr, timestamp_sec: info.timestampSec | 0, timestamp_usec: info.timestampUsec ?? 0 }, block, 0, le);
  }
  return block;
}

/** Blocks 1 .. sub_hdr_size: kdump_sub_header followed by the note blob, zero-padded. */
export function encodeKdumpSubHeader(layout: KdumpLayout, info: KdumpHeaderInfo): Uint8Array {
  const { littleEndian: le } = layout.params;
  const choice = writerAbi(layout.params);
  const is64 = choice.abi === 'lp64';
  const area = new Uint8Array(layout.subHdrSize * layout.pageSize);
  const startPfn = info.split?.startPfn ?? 0;
  const endPfn = info.split?.endPfn ?? 0;
  const common = {
    dump_level: info.dumpLevel,
    split: info.split ? 1 : 0,
    offset_vmcoreinfo: layout.vmcoreinfoOffset,
    size_vmcoreinfo: layout.vmcoreinfoSize,
    offset_note: layout.noteBlob.length ? layout.noteOffset : 0,
    size_note: layout.noteBlob.length,
    offset_eraseinfo: 0,
    size_eraseinfo: 0,
    start_pfn_64: startPfn,
    end_pfn_64: endPfn,
    max_mapnr_64: layout.maxPfn,
  };
  if (is64) {
    KdumpSubHeader64.write({ ...common, phys_base: info.physBase, start_pfn: startPfn, end_pfn: endPfn }, area, 0, le);
  } else {
    (kdumpStructs(choice).sub as typeof KdumpSubHeader32Pad).write(
      {
        ...common,
        phys_base: Number(BigInt.asUintN(32, info.physBase)),
        start_pfn: Math.min(startPfn, 0xffffffff),
        end_pfn: Math.min(endPfn, 0xffffffff),
      },
      area,
      0,
      le,
    );
  }
  area.set(layout.noteBlob, layout.subHeaderSize);
  return area;
}

/**
 * Places compressed batches: data appended in page order from dataOffset, descriptors written
 * to their slot in the reserved area. Holds no per-page state beyond the current batch.
 */
export class KdumpPagePlacer {
  private nextDesc = 0;
  private dataPos: number;
  private readonly zeroOffset: number;
  private readonly flag: number;
  readonly counts = { compressed: 0, raw: 0, zero: 0 };
  bytesData = 0;

  constructor(
    private readonly layout: KdumpLayout,
    codec: OutputCodec,
  ) {
    this.flag = codecFlag(codec);
    this.zeroOffset = layout.dataOffset;
    this.dataPos = layout.dataOffset + (layout.params.sharedZeroPage ? layout.pageSize : 0);
  }

  /** The shared zero page (written once, first in the data area), if reserved. */
  zeroPage(): Placement | undefined {
    return this.layout.params.sharedZeroPage ? { offset: this.zeroOffset, bytes: new Uint8Array(this.layout.pageSize) } : undefined;
  }

  /** Number of descriptors placed so far. */
  get placed(): number {
    return this.nextDesc;
  }

  /** End of the data written so far (the file size once complete). */
  get end(): number {
    return this.dataPos;
  }

  /**
   * Place one batch (every page in it must be a dumped page, in ascending pfn order after the
   * previous batch). Returns the data write and the descriptor write.
   */
  place(b: CompressedBatch): { data: Placement; descs: Placement } {
    const { layout } = this;
    if (this.nextDesc + b.count > layout.params.numDumpable) {
      throw new VmcoreError('BAD_FIELD', `more dumped pages than the ${layout.params.numDumpable} reserved descriptors`, {
        field: 'page_desc',
      });
    }
    const le = layout.params.littleEndian;
    const descs = PageDescTable.alloc(b.count, le);
    const dataStart = this.dataPos;
    let pos = dataStart;
    for (let i = 0; i < b.count; i++) {
      const kind = b.kinds[i]!;
      let off: number;
      let size: number;
      let flags: number;
      if (kind === PAGE_ZERO) {
        if (!layout.params.sharedZeroPage) throw new VmcoreError('BAD_FIELD', 'zero page without a shared zero page', { field: 'page_desc' });
        off = this.zeroOffset;
        size = layout.pageSize;
        flags = 0;
        this.counts.zero++;
      } else {
        size = b.sizes[i]!;
        off = pos;
        pos += size;
        if (kind === PAGE_RAW) {
          flags = 0;
          this.counts.raw++;
        } else {
          flags = this.flag;
          this.counts.compressed++;
        }
      }
      descs.set(i, off, size, flags);
    }
    if (pos - dataStart !== b.data.length) {
      throw new VmcoreError('BAD_FIELD', `batch at pfn 0x${b.startPfn.toString(16)}: ${b.data.length} data bytes, sizes sum to ${pos - dataStart}`, {
        field: 'page_desc.size',
      });
    }
    const descAt = layout.descOffset + this.nextDesc * PAGE_DESC_SIZE;
    this.nextDesc += b.count;
    this.dataPos = pos;
    this.bytesData += b.data.length;
    return { data: { offset: dataStart, bytes: b.data }, descs: { offset: descAt, bytes: descs.bytes } };
  }
}
