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
  SHT_CELF_INDEX,
} from './structs.js';

/** Sections with fixed indices; memory chunks start at FIRST_CHUNK_SHNDX. */
export const SHNDX_SHSTRTAB = 1;
export const SHNDX_NOTE = 2;
export const SHNDX_INDEX = 3;
export const FIRST_CHUNK_SHNDX = 4;
const SHN_LORESERVE = 0xff00;

export type RangeKind = 'zero' | 'excluded' | 'missing';
const KIND_CODE: Record<RangeKind, number> = { zero: ENTRY_ZERO, excluded: ENTRY_EXCLUDED, missing: ENTRY_MISSING };

export type CelfItem =
  | { type: 'data'; paddr: number; data: Uint8Array }
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

function rangeKind(s: PageState): RangeKind | undefined {
  return s === 'excluded' ? 'excluded' : s === 'missing' ? 'missing' : undefined;
}

/**
 * Walk the memory and yield chunks and ranges in ascending physical order. Memory held at any
 * time: one chunk.
 */
export async function* planCelf(mem: PhysicalMemory, opts: CelfPlanOptions = {}): AsyncGenerator<CelfItem> {
  const ps = mem.pageSize;
  const chunkSize = checkChunkSize(opts.chunkSize ?? CELF_DEFAULT_CHUNK, ps);
  const chunkPages = chunkSize / ps;
  const minZeroRun = Math.max(1, opts.minZeroRun ?? 8);
  const start = opts.startPfn ?? 0;
  const end = Math.min(opts.endPfn ?? mem.maxPfn, mem.maxPfn);

  // pending window part: pages [winFirst, winFirst + pages.length), null = known zero
  let winFirst = -1;
  let pages: (Uint8Array | null)[] = [];

  function* flush(): Generator<CelfItem> {
    if (!pages.length) return;
    const n = pages.length;
    let i = 0;
    let dataStart = -1;
    const emitData = function* (a: number, b: number): Generator<CelfItem> {
      const data = new Uint8Array((b - a) * ps);
      for (let k = a; k < b; k++) {
        const p = pages[k];
        if (p) data.set(p, (k - a) * ps);
      }
      yield { type: 'data', paddr: (winFirst + a) * ps, data };
    };
    while (i < n) {
      if (pages[i] === null) {
        let j = i;
        while (j < n && pages[j] === null) j++;
        const whole = i === 0 && j === n;
        if (j - i >= minZeroRun || whole) {
          if (dataStart >= 0) {
            yield* emitData(dataStart, i);
            dataStart = -1;
          }
          yield { type: 'range', paddr: (winFirst + i) * ps, size: (j - i) * ps, kind: 'zero' };
        } else if (dataStart < 0) {
          dataStart = i;
        }
        i = j;
      } else {
        if (dataStart < 0) dataStart = i;
        i++;
      }
    }
    if (dataStart >= 0) yield* emitData(dataStart, n);
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
  littleEndian?: boolean;
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
  incomplete?: boolean;
}

interface Entry {
  paddr: number;
  size: number;
  kind: number;
  shndx: number;
}

interface ChunkSection {
  offset: number;
  size: number;
  paddr: number;
  compressed: boolean;
}

const align = (n: number, a: number) => Math.ceil(n / a) * a;
const ascii = (s: string) => Uint8Array.from(s, (c) => c.charCodeAt(0));

/**
 * Sequential layout of a celf file:
 * Ehdr | Phdr(PT_NOTE) | notes | chunk sections ... | index | .shstrtab | section headers.
 * Call `head()` first, then `addChunk` / `addRange` in ascending physical order, then `finish()`.
 */
export class CelfLayout {
  readonly le: boolean;
  private pos = 0;
  private readonly entries: Entry[] = [];
  private readonly chunks: ChunkSection[] = [];
  private notesOffset = 0;
  private lastEnd = 0;
  private headDone = false;
  /** Counts for statistics: pages stored per ch_type name, zero pages. */
  readonly stats = { chunks: 0, rawChunks: 0, dataBytes: 0, storedBytes: 0, zeroBytes: 0 };

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
        // more than SHN_LORESERVE sections: e_shnum 0, real count in section 0's sh_size
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
      {
        p_type: PT_NOTE,
        p_flags: 0,
        p_offset: this.notesOffset,
        p_vaddr: 0n,
        p_paddr: 0n,
        p_filesz: notes.length,
        p_memsz: notes.length,
        p_align: 4n,
      },
      out,
      Elf64_Ehdr.size,
      this.le,
    );
    out.set(notes, this.notesOffset);
    this.pos = end;
    return out;
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

  /** Append one data chunk; returns the bytes to write at the current offset (in order). */
  addChunk(paddr: number, chunk: CompressedChunk): Uint8Array[] {
    this.order(paddr, chunk.rawSize);
    if (chunk.rawSize > CELF_MAX_CHUNK) throw new VmcoreError('BAD_FIELD', `chunk of ${chunk.rawSize} bytes exceeds the maximum`, { field: 'ch_size' });
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
    this.chunks.push({ offset: start, size, paddr, compressed: chunk.chType !== 0 });
    this.entries.push({ paddr, size: chunk.rawSize, kind: ENTRY_DATA, shndx });
    this.stats.chunks++;
    if (!chunk.chType) this.stats.rawChunks++;
    this.stats.dataBytes += chunk.rawSize;
    this.stats.storedBytes += size;
    return pieces;
  }

  /** Record a range that is not stored (zero, excluded, missing); merges with a neighbour. */
  addRange(paddr: number, size: number, kind: RangeKind): void {
    this.order(paddr, size);
    const code = KIND_CODE[kind];
    if (kind === 'zero') this.stats.zeroBytes += size;
    const last = this.entries[this.entries.length - 1];
    if (last && last.kind === code && last.paddr + last.size === paddr) last.size += size;
    else this.entries.push({ paddr, size, kind: code, shndx: 0 });
  }

  /**
   * Finish the file. Returns `tail` (to append at the current offset) and `header` (to write
   * at offset 0 over the provisional one).
   */
  finish(): { tail: Uint8Array; header: Uint8Array; size: number } {
    const le = this.le;
    const o = this.opts;
    // index
    const indexOffset = this.pos;
    const indexSize = CelfIndexHeader.size + this.entries.length * CelfIndexEntry.size;
    // .shstrtab: "\0.shstrtab\0.note\0.celf.index\0.celf.mem\0"
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
        flags: o.incomplete ? CELF_FLAG_INCOMPLETE : 0,
        reserved: 0n,
      },
      tail,
      0,
      le,
    );
    let p = CelfIndexHeader.size;
    for (const e of this.entries) {
      CelfIndexEntry.write({ paddr: e.paddr, size: e.size, kind: e.kind, reserved: 0, shndx: e.shndx }, tail, p, le);
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
    put({
      sh_name: nameOff[CELF_NOTE_NAME]!,
      sh_type: SHT_NOTE,
      sh_offset: this.notesOffset,
      sh_size: o.notes.length,
      sh_addralign: 4n,
    });
    put({
      sh_name: nameOff[CELF_INDEX_NAME]!,
      sh_type: SHT_CELF_INDEX,
      sh_offset: indexOffset,
      sh_size: indexSize,
      sh_addralign: 8n,
      sh_entsize: BigInt(CelfIndexEntry.size),
      sh_link: SHNDX_SHSTRTAB,
    });
    for (const c of this.chunks) {
      put({
        sh_name: nameOff[CELF_MEM_NAME]!,
        sh_type: SHT_PROGBITS,
        sh_flags: c.compressed ? BigInt(SHF_COMPRESSED) : 0n,
        sh_addr: BigInt(c.paddr),
        sh_offset: c.offset,
        sh_size: c.size,
        sh_addralign: 8n,
      });
    }
    this.pos = total;
    return { tail, header: this.ehdr(shoff, shnum), size: total };
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
    else for (const piece of layout.addChunk(item.paddr, compressChunk(codec, item.data, opts.level))) await sink.write(piece);
  }
  const { tail, header, size } = layout.finish();
  await sink.write(tail);
  await sink.writeAt(0, header);
  return { size, stats: layout.stats };
}

/** A sink collecting everything in memory (tests, small dumps, browsers). */
export class BufferSink implements CelfSink {
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
