/**
 * `vmcore info`: everything a kernel or hypervisor engineer wants to know first about a dump,
 * as a JSON-safe report with stable keys (documented in the README).
 */
import { warning, type Warning } from './warnings.js';
import { splitUnreadable, type Dump, type Producer, type ProducerHint, type ProducerHintCode } from './dump.js';
import { noteTypeName } from './format/elf/notes.js';
import { Vmcoreinfo } from './kernel/vmcoreinfo.js';
import { hex64 } from './hex.js';
import type { KernelInfo } from './kernel/kernel.js';
import type { KernelStateReport } from './kernel/state.js';
import { qemuMisparseInverse, type PhysBaseCandidate } from './kernel/x86_64/physbase.js';
import type { ProofStep } from './kernel/proof.js';
import { kernelMemoryEnd } from './kernel/memsection.js';
import { cpuCountOfNotes } from './kernel/x86_64/cpu.js';
import { headerText } from './text.js';

export interface RangeInfo {
  start: string;
  end: string;
  pages: number;
  /**
   * false when the range lies above the kernel's memory model (the highest mem_section with a
   * mem_map): firmware ROM or flash that QEMU dumps along with RAM. null when unknown.
   */
  kernelRam: boolean | null;
}

export interface PageCounts {
  /** RAM page frames (every state but hole). */
  ram: number;
  /**
   * Present: stored data + known-zero pages. With `pageCount` 'bitmaps': the pages the file
   * says it holds (dumpable, descriptor inside the file), unread records included.
   */
  dumped: number;
  /** null with `pageCount` 'bitmaps' (not counted). */
  data: number | null;
  /** Shared zero page (kdump) or zero tail (ELF p_memsz > p_filesz); null with 'bitmaps'. */
  zeroShared: number | null;
  excluded: number;
  /** With 'bitmaps': only the pages whose descriptor lies beyond the end of the file. */
  missing: number;
  /** Pages whose page descriptor is damaged (kdump): unreadable, counted apart from `missing`; null with 'bitmaps' (not checked). */
  damaged: number | null;
}

/**
 * How `describeDump` counts pages. 'full': every page's record (kdump: every page descriptor,
 * 24 bytes a page) — data, shared zero, missing and damaged pages told apart, pages counted per
 * codec. 'bitmaps': kdump's two bitmaps only (1 bit a page each) plus one descriptor — RAM,
 * dumped and excluded pages exact, descriptors cut off by the end of the file counted; shared
 * zero pages, damaged descriptors and codecs not counted. For remote dumps, where the
 * descriptors are most of what a summary would fetch. Other formats: always 'full' (their
 * page maps are small).
 */
export type PageCountMode = 'full' | 'bitmaps';

export interface InfoReport {
  files: { name: string; size: number }[];
  format: string;
  variant: string;
  producer: Producer;
  /** The facts the producer was recognised by, for people. */
  producerEvidence: string[];
  /** Their stable codes (ProducerHintCode), in the same order. */
  producerEvidenceCodes: string[];
  arch: string;
  endian: 'little' | 'big';
  pageSize: number;
  kernel: { release: string | null; version: string | null; machine: string | null; releaseSource: string | null };
  crashTime: string | null;
  nrCpus: number | null;
  notes: { name: string; type: string; size: number }[];
  vmcoreinfo: { present: boolean; source: string };
  physBase: {
    /** What the value is: 'phys_base' (x86_64) or 'PHYS_OFFSET' (aarch64 memstart_addr, which the kdump header's phys_base field carries there). */
    name: 'phys_base' | 'PHYS_OFFSET';
    header: string | null;
    /** NUMBER(phys_base) (aarch64: NUMBER(PHYS_OFFSET)) from VMCOREINFO as a 64-bit hex value. */
    vmcoreinfo: string | null;
    /** NUMBER(phys_base) exactly as written (signed decimal). */
    vmcoreinfoRaw: string | null;
    value: string | null;
    verdict: string;
    /** The checks the proven value passed: `{code, text}` (codes in kernel/proof.ts). */
    proof: ProofStep[];
    /** Why the header is wrong, when the cause is recognisable. */
    explanation: string | null;
    /**
     * x86_64, present only when no value is proven: the candidate that passed the most checks,
     * `{value, sources, passed, failed}` (ProofSteps; `failed` says what contradicts it), or null
     * when no candidate passed a check.
     */
    closest?: { value: string; sources: string[]; passed: ProofStep[]; failed: ProofStep[] } | null;
    /** aarch64 only: the proven layout (physOffset, kimageVoffset, pageOffset, vaBits, granule, tableLevels, swapperPgDir, pacMask). */
    aarch64?: unknown;
  };
  ranges: RangeInfo[];
  pages: PageCounts;
  /** How the pages were counted (`PageCountMode`). */
  pageCount: PageCountMode;
  /** Pages per codec; empty with `pageCount` 'bitmaps'. */
  codecs: Record<string, number>;
  fileBytes: number;
  fileToRamRatio: number | null;
  header: Record<string, unknown>;
  panic: Record<string, unknown> | null;
  /** From the kernel's own symbols (kallsyms): symbol source, taint, uptime, per-CPU current tasks. */
  kernelState: KernelStateReport | null;
  warnings: Warning[];
}

