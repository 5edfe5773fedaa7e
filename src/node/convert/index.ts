/**
 * `convertDump`: one-pass, bounded-memory conversion of any dump into kdump-compressed
 * (seekable, flattened or a split set) or ELF.
 *
 * Pipeline
 *   input pages ──► batches (≤ batchPages consecutive present pages, one ArrayBuffer each)
 *     ──► CompressPool (worker_threads; buffers transferred, not copied; zero check and
 *         per-page compression in place) ──► results in page order ──► output format plug-in
 *     ──► OutputSink (positional writes: temp file + rename, or the flattened stream)
 * At most `2 * threads + 2` batches exist at any time: the producer awaits a free slot,
 * and the consumer awaits each sink write before taking the next result, so a slow disk
 * holds the whole pipeline back instead of piling pages up in memory. Buffers are recycled.
 *
 * Inputs
 *  - a random-access `Dump` (openDumpFiles): the plan (RAM and present page runs) comes from
 *    `pageRuns()` (metadata only); pages are read with `readPhys` run by run.
 *  - a sequential `PageStreamInput` (e.g. an ELF read once from a FIFO while QEMU writes it):
 *    the memory ranges, notes and page size are declared up front and every page of every
 *    range arrives exactly once in ascending order. No output format needs a second pass over
 *    such an input: kdump reserves the descriptor area from the declared page count (zero pages
 *    share one zero page, so they stay "dumped"), writes data and each batch's descriptors at
 *    their final offsets, then bitmaps and headers at the end; ELF assigns segment offsets while
 *    streaming and writes the program headers at the end (zero runs inside a segment stay as
 *    sparse gaps instead of split points, since splitting needs the zero map before the header).
 *
 * Output-format plug-in interface (`OutputFormat`), e.g. for a compressed-ELF writer:
 *    page in  → `compression` tells the workers which codec/level to use and whether to detect
 *               zero pages (kinds PAGE_ZERO / PAGE_RAW / PAGE_COMPRESSED per page);
 *    compressed chunk → `writeBatch(batch)` receives each CompressedBatch in ascending pfn order
 *               (the batch buffer is reused after the returned promise settles);
 *    placed bytes → the plug-in calls `sink.write(offset, bytes)` / `sink.zeros(offset, n)` for
 *               every byte range of its file and returns the final size from `finish()`.
 *  `begin(plan, sink)` comes first, `finish({incomplete})` last (also on an abort with
 *  --keep-incomplete, with incomplete = true, to leave a readable partial file). A split set
 *  creates one plug-in instance per part (`plan.part`), each with its own sink.
 */
import { VmcoreError } from '../../core/errors.js';
import type { Dump, PageRun, PageState } from '../../core/dump.js';
import { cpuCountOfNotes, producerNote, withoutProducerNote, type ElfNote } from '../../core/format/elf/notes.js';
import { producerText } from '../version.js';
import {
  encodeKdumpHeader,
  encodeKdumpSubHeader,
  KdumpLayout,
  KdumpPagePlacer,
  PfnBitmap,
  type CompressedBatch,
  type KdumpHeaderInfo,
  type OutputCodec,
  type Utsname,
} from '../../core/format/kdump/writer.js';
import { kdumpAbiOf } from '../../core/format/kdump/structs.js';
import { ElfWriter, planElfSegments, type ElfAliasSpec, type ElfSegmentSpec } from '../../core/format/elf/writer.js';
import { Vmcoreinfo } from '../../core/kernel/vmcoreinfo.js';
import { subtractExcluded, type ExcludedRun, type KindCounts } from '../../core/kernel/pagefilter.js';
import { DL_PAGE_TYPES } from '../../core/kernel/pagetypes.js';
import { CompressPool, type BatchOut } from '../workers/pool.js';
import { compressorImpl } from '../workers/page-codec.js';
import { checkOutput, FileSink, FlatSink, type OutputSink } from './sinks.js';
import { kernelMappings } from '../../core/kernel/kernel-map.js';
import { DirectElfReader } from './direct.js';
import { availableParallelism } from 'node:os';
import type { Writable } from 'node:stream';

export type { OutputSink } from './sinks.js';

export interface PfnRange {
  startPfn: number;
  /** Exclusive. */
  endPfn: number;
}

/** A sequential input: every page of `ranges` arrives once, in ascending pfn order. */
export interface PageStreamInput {
  kind: 'stream';
  name: string;
  pageSize: number;
  arch: string;
  is64: boolean;
  littleEndian: boolean;
  notes: readonly ElfNote[];
  vmcoreinfoText?: string;
  /** Present memory, ascending, disjoint. */
  ranges: readonly PfnRange[];
  /** RAM (present or excluded by the producer), ascending, disjoint; default `ranges`. */
  ram?: readonly PfnRange[];
  /** max_mapnr (defaults to the end of the last range). */
  maxPfn?: number;
  /** Pages: each chunk holds whole pages starting at startPfn, continuing the sequence. */
  pages: AsyncIterable<{ startPfn: number; data: Uint8Array }>;
  /** Physical address → virtual address of PT_LOADs, when the source knows them. */
  segments?: readonly { paddr: number; vaddr: bigint; memsz: number }[];
  header?: Partial<Pick<KdumpHeaderInfo, 'utsname' | 'timestampSec' | 'nrCpus' | 'physBase' | 'dumpLevel'>>;
}

export type ConvertInput = Dump | PageStreamInput;

export interface ConvertProgress {
  pagesDone: number;
  pagesTotal: number;
  bytesIn: number;
  bytesOut: number;
  /** 'scan' while looking for zero runs (ELF from a random-access input), then 'write'. */
  phase: 'scan' | 'write';
}

