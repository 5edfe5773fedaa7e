/**
 * kdump-compressed ("diskdump") structures, declared once (reference formats.md §1).
 * All fields are in the dumped machine's byte order; flattened-format records are big-endian.
 */
import { defineStruct } from '../../struct.js';

export const KDUMP_SIGNATURE = 'KDUMP   ';
export const DISKDUMP_SIGNATURE = 'DISKDUMP';
export const FLAT_SIGNATURE = 'makedumpfile';
export const FLAT_HEADER_SIZE = 4096;

export const DUMP_DH_COMPRESSED_ZLIB = 0x1;
export const DUMP_DH_COMPRESSED_LZO = 0x2;
export const DUMP_DH_COMPRESSED_SNAPPY = 0x4;
export const DUMP_DH_COMPRESSED_INCOMPLETE = 0x8;
export const DUMP_DH_EXCLUDED_VMEMMAP = 0x10;
export const DUMP_DH_COMPRESSED_ZSTD = 0x20;

export const UTS_FIELD = 65;

const uts = (base: number) =>
  ({
    sysname: { off: base, type: 'char', size: UTS_FIELD },
    nodename: { off: base + 65, type: 'char', size: UTS_FIELD },
    release: { off: base + 130, type: 'char', size: UTS_FIELD },
    version: { off: base + 195, type: 'char', size: UTS_FIELD },
    machine: { off: base + 260, type: 'char', size: UTS_FIELD },
    domainname: { off: base + 325, type: 'char', size: UTS_FIELD },
  }) as const;

/** struct disk_dump_header, 64-bit layout (x86_64, aarch64, ppc64, s390x ...). */
export const DiskDumpHeader64 = defineStruct('disk_dump_header', 464, {
  signature: { off: 0, type: 'char', size: 8 },
  header_version: { off: 8, type: 'i32' },
  ...uts(12),
  timestamp_sec: { off: 408, type: 'i64' },
  timestamp_usec: { off: 416, type: 'i64' },
  status: { off: 424, type: 'u32' },
  block_size: { off: 428, type: 'i32' },
  sub_hdr_size: { off: 432, type: 'i32' },
  bitmap_blocks: { off: 436, type: 'u32' },
  max_mapnr: { off: 440, type: 'u32' },
  total_ram_blocks: { off: 444, type: 'u32' },
  device_blocks: { off: 448, type: 'u32' },
  written_blocks: { off: 452, type: 'u32' },
  current_cpu: { off: 456, type: 'u32' },
  nr_cpus: { off: 460, type: 'i32' },
});

/** struct disk_dump_header, i386 layout (32-bit timeval). */
export const DiskDumpHeader32 = defineStruct('disk_dump_header', 452, {
  signature: { off: 0, type: 'char', size: 8 },
  header_version: { off: 8, type: 'i32' },
  ...uts(12),
  timestamp_sec: { off: 404, type: 'i32' },
  timestamp_usec: { off: 408, type: 'i32' },
  status: { off: 412, type: 'u32' },
  block_size: { off: 416, type: 'i32' },
  sub_hdr_size: { off: 420, type: 'i32' },
  bitmap_blocks: { off: 424, type: 'u32' },
  max_mapnr: { off: 428, type: 'u32' },
  total_ram_blocks: { off: 432, type: 'u32' },
  device_blocks: { off: 436, type: 'u32' },
  written_blocks: { off: 440, type: 'u32' },
  current_cpu: { off: 444, type: 'u32' },
  nr_cpus: { off: 448, type: 'i32' },
});

/** struct kdump_sub_header, 64-bit layout. Fields valid from the header_version in comments. */
export const KdumpSubHeader64 = defineStruct('kdump_sub_header', 104, {
  phys_base: { off: 0, type: 'u64' }, // hv >= 1
  dump_level: { off: 8, type: 'i32' }, // hv >= 1
  split: { off: 12, type: 'i32' }, // hv >= 2
  start_pfn: { off: 16, type: 'u64n' }, // hv >= 2 (obsolete)
  end_pfn: { off: 24, type: 'u64n' },
  offset_vmcoreinfo: { off: 32, type: 'i64n' }, // hv >= 3
  size_vmcoreinfo: { off: 40, type: 'u64n' },
  offset_note: { off: 48, type: 'i64n' }, // hv >= 4
  size_note: { off: 56, type: 'u64n' },
  offset_eraseinfo: { off: 64, type: 'i64n' }, // hv >= 5
  size_eraseinfo: { off: 72, type: 'u64n' },
  start_pfn_64: { off: 80, type: 'u64n' }, // hv >= 6
  end_pfn_64: { off: 88, type: 'u64n' },
  max_mapnr_64: { off: 96, type: 'u64n' },
});