/**
 * The warnings for the pages a dump cannot give (`splitUnreadable`'s counts), in the words every
 * command uses: PAGES_DAMAGED (impossible kdump page descriptor) and PAGES_MISSING (not in the
 * file). `effect`: what the loss means for the command, added to each text (`hash`: "not hashed").
 */
export function unreadableWarnings(c: { missing: number; damaged: number }, effect?: string): Warning[] {
  const out: Warning[] = [];
  const also = effect ? `, ${effect}` : '';
  if (c.damaged) {
    const one = c.damaged === 1;
    out.push(warning('PAGES_DAMAGED', `${c.damaged} ${one ? 'page has a' : 'pages have'} damaged page descriptor${one ? '' : 's'} (size or compression flags impossible): unreadable${also}, the rest of the dump is not affected`));
  }
  if (c.missing) out.push(warning('PAGES_MISSING', `${c.missing} ${c.missing === 1 ? 'page is' : 'pages are'} missing from the file (incomplete or truncated dump)${also ? `:${also.slice(1)}` : ''}`));
  return out;
}

/**
 * What `vmcore info` reports: format and variant, the producer and its evidence, page counts
 * (pages of `dump.pageSize` bytes) and physical ranges (bytes), the kernel release and crash
 * time, the phys_base verdict, and warnings.
 * @param dump an opened dump.
 * @param kernel its `analyzeKernel` result, for the kernel facts (without it: the file's alone).
 * @param extra the panic summary and kernel state, when the caller has read them; `pages`: how
 *   pages are counted (`PageCountMode`, default 'full').
 * @returns the `InfoReport` whose JSON form is `vmcore info --json` (keys in README).
 * @throws the read errors of the dump's page map (IO, HTTP, BAD_FIELD); damaged pages are
 *   counted, not thrown.
 */