export interface ConvertOptions {
  format?: 'kdump' | 'elf';
  /** kdump page codec (default zlib). */
  codec?: OutputCodec;
  /** Codec level (zlib/zstd), default 1 as makedumpfile and QEMU. */
  level?: number;
  /**
   * makedumpfile dump level 0-31 (recorded in the kdump header). Bit 1: zero pages cost nothing
   * (shared zero page in kdump, omitted in ELF); bits 2-16 leave out the pages in `exclude`.
   */
  dumpLevel?: number;
  /** Page frames to leave out (page filtering, `excludedPages`): ascending, disjoint. Needed for dump levels with bits 2-16. */
  exclude?: readonly ExcludedRun[];
  /** Worker threads (default: cores; 0 = compress on the main thread). */
  threads?: number;
  /** Write the makedumpfile -F flattened stream (implied when `out` is a stream). */
  flatten?: boolean;
  /** Write N files (OUT.1 .. OUT.N), each its own pfn range, as makedumpfile --split. */
  split?: number;
  force?: boolean;
  keepIncomplete?: boolean;
  /** The best phys_base known (kernel-awareness); else VMCOREINFO, else the source header. */
  physBase?: bigint;
  /** utsname for the kdump header (e.g. read from memory by kernel awareness); else the source's. */
  utsname?: Utsname;
  /** Notes to add to the source's (e.g. a VMCOREINFO recovered from memory when the file has none). */
  extraNotes?: readonly ElfNote[];
  /** PT_LOAD p_vaddr for ELF output: add the kernel-image alias and direct-map addresses (default true). */
  kernelVaddrs?: boolean;
  /** Pages per batch (default 256). */
  batchPages?: number;
  signal?: AbortSignal;
  onProgress?: (p: ConvertProgress) => void;
  /** Input file names (to refuse writing over them). */
  inputFiles?: readonly string[];
  /** Use node:zlib even when the libdeflate addon is present. */
  noNative?: boolean;
  /** Replace the built-in kdump/ELF writers (e.g. the compressed-ELF format). */
  outputFormat?: OutputFormatFactory;
  /**
   * Leave out every page from this pfn on and write max_mapnr = maxPfn:
   * the end of the kernel's memory model (`kernelMemoryEnd`), above which QEMU dumps firmware
   * ROM that makedumpfile cannot re-filter. The same rule as `fixDump`'s.
   */
  maxPfn?: number;
  /** Text of the producer note (default "vmcore VERSION convert"). */
  producer?: string;
}

export interface ConvertSummary {
  format: string;
  codec: OutputCodec;
  codecImpl: string;
  threads: number;
  outputs: { name: string; bytes: number; startPfn?: number; endPfn?: number }[];
  pages: { total: number; compressed: number; raw: number; zero: number; excluded: number; missing: number; holes: number };
  /** Present input pages left out by page type (dump levels 2-16, hwpoison, offline). */
  filtered?: KindCounts;
  bytesIn: number;
  bytesOut: number;
  seconds: number;
  physBase: string;
  warnings: string[];
}

/** What an output format is told before the first page. */
export interface ConvertPlan {
  pageSize: number;
  maxPfn: number;
  arch: string;
  is64: boolean;
  littleEndian: boolean;
  notes: readonly ElfNote[];
  vmcoreinfoText: string | undefined;
  /** RAM (any state but hole), ascending. */
  ram: readonly PfnRange[];
  /** Pages that will be delivered (data or zero in the source), ascending. */
  present: readonly PfnRange[];
  /** Long zero runs, when a pre-scan found them (ELF from a random-access input). */
  zeroRuns?: readonly PfnRange[];
  header: Omit<KdumpHeaderInfo, 'codec' | 'incomplete' | 'split'>;
  codec: OutputCodec;
  dumpLevel: number;
  /** ELF: PT_NULL program-header slots to fill after the write (one-pass streams). */
  sparePhdrs?: number;
  /** PT_LOAD virtual addresses: per-range vaddr and alias segments. */
  vaddrOf?: (paddr: number) => bigint | undefined;
  aliases?: readonly ElfAliasSpec[];
  part?: { index: number; count: number; startPfn: number; endPfn: number };
}

export interface OutputFormat {
  readonly name: string;
  readonly compression: { codec: OutputCodec; level?: number; detectZero: boolean };
  begin(plan: ConvertPlan, sink: OutputSink): Promise<void>;
  writeBatch(batch: CompressedBatch): Promise<void>;
  /** Write the remaining metadata; returns the final file size. */
  finish(opts: { incomplete: boolean }): Promise<number>;
  /** Page counts by storage kind, for the summary. */
  counts(): { compressed: number; raw: number; zero: number };
}

export type OutputFormatFactory = (opts: { codec: OutputCodec; level: number; dumpLevel: number }) => OutputFormat;

// ---------------------------------------------------------------------------------------------
// Built-in formats

function rangesToBitmap(maxPfn: number, len: number, ranges: readonly PfnRange[], lo = 0, hi = Infinity): PfnBitmap {
  const bm = new PfnBitmap(maxPfn, len);
  for (const r of ranges) {
    const s = Math.max(r.startPfn, lo);
    const e = Math.min(r.endPfn, hi, maxPfn);
    if (e > s) bm.setRange(s, e);
  }
  return bm;
}

function clipRanges(ranges: readonly PfnRange[], end: number): PfnRange[] {
  return ranges.filter((r) => r.startPfn < end).map((r) => ({ startPfn: r.startPfn, endPfn: Math.min(r.endPfn, end) }));
}

function countIn(ranges: readonly PfnRange[], lo: number, hi: number): number {
  let n = 0;
  for (const r of ranges) n += Math.max(0, Math.min(r.endPfn, hi) - Math.max(r.startPfn, lo));
  return n;
}

