/**
 * Compressed ELF ("celf") writer, portable. Three layers, so that a parallel pipeline can use
 * the parts it needs:
 *
 *  - `planCelf(mem, opts)`: walks a PhysicalMemory in ascending order and yields what goes into
 *    the file: `data` chunks (uncompressed bytes of a physically contiguous, chunk-aligned
 *    window part) and `range` items (zero / excluded / missing runs that cost no file space).
 *  - `compressChunk(codec, raw)`: turns a data chunk into the bytes of its section (pure,
 *    runs in a worker).
 *  - `CelfLayout`: the sequential assembler. It hands out the bytes to append in order and, at
 *    the end, the trailing index / string table / section header table plus the final ELF
 *    header to write at offset 0 (the only seek a writer needs).
 *
 * `writeCelf` ties them together on one thread. Format: docs/compressed-elf.md.
 */
import { VmcoreError } from '../../errors.js';
import { isPresent, type PageState, type PhysicalMemory } from '../../dump.js';
import { isZeroPage } from '../../memory.js';
import type { Codec, CodecName, CodecRegistry } from '../../codec/types.js';
import {
  ELFCLASS64,
  ELFDATA2LSB,
  ELFDATA2MSB,
  ET_CORE,
  Elf64_Chdr,
  Elf64_Ehdr,
  Elf64_Phdr,
  Elf64_Shdr,
  PT_NOTE,
  SHF_COMPRESSED,
  SHT_NOTE,
  SHT_PROGBITS,
  SHT_STRTAB,
} from '../elf/structs.js';
import {
  CELF_DEFAULT_CHUNK,
  CELF_FLAG_INCOMPLETE,
  CELF_INDEX_NAME,
  CELF_MAGIC,
  CELF_MAX_CHUNK,
  CELF_MEM_NAME,
  CELF_MIN_CHUNK,
  CELF_NOTE_NAME,
  CELF_VERSION,
  CH_TYPES,
  CelfIndexEntry,
  CelfIndexHeader,
  ENTRY_DATA,
  ENTRY_EXCLUDED,
  ENTRY_MISSING,
  ENTRY_ZERO,
} from './structs.js';

/** Sections with fixed indices; memory chunks start at FIRST_CHUNK_SHNDX. */
export const SHNDX_SHSTRTAB = 1;
export const SHNDX_NOTE = 2;
export const SHNDX_INDEX = 3;
export const FIRST_CHUNK_SHNDX = 4;
export const SHN_LORESERVE = 0xff00;

export type RangeKind = 'zero' | 'excluded' | 'missing';
const KIND_CODE: Record<RangeKind, number> = { zero: ENTRY_ZERO, excluded: ENTRY_EXCLUDED, missing: ENTRY_MISSING };

/** A part of a chunk window: stored data, or a zero run cut out of it (not stored). */
export interface CelfPart {
  paddr: number;
  size: number;
  kind: 'data' | 'zero';
}

/**
 * What a writer puts into the file, in ascending physical order:
 *  - `window`: one chunk. `data` holds the uncompressed bytes of [paddr, paddr + data.length)
 *    (zero-filled where a part is zero); `parts` says which of those bytes are memory (data)
 *    and which zero runs are recorded as zero ranges instead. Parts may extend beyond `data`
 *    only with kind 'zero'.
 *  - `range`: excluded or missing memory (or a zero run outside any chunk).
 */
export type CelfItem =
  | { type: 'window'; paddr: number; data: Uint8Array; parts: CelfPart[] }
  | { type: 'range'; paddr: number; size: number; kind: RangeKind };

export interface CelfPlanOptions {
  /** Uncompressed bytes per chunk (power of two multiple of the page size). */
  chunkSize?: number;
  /** Zero runs at least this many pages long are cut out of chunks and stored as zero ranges. */
  minZeroRun?: number;
  /** Only plan [startPfn, endPfn). */
  startPfn?: number;
  endPfn?: number;
}

