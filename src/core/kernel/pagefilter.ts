/**
 * Page filtering by type: stream over SPARSEMEM's mem_section, read the struct page array of
 * each section up to 2 MiB at a time through kernel virtual memory, classify it 512 records at
 * a time, and yield the page frames to leave out at a makedumpfile dump level, as sorted runs.
 * Architecture-neutral: it only needs VMCOREINFO and a `readVirt`. Memory is bounded by one
 * span of struct pages plus the runs found.
 */
import { warning, type Warning } from '../warnings.js';
import { isVmcoreError, VmcoreError } from '../errors.js';
import { memSections, type MemSection, type SectionWalkInput } from './memsection.js';
import { checkLevel, classifyStructPages, pageModel, PAGE_KINDS, type PageKind, type PageModel } from './pagetypes.js';

/** Struct pages classified per block (makedumpfile's PGMM_CACHED): a compound head on a block's last record counts as order 0. */
export const STRUCT_PAGE_BLOCK = 512;
/** Bytes of struct pages read at a time (a whole number of blocks, at least one). */
export const STRUCT_PAGE_SPAN = 2 << 20;

export interface ExcludedRun {
  startPfn: number;
  /** Exclusive. */
  endPfn: number;
  kind: PageKind;
}

/** The run of `excluded` (sorted, not overlapping) that holds `pfn`, by binary search. */
export function excludedRunAt(excluded: readonly ExcludedRun[], pfn: number): ExcludedRun | undefined {
  let lo = 0;
  let hi = excluded.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (excluded[mid]!.endPfn <= pfn) lo = mid + 1;
    else hi = mid;
  }
  const x = excluded[lo];
  return x !== undefined && x.startPfn <= pfn ? x : undefined;
}

export interface PageFilterInput extends SectionWalkInput {
  /** File name for errors. */
  file?: string;
  littleEndian?: boolean;
}

export interface PageFilterOptions {
  /** Page frames at or above this are not classified (the dump's max pfn). */
  maxPfn?: number;
  /** Reuse a model (tests inject one). */
  model?: PageModel;
  /** Told about each unreadable struct page block (its pages are kept). */
  onWarning?: (msg: Warning) => void;
}

/**
 * The page frames to leave out at dump level `level`, ascending, adjacent runs of one kind
 * merged. Bits 2, 4, 8, 16 of `level` are evaluated here (bit 1, zero pages, needs the page
 * contents and is the writer's job); hwpoison and offline pages are always reported.
 *
 * @param k      VMCOREINFO and kernel virtual reads (KernelInfo from analyzeKernel)
 * @param pageSize bytes per page frame
 * @param level  makedumpfile dump level 0-31
 * @throws VmcoreError UNSUPPORTED when the kernel's page-type encoding is unknown or the keys
 *         for a requested bit are missing; NO_VMCOREINFO without VMCOREINFO; UNSUPPORTED when
 *         the mem_section keys are missing or mem_section cannot be read, and when `pageSize`
 *         is not the kernel's VMCOREINFO PAGESIZE (field PAGESIZE)
 */