export class KdumpFormat implements OutputFormat {
  readonly name = 'kdump';
  readonly compression: OutputFormat['compression'];
  private layout!: KdumpLayout;
  private placer!: KdumpPagePlacer;
  private sink!: OutputSink;
  private plan!: ConvertPlan;

  constructor(private readonly o: { codec: OutputCodec; level: number; dumpLevel: number }) {
    this.compression = { codec: o.codec, level: o.level, detectZero: o.dumpLevel >= 1 };
  }

  async begin(plan: ConvertPlan, sink: OutputSink): Promise<void> {
    this.plan = plan;
    this.sink = sink;
    const lo = plan.part?.startPfn ?? 0;
    const hi = plan.part?.endPfn ?? plan.maxPfn;
    this.layout = new KdumpLayout({
      pageSize: plan.pageSize,
      maxPfn: plan.maxPfn,
      is64: plan.is64,
      ...(kdumpAbiOf(plan.arch, plan.is64) ? { abi: kdumpAbiOf(plan.arch, plan.is64)! } : {}),
      littleEndian: plan.littleEndian,
      notes: plan.notes,
      numDumpable: countIn(plan.present, lo, hi),
      sharedZeroPage: this.o.dumpLevel >= 1,
    });
    this.placer = new KdumpPagePlacer(this.layout, this.o.codec);
    // Everything before the descriptors is known now: write it first, so that a flattened
    // stream starts with the headers (crash reads the first record as the header).
    await this.writeMeta(false);
    const z = this.placer.zeroPage();
    if (z) await sink.write(z.offset, z.bytes);
  }

  private async writeMeta(incomplete: boolean): Promise<void> {
    const { plan, layout } = this;
    const lo = plan.part?.startPfn ?? 0;
    const hi = plan.part?.endPfn ?? plan.maxPfn;
    const info: KdumpHeaderInfo = {
      ...plan.header,
      codec: this.o.codec,
      incomplete,
      ...(plan.part ? { split: { startPfn: lo, endPfn: hi } } : {}),
    };
    if (!incomplete) {
      await this.sink.write(0, encodeKdumpHeader(layout, info));
      await this.sink.write(layout.pageSize, encodeKdumpSubHeader(layout, info));
    }
    // Bitmaps: 1st = RAM (whole machine), 2nd = dumpable pages of the whole machine, in every
    // part of a split set too (as makedumpfile --split writes it: crash counts descriptor
    // positions over the whole bitmap, and makedumpfile --reassemble takes it from one part);
    // a part holds descriptors only for its own [start_pfn, end_pfn). After an abort, only the
    // pages actually placed keep their bit within the own range.
    if (!incomplete) await this.sink.write(layout.bitmap1Offset, rangesToBitmap(plan.maxPfn, layout.bitmapLen, plan.ram).bytes);
    const bm2 = rangesToBitmap(plan.maxPfn, layout.bitmapLen, plan.present, 0, lo);
    for (const r of incomplete ? firstPages(plan.present, lo, hi, this.committed) : plan.present) {
      const s = Math.max(r.startPfn, lo);
      const e = Math.min(r.endPfn, hi, plan.maxPfn);
      if (e > s) bm2.setRange(s, e);
    }
    for (const r of plan.present) {
      const s = Math.max(r.startPfn, hi);
      const e = Math.min(r.endPfn, plan.maxPfn);
      if (e > s) bm2.setRange(s, e);
    }
    await this.sink.write(layout.bitmap2Offset, bm2.bytes);
    if (incomplete) await this.sink.write(0, encodeKdumpHeader(layout, info));
  }

  /** Pages whose data and descriptors are both on disk (what an incomplete file may claim). */
  private committed = 0;

  async writeBatch(b: CompressedBatch): Promise<void> {
    const { data, descs } = this.placer.place(b);
    if (data.bytes.length) await this.sink.write(data.offset, data.bytes);
    await this.sink.write(descs.offset, descs.bytes);
    this.committed += b.count;
  }

  async finish({ incomplete }: { incomplete: boolean }): Promise<number> {
    const { layout } = this;
    if (incomplete) await this.writeMeta(true);
    return Math.max(this.placer.end, layout.dataOffset);
  }

  counts() {
    return this.placer ? { ...this.placer.counts } : { compressed: 0, raw: 0, zero: 0 };
  }
}

/** The first `n` pages of `ranges` within [lo, hi), as ranges. */
function firstPages(ranges: readonly PfnRange[], lo: number, hi: number, n: number): PfnRange[] {
  const out: PfnRange[] = [];
  for (const r of ranges) {
    if (n <= 0) break;
    const s = Math.max(r.startPfn, lo);
    const e = Math.min(r.endPfn, hi);
    if (e <= s) continue;
    const take = Math.min(n, e - s);
    out.push({ startPfn: s, endPfn: s + take });
    n -= take;
  }
  return out;
}

export class ElfFormat implements OutputFormat {
  readonly name = 'elf';
  readonly compression: OutputFormat['compression'];
  private w!: ElfWriter;
  private sink!: OutputSink;

  constructor(private readonly o: { dumpLevel: number }) {
    this.compression = { codec: 'none', detectZero: o.dumpLevel >= 1 };
  }