export async function describeDump(
  dump: Dump,
  kernel?: KernelInfo,
  extra: { panic?: Record<string, unknown> | null; kernelState?: KernelStateReport | null; pages?: PageCountMode } = {},
): Promise<InfoReport> {
  const fromMap = extra.pages === 'bitmaps' && dump.mapRuns !== undefined;
  const det = await dump.details(fromMap ? { codecs: 'none' } : {});
  const pages: PageCounts = { ram: 0, dumped: 0, data: 0, zeroShared: 0, excluded: 0, missing: 0, damaged: 0 };
  const ranges: RangeInfo[] = [];
  let cur: { s: number; e: number } | undefined;
  let stored = 0;
  for await (const r of fromMap ? dump.mapRuns!(0, dump.maxPfn) : dump.pageRuns(0, dump.maxPfn)) {
    const n = r.endPfn - r.startPfn;
    if (r.state === 'hole') continue;
    pages.ram += n;
    if (r.state === 'data') pages.data! += n;
    if (r.state === 'zero') pages.zeroShared! += n;
    if (r.state === 'stored') stored += n;
    if (r.state === 'excluded') pages.excluded += n;
    if (r.state === 'missing') pages.missing += n;
    if (cur && cur.e === r.startPfn) cur.e = r.endPfn;
    else {
      if (cur) ranges.push(rangeOf(cur, dump.pageSize));
      cur = { s: r.startPfn, e: r.endPfn };
    }
  }
  if (cur) ranges.push(rangeOf(cur, dump.pageSize));
  const memEnd = kernel ? await kernelMemoryEnd(kernel, dump.pageSize).catch(() => undefined) : undefined;
  if (memEnd) for (const r of ranges) r.kernelRam = Number(BigInt(r.start) / BigInt(dump.pageSize)) < memEnd.endPfn;
  if (fromMap) {
    pages.dumped = stored;
    pages.data = pages.zeroShared = pages.damaged = null;
  } else {
    pages.dumped = pages.data! + pages.zeroShared!;
    ({ missing: pages.missing, damaged: pages.damaged } = splitUnreadable(pages.missing, det.codecs));
  }

  const vi = kernel?.vmcoreinfo ?? (dump.vmcoreinfoText ? new Vmcoreinfo(dump.vmcoreinfoText) : undefined);
  const { producer, evidence } = guessProducer(dump, det.producerHints);
  // the header's fields as text (they stay bytes in det.utsname, for writers)
  const uts = det.utsname ? { release: headerText(det.utsname.release), version: headerText(det.utsname.version), machine: headerText(det.utsname.machine) } : undefined;
  let release: string | null = null;
  let releaseSource: string | null = null;
  if (uts?.release) {
    release = uts.release;
    releaseSource = 'header utsname';
  } else if (vi?.osrelease) {
    release = vi.osrelease;
    releaseSource = kernel && kernel.vmcoreinfoSource !== 'note' && kernel.vmcoreinfoSource !== 'kdump header' ? `VMCOREINFO (${kernel.vmcoreinfoSource})` : 'VMCOREINFO';
  } else if (kernel?.utsname?.release) {
    release = kernel.utsname.release;
    releaseSource = 'init_uts_ns in memory';
  }
  const version = uts?.version || kernel?.utsname?.version || null;
  if (releaseSource && !uts?.version && kernel?.utsname?.version) releaseSource += '; version from init_uts_ns in memory';
  const machine = uts?.machine || kernel?.utsname?.machine || (dump.arch !== 'unknown' ? dump.arch : null);
  const crash = kernel?.crashTime ?? vi?.crashTime ?? det.timestamp;
  const fileBytes = dump.files.reduce((a, f) => a + f.size, 0);
  const ramBytes = pages.ram * dump.pageSize;
  const pb = kernel?.physBase;
  // on arm64 the header's phys_base field and the proof are about PHYS_OFFSET (memstart_addr)
  const aarch64 = kernel?.arch === 'aarch64';
  const pbKey = aarch64 ? 'PHYS_OFFSET' : 'phys_base';
  const vmciPb = vi?.get(`NUMBER(${pbKey})`);
  const warnings = [...dump.warnings, ...(kernel?.warnings ?? []).filter((w) => w.code !== 'PHYS_BASE_HEADER_WRONG')];
  // the built-in readers warn themselves when their incomplete flag is set; other Dumps may not
  if (det.incomplete && !BUILT_IN_FORMATS.includes(dump.format)) warnings.push(warning('MARKED_INCOMPLETE', 'the dump is marked incomplete'));
  warnings.push(...unreadableWarnings({ missing: pages.missing, damaged: pages.damaged ?? 0 }));
  if (fromMap && (await dump.dataCutShort?.())) {
    warnings.push(warning('FILE_TRUNCATED', 'the file is cut short inside its page data: the pages stored beyond its end are missing (not counted: page descriptors not read; a full page count reads them)'));
  }
  if (pages.ram === 0) {
    warnings.push(warning('NO_MEMORY', det.noMemoryReason ?? 'the dump describes no memory (0 RAM pages): its header was read in a layout that does not fit it, or the file is empty or damaged'));
  }
  if (pb?.verdict === 'header wrong') {
    const hdr = pb.header === undefined ? '' : hex64(pb.header) + ' ';
    warnings.push(warning('PHYS_BASE_HEADER_WRONG',
      dump.vmcoreinfoText
        ? `the header's phys_base ${hdr}is wrong: makedumpfile (re-filtering, --dump-dmesg) trusts it and misreads kernel memory; libkdumpfile, drgn and crash take NUMBER(phys_base) from the file's VMCOREINFO instead. \`vmcore fix\` corrects the header`
        : `the header's phys_base ${hdr}is wrong and the file has no VMCOREINFO: libkdumpfile and makedumpfile trust the header and misread kernel memory, drgn refuses the file. \`vmcore fix\` corrects the header and adds the VMCOREINFO recovered from memory`,
    ));
  }
  return {
    files: dump.files.map((f) => ({ name: f.name, size: f.size })),
    format: dump.format,
    variant: dump.variant,
    producer,
    producerEvidence: evidence.map((e) => e.text),
    producerEvidenceCodes: evidence.map((e) => e.code),
    arch: (dump.arch === 'unknown' || dump.arch === 'Unknown') && kernel?.arch ? kernel.arch : dump.arch,
    endian: dump.littleEndian ? 'little' : 'big',
    pageSize: dump.pageSize,
    kernel: { release, version, machine, releaseSource },
    crashTime: crash ? new Date(crash * 1000).toISOString() : null,
    nrCpus: det.nrCpus ?? (cpuCountOfNotes(dump.notes) || null),
    notes: dump.notes.map((n) => ({ name: n.name, type: noteTypeName(n), size: n.desc.length })),
    vmcoreinfo: { present: !!vi, source: kernel?.vmcoreinfoSource ?? (dump.vmcoreinfoText ? 'note' : 'none') },
    physBase: {
      name: pbKey,
      header: det.headerPhysBase === undefined ? null : hex64(det.headerPhysBase),
      vmcoreinfo: vi?.number(pbKey) === undefined ? null : hex64(vi.number(pbKey)!),
      vmcoreinfoRaw: vmciPb ?? null,
      value: pb?.value === undefined ? null : hex64(pb.value),
      verdict: pb?.verdict ?? (kernel ? 'cannot prove' : 'not analysed'),
      proof: pb?.proof ?? [],
      explanation: aarch64 ? explainAarch64Header(det.headerPhysBase, pb?.verdict, vi) : explainHeader(det.headerPhysBase, pb?.value, pb?.verdict, producer),
      ...(!aarch64 && pb && pb.value === undefined ? { closest: closestCandidate(pb.candidates) } : {}),
      ...(aarch64 ? { aarch64: (kernel!.summary() as { aarch64?: unknown }).aarch64 ?? null } : {}),
    },
    ranges,
    pages,
    pageCount: fromMap ? 'bitmaps' : 'full',
    codecs: det.codecs ?? {},
    fileBytes,
    fileToRamRatio: ramBytes ? Math.round((fileBytes / ramBytes) * 10000) / 10000 : null,
    header: det.header,
    panic: extra.panic ?? null,
    kernelState: extra.kernelState ?? null,
    warnings,
  };
}

