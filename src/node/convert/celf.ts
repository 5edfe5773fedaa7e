/**
 * Compressed ELF ("celf") output for `convertDump`: an OutputFormat plug-in.
 *
 * The pipeline's workers only classify pages (zero / data; `codec: 'none'`), because celf
 * compresses chunks of many pages, not pages. The plug-in gathers the pages of each aligned
 * chunk window into a slot of a group buffer (about 1 MiB of windows) and hands whole groups to
 * its own CompressPool, whose "page" is the chunk size, so chunks are compressed on all cores,
 * one worker message per group, while the main thread places the results in order. At most
 * `2 * threads + 2` groups are in flight (bounded memory), and the plug-in waits for the sink
 * on every placement, so a slow disk holds the pipeline back.
 *
 * A compressed chunk covers its whole window (absent pages inside read as zero and are not
 * named by any index entry); a window that does not compress is stored raw, trimmed to its
 * first..last data page. Long zero runs become zero ranges, RAM the source does not deliver
 * (excluded) becomes excluded ranges, RAM the input lacked missing ranges. After a failure the
 * chunks on the disk are kept under an index marked incomplete; on a full disk the last chunks
 * give way to it. Format: docs/compressed-elf.md.
 */
import { availableParallelism } from 'node:os';
import { defaultThreads, THREADS_PER_CORE } from '../threads.js';
import { VmcoreError } from '../../core/errors.js';
import { buildNotes } from '../../core/format/elf/notes.js';
import { elfMachine } from '../../core/format/elf/writer.js';
import { InFlight } from '../../core/inflight.js';
import { subtractSpans } from '../../core/kernel/pagefilter.js';
import { PAGE_COMPRESSED, PAGE_ZERO, type CompressedBatch, type OutputCodec } from '../../core/format/batch.js';
import { CH_TYPES, CELF_DEFAULT_CHUNK } from '../../core/format/celf/structs.js';
import { CelfLayout, carveWindow, checkChunkSize, DEFAULT_MIN_ZERO_RUN, type CelfPart } from '../../core/format/celf/writer.js';
import { CompressPool, type BatchOut } from '../workers/pool.js';
import type { ConvertPlan, OutputFormat, OutputFormatFactory, PfnRange } from './types.js';
import { isNoSpace, type OutputSink } from './sinks.js';

export interface CelfFormatOptions {
  codec: OutputCodec;
  level?: number;
  /** Uncompressed bytes per chunk (default CELF_DEFAULT_CHUNK). */
  chunkSize?: number;
  /** Chunk compression threads (default: cores; 0 = on the main thread). */
  threads?: number;
  minZeroRun?: number;
  /** Use the npm codec packages (node:zlib, lzo) even when the native addon is built. */
  noNative?: boolean;
}

/** `convertDump(..., { outputFormat: celfOutput({ chunkSize }) })`. */
export function celfOutput(o: Omit<CelfFormatOptions, 'codec' | 'level'> = {}): OutputFormatFactory {
  return (f) => new CelfFormat({ ...o, codec: f.codec, level: f.level });
}

interface Window {
  /** First pfn of the window (aligned to the chunk size). */
  pfn: number;
  group: Group;
  slot: number;
  /** Per page: NOT_DELIVERED, DELIVERED_ZERO or DELIVERED_DATA. */
  state: Uint8Array;
}

/** Window page states. */
const NOT_DELIVERED = 0;
const DELIVERED_ZERO = 1;
const DELIVERED_DATA = 2;

interface Closed {
  slot: number;
  pfn: number;
  parts: CelfPart[];
  firstData: number;
  endData: number;
}

/** Consecutive windows compressed as one pool job (slot i = bytes [i, i+1) * chunkSize). */
interface Group {
  buf: ArrayBuffer;
  used: number;
  windows: Closed[];
}