  async begin(plan: ConvertPlan, sink: OutputSink): Promise<void> {
    this.sink = sink;
    const lo = plan.part?.startPfn ?? 0;
    const hi = plan.part?.endPfn ?? plan.maxPfn;
    const present = plan.present
      .map((r) => ({ startPfn: Math.max(r.startPfn, lo), endPfn: Math.min(r.endPfn, hi) }))
      .filter((r) => r.endPfn > r.startPfn);
    const segs: ElfSegmentSpec[] = planElfSegments(present, plan.zeroRuns ?? []);
    const vsegs: ElfSegmentSpec[] = [];
    // p_vaddr is linear within a segment only where the source mapping is: split where it changes
    for (const s of segs) {
      const v = plan.vaddrOf?.(s.startPfn * plan.pageSize);
      vsegs.push(v === undefined ? s : { ...s, vaddr: v });
    }
    this.w = new ElfWriter({
      is64: plan.is64,
      littleEndian: plan.littleEndian,
      machine: plan.arch,
      pageSize: plan.pageSize,
      notes: plan.notes,
      segments: vsegs,
      aliases: plan.aliases ?? [],
      elideZero: this.o.dumpLevel >= 1,
      sparePhdrs: plan.sparePhdrs ?? 0,
    });
  }

  async writeBatch(b: CompressedBatch): Promise<void> {
    for (const p of this.w.place(b)) {
      if (p.bytes) await this.sink.write(p.offset, p.bytes);
      else if (p.zeros) await this.sink.zeros(p.offset, p.zeros);
    }
  }

  async finish({ incomplete }: { incomplete: boolean }): Promise<number> {
    const h = this.w.header({ incomplete });
    await this.sink.write(0, h);
    return Math.max(this.w.end, h.length);
  }

  counts() {
    const c = this.w?.counts ?? { stored: 0, zero: 0 };
    return { compressed: 0, raw: c.stored, zero: c.zero };
  }
}

// ---------------------------------------------------------------------------------------------
// Planning

function isStream(i: ConvertInput): i is PageStreamInput {
  return (i as PageStreamInput).kind === 'stream';
}

interface Scan {
  ram: PfnRange[];
  present: PfnRange[];
  counts: Record<PageState, number>;
}

function pushRange(list: PfnRange[], s: number, e: number): void {
  const last = list[list.length - 1];
  if (last && last.endPfn === s) last.endPfn = e;
  else list.push({ startPfn: s, endPfn: e });
}

async function scanRuns(runs: AsyncIterable<PageRun>): Promise<Scan> {
  const ram: PfnRange[] = [];
  const present: PfnRange[] = [];
  const counts: Record<PageState, number> = { data: 0, zero: 0, excluded: 0, missing: 0, hole: 0 };
  for await (const r of runs) {
    counts[r.state] += r.endPfn - r.startPfn;
    if (r.state === 'hole') continue;
    pushRange(ram, r.startPfn, r.endPfn);
    if (r.state === 'data' || r.state === 'zero') pushRange(present, r.startPfn, r.endPfn);
  }
  return { ram, present, counts };
}

async function headerFor(
  input: ConvertInput,
  vmci: Vmcoreinfo | undefined,
  opts: ConvertOptions,
  warnings: string[],
): Promise<{ header: ConvertPlan['header']; sourceVaddr?: (paddr: number) => bigint | undefined }> {
  let uts: Utsname | undefined;
  let ts: number | undefined;
  let nr: number | undefined;
  let hdrPhys: bigint | undefined;
  let segments: readonly { paddr: number; vaddr: bigint; memsz: number }[] | undefined;
  let srcLevel = 0;
  if (isStream(input)) {
    uts = input.header?.utsname;
    ts = input.header?.timestampSec;
    nr = input.header?.nrCpus;
    hdrPhys = input.header?.physBase;
    segments = input.segments;
    srcLevel = input.header?.dumpLevel ?? 0;
  } else {
    const d = await input.details({ codecs: 'none' });
    if (d.utsname && (d.utsname.release || d.utsname.sysname)) uts = d.utsname;
    else if (d.utsname) uts = d.utsname; // QEMU: machine only
    ts = d.timestamp;
    nr = d.nrCpus;
    hdrPhys = d.headerPhysBase;
    segments = d.segments?.map((s) => ({ paddr: s.paddr, vaddr: s.vaddr, memsz: s.memsz }));
    // pages a filtering producer already excluded stay excluded: keep its dump level bits
    if (typeof d.header.dump_level === 'number' && d.header.dump_level > 0 && d.header.dump_level < 32) srcLevel = d.header.dump_level;
  }
  const arch = input.arch;
  if (opts.utsname && opts.utsname.release) uts = opts.utsname;
  const rel = vmci?.osrelease ?? '';
  if (!uts || !uts.release) {
    uts = {
      sysname: uts?.sysname || (rel ? 'Linux' : ''),
      nodename: uts?.nodename ?? '',
      release: rel,
      version: uts?.version ?? '',
      machine: uts?.machine || (arch !== 'unknown' ? arch : ''),
      domainname: uts?.domainname ?? '',
    };
  }
  const nPr = cpuCountOfNotes([...input.notes, ...(opts.extraNotes ?? [])]);
  let physBase = opts.physBase;
  if (physBase === undefined && vmci) physBase = vmci.number('phys_base');
  if (physBase === undefined) physBase = hdrPhys;
  if (physBase === undefined) {
    physBase = 0n;
    if (arch === 'x86_64') warnings.push('phys_base unknown (no VMCOREINFO, no source header): writing 0');
  }
  const sourceVaddr = segments?.some((s) => s.vaddr !== BigInt(s.paddr) && s.vaddr !== 0n)
    ? (paddr: number) => {
        for (const s of segments!) {
          if (paddr >= s.paddr && paddr < s.paddr + s.memsz && s.vaddr !== BigInt(s.paddr) && s.vaddr !== 0n) return s.vaddr + BigInt(paddr - s.paddr);
        }
        return undefined;
      }
    : undefined;
  return {
    header: {
      utsname: uts,
      timestampSec: ts ?? vmci?.crashTime ?? 0,
      nrCpus: nr || nPr || 1,
      physBase,
      dumpLevel: (opts.dumpLevel ?? 0) | srcLevel,
    },
    ...(sourceVaddr ? { sourceVaddr } : {}),
  };
}