export const DEFAULT_MIN_ZERO_RUN = 8;

export function checkChunkSize(chunkSize: number, pageSize: number): number {
  if (
    !Number.isSafeInteger(chunkSize) ||
    chunkSize < Math.max(CELF_MIN_CHUNK, pageSize) ||
    chunkSize > CELF_MAX_CHUNK ||
    chunkSize % pageSize !== 0 ||
    (chunkSize & (chunkSize - 1)) !== 0
  ) {
    throw new VmcoreError(
      'USAGE',
      `chunk size ${chunkSize} must be a power of two between ${Math.max(CELF_MIN_CHUNK, pageSize)} and ${CELF_MAX_CHUNK} bytes`,
      { field: 'chunkSize' },
    );
  }
  return chunkSize;
}

/**
 * Split the consecutive pages [firstPfn, firstPfn + zero.length) of one window into parts:
 * zero runs of at least `minZeroRun` pages (or the whole window) become zero parts, the rest
 * data parts (short zero runs stay inside the data, where they compress to almost nothing).
 * Returns the parts and the page extent of the data parts.
 */
export function carveWindow(
  zero: ArrayLike<boolean | number>,
  firstPfn: number,
  pageSize: number,
  minZeroRun = DEFAULT_MIN_ZERO_RUN,
): { parts: CelfPart[]; firstData: number; endData: number } {
  const n = zero.length;
  const parts: CelfPart[] = [];
  let firstData = -1;
  let endData = -1;
  let dataStart = -1;
  const pushData = (a: number, b: number) => {
    parts.push({ paddr: (firstPfn + a) * pageSize, size: (b - a) * pageSize, kind: 'data' });
    if (firstData < 0) firstData = a;
    endData = b;
  };
  let i = 0;
  while (i < n) {
    if (zero[i]) {
      let j = i;
      while (j < n && zero[j]) j++;
      if (j - i >= minZeroRun || (i === 0 && j === n)) {
        if (dataStart >= 0) {
          pushData(dataStart, i);
          dataStart = -1;
        }
        parts.push({ paddr: (firstPfn + i) * pageSize, size: (j - i) * pageSize, kind: 'zero' });
      } else if (dataStart < 0) dataStart = i;
      i = j;
    } else {
      if (dataStart < 0) dataStart = i;
      i++;
    }
  }
  if (dataStart >= 0) pushData(dataStart, n);
  return { parts, firstData, endData };
}

function rangeKind(s: PageState): RangeKind | undefined {
  return s === 'excluded' ? 'excluded' : s === 'missing' ? 'missing' : undefined;
}

/**
 * Walk the memory and yield windows and ranges in ascending physical order. Memory held at
 * any time: one chunk.
 */
