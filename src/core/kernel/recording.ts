/**
 * A PhysicalMemory (or Dump) wrapper that records which page frames an analysis read, so that a
 * small excerpt of a big dump (only those pages) can be made into a test fixture.
 *
 * Whole-memory scans (VMCOREINFO recovery) read every page only to reject it; they use
 * `readPageUnrecorded`, and only the pages they keep are read again through `readPage`.
 */
import type { Dump, PageRun, PageState, PhysicalMemory, ReadPhysOptions } from '../dump.js';
import { dumpView } from '../dump.js';

export interface UnrecordedReader {
  /** Read a page without recording it (for scans that discard most pages). */
  readPageUnrecorded(pfn: number): Promise<Uint8Array>;
}

export function hasUnrecordedRead(m: PhysicalMemory): m is PhysicalMemory & UnrecordedReader {
  return typeof (m as Partial<UnrecordedReader>).readPageUnrecorded === 'function';
}

export interface PageBlockReader {
  /**
   * Read `count` consecutive page frames from `pfn` in one read when the dump stores them as one
   * contiguous piece of file; undefined when it does not (the caller then reads page by page).
   * Never recorded. Whole-memory scans use it to avoid one read call per page.
   */
  readPageBlock(pfn: number, count: number): Promise<Uint8Array | undefined>;
}

/**
 * Pages `pfn` .. `pfn + count - 1` as one buffer (`count` × page size bytes) when the memory can
 * read them in one go (PageBlockReader), else undefined: read them with `scanReadPage`.
 */
export function scanReadPageBlock(m: PhysicalMemory, pfn: number, count: number): Promise<Uint8Array | undefined> {
  const b = m as Partial<PageBlockReader>;
  return typeof b.readPageBlock === 'function' ? b.readPageBlock(pfn, count) : Promise.resolve(undefined);
}

/** Read a page for a scan: unrecorded when the memory records reads. */
export function scanReadPage(m: PhysicalMemory, pfn: number): Promise<Uint8Array> {
  return hasUnrecordedRead(m) ? m.readPageUnrecorded(pfn) : m.readPage(pfn);
}

export class RecordingMemory implements PhysicalMemory, UnrecordedReader, PageBlockReader {
  /** Page frames whose contents were read. */
  readonly readPfns = new Set<number>();
  /** Page frames whose state was asked (pageState). */
  readonly statePfns = new Set<number>();
  /** Page frames read by tolerant reads (`readPhys` with fillMissing) when those are not recorded in readPfns. */
  readonly tolerantPfns = new Set<number>();
  /** True once the analysis asked for page runs or scanned memory unrecorded (its reads are then not all in the sets). */
  wholeMemory = false;
  /** Page frames read before the last `splitPhase()`. */
  private readonly earlierReads = new Set<number>();

  /**
   * @param opts.skipTolerantReads do not record `readPhys` calls with `fillMissing` (scans that
   *        go on over absent pages, e.g. the utsname search): only the reads that need their pages
   */
  constructor(
    readonly inner: PhysicalMemory,
    private readonly opts: { skipTolerantReads?: boolean } = {},
  ) {}

  get pageSize(): number {
    return this.inner.pageSize;
  }
  get maxPfn(): number {
    return this.inner.maxPfn;
  }
  pageState(pfn: number): Promise<PageState> {
    this.statePfns.add(pfn);
    return this.inner.pageState(pfn);
  }
  pageRuns(startPfn?: number, endPfn?: number): AsyncIterable<PageRun> {
    this.wholeMemory = true;
    return this.inner.pageRuns(startPfn, endPfn);
  }
  readPage(pfn: number): Promise<Uint8Array> {
    this.readPfns.add(pfn);
    return this.inner.readPage(pfn);
  }
  readPageUnrecorded(pfn: number): Promise<Uint8Array> {
    this.wholeMemory = true;
    return scanReadPage(this.inner, pfn);
  }
  readPageBlock(pfn: number, count: number): Promise<Uint8Array | undefined> {
    this.wholeMemory = true;
    return scanReadPageBlock(this.inner, pfn, count);
  }
  readPhys(addr: number, length: number, opts?: ReadPhysOptions): Promise<Uint8Array> {
    if (Number.isSafeInteger(addr) && Number.isSafeInteger(length) && addr >= 0 && length > 0) {
      const ps = this.inner.pageSize;
      const last = Math.floor((addr + length - 1) / ps);
      if (last - Math.floor(addr / ps) >= 1 << 18) this.wholeMemory = true;
      const set = this.opts.skipTolerantReads && opts?.fillMissing ? this.tolerantPfns : this.readPfns;
      for (let p = Math.floor(addr / ps); p <= last && p - Math.floor(addr / ps) < 1 << 18; p++) set.add(p);
    }
    return this.inner.readPhys(addr, length, opts);
  }
  /** Sorted list of pfns read (in every phase). */
  pfns(): number[] {
    return [...new Set([...this.earlierReads, ...this.readPfns])].sort((a, b) => a - b);
  }

  /**
   * End a phase of the analysis: its touched page frames (as `touchedPfns()`), and the sets start
   * empty for the next phase (`pfns()` still lists every read; `wholeMemory` stays set).
   */
  splitPhase(): number[] | undefined {
    const t = this.touchedPfns();
    for (const p of this.readPfns) this.earlierReads.add(p);
    this.readPfns.clear();
    this.tolerantPfns.clear();
    this.statePfns.clear();
    return t;
  }

  /**
   * Every page frame the analysis asked anything about (read, tolerant read, state) since the last
   * `splitPhase()`, sorted, or undefined when it also walked page runs or scanned memory (then its
   * inputs are not a set of pages).
   */
  touchedPfns(): number[] | undefined {
    if (this.wholeMemory) return undefined;
    return [...new Set([...this.readPfns, ...this.tolerantPfns, ...this.statePfns])].sort((a, b) => a - b);
  }
}

/** A Dump whose memory reads are recorded; everything else is the original dump's. */
export function recordingDump(dump: Dump, opts: { skipTolerantReads?: boolean } = {}): { dump: Dump; recorder: RecordingMemory } {
  const recorder = new RecordingMemory(dump, opts);
  const wrapped = dumpView(dump, {
    pageState: (pfn) => recorder.pageState(pfn),
    pageRuns: (s, e) => recorder.pageRuns(s, e),
    readPage: (pfn) => recorder.readPage(pfn),
    readPhys: (a, l, o) => recorder.readPhys(a, l, o),
  });
  Object.defineProperty(wrapped, 'readPageUnrecorded', { value: (pfn: number) => recorder.readPageUnrecorded(pfn) });
  return { dump: wrapped, recorder };
}