/**
 * Split [0, maxPfn) into n parts with about the same number of present pages (makedumpfile
 * --split). Every boundary is a multiple of 64 pfns: crash 8.x counts a part's dumpable bits in
 * 64-bit words from its start_pfn (diskdump.c read_dump_header), so a part starting inside a
 * word would have its descriptor positions shifted by the previous part's bits.
 */
export function splitParts(present: readonly PfnRange[], maxPfn: number, n: number): PfnRange[] {
  const align = (p: number) => Math.min(maxPfn, Math.ceil(p / 64) * 64);
  return splitPartsExact(present, maxPfn, n).map((r, i, a) => ({ startPfn: i ? align(r.startPfn) : 0, endPfn: i === a.length - 1 ? maxPfn : align(r.endPfn) }));
}

function splitPartsExact(present: readonly PfnRange[], maxPfn: number, n: number): PfnRange[] {
  const total = countIn(present, 0, maxPfn);
  const parts: PfnRange[] = [];
  let start = 0;
  let acc = 0;
  let k = 1;
  for (const r of present) {
    let s = r.startPfn;
    while (k < n && acc + (r.endPfn - s) >= Math.ceil((total * k) / n)) {
      const need = Math.ceil((total * k) / n) - acc;
      const cut = s + need;
      parts.push({ startPfn: start, endPfn: cut });
      start = cut;
      acc += need;
      s = cut;
      k++;
    }
    acc += r.endPfn - s;
  }
  while (parts.length < n - 1) parts.push({ startPfn: start, endPfn: start });
  parts.push({ startPfn: start, endPfn: maxPfn });
  return parts;
}

// ---------------------------------------------------------------------------------------------
// Batches

interface RawBatch {
  startPfn: number;
  count: number;
  buf: ArrayBuffer;
}

class BufferPool {
  private free: ArrayBuffer[] = [];
  constructor(private readonly size: number) {}
  get(bytes: number): ArrayBuffer {
    if (bytes === this.size) {
      const b = this.free.pop();
      if (b) return b;
    }
    return new ArrayBuffer(bytes);
  }
  put(b: ArrayBuffer): void {
    if (b.byteLength === this.size && this.free.length < 64) this.free.push(b);
  }
}

/** Cut ranges at `cuts` (sorted pfns) and into chunks of at most `max` pages. */
function* chunks(ranges: readonly PfnRange[], cuts: readonly number[], max: number): Generator<PfnRange> {
  let c = 0;
  for (const r of ranges) {
    let s = r.startPfn;
    while (s < r.endPfn) {
      while (c < cuts.length && cuts[c]! <= s) c++;
      let e = Math.min(r.endPfn, s + max);
      if (c < cuts.length && cuts[c]! < e) e = cuts[c]!;
      yield { startPfn: s, endPfn: e };
      s = e;
    }
  }
}

async function* dumpBatches(dump: Dump, ranges: readonly PfnRange[], cuts: number[], max: number, pool: BufferPool): AsyncGenerator<RawBatch> {
  const ps = dump.pageSize;
  const direct = await DirectElfReader.open(dump);
  try {
    for (const c of chunks(ranges, cuts, max)) {
      const n = c.endPfn - c.startPfn;
      const buf = pool.get(n * ps);
      if (!direct || !(await direct.read(c.startPfn * ps, new Uint8Array(buf)))) {
        const data = await dump.readPhys(c.startPfn * ps, n * ps, { fillMissing: true });
        if (data.length !== n * ps) throw new VmcoreError('TRUNCATED', `short read at pfn 0x${c.startPfn.toString(16)}`, { file: dump.files[0]?.name });
        new Uint8Array(buf).set(data);
      }
      yield { startPfn: c.startPfn, count: n, buf };
    }
  } finally {
    await direct?.close();
  }
}

/**
 * The stream's page chunks without the page frames in `exclude` (ascending, disjoint): each chunk
 * is cut into the parts outside the runs. Chunks may come in any order.
 */
async function* withoutRuns(pages: AsyncIterable<{ startPfn: number; data: Uint8Array }>, exclude: readonly PfnRange[], pageSize: number): AsyncGenerator<{ startPfn: number; data: Uint8Array }> {
  for await (const chunk of pages) {
    if (chunk.data.length % pageSize !== 0) {
      yield chunk; // refused by streamBatches
      continue;
    }
    const end = chunk.startPfn + chunk.data.length / pageSize;
    // the first run that ends after the chunk's start
    let lo = 0;
    let hi = exclude.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (exclude[mid]!.endPfn <= chunk.startPfn) lo = mid + 1;
      else hi = mid;
    }
    let p = chunk.startPfn;
    for (let j = lo; j < exclude.length && exclude[j]!.startPfn < end && p < end; j++) {
      const x = exclude[j]!;
      if (x.startPfn > p) yield { startPfn: p, data: chunk.data.subarray((p - chunk.startPfn) * pageSize, (x.startPfn - chunk.startPfn) * pageSize) };
      p = Math.max(p, Math.min(x.endPfn, end));
    }
    if (p < end) yield p === chunk.startPfn ? chunk : { startPfn: p, data: chunk.data.subarray((p - chunk.startPfn) * pageSize) };
  }
}