export async function* planCelf(mem: PhysicalMemory, opts: CelfPlanOptions = {}): AsyncGenerator<CelfItem> {
  const ps = mem.pageSize;
  const chunkSize = checkChunkSize(opts.chunkSize ?? CELF_DEFAULT_CHUNK, ps);
  const chunkPages = chunkSize / ps;
  const minZeroRun = Math.max(1, opts.minZeroRun ?? DEFAULT_MIN_ZERO_RUN);
  const start = opts.startPfn ?? 0;
  const end = Math.min(opts.endPfn ?? mem.maxPfn, mem.maxPfn);

  // pending window part: pages [winFirst, winFirst + pages.length), null = known zero
  let winFirst = -1;
  let pages: (Uint8Array | null)[] = [];

  function* flush(): Generator<CelfItem> {
    if (!pages.length) return;
    const { parts, firstData, endData } = carveWindow(
      pages.map((p) => p === null),
      winFirst,
      ps,
      minZeroRun,
    );
    if (firstData < 0) {
      for (const p of parts) yield { type: 'range', paddr: p.paddr, size: p.size, kind: 'zero' };
    } else {
      const data = new Uint8Array((endData - firstData) * ps);
      for (let k = firstData; k < endData; k++) {
        const p = pages[k];
        if (p) data.set(p, (k - firstData) * ps);
      }
      yield { type: 'window', paddr: (winFirst + firstData) * ps, data, parts };
    }
    pages = [];
    winFirst = -1;
  }

  for await (const run of mem.pageRuns(start, end)) {
    if (!isPresent(run.state)) {
      yield* flush();
      const k = rangeKind(run.state);
      if (k) yield { type: 'range', paddr: run.startPfn * ps, size: (run.endPfn - run.startPfn) * ps, kind: k };
      continue;
    }
    let pfn = run.startPfn;
    while (pfn < run.endPfn) {
      const w = Math.floor(pfn / chunkPages);
      if (pages.length && (Math.floor(winFirst / chunkPages) !== w || winFirst + pages.length !== pfn)) yield* flush();
      if (!pages.length) winFirst = pfn;
      const stop = Math.min(run.endPfn, (w + 1) * chunkPages);
      if (run.state === 'zero') {
        for (let p = pfn; p < stop; p++) pages.push(null);
      } else {
        const buf = await mem.readPhys(pfn * ps, (stop - pfn) * ps);
        for (let p = 0; p < stop - pfn; p++) {
          const page = buf.subarray(p * ps, (p + 1) * ps);
          pages.push(isZeroPage(page) ? null : page);
        }
      }
      pfn = stop;
    }
  }
  yield* flush();
}

/** The stored form of one chunk: a Chdr + compressed stream, or the raw bytes. */
export interface CompressedChunk {
  /** 0 = stored uncompressed (section without SHF_COMPRESSED). */
  chType: number;
  /** Compressed stream (without Chdr), or the raw bytes when chType is 0. */
  payload: Uint8Array;
  rawSize: number;
}

/**
 * Compress one chunk. Falls back to raw storage when compression does not save at least the
 * 24-byte Chdr, so a chunk never costs more than its raw size.
 */
export function compressChunk(codec: Codec | undefined, raw: Uint8Array, level?: number): CompressedChunk {
  if (codec?.compress) {
    const c = codec.compress(raw, level);
    if (c.length + Elf64_Chdr.size < raw.length) return { chType: CH_TYPES[codec.name], payload: c, rawSize: raw.length };
  }
  return { chType: 0, payload: raw, rawSize: raw.length };
}

export interface CelfLayoutOptions {
  littleEndian?: boolean | undefined;
  /** e_machine (EM_X86_64, ...). */
  machine: number;
  pageSize: number;
  /** One past the highest page frame the dump describes (holes at the end included). */
  maxPfn: number;
  /** Note stream (PT_NOTE contents), e.g. from buildNotes() or a source dump's notes. */
  notes: Uint8Array;
  /** Nominal chunk size and main codec, recorded in the index header. */
  chunkSize: number;
  codec: CodecName | 'none';
  incomplete?: boolean | undefined;
}

interface Entry {
  paddr: number;
  size: number;
  kind: number;
  shndx: number;
  offset: number;
}

interface ChunkSection {
  offset: number;
  size: number;
  addr: number;
  compressed: boolean;
}

const align = (n: number, a: number) => Math.ceil(n / a) * a;
const ascii = (s: string) => Uint8Array.from(s, (c) => c.charCodeAt(0));

/** Bytes to write at `offset`, in order. */
export interface CelfPlacement {
  offset: number;
  pieces: Uint8Array[];
  /** Total length of `pieces`. */
  length: number;
}

/**
 * Sequential layout of a celf file:
 * Ehdr | Phdr(PT_NOTE) | notes | chunk sections ... | index | .shstrtab | section headers.
 * Call `head()` first, then `addSection` / `addData` / `addRange` (or `addWindow`) in
 * ascending physical order, then `finish()`. Memory: 40 bytes per index entry and 32 per
 * chunk section until finish().
 */
