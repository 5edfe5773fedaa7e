/**
 * Streaming reader for an ELF core that can be read only ONCE, in order (a pipe or FIFO that
 * QEMU's dump-guest-memory writes into).
 *
 * QEMU writes: ELF header, section headers, program headers, notes, then guest memory segment
 * after segment in ascending file offset, then section data. `ElfStream.open` reads everything
 * up to the first memory byte and returns the notes and segments; `pages()` then yields guest
 * memory in ascending file order as batches of whole pages. Memory use is bounded (one batch
 * plus the input chunk); hostile input raises typed VmcoreErrors, never a hang or a huge
 * allocation.
 */
import { warning, type Warning } from '../../core/warnings.js';
import { VmcoreError } from '../../core/errors.js';
import { parseNotes, type ElfNote } from '../../core/format/elf/notes.js';
import { ELF_LIMITS, checkNoteTotal, parseElfHeader, parseElfIdent, parseProgramHeaders, parseSectionHeader, programHeaderCount, programHeaderTable } from '../../core/format/elf/header.js';
import {
  Elf64_Ehdr,
  Elf64_Shdr,
  MACHINES,
  PN_XNUM,
  PT_LOAD,
  PT_NOTE,
} from '../../core/format/elf/structs.js';
import { isDirectByteStream, type DirectByteStream } from './direct-read.js';

/** Headers and notes read before the first memory byte (the other limits: ELF_LIMITS). */
const MAX_HEADER_BYTES = ELF_LIMITS.maxStreamHeaderBytes;

export interface StreamSegment {
  /** Physical address of the first byte (PT_LOAD p_paddr). */
  paddr: number;
  vaddr: bigint;
  offset: number;
  filesz: number;
  memsz: number;
}

/** A run of consecutive pages. `data` holds `count * pageSize` bytes, or is absent for zero pages (p_memsz > p_filesz tails). */
export interface PageBatch {
  pfn: number;
  count: number;
  data?: Uint8Array;
  /** `data` starts a buffer from the consumer's allocator (`useBuffers`), which the consumer now owns. */
  owned?: boolean;
}

export interface ElfStreamInfo {
  arch: string;
  machine: number;
  littleEndian: boolean;
  is64: boolean;
  notes: ElfNote[];
  /** PT_LOAD segments in file order. */
  segments: StreamSegment[];
  pageSize: number;
  /** One past the highest page frame any segment touches. */
  maxPfn: number;
  /** Total bytes of memory the stream will deliver (sum of p_filesz). */
  memoryBytes: number;
  /**
   * The bytes read before the first memory byte, by file offset (ELF header, program headers,
   * notes; padding between them is not kept): with the segments, enough to present the stream
   * as a random-access ELF file whose memory is read elsewhere (see guest-memory.ts).
   */
  headerPieces: { offset: number; bytes: Uint8Array }[];
}

/**
 * Pulls exact byte counts out of an async chunk iterator or a direct reader (the input of every
 * one-pass reader). With a direct reader, `readInto` reads straight into the destination.
 */
export class ChunkReader {
  private it: AsyncIterator<Uint8Array> | undefined;
  private direct: DirectByteStream | undefined;
  private cur: Uint8Array = new Uint8Array(0);
  private pos = 0;
  /** Bytes consumed so far = current file offset. */
  offset = 0;
  private done = false;

  constructor(
    input: AsyncIterable<Uint8Array> | DirectByteStream,
    readonly name: string,
  ) {
    if (isDirectByteStream(input)) this.direct = input;
    else this.it = input[Symbol.asyncIterator]();
  }

  private async fill(): Promise<boolean> {
    while (this.pos >= this.cur.length) {
      if (this.done) return false;
      if (this.direct) {
        // a chunk of its own (callers may keep views of it)
        const b = new Uint8Array(64 << 10);
        const n = await this.direct.readFull(b);
        if (n < b.length) this.done = true;
        this.cur = b.subarray(0, n);
        this.pos = 0;
        continue;
      }
      const r = await this.it!.next();
      if (r.done) {
        this.done = true;
        return false;
      }
      this.cur = r.value instanceof Uint8Array ? r.value : new Uint8Array(r.value as ArrayBuffer);
      this.pos = 0;
    }
    return true;
  }