async function* streamBatches(input: PageStreamInput, cuts: number[], max: number, pool: BufferPool): AsyncGenerator<RawBatch> {
  const ps = input.pageSize;
  const plan = chunks(input.ranges, cuts, max);
  let want = plan.next();
  let cur: { startPfn: number; n: number; buf: ArrayBuffer; fill: number } | undefined;
  let expect = want.done ? -1 : want.value.startPfn;
  for await (const chunk of input.pages) {
    if (chunk.data.length % ps !== 0) throw new VmcoreError('BAD_FIELD', `page stream chunk of ${chunk.data.length} bytes is not whole pages`, { file: input.name });
    if (chunk.startPfn !== expect) {
      throw new VmcoreError('BAD_FIELD', `page stream out of order: got pfn 0x${chunk.startPfn.toString(16)}, expected 0x${expect.toString(16)}`, { file: input.name });
    }
    let off = 0;
    while (off < chunk.data.length) {
      if (want.done) throw new VmcoreError('BAD_FIELD', 'page stream has more pages than its declared ranges', { file: input.name });
      const w = want.value;
      if (!cur) cur = { startPfn: w.startPfn, n: w.endPfn - w.startPfn, buf: pool.get((w.endPfn - w.startPfn) * ps), fill: 0 };
      const take = Math.min(cur.n * ps - cur.fill, chunk.data.length - off);
      new Uint8Array(cur.buf, cur.fill, take).set(chunk.data.subarray(off, off + take));
      cur.fill += take;
      off += take;
      if (cur.fill === cur.n * ps) {
        yield { startPfn: cur.startPfn, count: cur.n, buf: cur.buf };
        cur = undefined;
        want = plan.next();
      }
    }
    expect = chunk.startPfn + chunk.data.length / ps;
    if (!cur && !want.done && expect !== want.value.startPfn) {
      // the stream continues at the next declared range
      expect = want.value.startPfn;
    }
  }
  if (!want.done || cur) throw new VmcoreError('TRUNCATED', `page stream ended early (at pfn 0x${expect.toString(16)})`, { file: input.name });
}

// ---------------------------------------------------------------------------------------------
// Main entry

function validate(opts: ConvertOptions): void {
  const dl = opts.dumpLevel ?? 0;
  if (!Number.isInteger(dl) || dl < 0 || dl > 31) throw new VmcoreError('USAGE', `dump level ${dl}: must be 0-31`, { field: 'dump_level' });
  if (dl & DL_PAGE_TYPES && !opts.exclude) {
    throw new VmcoreError('USAGE', `dump level ${dl} leaves out pages by type: it needs the page classification (exclude, from excludedPages)`, { field: 'dump_level' });
  }
  if (opts.split !== undefined && (!Number.isInteger(opts.split) || opts.split < 1 || opts.split > 256)) {
    throw new VmcoreError('USAGE', `--split wants a number of files from 1 to 256, got ${opts.split}`);
  }
  if (opts.threads !== undefined && (!Number.isInteger(opts.threads) || opts.threads < 0 || opts.threads > 256)) {
    throw new VmcoreError('USAGE', `--threads wants 0..256, got ${opts.threads}`);
  }
  const lv = opts.level;
  if (lv !== undefined) {
    const max = opts.codec === 'zstd' ? 22 : 12;
    if (!Number.isInteger(lv) || lv < 1 || lv > max) throw new VmcoreError('USAGE', `--level ${lv} is out of range for ${opts.codec ?? 'zlib'} (1..${max})`);
  }
  if (opts.batchPages !== undefined && (!Number.isInteger(opts.batchPages) || opts.batchPages < 1 || opts.batchPages > 4096)) {
    throw new VmcoreError('USAGE', `batchPages must be 1..4096`);
  }
}

/**
 * Convert `input` into `out` (a path, or a Writable for the flattened stream, e.g. stdout).
 * With `split: N`, `out` is the name prefix: files OUT.1 … OUT.N.
 */