export class CelfLayout {
  readonly le: boolean;
  private pos = 0;
  private readonly entries: Entry[] = [];
  private readonly chunks: ChunkSection[] = [];
  private readonly rawSizes: number[] = [];
  private notesOffset = 0;
  private headEnd = 0;
  private lastEnd = 0;
  private headDone = false;
  /** Statistics: chunk sections, those stored raw, memory bytes stored, file bytes used, zero bytes. */
  readonly stats = { chunks: 0, rawChunks: 0, dataBytes: 0, storedBytes: 0, zeroBytes: 0, excludedBytes: 0 };

  constructor(readonly opts: CelfLayoutOptions) {
    this.le = opts.littleEndian ?? true;
    checkChunkSize(opts.chunkSize, opts.pageSize);
  }

  /** Current file size (where the next piece goes). */
  get offset(): number {
    return this.pos;
  }

  private ehdr(shoff: number, shnum: number): Uint8Array {
    const ident = new Uint8Array(16);
    ident.set([0x7f, 0x45, 0x4c, 0x46, ELFCLASS64, this.le ? ELFDATA2LSB : ELFDATA2MSB, 1, 0]);
    return Elf64_Ehdr.encode(
      {
        e_ident: ident,
        e_type: ET_CORE,
        e_machine: this.opts.machine,
        e_version: 1,
        e_entry: 0n,
        e_phoff: Elf64_Ehdr.size,
        e_shoff: shoff,
        e_flags: 0,
        e_ehsize: Elf64_Ehdr.size,
        e_phentsize: Elf64_Phdr.size,
        e_phnum: 1,
        e_shentsize: shnum ? Elf64_Shdr.size : 0,
        // SHN_LORESERVE sections or more: e_shnum 0, the real count in section 0's sh_size
        e_shnum: shnum >= SHN_LORESERVE ? 0 : shnum,
        e_shstrndx: shnum ? SHNDX_SHSTRTAB : 0,
      },
      this.le,
    );
  }

  /** Bytes at offset 0: provisional ELF header (rewritten by finish()), PT_NOTE, notes. */
  head(): Uint8Array {
    if (this.headDone) throw new Error('CelfLayout.head() called twice');
    this.headDone = true;
    const notes = this.opts.notes;
    this.notesOffset = Elf64_Ehdr.size + Elf64_Phdr.size;
    const end = align(this.notesOffset + notes.length, 8);
    const out = new Uint8Array(end);
    out.set(this.ehdr(0, 0), 0);
    Elf64_Phdr.write(
      { p_type: PT_NOTE, p_flags: 0, p_offset: this.notesOffset, p_vaddr: 0n, p_paddr: 0n, p_filesz: notes.length, p_memsz: notes.length, p_align: 4n },
      out,
      Elf64_Ehdr.size,
      this.le,
    );
    out.set(notes, this.notesOffset);
    this.pos = end;
    this.headEnd = end;
    return out;
  }

  /** Chunk sections so far. */
  get chunkCount(): number {
    return this.chunks.length;
  }

  /** How many of the chunk sections so far lie wholly before file offset `end`. */
  chunksBefore(end: number): number {
    let k = this.chunks.length;
    while (k > 0 && this.chunks[k - 1]!.offset + this.chunks[k - 1]!.size > end) k--;
    return k;
  }

  /**
   * Keep the first `n` chunk sections only (an incomplete file whose last chunks are not on the
   * disk, or must make room for the index): the later ones are forgotten with every index entry
   * from the first of them on, and the index goes where the first of them began. Returns that
   * offset (the file may be cut there). Only before finish().
   */
  keepChunks(n: number): number {
    if (n >= this.chunks.length) return this.pos;
    const first = this.chunks[Math.max(0, n)]!;
    this.chunks.length = Math.max(0, n);
    this.rawSizes.length = this.chunks.length;
    let e = this.entries.length;
    while (e > 0 && this.entries[e - 1]!.paddr >= first.addr) e--;
    this.entries.length = e;
    const last = this.entries[e - 1];
    this.lastEnd = last ? last.paddr + last.size : 0;
    this.pos = Math.max(first.offset, this.headEnd);
    this.stats.chunks = this.chunks.length;
    return this.pos;
  }