/** struct kdump_sub_header, i386 layout ("32pack": 64-bit members 4-aligned). */
export const KdumpSubHeader32 = defineStruct('kdump_sub_header', 80, {
  phys_base: { off: 0, type: 'u32' },
  dump_level: { off: 4, type: 'i32' },
  split: { off: 8, type: 'i32' },
  start_pfn: { off: 12, type: 'u32' },
  end_pfn: { off: 16, type: 'u32' },
  offset_vmcoreinfo: { off: 20, type: 'i64n' },
  size_vmcoreinfo: { off: 28, type: 'u32' },
  offset_note: { off: 32, type: 'i64n' },
  size_note: { off: 40, type: 'u32' },
  offset_eraseinfo: { off: 44, type: 'i64n' },
  size_eraseinfo: { off: 52, type: 'u32' },
  start_pfn_64: { off: 56, type: 'u64n' },
  end_pfn_64: { off: 64, type: 'u64n' },
  max_mapnr_64: { off: 72, type: 'u64n' },
});

/**
 * struct kdump_sub_header as a 32-bit ABI that aligns 64-bit members to 8 bytes lays it out:
 * ARM EABI, MIPS o32, PowerPC 32, s390 (31-bit). off_t is 64-bit (makedumpfile is built with
 * _FILE_OFFSET_BITS=64), unsigned long 32-bit. (makedumpfile diskdump_mod.h; crash
 * arm_kdump_header_adjust() converts this layout.)
 */
export const KdumpSubHeader32Pad = defineStruct('kdump_sub_header', 96, {
  phys_base: { off: 0, type: 'u32' },
  dump_level: { off: 4, type: 'i32' },
  split: { off: 8, type: 'i32' },
  start_pfn: { off: 12, type: 'u32' },
  end_pfn: { off: 16, type: 'u32' },
  offset_vmcoreinfo: { off: 24, type: 'i64n' },
  size_vmcoreinfo: { off: 32, type: 'u32' },
  offset_note: { off: 40, type: 'i64n' },
  size_note: { off: 48, type: 'u32' },
  offset_eraseinfo: { off: 56, type: 'i64n' },
  size_eraseinfo: { off: 64, type: 'u32' },
  start_pfn_64: { off: 72, type: 'u64n' },
  end_pfn_64: { off: 80, type: 'u64n' },
  max_mapnr_64: { off: 88, type: 'u64n' },
});

/**
 * struct disk_dump_header of an i386 program built with a 64-bit time_t (_TIME_BITS=64): the
 * timeval is two 64-bit members, 4-aligned, so everything after it moves 8 bytes.
 */
export const DiskDumpHeader32T64 = defineStruct('disk_dump_header', 460, {
  signature: { off: 0, type: 'char', size: 8 },
  header_version: { off: 8, type: 'i32' },
  ...uts(12),
  timestamp_sec: { off: 404, type: 'i64' },
  timestamp_usec: { off: 412, type: 'i64' },
  status: { off: 420, type: 'u32' },
  block_size: { off: 424, type: 'i32' },
  sub_hdr_size: { off: 428, type: 'i32' },
  bitmap_blocks: { off: 432, type: 'u32' },
  max_mapnr: { off: 436, type: 'u32' },
  total_ram_blocks: { off: 440, type: 'u32' },
  device_blocks: { off: 444, type: 'u32' },
  written_blocks: { off: 448, type: 'u32' },
  current_cpu: { off: 452, type: 'u32' },
  nr_cpus: { off: 456, type: 'i32' },
});

/**
 * The C ABI a kdump file's headers were written with (makedumpfile writes its structs as the
 * compiler of the dumped machine lays them out):
 *  - `lp64`: every 64-bit machine (x86_64, aarch64, ppc64, s390x, mips64, riscv64, ...);
 *  - `i386`: 32-bit x86, 64-bit members 4-aligned ("32pack");
 *  - `ilp32`: 32-bit ARM, MIPS, PowerPC, s390: 64-bit members 8-aligned ("32pad").
 * `time64` says the main header's struct timeval has 64-bit members (a 32-bit program built
 * with a 64-bit time_t). On `ilp32` that is, field for field, the 64-bit main header.
 */
export type KdumpAbi = 'lp64' | 'i386' | 'ilp32';

export interface KdumpLayoutChoice {
  abi: KdumpAbi;
  time64: boolean;
}

/** The main and sub-header declarations of one ABI. */
export function kdumpStructs(c: KdumpLayoutChoice) {
  const main = c.abi === 'lp64' ? DiskDumpHeader64 : !c.time64 ? DiskDumpHeader32 : c.abi === 'i386' ? DiskDumpHeader32T64 : DiskDumpHeader64;
  const sub = c.abi === 'lp64' ? KdumpSubHeader64 : c.abi === 'i386' ? KdumpSubHeader32 : KdumpSubHeader32Pad;
  return { main, sub };
}

/**
 * The ABI family of a machine: from the utsname machine (kdump header) or the ELF machine name
 * with its class. Undefined for names that say nothing (empty, unknown).
 */