export async function convertDump(input: ConvertInput, out: string | Writable, opts: ConvertOptions = {}): Promise<ConvertSummary> {
  const t0 = performance.now();
  validate(opts);
  const format = opts.format ?? 'kdump';
  const codec: OutputCodec = format === 'elf' ? 'none' : (opts.codec ?? 'zlib');
  const level = opts.level ?? 1;
  const dumpLevel = opts.dumpLevel ?? 0;
  const toStream = typeof out !== 'string';
  const flatten = toStream || !!opts.flatten;
  const nsplit = opts.split ?? 1;
  if (toStream && nsplit > 1) throw new VmcoreError('USAGE', '--split writes files: it cannot go to stdout');
  const threads = opts.threads ?? Math.max(1, Math.min(availableParallelism(), 16));
  const batchPages = opts.batchPages ?? 256;
  const warnings: string[] = [];
  const ps = input.pageSize;

  // ---- plan
  let scan: Scan;
  if (isStream(input)) {
    const present: PfnRange[] = [];
    let prev = -1;
    for (const r of input.ranges) {
      if (!(Number.isSafeInteger(r.startPfn) && r.endPfn > r.startPfn && r.startPfn >= prev)) {
        throw new VmcoreError('BAD_FIELD', 'stream ranges must be ascending, disjoint and non-empty', { file: input.name });
      }
      prev = r.endPfn;
      pushRange(present, r.startPfn, r.endPfn);
    }
    let clipped = present;
    let ramIn: readonly PfnRange[] = input.ram ?? present;
    if (opts.maxPfn !== undefined) {
      const dropped = countIn(present, opts.maxPfn, Infinity);
      if (dropped > 0) {
        clipped = clipRanges(present, opts.maxPfn);
        warnings.push(`${dropped} pages at and above pfn 0x${opts.maxPfn.toString(16)} (the end of the kernel's memory model: firmware, not kernel memory) left out; max_mapnr 0x${opts.maxPfn.toString(16)}`);
        input = { ...input, ranges: clipped, pages: withoutRuns(input.pages, [{ startPfn: opts.maxPfn, endPfn: Infinity }], ps) };
      }
      ramIn = clipRanges(ramIn, opts.maxPfn);
    }
    const n = countIn(clipped, 0, Infinity);
    const ram: PfnRange[] = [];
    for (const r of ramIn) pushRange(ram, r.startPfn, r.endPfn);
    const excluded = Math.max(0, countIn(ram, 0, Infinity) - n);
    scan = { ram, present: clipped.map((r) => ({ ...r })), counts: { data: n, zero: 0, excluded, missing: 0, hole: 0 } };
  } else {
    const end = opts.maxPfn !== undefined ? Math.min(opts.maxPfn, input.maxPfn) : input.maxPfn;
    scan = await scanRuns(input.pageRuns(0, end));
    scan.ram = clipRanges(scan.ram, end);
    scan.present = clipRanges(scan.present, end);
    if (end < input.maxPfn) {
      let dropped = 0;
      for await (const r of input.pageRuns(end, input.maxPfn)) if (r.state === 'data' || r.state === 'zero') dropped += Math.min(r.endPfn, input.maxPfn) - Math.max(r.startPfn, end);
      if (dropped) warnings.push(`${dropped} pages at and above pfn 0x${end.toString(16)} (the end of the kernel's memory model: firmware, not kernel memory) left out; max_mapnr 0x${end.toString(16)}`);
    }
  }
  let filtered: KindCounts | undefined;
  if (opts.exclude && dumpLevel & DL_PAGE_TYPES) {
    const f = subtractExcluded(scan.present, opts.exclude);
    scan.present = f.present;
    scan.counts.excluded += f.total;
    filtered = f.removed;
    // a stream passes the left-out pages by: drop them as they come
    if (isStream(input)) input = { ...input, ranges: f.present, pages: withoutRuns(input.pages, opts.exclude, ps) };
  }
  const lastEnd = scan.ram.length ? scan.ram[scan.ram.length - 1]!.endPfn : 0;
  const maxPfn = isStream(input) ? (opts.maxPfn !== undefined ? Math.min(opts.maxPfn, Math.max(input.maxPfn ?? 0, lastEnd)) : Math.max(input.maxPfn ?? 0, lastEnd)) : Math.max(Math.min(opts.maxPfn ?? Infinity, input.maxPfn), lastEnd);
  if (scan.counts.missing) warnings.push(`${scan.counts.missing} pages are missing from the input (incomplete dump): written as excluded`);
  // the producer note names vmcore (and replaces the one of an input vmcore wrote)
  const notes: ElfNote[] = [...withoutProducerNote([...input.notes, ...(opts.extraNotes ?? [])]), producerNote(opts.producer ?? producerText('convert'))];
  let vmciText = input.vmcoreinfoText;
  if (vmciText === undefined) {
    const n = opts.extraNotes?.find((x) => x.name === 'VMCOREINFO');
    if (n) vmciText = new TextDecoder('latin1').decode(n.desc);
  }
  const vmci = vmciText ? new Vmcoreinfo(vmciText) : undefined;
  const { header, sourceVaddr } = await headerFor(input, vmci, { ...opts, dumpLevel }, warnings);

  const plan: ConvertPlan = {
    pageSize: ps,
    maxPfn,
    arch: input.arch,
    is64: input.is64,
    littleEndian: input.littleEndian,
    notes,
    vmcoreinfoText: vmciText,
    // a stream's kernel-text alias is only known once the written file has been analysed
    sparePhdrs: isStream(input) ? 2 : 0,
    ram: scan.ram,
    present: scan.present,
    header,
    codec,
    dumpLevel,
  };
  if (format === 'elf' && opts.kernelVaddrs !== false) {
    const km = isStream(input) ? undefined : await kernelMappings(input, vmci, header.physBase);
    const direct = km?.directMapBase;
    plan.vaddrOf = (paddr) => sourceVaddr?.(paddr) ?? (direct !== undefined ? direct + BigInt(paddr) : undefined);
    if (km?.kernelImage) plan.aliases = [km.kernelImage];
  }

  const makeFormat: OutputFormatFactory =
    opts.outputFormat ?? ((o) => (format === 'elf' ? new ElfFormat(o) : new KdumpFormat(o)));
  const probe = makeFormat({ codec, level, dumpLevel });
  const bufPool = new BufferPool(batchPages * ps);
  const progress = (p: ConvertProgress) => opts.onProgress?.(p);
  const pagesTotal = countIn(scan.present, 0, Infinity);
  const pool = new CompressPool({ codec: probe.compression.codec, level: probe.compression.level ?? level, pageSize: ps, detectZero: probe.compression.detectZero, noNative: !!opts.noNative }, threads);
  const checkAbort = () => {
    if (opts.signal?.aborted) throw new VmcoreError('INTERRUPTED', 'interrupted');
  };

  // ---- outputs
  const partRanges = nsplit > 1 ? splitParts(scan.present, maxPfn, nsplit) : [{ startPfn: 0, endPfn: maxPfn }];
  const names = typeof out === 'string' ? (nsplit > 1 ? partRanges.map((_, i) => `${out}.${i + 1}`) : [out]) : ['-'];
  const sinks: OutputSink[] = [];
  const formats: OutputFormat[] = [];
  let pagesDone = 0;
  let bytesIn = 0;
  let ok = false;
  const sizes: number[] = [];
  try {
    if (typeof out === 'string') for (const n of names) await checkOutput(n, !!opts.force, opts.inputFiles ?? []);
    // ELF with zero runs from a random-access input: find them first (a second read pass, as
    // makedumpfile -E does), so that long zero runs become split points.
    if (format === 'elf' && dumpLevel >= 1 && !isStream(input) && !opts.outputFormat) {
      plan.zeroRuns = await scanZeroRuns(input, scan.present, batchPages, bufPool, pool, checkAbort, (n) =>
        progress({ phase: 'scan', pagesDone: n, pagesTotal, bytesIn: n * ps, bytesOut: 0 }),
      );
    }
    for (let i = 0; i < names.length; i++) {
      const name = names[i]!;
      const sink = typeof out !== 'string' ? new FlatSink('-', out) : flatten ? await FlatSink.toFile(name) : await FileSink.create(name);
      sinks.push(sink);
      const f = i === 0 ? probe : makeFormat({ codec, level, dumpLevel });
      formats.push(f);
      const p = nsplit > 1 ? { ...plan, part: { index: i, count: nsplit, ...partRanges[i]! } } : plan;
      await f.begin(p, sink);
    }
    const cuts = partRanges.slice(1).map((r) => r.startPfn);
    const batches = isStream(input) ? streamBatches(input, cuts, batchPages, bufPool) : dumpBatches(input, scan.present, cuts, batchPages, bufPool);
    const inflight: Promise<BatchOut>[] = [];
    const maxInflight = Math.max(2, threads * 2 + 2);
    let part = 0;
    const consume = async (p: Promise<BatchOut>) => {
      const b = await p;
      while (part < partRanges.length - 1 && b.startPfn >= partRanges[part]!.endPfn) part++;
      await formats[part]!.writeBatch(b);
      bufPool.put(b.buffer);
      pagesDone += b.count;
      progress({ phase: 'write', pagesDone, pagesTotal, bytesIn: pagesDone * ps, bytesOut: sinks.reduce((a, s) => a + s.bytesOut, 0) });
    };
    for await (const b of batches) {
      checkAbort();
      bytesIn += b.count * ps;
      inflight.push(pool.submit(b));
      while (inflight.length >= maxInflight) await consume(inflight.shift()!);
    }
    while (inflight.length) await consume(inflight.shift()!);
    checkAbort();
    for (let i = 0; i < formats.length; i++) {
      const size = await formats[i]!.finish({ incomplete: false });
      sizes.push(size);
      await sinks[i]!.finish(size);
    }
    ok = true;
  } catch (e) {
    // Clean up: remove temporaries, or keep them marked incomplete.
    const keep = !!opts.keepIncomplete;
    for (let i = 0; i < sinks.length; i++) {
      let size: number | undefined;
      if (keep && formats[i]) {
        try {
          size = await formats[i]!.finish({ incomplete: true });
        } catch {
          /* the file stays as far as it got */
        }
      }
      await sinks[i]!.abort(keep, size);
    }
    throw e;
  } finally {
    await pool.close();
    if (!ok) {
      /* rethrown above */
    }
  }

  const counts = formats.reduce(
    (a, f) => {
      const c = f.counts();
      return { compressed: a.compressed + c.compressed, raw: a.raw + c.raw, zero: a.zero + c.zero };
    },
    { compressed: 0, raw: 0, zero: 0 },
  );
  return {
    format: (opts.outputFormat ? probe.name : format) + (flatten ? ' (flattened)' : '') + (nsplit > 1 ? ` split ${nsplit}` : ''),
    codec: probe.compression.codec,
    codecImpl: compressorImpl(probe.compression.codec, !!opts.noNative),
    threads,
    outputs: names.map((name, i) => ({
      name,
      bytes: sinks[i]!.bytesOut,
      ...(nsplit > 1 ? { startPfn: partRanges[i]!.startPfn, endPfn: partRanges[i]!.endPfn } : {}),
    })),
    pages: {
      total: pagesTotal,
      ...counts,
      excluded: scan.counts.excluded,
      missing: scan.counts.missing,
      holes: scan.counts.hole,
    },
    ...(filtered ? { filtered } : {}),
    bytesIn,
    bytesOut: sinks.reduce((a, s) => a + s.bytesOut, 0),
    seconds: (performance.now() - t0) / 1000,
    physBase: '0x' + BigInt.asUintN(64, header.physBase).toString(16),
    warnings,
  };
}