const BUILT_IN_FORMATS: readonly string[] = ['elf', 'kdump', 'celf'];

function rangeOf(r: { s: number; e: number }, ps: number): RangeInfo {
  return { start: '0x' + (r.s * ps).toString(16), end: '0x' + (r.e * ps).toString(16), pages: r.e - r.s, kernelRam: null };
}

/**
 * The program that wrote the dump, from the format reader's hints (matched by their codes;
 * the texts are for people). Returns the producer and the hints that decided it.
 */
export function guessProducer(dump: Dump, hints: readonly ProducerHint[]): { producer: Producer; evidence: ProducerHint[] } {
  const find = (c: ProducerHintCode) => hints.find((h) => h.code === c);
  const has = (c: ProducerHintCode) => find(c) !== undefined;
  const pick = (...codes: ProducerHintCode[]) => hints.filter((h) => codes.includes(h.code));
  const said = (code: ProducerHintCode, text: string): ProducerHint => ({ code, text });
  if (has('vmcore_note') || has('celf_index')) return { producer: 'vmcore', evidence: pick('vmcore_note', 'celf_index') };
  const qemu = pick('qemu_cpu_notes', 'uts_only_machine', 'shdrs_after_ehdr', 'bogus_ehsize');
  if (dump.format === 'kdump') {
    // A kdump header tells its writer: QEMU fills only utsname.machine; makedumpfile copies the
    // kernel's utsname. Notes alone do not tell (makedumpfile copies QEMU's notes from its input).
    if (has('uts_only_machine')) {
      const ev = [...pick('uts_only_machine'), ...pick('timestamp_zero'), ...pick('qemu_cpu_notes')];
      if (has('flattened')) ev.push(said('flattened', 'flattened format (QEMU kdump-* output)'));
      return { producer: 'qemu', evidence: ev };
    }
    const ev = [has('uts_from_kernel') ? said('uts_from_kernel', 'header utsname filled from the kernel (QEMU fills only machine)') : said('kdump_not_qemu_form', "kdump header not in QEMU's form")];
    if (has('flattened')) ev.push(said('flattened', 'flattened format (makedumpfile -F)'));
    if (has('qemu_cpu_notes')) ev.push(said('qemu_cpu_notes', 'notes copied from a QEMU dump (its input was a QEMU ELF)'));
    return { producer: 'makedumpfile', evidence: ev };
  }
  if (qemu.length) return { producer: 'qemu', evidence: [...qemu, ...pick('vaddr_is_paddr')] };
  if (dump.format === 'elf') {
    if (has('memsz_gt_filesz')) return { producer: 'makedumpfile', evidence: pick('memsz_gt_filesz', 'vmcoreinfo_note') };
    if (has('ktext_load') && has('vmcoreinfo_note')) {
      return { producer: 'kernel', evidence: [...pick('ktext_load', 'vmcoreinfo_note'), said('no_qemu_notes', 'no QEMU notes (a /proc/vmcore copy)')] };
    }
  }
  return { producer: 'unknown', evidence: [...hints] };
}

