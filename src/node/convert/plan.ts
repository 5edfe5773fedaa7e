/**
 * Planning a conversion: which pages are RAM and present (from the input's page runs), the
 * kdump header values, and how a split set divides the pfn range.
 */
import { warning, type Warning } from '../../core/warnings.js';
import type { Dump, PageRun, PageState } from '../../core/dump.js';
import { subtractSpans } from '../../core/kernel/pagefilter.js';
import { cpuCountOfNotes } from '../../core/format/elf/notes.js';
import type { Utsname } from '../../core/format/kdump/writer.js';
import type { Vmcoreinfo } from '../../core/kernel/vmcoreinfo.js';
import { analyzeKernel } from '../../core/kernel/kernel.js';
import { kernelHeaderValues } from '../../core/kernel/header-values.js';
import { countIn, isStream, pushRange } from './ranges.js';
import type { ConvertInput, ConvertOptions, ConvertPlan, PfnRange } from './types.js';

export interface Scan {
  ram: PfnRange[];
  present: PfnRange[];
  /** RAM the input should hold but does not deliver (state missing), ascending. */
  missing: PfnRange[];
  counts: Record<PageState, number>;
}

export async function scanRuns(runs: AsyncIterable<PageRun>): Promise<Scan> {
  const ram: PfnRange[] = [];
  const present: PfnRange[] = [];
  const missing: PfnRange[] = [];
  const counts: Record<PageState, number> = { data: 0, zero: 0, excluded: 0, missing: 0, hole: 0 };
  for await (const r of runs) {
    counts[r.state] += r.endPfn - r.startPfn;
    if (r.state === 'hole') continue;
    pushRange(ram, r.startPfn, r.endPfn);
    if (r.state === 'data' || r.state === 'zero') pushRange(present, r.startPfn, r.endPfn);
    else if (r.state === 'missing') pushRange(missing, r.startPfn, r.endPfn);
  }
  return { ram, present, missing, counts };
}

/**
 * The plan of a filtered conversion (dump level 2-31) from the input's page maps, reading the
 * per-page records (kdump: 24-byte descriptors) of the pages the filter keeps only: the RAM and
 * the stored pages come from `mapRuns` (kdump: the two bitmaps, 2 bits a page), then `pageRuns`
 * over the kept ranges tells the data and shared zero pages there from the missing ones. Pages
 * the filter leaves out count as present (they are subtracted, and counted by kind, afterwards),
 * even where their record, not read, would have said missing.
 * @param exclude the filter's runs, ascending and disjoint
 */
export async function scanKeptRuns(dump: Dump & Required<Pick<Dump, 'mapRuns'>>, end: number, exclude: readonly PfnRange[]): Promise<Scan> {
  const ram: PfnRange[] = [];
  const stored: PfnRange[] = [];
  const counts: Record<PageState, number> = { data: 0, zero: 0, excluded: 0, missing: 0, hole: 0 };
  for await (const r of dump.mapRuns(0, end)) {
    const n = r.endPfn - r.startPfn;
    if (r.state === 'hole') {
      counts.hole += n;
      continue;
    }
    pushRange(ram, r.startPfn, r.endPfn);
    if (r.state === 'stored') pushRange(stored, r.startPfn, r.endPfn);
    else counts[r.state] += n;
  }
  const absent: PfnRange[] = [];
  const missing: PfnRange[] = [];
  for (const k of subtractSpans(stored, exclude)) {
    for await (const r of dump.pageRuns(k.startPfn, k.endPfn)) {
      const n = r.endPfn - r.startPfn;
      counts[r.state] += n;
      if (r.state !== 'data' && r.state !== 'zero') pushRange(absent, r.startPfn, r.endPfn);
      if (r.state === 'missing') pushRange(missing, r.startPfn, r.endPfn);
    }
  }
  const present = absent.length ? subtractSpans(stored, absent) : stored;
  return { ram, present, missing, counts };
}

export async function headerFor(
  input: ConvertInput,
  vmci: Vmcoreinfo | undefined,
  opts: ConvertOptions,
  warnings: Warning[],
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
    if (arch === 'x86_64') {
      warnings.push(warning('PHYS_BASE_UNKNOWN', 'phys_base unknown (no VMCOREINFO, no source header): writing 0'));
    }
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

/**
 * `opts` with the header values of the kernel (opts.kernel, or an analysis of a random-access
 * x86_64 input) filled in where opts does not give them: phys_base, utsname, a recovered
 * VMCOREINFO note, the VMCOREINFO with proven layout values (`vmcoreinfoText`) and, unless keepAllPages, max_mapnr at the end of the kernel's memory model.
 * The kernel's warnings go to `warnings` when the analysis runs here.
 */
export async function withKernelValues(input: ConvertInput, opts: ConvertOptions, warnings: Warning[]): Promise<ConvertOptions> {
  if (isStream(input) || opts.kernel === false) return opts;
  let kernel = opts.kernel;
  if (!kernel) {
    if (input.arch !== 'x86_64') return opts;
    try {
      kernel = await analyzeKernel(input);
      warnings.push(...kernel.warnings);
    } catch (e) {
      warnings.push(warning('KERNEL_ANALYSIS_FAILED', `kernel analysis failed (${(e as Error).message}); header values come from the file`));
      return opts;
    }
  }
  const v = await kernelHeaderValues(input, kernel);
  const out: ConvertOptions = { ...opts };
  if (out.physBase === undefined && v.physBase !== undefined) out.physBase = v.physBase;
  if (!out.utsname && v.utsname) out.utsname = v.utsname;
  if (out.extraNotes === undefined && v.vmcoreinfoNote) out.extraNotes = [v.vmcoreinfoNote];
  if (out.vmcoreinfoText === undefined && v.vmcoreinfoText !== undefined) out.vmcoreinfoText = v.vmcoreinfoText;
  // the corrected values are written (kernel-proven), the file's rejected ones said once more
  for (const c of v.vmcoreinfoChanges) warnings.push(warning('VMCOREINFO_DISAGREES', `written with the proven value: ${c}`));
  if (out.maxPfn === undefined && !opts.keepAllPages && v.memoryEndPfn !== undefined) out.maxPfn = v.memoryEndPfn;
  return out;
}