  private order(paddr: number, size: number): void {
    const ps = this.opts.pageSize;
    if (!this.headDone) throw new Error('CelfLayout: head() must come first');
    if (paddr % ps || size % ps || size <= 0 || paddr < this.lastEnd || paddr + size > this.opts.maxPfn * ps) {
      throw new VmcoreError('BAD_FIELD', `celf range 0x${paddr.toString(16)}+0x${size.toString(16)} is unaligned, empty, out of order or beyond max_pfn`, {
        field: 'paddr',
      });
    }
    this.lastEnd = paddr + size;
  }

  /**
   * Append one chunk section whose uncompressed byte 0 is physical address `addr`; returns its
   * section index and the bytes to write. Index entries pointing into it follow via addData.
   */
  addSection(addr: number, chunk: CompressedChunk): { shndx: number } & CelfPlacement {
    if (!this.headDone) throw new Error('CelfLayout: head() must come first');
    if (chunk.rawSize <= 0 || chunk.rawSize > CELF_MAX_CHUNK) {
      throw new VmcoreError('BAD_FIELD', `chunk of ${chunk.rawSize} bytes is empty or exceeds the maximum`, { field: 'ch_size' });
    }
    const start = this.pos;
    const pieces: Uint8Array[] = [];
    let size: number;
    if (chunk.chType) {
      pieces.push(Elf64_Chdr.encode({ ch_type: chunk.chType, ch_reserved: 0, ch_size: chunk.rawSize, ch_addralign: this.opts.pageSize }, this.le));
      pieces.push(chunk.payload);
      size = Elf64_Chdr.size + chunk.payload.length;
    } else {
      if (chunk.payload.length !== chunk.rawSize) throw new Error('raw chunk payload size differs from rawSize');
      pieces.push(chunk.payload);
      size = chunk.payload.length;
    }
    const padded = align(size, 8);
    if (padded > size) pieces.push(new Uint8Array(padded - size));
    this.pos += padded;
    const shndx = FIRST_CHUNK_SHNDX + this.chunks.length;
    this.chunks.push({ offset: start, size, addr, compressed: chunk.chType !== 0 });
    this.rawSizes.push(chunk.rawSize);
    this.stats.chunks++;
    if (!chunk.chType) this.stats.rawChunks++;
    this.stats.storedBytes += size;
    return { shndx, offset: start, pieces, length: padded };
  }

  /** Record memory [paddr, paddr + size) as bytes [offset, offset + size) of chunk `shndx`. */
  addData(paddr: number, size: number, shndx: number, offset: number): void {
    this.order(paddr, size);
    const raw = this.rawSizes[shndx - FIRST_CHUNK_SHNDX];
    if (raw === undefined || offset < 0 || offset + size > raw || this.chunks[shndx - FIRST_CHUNK_SHNDX]!.addr + offset !== paddr) {
      throw new VmcoreError('BAD_FIELD', `data range 0x${paddr.toString(16)}+0x${size.toString(16)} does not lie in chunk section ${shndx}`, { field: 'shndx' });
    }
    this.stats.dataBytes += size;
    this.entries.push({ paddr, size, kind: ENTRY_DATA, shndx, offset });
  }

  /** Record a range that is not stored (zero, excluded, missing); merges with a neighbour. */
  addRange(paddr: number, size: number, kind: RangeKind): void {
    this.order(paddr, size);
    const code = KIND_CODE[kind];
    if (kind === 'zero') this.stats.zeroBytes += size;
    else this.stats.excludedBytes += size;
    const last = this.entries[this.entries.length - 1];
    if (last && last.kind === code && last.paddr + last.size === paddr) last.size += size;
    else this.entries.push({ paddr, size, kind: code, shndx: 0, offset: 0 });
  }