function explainAarch64Header(header: bigint | undefined, verdict: string | undefined, vi: { has(k: string): boolean } | undefined): string | null {
  if (verdict !== 'header wrong' || header === undefined) return null;
  if (!vi?.has('NUMBER(PHYS_OFFSET)')) return "QEMU writes the lowest guest RAM address when it cannot see the guest kernel (no -device vmcoreinfo); the kernel's memstart_addr differs";
  return null;
}

/** The candidate that passed the most checks (the first of equals), or null: what `info` shows when nothing is proven. */
function closestCandidate(cands: readonly PhysBaseCandidate[]): NonNullable<InfoReport['physBase']['closest']> | null {
  let best: PhysBaseCandidate | undefined;
  for (const c of cands) if (c.passed.length > 0 && (!best || c.passed.length > best.passed.length)) best = c;
  return best ? { value: hex64(best.value), sources: best.sources, passed: best.passed, failed: best.failed } : null;
}

function explainHeader(header: bigint | undefined, value: bigint | undefined, verdict: string | undefined, producer: Producer): string | null {
  if (verdict !== 'header wrong' || header === undefined || value === undefined) return null;
  if (qemuMisparseInverse(header) === value) return "QEMU read the kernel's decimal NUMBER(phys_base) as hexadecimal (-device vmcoreinfo present)";
  if (header === 0n && producer === 'qemu') return 'QEMU writes 0 when it cannot see the guest kernel (no -device vmcoreinfo); the kernel is not at its link address (UEFI firmware or KASLR)';
  if (header === 0n) return 'the writer left phys_base at 0';
  return null;
}
