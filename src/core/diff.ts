/**
 * Which page frames two dumps hold differently: pfns present in one and not the other, and
 * pfns whose bytes differ (with the first differing byte). One pass over both page maps in
 * ascending pfn order; memory is bounded (two pages at a time and the first `maxDifferences`
 * findings), whatever the dump sizes.
 */
import { VmcoreError } from './errors.js';
import { isPresent, type PageRun, type PageState, type PhysicalMemory } from './dump.js';

export type PageDifferenceKind = 'content' | 'onlyA' | 'onlyB';

export interface PageDifference {
  pfn: number;
  /** Physical address of the page (pfn × page size). */
  phys: bigint;
  kind: PageDifferenceKind;
  /** `content`: byte offset of the first differing byte within the page. */
  offset?: number;
}

export interface MemoryDiff {
  pageSize: number;
  /** Present pages (data or zero) of each dump. */
  pagesA: number;
  pagesB: number;
  /** Present in both. */
  both: number;
  /** Present in both with the same bytes. */
  same: number;
  /** Present in both with different bytes. */
  differ: number;
  onlyA: number;
  onlyB: number;
  /** Pages a dump should hold but does not (incomplete dump): not compared. */
  missingA: number;
  missingB: number;
  /** True when both dumps hold the same pages with the same bytes (and none is missing). */
  identical: boolean;
  /** The first differences in ascending pfn order (at most `maxDifferences`). */
  differences: PageDifference[];
  /** More differences exist than `differences` lists. */
  truncated: boolean;
}

export interface DiffOptions {
  /** How many differences to list (default 20; the counts are always complete). */
  maxDifferences?: number;
  /** Called now and then with the pfn reached and the end pfn. */
  onProgress?: (pfnDone: number, endPfn: number) => void;
}

/** Index of the first differing byte, or -1 when equal. */
export function firstDifference(a: Uint8Array, b: Uint8Array): number {
  const n = Math.min(a.length, b.length);
  let i = 0;
  if ((a.byteOffset & 3) === 0 && (b.byteOffset & 3) === 0) {
    const wa = new Uint32Array(a.buffer, a.byteOffset, n >> 2);
    const wb = new Uint32Array(b.buffer, b.byteOffset, n >> 2);
    let w = 0;
    while (w < wa.length && wa[w] === wb[w]) w++;
    i = w << 2;
  }
  for (; i < n; i++) if (a[i] !== b[i]) return i;
  return a.length === b.length ? -1 : n;
}

/** Page runs as a cursor: the state of any pfn at or after the last one asked, in order. */
class RunCursor {
  private it: AsyncIterator<PageRun>;
  private cur: PageRun | undefined;
  private done = false;

  constructor(
    mem: PhysicalMemory,
    private readonly end: number,
  ) {
    this.it = mem.pageRuns(0, Math.min(end, mem.maxPfn))[Symbol.asyncIterator]();
  }

  /** State at `pfn` and the end of the run that holds it (pfns beyond the dump are holes). */
  async at(pfn: number): Promise<{ state: PageState; endPfn: number }> {
    while (!this.done && (!this.cur || this.cur.endPfn <= pfn)) {
      const r = await this.it.next();
      if (r.done) this.done = true;
      else this.cur = r.value;
    }
    if (this.cur && this.cur.startPfn <= pfn && pfn < this.cur.endPfn) return { state: this.cur.state, endPfn: this.cur.endPfn };
    const next = this.cur && this.cur.startPfn > pfn ? this.cur.startPfn : this.end;
    return { state: 'hole', endPfn: next };
  }
}

/**
 * Compare the physical memory of two dumps page by page (`a` and `b`: any `PhysicalMemory`,
 * e.g. two opened dump files). A page is present when its state is `data` or `zero` (as the
 * memory digest counts it); zero pages compare as 4096 zero bytes, so a zero-excluding kdump
 * and an ELF of the same memory differ only where one left a page out. Throws USAGE when the
 * page sizes differ, and the read errors of the dumps (PAGE_DAMAGED, DECOMPRESS) for a page
 * that cannot be read.
 */
export async function diffMemory(a: PhysicalMemory, b: PhysicalMemory, opts: DiffOptions = {}): Promise<MemoryDiff> {
  if (a.pageSize !== b.pageSize) throw new VmcoreError('USAGE', `the dumps have different page sizes (${a.pageSize} and ${b.pageSize}): their page frames do not correspond`);
  const ps = a.pageSize;
  const max = Math.max(0, opts.maxDifferences ?? 20);
  const end = Math.max(a.maxPfn, b.maxPfn);
  const ca = new RunCursor(a, end);
  const cb = new RunCursor(b, end);
  const r: MemoryDiff = {
    pageSize: ps,
    pagesA: 0,
    pagesB: 0,
    both: 0,
    same: 0,
    differ: 0,
    onlyA: 0,
    onlyB: 0,
    missingA: 0,
    missingB: 0,
    identical: false,
    differences: [],
    truncated: false,
  };
  const zero = new Uint8Array(ps);
  const note = (d: PageDifference) => {
    if (r.differences.length < max) r.differences.push(d);
  };
  let lastReport = 0;
  for (let pfn = 0; pfn < end; ) {
    const sa = await ca.at(pfn);
    const sb = await cb.at(pfn);
    const stop = Math.min(sa.endPfn, sb.endPfn, end);
    const n = stop - pfn;
    const pa = isPresent(sa.state);
    const pb = isPresent(sb.state);
    if (sa.state === 'missing') r.missingA += n;
    if (sb.state === 'missing') r.missingB += n;
    if (pa) r.pagesA += n;
    if (pb) r.pagesB += n;
    if (pa && !pb) {
      r.onlyA += n;
      for (let p = pfn; p < stop && r.differences.length < max; p++) note({ pfn: p, phys: BigInt(p) * BigInt(ps), kind: 'onlyA' });
    } else if (pb && !pa) {
      r.onlyB += n;
      for (let p = pfn; p < stop && r.differences.length < max; p++) note({ pfn: p, phys: BigInt(p) * BigInt(ps), kind: 'onlyB' });
    } else if (pa && pb) {
      r.both += n;
      if (sa.state === 'zero' && sb.state === 'zero') r.same += n;
      else {
        for (let p = pfn; p < stop; p++) {
          const x = sa.state === 'zero' ? zero : await a.readPage(p);
          const y = sb.state === 'zero' ? zero : await b.readPage(p);
          const off = firstDifference(x, y);
          if (off < 0) r.same++;
          else {
            r.differ++;
            note({ pfn: p, phys: BigInt(p) * BigInt(ps), kind: 'content', offset: off });
          }
          if (opts.onProgress && p - lastReport >= 65536) {
            lastReport = p;
            opts.onProgress(p, end);
          }
        }
      }
    }
    pfn = stop;
  }
  r.truncated = r.onlyA + r.onlyB + r.differ > r.differences.length;
  r.identical = r.onlyA === 0 && r.onlyB === 0 && r.differ === 0 && r.missingA === 0 && r.missingB === 0;
  opts.onProgress?.(end, end);
  return r;
}