async function scanZeroRuns(
  dump: Dump,
  present: readonly PfnRange[],
  batchPages: number,
  bufPool: BufferPool,
  pool: CompressPool,
  checkAbort: () => void,
  onPages: (n: number) => void,
): Promise<PfnRange[]> {
  const runs: PfnRange[] = [];
  const starts = new Set(present.map((r) => r.startPfn));
  let cur: PfnRange | undefined;
  let done = 0;
  const flush = () => {
    if (cur && (cur.endPfn - cur.startPfn >= 256 || starts.has(cur.startPfn))) runs.push(cur);
    cur = undefined;
  };
  const inflight: Promise<BatchOut>[] = [];
  const take = async () => {
    const b = await inflight.shift()!;
    for (let i = 0; i < b.count; i++) {
      const pfn = b.startPfn + i;
      if (b.kinds[i] === 0) {
        if (cur && cur.endPfn === pfn) cur.endPfn++;
        else {
          flush();
          cur = { startPfn: pfn, endPfn: pfn + 1 };
        }
      } else flush();
    }
    bufPool.put(b.buffer);
    done += b.count;
    onPages(done);
  };
  for await (const b of dumpBatches(dump, present, [], batchPages, bufPool)) {
    checkAbort();
    inflight.push(pool.submit(b));
    while (inflight.length >= Math.max(2, pool.threads * 2 + 2)) await take();
  }
  while (inflight.length) await take();
  flush();
  return runs;
}