  /**
   * Place one window: its chunk (uncompressed byte 0 at physical `addr`) and its parts.
   * Returns the bytes to write.
   */
  addWindow(addr: number, chunk: CompressedChunk, parts: readonly CelfPart[]): CelfPlacement {
    const sec = this.addSection(addr, chunk);
    for (const p of parts) {
      if (p.kind === 'zero') this.addRange(p.paddr, p.size, 'zero');
      else this.addData(p.paddr, p.size, sec.shndx, p.paddr - addr);
    }
    return sec;
  }

  /**
   * Finish the file. Returns `tail` (to append at the current offset) and `header` (to write
   * at offset 0 over the provisional one).
   */
  finish(opts: { incomplete?: boolean } = {}): { tail: Uint8Array; tailOffset: number; header: Uint8Array; size: number } {
    const le = this.le;
    const o = this.opts;
    const indexOffset = this.pos;
    const indexSize = CelfIndexHeader.size + this.entries.length * CelfIndexEntry.size;
    const names = ['.shstrtab', CELF_NOTE_NAME, CELF_INDEX_NAME, CELF_MEM_NAME];
    const nameOff: Record<string, number> = {};
    let strSize = 1;
    for (const n of names) {
      nameOff[n] = strSize;
      strSize += n.length + 1;
    }
    const strOffset = indexOffset + indexSize;
    const shoff = align(strOffset + strSize, 8);
    const shnum = FIRST_CHUNK_SHNDX + this.chunks.length;
    const total = shoff + shnum * Elf64_Shdr.size;
    const tail = new Uint8Array(total - indexOffset);

    CelfIndexHeader.write(
      {
        magic: CELF_MAGIC,
        version: CELF_VERSION,
        header_size: CelfIndexHeader.size,
        entry_size: CelfIndexEntry.size,
        page_size: o.pageSize,
        nr_entries: this.entries.length,
        max_pfn: o.maxPfn,
        chunk_size: o.chunkSize,
        ch_type: o.codec === 'none' ? 0 : CH_TYPES[o.codec],
        flags: opts.incomplete || o.incomplete ? CELF_FLAG_INCOMPLETE : 0,
        reserved: 0n,
      },
      tail,
      0,
      le,
    );
    let p = CelfIndexHeader.size;
    for (const e of this.entries) {
      CelfIndexEntry.write({ paddr: e.paddr, size: e.size, kind: e.kind, reserved: 0, shndx: e.shndx, offset: e.offset }, tail, p, le);
      p += CelfIndexEntry.size;
    }
    p = strOffset - indexOffset;
    for (const n of names) tail.set(ascii(n), p + nameOff[n]!);

    let sh = shoff - indexOffset;
    const put = (v: Parameters<typeof Elf64_Shdr.write>[0]) => {
      Elf64_Shdr.write(v, tail, sh, le);
      sh += Elf64_Shdr.size;
    };
    // [0] SHT_NULL; carries the section count when it does not fit e_shnum
    put({ sh_size: shnum >= SHN_LORESERVE ? shnum : 0 });
    put({ sh_name: nameOff['.shstrtab']!, sh_type: SHT_STRTAB, sh_offset: strOffset, sh_size: strSize, sh_addralign: 1n });
    put({ sh_name: nameOff[CELF_NOTE_NAME]!, sh_type: SHT_NOTE, sh_offset: this.notesOffset, sh_size: o.notes.length, sh_addralign: 4n });
    put({
      sh_name: nameOff[CELF_INDEX_NAME]!,
      sh_type: SHT_PROGBITS,
      sh_offset: indexOffset,
      sh_size: indexSize,
      sh_addralign: 8n,
    });
    for (const c of this.chunks) {
      put({
        sh_name: nameOff[CELF_MEM_NAME]!,
        sh_type: SHT_PROGBITS,
        sh_flags: c.compressed ? BigInt(SHF_COMPRESSED) : 0n,
        sh_addr: 0n, // not part of a memory image (gABI); the index gives the physical address
        sh_offset: c.offset,
        sh_size: c.size,
        sh_addralign: 8n,
      });
    }
    // (pos stays at the index: keepChunks may still make room before it is written)
    return { tail, tailOffset: indexOffset, header: this.ehdr(shoff, shnum), size: total };
  }
}