  /** Copy exactly `n` bytes into `dst` at `at`; TRUNCATED if the stream ends first. */
  async readInto(dst: Uint8Array, at: number, n: number, what: string): Promise<void> {
    let done = 0;
    while (done < n) {
      if (this.direct && this.pos >= this.cur.length && !this.done) {
        // straight into the destination
        const k = await this.direct.readFull(dst.subarray(at + done, at + n));
        done += k;
        this.offset += k;
        if (done < n) this.done = true;
        continue;
      }
      if (!(await this.fill())) {
        throw new VmcoreError('TRUNCATED', `the stream ended after ${this.offset} bytes, inside ${what}`, {
          file: this.name,
          offset: this.offset,
        });
      }
      const k = Math.min(n - done, this.cur.length - this.pos);
      dst.set(this.cur.subarray(this.pos, this.pos + k), at + done);
      this.pos += k;
      done += k;
      this.offset += k;
    }
  }

  /** Up to `max` bytes of the next input chunk as they come (no copy); undefined at the end. */
  async next(max: number): Promise<Uint8Array | undefined> {
    if (!(await this.fill())) return undefined;
    const k = Math.min(max, this.cur.length - this.pos);
    const b = this.cur.subarray(this.pos, this.pos + k);
    this.pos += k;
    this.offset += k;
    return b;
  }

  async read(n: number, what: string): Promise<Uint8Array> {
    const b = new Uint8Array(n);
    await this.readInto(b, 0, n, what);
    return b;
  }

  /** Skip to file offset `to` (must not be behind). */
  async skipTo(to: number, what: string): Promise<void> {
    if (to < this.offset) {
      throw new VmcoreError('UNSUPPORTED', `${what} at offset 0x${to.toString(16)} lies behind data already read; a stream must be in file order`, {
        file: this.name,
        offset: to,
      });
    }
    while (this.offset < to) {
      if (!(await this.fill())) {
        throw new VmcoreError('TRUNCATED', `the stream ended after ${this.offset} bytes, before ${what}`, { file: this.name, offset: this.offset });
      }
      const k = Math.min(to - this.offset, this.cur.length - this.pos);
      this.pos += k;
      this.offset += k;
    }
  }

  /** Read and discard everything left; returns the number of bytes. */
  async drain(): Promise<number> {
    let n = 0;
    while (await this.fill()) {
      const k = this.cur.length - this.pos;
      n += k;
      this.offset += k;
      this.pos = this.cur.length;
    }
    return n;
  }

  async close(): Promise<void> {
    if (this.direct) this.direct.close();
    else await this.it!.return?.();
  }
}

export interface ElfStreamOptions {
  /** Name for error messages. */
  name?: string;
  pageSize?: number;
  /** Pages per yielded batch (default 256 = 1 MiB of 4 KiB pages). */
  batchPages?: number;
  /**
   * Reuse one batch buffer: each batch's data is valid only until the next one is requested
   * (for consumers that copy it at once). Default false: every batch has its own ArrayBuffer.
   */
  reuseBuffer?: boolean;
}

export class ElfStream {
  private consumed = false;
  private alloc: ((bytes: number) => ArrayBuffer) | undefined;

  private constructor(
    private readonly r: ChunkReader,
    readonly info: ElfStreamInfo,
    private readonly batchPages: number,
    readonly warnings: Warning[],
    private readonly reuse: boolean,
  ) {}

  /** Bytes read from the stream so far. */
  get bytesRead(): number {
    return this.r.offset;
  }

  /**
   * Read the pages into buffers from `get` (called with the byte size of a full batch) and yield
   * them `owned`: the consumer keeps each buffer (e.g. hands it to a worker and recycles it).
   * With a direct reader, the read system calls fill these buffers themselves.
   */
  useBuffers(get: (bytes: number) => ArrayBuffer): void {
    this.alloc = get;
  }