export function kdumpAbiOf(machine: string, is64?: boolean): KdumpAbi | undefined {
  if (/^i[3-6]86$/.test(machine)) return is64 ? 'lp64' : 'i386';
  if (/^(x86_64|aarch64|arm64|ppc64.*|s390x|mips64.*|riscv64|loongarch64|sparc64|ia64|alpha)$/.test(machine)) return 'lp64';
  if (/^(arm.*|mips.*|ppc|powerpc|s390|sh.*|sparc|riscv32|m68k|parisc)$/.test(machine)) return is64 ? 'lp64' : 'ilp32';
  return undefined;
}

/** struct page_desc: same 24-byte layout on every architecture. */
export const PageDesc = defineStruct('page_desc', 24, {
  offset: { off: 0, type: 'i64n' },
  size: { off: 8, type: 'u32' },
  flags: { off: 12, type: 'u32' },
  page_flags: { off: 16, type: 'u64' },
});
export const PAGE_DESC_SIZE = 24;

/** Flattened format (makedumpfile -F): file header, padded to 4096 bytes, big-endian. */
export const FlatHeader = defineStruct('makedumpfile_header', 32, {
  signature: { off: 0, type: 'char', size: 16 },
  type: { off: 16, type: 'i64n' },
  version: { off: 24, type: 'i64n' },
});
export const FLAT_TYPE = 1;
export const FLAT_VERSION = 1;

/** Flattened record header: where the following buf_size bytes go in the rebuilt file. */
export const FlatDataHeader = defineStruct('makedumpfile_data_header', 16, {
  offset: { off: 0, type: 'i64' },
  buf_size: { off: 8, type: 'i64' },
});

export type KdumpHeader = ReturnType<typeof DiskDumpHeader64.read>;
export type KdumpSubHeader = ReturnType<typeof KdumpSubHeader64.read>;

/**
 * A table view over consecutive page_desc entries held in `bytes` (the descriptor area, or a
 * slice of it), decoding fields in place: no object per entry, no BigInt, so the per-page
 * loops of the reader, writer and fix stay as fast as hand-written DataView code. The layout
 * is `PageDesc` (makedumpfile diskdump_mod.h struct page_desc).
 *
 * `offset(i)` is exact: a negative offset, or one at or beyond 2^53 (no file that large can
 * be read), is -1, which every caller treats as "no data" (the page reads as missing).
 * An index past the bytes present (a descriptor area cut short) has `has(i)` false.
 */
export class PageDescTable {
  readonly count: number;
  private readonly dv: DataView;
  private readonly lo: number;
  private readonly hi: number;

  constructor(
    readonly bytes: Uint8Array,
    readonly littleEndian: boolean,
  ) {
    this.count = Math.floor(bytes.length / PAGE_DESC_SIZE);
    this.dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.length);
    this.lo = littleEndian ? 0 : 4;
    this.hi = littleEndian ? 4 : 0;
  }

  /** A zeroed table of `count` entries, to fill with `set`. */
  static alloc(count: number, littleEndian: boolean): PageDescTable {
    return new PageDescTable(new Uint8Array(count * PAGE_DESC_SIZE), littleEndian);
  }

  has(i: number): boolean {
    return i >= 0 && i < this.count;
  }

  /** page_desc.offset: the file offset of the page's data, or -1 (negative, or at or beyond 2^53). */
  offset(i: number): number {
    const o = i * PAGE_DESC_SIZE;
    const hi = this.dv.getInt32(o + this.hi, this.littleEndian);
    if (hi < 0 || hi >= 0x200000) return -1;
    return hi * 0x100000000 + this.dv.getUint32(o + this.lo, this.littleEndian);
  }

  /** True when all 8 bytes of page_desc.offset are zero (an entry never written). */
  offsetIsZero(i: number): boolean {
    const o = i * PAGE_DESC_SIZE;
    return this.dv.getUint32(o, this.littleEndian) === 0 && this.dv.getUint32(o + 4, this.littleEndian) === 0;
  }

  /** page_desc.size: bytes of the stored (compressed or raw) page. */
  size(i: number): number {
    return this.dv.getUint32(i * PAGE_DESC_SIZE + 8, this.littleEndian);
  }

  /** page_desc.flags: the DUMP_DH_COMPRESSED_* bit of the page's codec, 0 for raw. */
  flags(i: number): number {
    return this.dv.getUint32(i * PAGE_DESC_SIZE + 12, this.littleEndian);
  }

  /** Write page_desc.offset (a non-negative safe integer). */
  setOffset(i: number, offset: number): void {
    const o = i * PAGE_DESC_SIZE;
    this.dv.setUint32(o + this.lo, offset % 0x100000000, this.littleEndian);
    this.dv.setUint32(o + this.hi, Math.floor(offset / 0x100000000), this.littleEndian);
  }

  /** Write one entry (page_flags 0, as makedumpfile writes it). */
  set(i: number, offset: number, size: number, flags: number): void {
    this.setOffset(i, offset);
    const o = i * PAGE_DESC_SIZE;
    this.dv.setUint32(o + 8, size, this.littleEndian);
    this.dv.setUint32(o + 12, flags, this.littleEndian);
    this.dv.setUint32(o + 16, 0, this.littleEndian);
    this.dv.setUint32(o + 20, 0, this.littleEndian);
  }
}