/** Where a writer puts bytes: sequential appends plus one positioned write at the end. */
export interface CelfSink {
  write(bytes: Uint8Array): Promise<void>;
  writeAt(offset: number, bytes: Uint8Array): Promise<void>;
}

export interface WriteCelfOptions extends CelfPlanOptions {
  codec: CodecName | 'none';
  codecs?: CodecRegistry;
  level?: number;
  machine: number;
  notes: Uint8Array;
  littleEndian?: boolean;
  incomplete?: boolean;
}

/** Single-threaded writer: memory → celf. Returns the layout statistics and the file size. */
export async function writeCelf(
  mem: PhysicalMemory,
  sink: CelfSink,
  opts: WriteCelfOptions,
): Promise<{ size: number; stats: CelfLayout['stats'] }> {
  const chunkSize = opts.chunkSize ?? CELF_DEFAULT_CHUNK;
  let codec: Codec | undefined;
  if (opts.codec !== 'none') {
    codec = opts.codecs?.get(opts.codec);
    if (!codec?.compress) throw new VmcoreError('CODEC_UNAVAILABLE', `no ${opts.codec} compressor in this environment`, { field: 'codec' });
  }
  const layout = new CelfLayout({
    littleEndian: opts.littleEndian,
    machine: opts.machine,
    pageSize: mem.pageSize,
    maxPfn: mem.maxPfn,
    notes: opts.notes,
    chunkSize,
    codec: opts.codec,
    incomplete: opts.incomplete,
  });
  await sink.write(layout.head());
  for await (const item of planCelf(mem, { ...opts, chunkSize })) {
    if (item.type === 'range') layout.addRange(item.paddr, item.size, item.kind);
    else for (const piece of layout.addWindow(item.paddr, compressChunk(codec, item.data, opts.level), item.parts).pieces) await sink.write(piece);
  }
  const { tail, header, size } = layout.finish();
  await sink.write(tail);
  await sink.writeAt(0, header);
  return { size, stats: layout.stats };
}

/** A sink collecting everything in memory (tests, small dumps, browsers). */
export class CelfBufferSink implements CelfSink {
  private parts: Uint8Array[] = [];
  private len = 0;
  private patches: { offset: number; bytes: Uint8Array }[] = [];
  async write(bytes: Uint8Array): Promise<void> {
    this.parts.push(bytes.slice());
    this.len += bytes.length;
  }
  async writeAt(offset: number, bytes: Uint8Array): Promise<void> {
    this.patches.push({ offset, bytes: bytes.slice() });
  }
  bytes(): Uint8Array {
    const out = new Uint8Array(this.len);
    let p = 0;
    for (const b of this.parts) {
      out.set(b, p);
      p += b.length;
    }
    for (const { offset, bytes } of this.patches) out.set(bytes, offset);
    return out;
  }
}

/** Parse a chunk size such as "65536", "64K", "64KiB", "1M" (powers of 1024). */
export function parseChunkSize(s: string): number {
  const m = /^(\d+)\s*([kKmM])?(?:i?[bB])?$/.exec(s.trim());
  if (!m) throw new VmcoreError('USAGE', `chunk size "${s}": expected a number of bytes, optionally with K or M`, { field: 'chunk' });
  const unit = m[2] ? (m[2].toLowerCase() === 'k' ? 1024 : 1024 * 1024) : 1;
  return Number(m[1]) * unit;
}