  /** Read the headers and notes (everything before the first memory byte). */
  static async open(input: AsyncIterable<Uint8Array> | DirectByteStream, opts: ElfStreamOptions = {}): Promise<ElfStream> {
    const name = opts.name ?? 'ELF stream';
    const pageSize = opts.pageSize ?? 4096;
    const batchPages = Math.max(1, Math.min(opts.batchPages ?? 256, 4096));
    const r = new ChunkReader(input, name);
    const warnings: Warning[] = [];
    const ctx = { file: name };

    const ident = await r.read(16, 'the ELF identification');
    const { is64 } = parseElfIdent(ident, name);
    if (!is64) {
      throw new VmcoreError('UNSUPPORTED', 'ELF32 cores cannot be streamed yet (QEMU writes ELF32 only for guests not in 64-bit mode)', { ...ctx, offset: 4, field: 'e_ident[EI_CLASS]' });
    }
    const ehBuf = new Uint8Array(Elf64_Ehdr.size);
    ehBuf.set(ident, 0);
    await r.readInto(ehBuf, 16, Elf64_Ehdr.size - 16, 'the ELF header');
    const eh = parseElfHeader(ehBuf, name);
    const le = eh.littleEndian;
    const headerPieces: ElfStreamInfo['headerPieces'] = [{ offset: 0, bytes: ehBuf }];
    if (eh.phoff < Elf64_Ehdr.size) throw new VmcoreError('OUT_OF_BOUNDS', `e_phoff ${eh.phoff} overlaps the ELF header`, { ...ctx, offset: 32, field: 'e_phoff' });

    // Collect the header area: section headers (needed for PN_XNUM) and program headers, in
    // file order.
    let sh0Info: number | undefined;
    if (eh.phnum === PN_XNUM) {
      if (eh.shoff < Elf64_Ehdr.size || eh.shoff > MAX_HEADER_BYTES || eh.shentsize !== Elf64_Shdr.size) {
        throw new VmcoreError('UNSUPPORTED', 'e_phnum is PN_XNUM but section header 0 is not readable before the program headers', { ...ctx, offset: 40, field: 'e_shoff' });
      }
      if (eh.shoff > eh.phoff) {
        throw new VmcoreError('UNSUPPORTED', 'e_phnum is PN_XNUM and the section headers follow the program headers; cannot stream', { ...ctx, offset: 40, field: 'e_shoff' });
      }
      await r.skipTo(eh.shoff, 'section header 0');
      const shBuf = await r.read(Elf64_Shdr.size, 'section header 0');
      headerPieces.push({ offset: eh.shoff, bytes: shBuf });
      sh0Info = parseSectionHeader(shBuf, 0, eh, name, eh.shoff).info;
    }
    const phnum = programHeaderCount(eh, sh0Info, name);
    const table = programHeaderTable(eh, phnum);
    if (table.offset + table.bytes > MAX_HEADER_BYTES) {
      throw new VmcoreError('OUT_OF_BOUNDS', `program headers end at ${table.offset + table.bytes}, beyond ${MAX_HEADER_BYTES} bytes`, { ...ctx, offset: 32, field: 'e_phoff' });
    }
    await r.skipTo(table.offset, 'the program headers');
    const phBuf = await r.read(table.bytes, 'the program headers');
    headerPieces.push({ offset: table.offset, bytes: phBuf });
    const phdrs = parseProgramHeaders(phBuf, eh, phnum, name);
    checkNoteTotal(phdrs, name);

    const notesPh: { offset: number; size: number }[] = [];
    const loads: StreamSegment[] = [];
    for (const ph of phdrs) {
      if (ph.type === PT_NOTE) {
        if (ph.filesz > 0) notesPh.push({ offset: ph.offset, size: ph.filesz });
      } else if (ph.type === PT_LOAD) {
        if (ph.memsz === 0) continue;
        loads.push({ paddr: Number(ph.paddr), vaddr: ph.vaddr, offset: ph.offset, filesz: ph.filesz, memsz: ph.memsz });
      }
    }

    // Notes come before memory; read them in file order.
    notesPh.sort((a, b) => a.offset - b.offset);
    const notes: ElfNote[] = [];
    for (const n of notesPh) {
      const firstLoad = loads.reduce((m, s) => (s.filesz > 0 ? Math.min(m, s.offset) : m), Infinity);
      if (n.offset > firstLoad) throw new VmcoreError('UNSUPPORTED', 'a PT_NOTE follows guest memory in the file; cannot stream', { ...ctx, offset: n.offset });
      await r.skipTo(n.offset, 'the notes');
      const nb = await r.read(n.size, 'the notes');
      headerPieces.push({ offset: n.offset, bytes: nb });
      notes.push(...parseNotes(nb, le, { file: name, base: n.offset, warnings }));
    }

    // Memory segments in file order; file ranges must not overlap (QEMU writes each byte of
    // guest memory once). Identical duplicates (paging=true mappings of the same block) are
    // dropped.
    const ordered = loads.filter((s) => s.filesz > 0).map((s) => ({ ...s })).sort((a, b) => a.offset - b.offset || a.paddr - b.paddr);
    const segs: StreamSegment[] = [];
    for (const s of ordered) {
      const prev = segs[segs.length - 1];
      if (prev && s.offset < prev.offset + prev.filesz) {
        if (s.paddr - s.offset === prev.paddr - prev.offset) {
          // the same file bytes for the same physical addresses (paging=true mappings): merge
          const end = Math.max(prev.offset + prev.filesz, s.offset + s.filesz);
          if (prev.memsz === prev.filesz && s.memsz === s.filesz) {
            prev.filesz = end - prev.offset;
            prev.memsz = prev.filesz;
            continue;
          }
          if (s.offset + s.filesz <= prev.offset + prev.filesz) continue;
        }
        throw new VmcoreError('UNSUPPORTED', `PT_LOAD segments overlap in the file at offset 0x${s.offset.toString(16)}`, { ...ctx, offset: s.offset, field: 'p_offset' });
      }
      segs.push(s);
    }
    // Zero tails (memsz > filesz) and memory-only segments.
    for (const s of loads) if (s.filesz === 0) segs.push(s);
    let maxPfn = 0;
    let memoryBytes = 0;
    for (const s of loads) {
      maxPfn = Math.max(maxPfn, Math.ceil((s.paddr + s.memsz) / pageSize));
    }
    for (const s of segs) memoryBytes += s.filesz;
    if (segs.some((s) => s.paddr % pageSize !== 0)) warnings.push(warning('SEGMENT_UNALIGNED', 'a PT_LOAD does not start on a page boundary; partial pages are zero-filled'));

    const info: ElfStreamInfo = {
      arch: MACHINES[eh.machine] ?? 'unknown',
      machine: eh.machine,
      littleEndian: le,
      is64: true,
      notes,
      segments: segs,
      pageSize,
      maxPfn,
      memoryBytes,
      headerPieces,
    };
    return new ElfStream(r, info, batchPages, warnings, !!opts.reuseBuffer);
  }