export class CelfFormat implements OutputFormat {
  readonly name = 'celf';
  /** Workers of the main pipeline only detect zero pages; chunks are compressed here. */
  readonly compression = { codec: 'none' as OutputCodec, detectZero: true };
  get storedCodec(): OutputCodec {
    return this.o.codec;
  }
  private readonly chunkSize: number;
  private readonly threads: number;
  private plan!: ConvertPlan;
  private sink!: OutputSink;
  private layout!: CelfLayout;
  private pool: CompressPool | undefined;
  private win: Window | undefined;
  private group: Group | undefined;
  private groupSlots = 1;
  /** Groups given to the pool (or, when nothing in them is data, passed through), placed in order. */
  private readonly inflight: InFlight<{ g: Group; r: BatchOut | undefined }>;
  private readonly free: ArrayBuffer[] = [];
  private chunkPages = 0;
  /** RAM the source does not deliver (excluded, missing), ascending, and a cursor into it. */
  private absent: PfnRange[] = [];
  private absentAt = 0;
  /** The part of `absent` the input lacked (recorded as missing, the file marked incomplete). */
  private missing: readonly PfnRange[] = [];
  private missingAt = 0;
  private readonly pageCounts = { compressed: 0, raw: 0, zero: 0 };
  private readonly wc = new Uint8Array(1 << 20);
  private wcOff = 0;
  private wcLen = 0;
  /** The file's bytes up to here are written (the head, then chunk sections in order). */
  private durable = 0;

  constructor(private readonly o: CelfFormatOptions) {
    this.chunkSize = o.chunkSize ?? CELF_DEFAULT_CHUNK;
    this.threads = o.threads !== undefined ? Math.min(o.threads, THREADS_PER_CORE * Math.max(1, availableParallelism())) : defaultThreads();
    this.inflight = new InFlight(Math.max(2, this.threads * 2 + 2), ({ g, r }) => this.place(g, r));
  }

  async begin(plan: ConvertPlan, sink: OutputSink): Promise<void> {
    if (plan.part) throw new VmcoreError('USAGE', 'celf output cannot be split into several files');
    this.plan = plan;
    this.sink = sink;
    const ps = plan.pageSize;
    checkChunkSize(this.chunkSize, ps);
    this.chunkPages = this.chunkSize / ps;
    this.groupSlots = Math.max(1, Math.floor((1 << 20) / this.chunkSize));
    this.layout = new CelfLayout({
      littleEndian: plan.littleEndian,
      machine: elfMachine(plan.arch),
      pageSize: ps,
      maxPfn: plan.maxPfn,
      notes: buildNotes(plan.notes, plan.littleEndian),
      chunkSize: this.chunkSize,
      codec: this.o.codec,
    });
    if (this.o.codec !== 'none') {
      if (!(this.o.codec in CH_TYPES)) throw new VmcoreError('USAGE', `celf cannot use codec ${this.o.codec}`);
      this.pool = new CompressPool(
        { codec: this.o.codec, level: this.o.level ?? 1, pageSize: this.chunkSize, detectZero: false, noNative: !!this.o.noNative },
        this.threads,
      );
    }
    this.absent = subtractSpans(plan.ram, plan.present);
    this.missing = plan.missing ?? [];
    const head = this.layout.head();
    await sink.write(0, head);
    this.durable = head.length;
  }

  async writeBatch(b: CompressedBatch): Promise<void> {
    const ps = this.plan.pageSize;
    let dataOff = 0;
    let i = 0;
    while (i < b.count) {
      const pfn = b.startPfn + i;
      const wpfn = pfn - (pfn % this.chunkPages);
      if (this.win && this.win.pfn !== wpfn) await this.closeWindow();
      if (!this.win) this.win = this.newWindow(wpfn);
      const w = this.win;
      // the run of pages of this batch that fall into this window
      const end = Math.min(b.count, i + (wpfn + this.chunkPages - pfn));
      while (i < end) {
        const k = b.startPfn + i - wpfn;
        if (b.kinds[i] === PAGE_ZERO) {
          w.state[k] = DELIVERED_ZERO;
          i++;
          continue;
        }
        // consecutive stored pages are consecutive in b.data: copy them at once
        let j = i;
        while (j < end && b.kinds[j] !== PAGE_ZERO) {
          if (b.sizes[j] !== ps) throw new VmcoreError('BAD_FIELD', `celf: page 0x${(b.startPfn + j).toString(16)} arrived compressed`, { field: 'batch' });
          j++;
        }
        const n = (j - i) * ps;
        new Uint8Array(w.group.buf, w.slot * this.chunkSize + k * ps, n).set(b.data.subarray(dataOff, dataOff + n));
        w.state.fill(DELIVERED_DATA, k, k + (j - i));
        dataOff += n;
        i = j;
      }
    }
  }

  private newWindow(pfn: number): Window {
    if (!this.group) {
      const size = this.groupSlots * this.chunkSize;
      let buf = this.free.pop();
      if (!buf || buf.byteLength !== size) buf = new ArrayBuffer(size);
      this.group = { buf, used: 0, windows: [] };
    }
    const slot = this.group.used++;
    return { pfn, group: this.group, slot, state: new Uint8Array(this.chunkPages) };
  }

