/**
 * `vmcore usage`: what a dump's memory holds by page type, and what each dump level would write
 * with each codec, so a user can choose before converting (makedumpfile --mem-usage, plus the
 * size estimate). Page types are exact (the classification of every page frame, pagefilter.ts);
 * zero pages and compressed sizes are estimated from an evenly spread sample of pages.
 */
import type { Warning } from '../core/warnings.js';
import type { Dump } from '../core/dump.js';
import type { KernelInfo } from '../core/kernel/kernel.js';
import { isZeroPage } from '../core/memory.js';
import { inKernelPages } from '../core/reblock.js';
import { collectExcluded, excludedPages, excludedRunAt, subtractExcluded, type ExcludedRun, type PfnSpan } from '../core/kernel/pagefilter.js';
import { DL_CACHE, DL_CACHE_PRI, DL_FREE, DL_USER, DL_ZERO, PAGE_KINDS, pageModel, type PageKind } from '../core/kernel/pagetypes.js';
import type { OutputCodec } from '../core/format/batch.js';
import { pageCompressor } from './workers/page-codec.js';

export type UsageKind = PageKind | 'kernel';
export const USAGE_KINDS: readonly UsageKind[] = [...PAGE_KINDS, 'kernel'];
const CODECS: readonly OutputCodec[] = ['zlib', 'lzo', 'snappy', 'zstd', 'none'];

/** The dump-level bits that leave a kind out (hwpoison and offline: always). */
export function levelExcludes(level: number, kind: UsageKind): boolean {
  switch (kind) {
    case 'cache':
      return (level & (DL_CACHE | DL_CACHE_PRI)) !== 0;
    case 'cachePrivate':
      return (level & DL_CACHE_PRI) !== 0;
    case 'user':
      return (level & DL_USER) !== 0;
    case 'free':
      return (level & DL_FREE) !== 0;
    case 'hwpoison':
    case 'offline':
      return true;
    case 'kernel':
      return false;
  }
}

export interface UsageReport {
  kernel: string;
  encoding: string;
  pageSize: number;
  /** Present pages (data or zero) in the input. */
  pages: number;
  /** Exact pages per type among the present ones; kernel = everything no level leaves out. */
  types: Record<UsageKind, { pages: number; bytes: number; zeroEstimate: number }>;
  sample: { pages: number; zero: number };
  /** For every dump level 0-31: pages written and the estimated kdump file size per codec. */
  levels: { level: number; pages: number; bytes: Record<OutputCodec, number> }[];
  warnings: Warning[];
}

function kindAt(excluded: readonly ExcludedRun[], pfn: number): UsageKind {
  return excludedRunAt(excluded, pfn)?.kind ?? 'kernel';
}

/**
 * @param dump     any dump with VMCOREINFO and translatable kernel addresses
 * @param kernel   analyzeKernel(dump)
 * @param opts.samplePages pages read for the zero and codec estimate (default 2048)
 * @throws VmcoreError as excludedPages (unknown page-type encoding, missing keys)
 */