  /**
   * Guest memory in file order, as batches of consecutive whole pages. A page that two
   * segments share (unaligned segments) is yielded once per segment, zero-filled where the
   * segment does not cover it. Pages of `p_memsz > p_filesz` tails come as batches without
   * data, right after their segment's data. Can be iterated once.
   */
  async *pages(): AsyncGenerator<PageBatch> {
    if (this.consumed) throw new VmcoreError('USAGE', 'an ELF stream can be read only once');
    this.consumed = true;
    const ps = this.info.pageSize;
    const { r } = this;
    const B = this.batchPages;
    const alloc = this.alloc;
    const shared = this.reuse && !alloc ? new Uint8Array(B * ps) : undefined;
    function* tail(first: number, end: number): Generator<PageBatch> {
      for (let p = first; p < end; p += B * 64) yield { pfn: p, count: Math.min(B * 64, end - p) };
    }
    for (const s of this.info.segments) {
      if (s.filesz === 0) {
        yield* tail(Math.ceil(s.paddr / ps), Math.floor((s.paddr + s.memsz) / ps));
        continue;
      }
      await r.skipTo(s.offset, `the PT_LOAD at paddr 0x${s.paddr.toString(16)}`);
      const head = s.paddr % ps; // bytes of the first page before the segment
      let pfn = Math.floor(s.paddr / ps);
      let left = s.filesz;
      let first = true;
      while (left > 0) {
        const pagesLeft = Math.ceil((left + (first ? head : 0)) / ps);
        const count = Math.min(B, pagesLeft);
        const data = alloc ? new Uint8Array(alloc(B * ps), 0, count * ps) : shared ? shared.subarray(0, count * ps) : new Uint8Array(count * ps);
        const skip = first ? head : 0;
        const n = Math.min(left, count * ps - skip);
        if ((shared || alloc) && (skip > 0 || n < count * ps)) data.fill(0);
        await r.readInto(data, skip, n, `the PT_LOAD at paddr 0x${s.paddr.toString(16)}`);
        left -= n;
        first = false;
        yield alloc ? { pfn, count, data, owned: true } : { pfn, count, data };
        pfn += count;
      }
      // memsz beyond filesz: zero pages that start after the data.
      yield* tail(Math.ceil((s.paddr + s.filesz) / ps), Math.floor((s.paddr + s.memsz) / ps));
    }
    // Section data and anything else after memory: read and discard so the writer finishes.
    await r.drain();
  }

  /** Stop reading (the writer then gets EPIPE / a write error). */
  async close(): Promise<void> {
    await this.r.close();
  }
}