  /** Carve the current window; submit its group when full; place finished groups in order. */
  private async closeWindow(): Promise<void> {
    const w = this.win;
    this.win = undefined;
    if (!w) return;
    const ps = this.plan.pageSize;
    const parts: CelfPart[] = [];
    let firstData = -1;
    let endData = -1;
    // contiguous delivered segments of the window, each carved on its own
    for (let i = 0; i < this.chunkPages; ) {
      if (w.state[i] === NOT_DELIVERED) {
        i++;
        continue;
      }
      let j = i;
      while (j < this.chunkPages && w.state[j] !== NOT_DELIVERED) j++;
      const seg = carveWindow(
        Array.from(w.state.subarray(i, j), (s) => s === DELIVERED_ZERO),
        w.pfn + i,
        ps,
        this.o.minZeroRun ?? DEFAULT_MIN_ZERO_RUN,
      );
      parts.push(...seg.parts);
      if (seg.firstData >= 0) {
        if (firstData < 0) firstData = i + seg.firstData;
        endData = i + seg.endData;
      }
      i = j;
    }
    // zero what an earlier use of the buffer left in pages that are not data
    const bytes = new Uint8Array(w.group.buf, w.slot * this.chunkSize, this.chunkSize);
    for (let i = 0; i < this.chunkPages; ) {
      if (w.state[i] === DELIVERED_DATA) {
        i++;
        continue;
      }
      let j = i;
      while (j < this.chunkPages && w.state[j] !== DELIVERED_DATA) j++;
      bytes.fill(0, i * ps, j * ps);
      i = j;
    }
    w.group.windows.push({ slot: w.slot, pfn: w.pfn, parts, firstData, endData });
    if (w.group.used === this.groupSlots) await this.submitGroup();
  }

  private async submitGroup(): Promise<void> {
    const g = this.group;
    this.group = undefined;
    if (!g || !g.used) return;
    const result = this.pool && g.windows.some((w) => w.firstData >= 0) ? this.pool.submit({ startPfn: 0, count: g.used, buf: g.buf }) : undefined;
    await this.inflight.push(result ? result.then((r) => ({ g, r })) : Promise.resolve({ g, r: undefined }));
  }

  /** Write one group's chunks (`r`: what the pool made of them, when it was asked). */
  private async place(g: Group, r: BatchOut | undefined): Promise<void> {
    const ps = this.plan.pageSize;
    // where each slot's stored bytes are: the pool compacts them in slot order
    const dataAt = new Array<number>(g.used);
    // (g.buf is detached when the group went to a worker: use the returned buffer then)
    const buffer: ArrayBuffer = r ? r.buffer : g.buf;
    const data: Uint8Array = r ? r.data : new Uint8Array(g.buf);
    let off = 0;
    for (let i = 0; i < g.used; i++) {
      dataAt[i] = r ? off : i * this.chunkSize;
      if (r) off += r.sizes[i]!;
    }
    for (const w of g.windows) {
      const base = w.pfn * ps;
      let shndx = -1;
      let addr = 0;
      if (w.firstData >= 0) {
        let placed;
        const at = dataAt[w.slot]!;
        if (r && r.kinds[w.slot] === PAGE_COMPRESSED) {
          addr = base;
          const payload = data.subarray(at, at + r.sizes[w.slot]!);
          placed = this.layout.addSection(addr, { chType: CH_TYPES[this.o.codec as keyof typeof CH_TYPES], payload, rawSize: this.chunkSize });
          this.countPages(w.parts, 'compressed');
        } else {
          // stored raw: only the first..last data page
          addr = base + w.firstData * ps;
          const raw = data.subarray(at + w.firstData * ps, at + w.endData * ps);
          placed = this.layout.addSection(addr, { chType: 0, payload: raw, rawSize: raw.length });
          this.countPages(w.parts, 'raw');
        }
        shndx = placed.shndx;
        await this.put(placed.offset, placed.pieces, placed.length);
      }
      for (const p of w.parts) {
        await this.absentUpTo(p.paddr / ps);
        if (p.kind === 'zero') {
          this.layout.addRange(p.paddr, p.size, 'zero');
          this.pageCounts.zero += p.size / ps;
        } else this.layout.addData(p.paddr, p.size, shndx, p.paddr - addr);
      }
    }
    if (buffer.byteLength === this.groupSlots * this.chunkSize && this.free.length < 4) this.free.push(buffer);
  }