export async function memoryUsage(dump: Dump, kernel: KernelInfo, opts: { samplePages?: number } = {}): Promise<UsageReport> {
  // in the kernel's page frames (VMCOREINFO PAGESIZE): QEMU writes arm64 dumps in 64 KiB blocks
  dump = inKernelPages(dump, kernel.vmcoreinfo);
  const warnings: Warning[] = [];
  const file = dump.files[0]?.name;
  const vi = kernel.vmcoreinfo;
  const model = vi ? pageModel(vi, { ...(file ? { file } : {}), littleEndian: dump.littleEndian }) : undefined;
  const excluded = await collectExcluded(
    excludedPages({ vmcoreinfo: vi, readVirt: (va, n, into) => kernel.readVirt(va, n, into), ...(file ? { file } : {}), littleEndian: dump.littleEndian }, dump.pageSize, 31, {
      maxPfn: dump.maxPfn,
      onWarning: (w) => warnings.push(w),
    }),
  );
  const present: PfnSpan[] = [];
  for await (const r of dump.pageRuns()) {
    if (r.state !== 'data' && r.state !== 'zero') continue;
    const last = present[present.length - 1];
    if (last && last.endPfn === r.startPfn) last.endPfn = r.endPfn;
    else present.push({ startPfn: r.startPfn, endPfn: r.endPfn });
  }
  const total = present.reduce((n, r) => n + r.endPfn - r.startPfn, 0);
  const { removed } = subtractExcluded(present, excluded);
  const counts = { ...removed, kernel: total - Object.values(removed).reduce((a, b) => a + b, 0) } as Record<UsageKind, number>;

  // the sample: every step-th present page
  const want = Math.max(1, Math.min(opts.samplePages ?? 2048, total));
  const step = Math.max(1, Math.floor(total / want));
  const compressors = CODECS.map((c) => pageCompressor({ codec: c, pageSize: dump.pageSize, detectZero: false }));
  const out = new Uint8Array(dump.pageSize * 2);
  const stat = new Map<UsageKind, { n: number; zero: number; bytes: number[]; zeroBytes: number[] }>();
  for (const k of USAGE_KINDS) stat.set(k, { n: 0, zero: 0, bytes: CODECS.map(() => 0), zeroBytes: CODECS.map(() => 0) });
  let seen = 0;
  let sampled = 0;
  let sampledZero = 0;
  for (const r of present) {
    let p = r.startPfn + ((step - (seen % step)) % step);
    seen += r.endPfn - r.startPfn;
    for (; p < r.endPfn; p += step) {
      let page: Uint8Array;
      try {
        page = await dump.readPage(p);
      } catch {
        continue;
      }
      const s = stat.get(kindAt(excluded, p))!;
      const zero = isZeroPage(page);
      s.n++;
      sampled++;
      if (zero) {
        s.zero++;
        sampledZero++;
      }
      compressors.forEach((c, i) => {
        const n = c ? c(page, out, 0) : -1;
        const size = n < 0 ? dump.pageSize : n;
        if (zero) s.zeroBytes[i]! += size;
        else s.bytes[i]! += size;
      });
    }
  }
  const all = [...stat.values()].reduce((a, s) => ({ n: a.n + s.n, zero: a.zero + s.zero, bytes: a.bytes.map((b, i) => b + s.bytes[i]!), zeroBytes: a.zeroBytes.map((b, i) => b + s.zeroBytes[i]!) }), {
    n: 0,
    zero: 0,
    bytes: CODECS.map(() => 0),
    zeroBytes: CODECS.map(() => 0),
  });
  const per = (k: UsageKind) => {
    const s = stat.get(k)!;
    return s.n >= 8 ? s : all;
  };
  const types = Object.fromEntries(
    USAGE_KINDS.map((k) => {
      const s = per(k);
      return [k, { pages: counts[k], bytes: counts[k] * dump.pageSize, zeroEstimate: s.n ? Math.round((counts[k] * s.zero) / s.n) : 0 }];
    }),
  ) as UsageReport['types'];

  // kdump layout: 2 header blocks, two bitmaps, a 24-byte descriptor per page, the data
  const bitmap = Math.ceil(Math.ceil(dump.maxPfn / 8) / dump.pageSize) * dump.pageSize;
  const meta = 2 * dump.pageSize + 2 * bitmap;
  const levels: UsageReport['levels'] = [];
  for (let level = 0; level < 32; level++) {
    let pages = 0;
    const bytes = CODECS.map(() => meta);
    for (const k of USAGE_KINDS) {
      if (levelExcludes(level, k) || !counts[k]) continue;
      const s = per(k);
      const n = counts[k];
      const zeroFrac = s.n ? s.zero / s.n : 0;
      const nonzeroFrac = 1 - zeroFrac;
      pages += n;
      CODECS.forEach((_, i) => {
        const nz = s.n - s.zero;
        const avg = nz ? s.bytes[i]! / nz : dump.pageSize;
        const avgZero = s.zero ? s.zeroBytes[i]! / s.zero : 0;
        bytes[i]! += n * 24 + n * nonzeroFrac * avg + (level & DL_ZERO ? 0 : n * zeroFrac * avgZero);
      });
    }
    if (level & DL_ZERO) CODECS.forEach((_, i) => (bytes[i]! += dump.pageSize));
    levels.push({ level, pages, bytes: Object.fromEntries(CODECS.map((c, i) => [c, Math.round(bytes[i]!)])) as Record<OutputCodec, number> });
  }
  return {
    kernel: model?.release ?? 'unknown',
    encoding: model?.encoding ?? 'unknown',
    pageSize: dump.pageSize,
    pages: total,
    types,
    sample: { pages: sampled, zero: sampledZero },
    levels,
    warnings,
  };
}
