/** The types of the conversion: its inputs, options, plan, output-format plug-in and summary. */
import type { Warning } from '../../core/warnings.js';
import type { Dump } from '../../core/dump.js';
import type { ElfNote } from '../../core/format/elf/notes.js';
import type { CompressedBatch, OutputCodec } from '../../core/format/batch.js';
import type { KdumpHeaderInfo, Utsname } from '../../core/format/kdump/writer.js';
import type { ElfAliasSpec } from '../../core/format/elf/writer.js';
import type { ExcludedRun, KindCounts } from '../../core/kernel/pagefilter.js';
import type { KernelInfo } from '../../core/kernel/kernel.js';
import type { OutputSink } from './sinks.js';

export interface PfnRange {
  startPfn: number;
  /** Exclusive. */
  endPfn: number;
}

/** A chunk of a page stream (see PageStreamInput.pages). */
export interface PageChunk {
  startPfn: number;
  data: Uint8Array;
  owned?: boolean;
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
  /**
   * Pages: each chunk holds whole pages starting at startPfn, continuing the sequence. `owned`:
   * `data` starts an ArrayBuffer from the allocator given to `useBuffers`, which the consumer
   * now owns (it goes to a worker as it is, without a copy).
   */
  pages: AsyncIterable<PageChunk>;
  /**
   * Offer the consumer's buffer allocator (called with the byte size of a full batch): the
   * stream may then read its pages straight into such buffers and yield them `owned`.
   */
  useBuffers?: (get: (bytes: number) => ArrayBuffer) => void;
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
  /**
   * VMCOREINFO text written in place of the source's VMCOREINFO note (the source's values that
   * the kernel's location proof rejected, replaced by the proven ones: `kernelHeaderValues`);
   * ELF program headers are derived from it. Ignored when the source has no VMCOREINFO note.
   */
  vmcoreinfoText?: string;
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
  /** Use the npm codec packages (node:zlib, lzo) even when the native addon is built. */
  noNative?: boolean;
  /** Replace the built-in kdump/ELF writers (e.g. the compressed-ELF format). */
  outputFormat?: OutputFormatFactory;
  /**
   * Leave out every page from this pfn on and write max_mapnr = maxPfn:
   * the end of the kernel's memory model (`kernelMemoryEnd`), above which QEMU dumps firmware
   * ROM that makedumpfile cannot re-filter. The same rule as `fixDump`'s.
   */
  maxPfn?: number;
  /**
   * The analysed kernel (`analyzeKernel`) whose header values are written (`kernelHeaderValues`):
   * the proven phys_base, utsname from memory, VMCOREINFO recovered from memory when the file
   * has none, the VMCOREINFO with proven layout values (`vmcoreinfoText`), and max_mapnr cut at
   * the end of the kernel's memory model (see `maxPfn`). Given `physBase`, `utsname`,
   * `extraNotes`, `vmcoreinfoText` and `maxPfn` win over these. Default: a random-access
   * x86_64 input is analysed here (a failed analysis is a warning); false: none, the header
   * values come from the input file.
   */
  kernel?: KernelInfo | false;
  /** Keep the pages above the kernel's memory model (QEMU's firmware ROM): no max_mapnr cut. */
  keepAllPages?: boolean;
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
  warnings: Warning[];
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
  /**
   * RAM the input should hold but does not (a truncated file, damaged page records), ascending:
   * the output leaves it out like excluded pages and is marked incomplete (kdump
   * DUMP_DH_COMPRESSED_INCOMPLETE, ELF e_flags bit 0, celf `missing` ranges and its flag), so
   * that its readers say so instead of taking the loss for filtering.
   */
  missing?: readonly PfnRange[];
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
  /** The codec the file's data is stored in, when the format compresses it itself (celf), not the pipeline's workers. */
  readonly storedCodec?: OutputCodec;
  begin(plan: ConvertPlan, sink: OutputSink): Promise<void>;
  writeBatch(batch: CompressedBatch): Promise<void>;
  /** Write the remaining metadata; returns the final file size. */
  finish(opts: { incomplete: boolean }): Promise<number>;
  /** Page counts by storage kind, for the summary. */
  counts(): { compressed: number; raw: number; zero: number };
  /**
   * Release what the format holds of its own (worker threads): called once the conversion ends,
   * finished or failed (a failed one without keepIncomplete never calls finish).
   */
  close?(): Promise<void>;
}

export type OutputFormatFactory = (opts: { codec: OutputCodec; level: number; dumpLevel: number }) => OutputFormat;