  /**
   * Sequential chunk bytes go through a 1 MiB write-combining buffer (one write per MiB
   * instead of three per chunk); the pieces are copied, so window buffers can be reused.
   */
  private put(offset: number, pieces: Uint8Array[], length: number): Promise<void> | void {
    if (this.wcLen && this.wcOff + this.wcLen !== offset) throw new Error('celf: chunk bytes out of order');
    if (this.wcLen + length > this.wc.length) {
      const p = this.flushWc();
      if (length > this.wc.length) return p.then(() => this.writePieces(offset, pieces));
      return p.then(() => this.put(offset, pieces, length));
    }
    if (!this.wcLen) this.wcOff = offset;
    for (const piece of pieces) {
      this.wc.set(piece, this.wcLen);
      this.wcLen += piece.length;
    }
  }

  private async writePieces(offset: number, pieces: Uint8Array[]): Promise<void> {
    for (const piece of pieces) {
      await this.sink.write(offset, piece);
      offset += piece.length;
      this.durable = Math.max(this.durable, offset);
    }
  }

  private async flushWc(): Promise<void> {
    if (!this.wcLen) return;
    const n = this.wcLen;
    this.wcLen = 0;
    await this.sink.write(this.wcOff, this.wc.subarray(0, n));
    this.durable = Math.max(this.durable, this.wcOff + n);
  }

  private countPages(parts: CelfPart[], k: 'compressed' | 'raw'): void {
    for (const p of parts) if (p.kind === 'data') this.pageCounts[k] += p.size / this.plan.pageSize;
  }

  /** Record the excluded/missing RAM below `pfn`. */
  private async absentUpTo(pfn: number): Promise<void> {
    const ps = this.plan.pageSize;
    while (this.absentAt < this.absent.length) {
      const r = this.absent[this.absentAt]!;
      if (r.startPfn >= pfn) return;
      const end = Math.min(r.endPfn, pfn);
      this.addAbsent(r.startPfn, end);
      if (end < r.endPfn) {
        this.absent[this.absentAt] = { startPfn: end, endPfn: r.endPfn };
        return;
      }
      this.absentAt++;
    }
  }

  /** [start, end) of absent RAM: excluded, except the missing pieces. */
  private addAbsent(start: number, end: number): void {
    const ps = this.plan.pageSize;
    let at = start;
    while (at < end) {
      while (this.missingAt < this.missing.length && this.missing[this.missingAt]!.endPfn <= at) this.missingAt++;
      const m = this.missing[this.missingAt];
      if (m && m.startPfn <= at) {
        const e = Math.min(m.endPfn, end);
        this.layout.addRange(at * ps, (e - at) * ps, 'missing');
        at = e;
      } else {
        const e = Math.min(m ? m.startPfn : end, end);
        this.layout.addRange(at * ps, (e - at) * ps, 'excluded');
        at = e;
      }
    }
  }

  async finish({ incomplete }: { incomplete: boolean }): Promise<number> {
    try {
      if (!incomplete) {
        await this.closeWindow();
        await this.submitGroup();
        await this.inflight.drain();
        await this.flushWc();
        await this.absentUpTo(this.plan.maxPfn);
        const fin = this.layout.finish({ incomplete: this.missing.length > 0 });
        await this.sink.write(fin.tailOffset, fin.tail);
        await this.sink.write(0, fin.header);
        return fin.size;
      }
      // After a failure: the chunks that are on the disk, described by an index marked
      // incomplete (RAM beyond them is not known to be excluded: left out).
      try {
        await this.closeWindow();
        await this.submitGroup();
        await this.inflight.drain();
        await this.flushWc();
      } catch {
        /* the failure itself, or the same full disk: what is on the disk stays */
      }
      let keep = this.layout.chunksBefore(this.durable);
      this.layout.keepChunks(keep);
      for (let drop = 1; ; drop *= 2) {
        const fin = this.layout.finish({ incomplete: true });
        try {
          await this.sink.write(fin.tailOffset, fin.tail);
          await this.sink.write(0, fin.header);
          return fin.size;
        } catch (e) {
          // a full disk: give up the last chunks (1, 2, 4, ...) until the index fits where they were
          if (!isNoSpace(e) || !this.sink.truncate || keep === 0) throw e;
          keep = Math.max(0, keep - drop);
          await this.sink.truncate(this.layout.keepChunks(keep));
        }
      }
    } finally {
      await this.close();
    }
  }

  async close(): Promise<void> {
    await this.pool?.close();
  }

  counts(): { compressed: number; raw: number; zero: number } {
    return { ...this.pageCounts };
  }
}