export async function* excludedPages(k: PageFilterInput, pageSize: number, level: number, opts: PageFilterOptions = {}): AsyncGenerator<ExcludedRun> {
  const file = k.file;
  if (!Number.isInteger(level) || level < 0 || level > 31) throw new VmcoreError('USAGE', `dump level ${level}: must be 0-31`, { field: 'dump_level' });
  const vi = k.vmcoreinfo;
  if (!vi) throw new VmcoreError('NO_VMCOREINFO', `dump level ${level} needs VMCOREINFO (struct page layout, page flags) and the dump has none`, { ...(file ? { file } : {}) });
  // struct page i describes page frame i of the kernel's PAGESIZE: pfns of another size (QEMU's
  // 64 KiB arm64 blocks) would classify the wrong frames, or none (inKernelPages first)
  const kernelPageSize = vi.pageSize;
  if (kernelPageSize !== undefined && kernelPageSize !== pageSize) {
    throw new VmcoreError('UNSUPPORTED', `dump level ${level}: pfns of ${pageSize}-byte pages, but the kernel's PAGESIZE is ${kernelPageSize} (read the dump in the kernel's pages: inKernelPages)`, { ...(file ? { file } : {}), field: 'PAGESIZE' });
  }
  const model = opts.model ?? pageModel(vi, { ...(file ? { file } : {}), littleEndian: k.littleEndian ?? true });
  checkLevel(model, level, file);
  const S = model.structSize;
  const maxPfn = opts.maxPfn ?? Number.MAX_SAFE_INTEGER;
  let pending: ExcludedRun | undefined;
  const out: ExcludedRun[] = [];
  const emit = (s: number, e: number, kind: PageKind) => {
    e = Math.min(e, maxPfn);
    if (e <= s) return;
    if (pending && pending.kind === kind && pending.endPfn === s) pending.endPfn = e;
    else {
      if (pending) out.push(pending);
      pending = { startPfn: s, endPfn: e, kind };
    }
  };
  const cursor = { skipUntil: 0 };
  let sections = 0;
  let unreadable = 0;
  // the struct pages of a section are read up to STRUCT_PAGE_SPAN bytes at a time (the vmemmap
  // is virtually contiguous within a section; x86_64 maps it with 2 MiB pages, so one span costs
  // one translation and one read of the dump) and classified STRUCT_PAGE_BLOCK records at a time
  const spanRecords = Math.max(1, Math.floor(STRUCT_PAGE_SPAN / (S * STRUCT_PAGE_BLOCK))) * STRUCT_PAGE_BLOCK;
  // every span is read into the same memory (classified before the next is read): fresh memory
  // for each would cost a page fault per 4 KiB of it
  const spanBuf = new Uint8Array(spanRecords * S);
  const block = async (sec: MemSection, pfn: number, n: number, span?: { buf: Uint8Array; pfn: number }) => {
    if (pfn + n <= cursor.skipUntil) return;
    let buf: Uint8Array;
    if (span) buf = span.buf.subarray((pfn - span.pfn) * S, (pfn - span.pfn + n) * S);
    else {
      try {
        buf = await k.readVirt(BigInt.asUintN(64, sec.memMap + BigInt((pfn - sec.startPfn) * S)), n * S);
      } catch (e) {
        if (!isVmcoreError(e)) throw e;
        unreadable++;
        if (unreadable <= 3) opts.onWarning?.(warning('STRUCT_PAGE_UNREADABLE', `struct pages of pfn 0x${pfn.toString(16)}-0x${(pfn + n).toString(16)} unreadable (${e.message}): those pages are kept`));
        return;
      }
    }
    classifyStructPages(model, level, buf, pfn, n, cursor, emit);
  };
  try {
    for await (const sec of memSections(k, pageSize)) {
      sections++;
      const end = Math.min(sec.endPfn, maxPfn);
      for (let s0 = sec.startPfn; s0 < end; s0 += spanRecords) {
        const e0 = Math.min(end, s0 + spanRecords);
        if (e0 <= cursor.skipUntil) continue;
        let span: { buf: Uint8Array; pfn: number } | undefined;
        try {
          span = { buf: await k.readVirt(BigInt.asUintN(64, sec.memMap + BigInt((s0 - sec.startPfn) * S)), (e0 - s0) * S, spanBuf), pfn: s0 };
        } catch (e) {
          if (!isVmcoreError(e)) throw e;
          // block by block: each unreadable block costs its own pages
        }
        for (let pfn = s0; pfn < e0; pfn += STRUCT_PAGE_BLOCK) {
          await block(sec, pfn, Math.min(STRUCT_PAGE_BLOCK, e0 - pfn), span);
          if (out.length) {
            yield* out;
            out.length = 0;
          }
        }
      }
    }
  } catch (e) {
    if (isVmcoreError(e) && e.code !== 'UNSUPPORTED') {
      throw new VmcoreError('UNSUPPORTED', `${model.release}: mem_section cannot be walked (${e.message}): refusing dump level ${level}`, { ...(file ? { file } : {}), field: 'mem_section' });
    }
    throw e;
  }
  if (unreadable > 3) opts.onWarning?.(warning('STRUCT_PAGE_UNREADABLE', `${unreadable} struct page blocks unreadable in all: their pages are kept`));
  if (sections === 0) {
    throw new VmcoreError('UNSUPPORTED', `${model.release}: no SPARSEMEM mem_section with a mem_map found (SYMBOL(mem_section) and its keys missing or empty): refusing dump level ${level}`, {
      ...(file ? { file } : {}),
      field: 'mem_section',
    });
  }
  if (pending) yield pending;
}

export type KindCounts = Record<PageKind, number>;

export function emptyKindCounts(): KindCounts {
  return Object.fromEntries(PAGE_KINDS.map((k) => [k, 0])) as KindCounts;
}

export interface PfnSpan {
  startPfn: number;
  /** Exclusive. */
  endPfn: number;
}

/**
 * `present` minus the excluded runs (both ascending and disjoint): the pages a filtered dump
 * keeps, and how many present pages each kind removed.
 */
export function subtractExcluded(present: readonly PfnSpan[], excluded: readonly ExcludedRun[]): { present: PfnSpan[]; removed: KindCounts; total: number } {
  const removed = emptyKindCounts();
  let total = 0;
  const out = subtractSpans(present, excluded, (x, n) => {
    removed[x.kind] += n;
    total += n;
  });
  return { present: out, removed, total };
}

/**
 * The spans of `a` not covered by `b` (both ascending and disjoint), in one pass over both.
 * `onCut(run, n)` hears of every overlap: `n` pages of `a` that run of `b` removed.
 */
export function subtractSpans<R extends PfnSpan>(a: readonly PfnSpan[], b: readonly R[], onCut?: (run: R, n: number) => void): PfnSpan[] {
  const out: PfnSpan[] = [];
  let j = 0;
  for (const r of a) {
    let s = r.startPfn;
    while (j < b.length && b[j]!.endPfn <= s) j++;
    let k = j;
    while (s < r.endPfn) {
      const x = b[k];
      if (!x || x.startPfn >= r.endPfn) {
        out.push({ startPfn: s, endPfn: r.endPfn });
        break;
      }
      if (x.startPfn > s) out.push({ startPfn: s, endPfn: x.startPfn });
      const cut = Math.min(x.endPfn, r.endPfn);
      const n = cut - Math.max(s, x.startPfn);
      if (n > 0) onCut?.(x, n);
      s = Math.max(s, cut);
      if (x.endPfn <= r.endPfn) k++;
    }
    j = k;
  }
  return out;
}

/** Collect the generator's runs (sorted, disjoint). */
export async function collectExcluded(runs: AsyncIterable<ExcludedRun>): Promise<ExcludedRun[]> {
  const all: ExcludedRun[] = [];
  for await (const r of runs) all.push(r);
  return all;
}
