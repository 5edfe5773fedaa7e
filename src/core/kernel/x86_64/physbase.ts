/**
 * Find the true x86_64 phys_base and prove it (reference analysis.md §2.4–2.5, formats.md §3.3
 * and §4). Candidates come from every source (kdump header, VMCOREINFO NUMBER(phys_base), the
 * inverse of QEMU's hex misparse of that number, a kernel-made ELF's text PT_LOAD, CPU CR3 walks,
 * common load addresses, and a bounded 2 MiB brute force). A candidate is accepted only when
 * checks that cannot pass by chance pass: the kernel's own page tables map init_top_pgt to
 * itself and _stext to T(_stext), and init_uts_ns holds "Linux" + OSRELEASE.
 */
import { isVmcoreError } from '../../errors.js';
import { isPresent, type PhysicalMemory } from '../../dump.js';
import { type Vmcoreinfo } from '../vmcoreinfo.js';
import { hex64 } from '../../hex.js';
import { proofStep, type ProofCode, type ProofStep } from '../proof.js';
import { decodeUtsname, findUtsname, NEW_UTSNAME_SIZE } from '../utsname.js';
import { CR4_LA57, cpuLabel, type CpuRegisters } from './cpu.js';
import { KERNEL_TEXT_END, START_KERNEL_MAP, textToPhys } from './addrspace.js';
import { PTE_ADDR_MASK, PageTables } from './pagetables.js';

export type PhysBaseVerdict = 'header correct' | 'header wrong' | 'header absent' | 'cannot prove';

export interface PhysBaseCandidate {
  value: bigint;
  /** Where the value came from (several sources can give the same value). */
  sources: string[];
  /** Checks that passed. */
  passed: ProofStep[];
  /** Checks that the candidate contradicts (it is wrong). */
  failed: ProofStep[];
  /** Checks that could not be run (symbol missing, page not in the dump). */
  unavailable: ProofStep[];
  accepted: boolean;
}

export interface PhysBaseResult {
  /** Value in the file's header (kdump sub-header), if any. */
  header?: bigint;
  /** VMCOREINFO NUMBER(phys_base), if any. */
  vmcoreinfo?: bigint;
  /** The proven phys_base; undefined when it could not be proven. */
  value?: bigint;
  verdict: PhysBaseVerdict;
  /** The checks the accepted value passed (codes in proof.ts). */
  proof: ProofStep[];
  /** Sources of the accepted value. */
  sources: string[];
  candidates: PhysBaseCandidate[];
  /** Paging levels used (x86_64: 4 or 5; aarch64: translation levels of the kernel half; 0 when unknown). */
  levels: number;
  /** Physical address of init_top_pgt (or the CR3 page table used), when known. */
  pgd?: number;
  /** Best unproven value (e.g. from a CR3 walk alone), for diagnostics only. */
  unprovenGuess?: bigint;
  notes: string[];
}

export interface PhysBaseInput {
  mem: PhysicalMemory;
  vmcoreinfo?: Vmcoreinfo;
  headerPhysBase?: bigint;
  /** ELF PT_LOADs (paddr, vaddr). */
  segments?: readonly { paddr: number; vaddr: bigint }[];
  cpus?: readonly CpuRegisters[];
  file?: string;
  /** Run the 2 MiB brute-force search when nothing else is proven (default true). */
  bruteForce?: boolean;
}

const MiB = 1n << 20n;
const ALIGN_2M = 2n * MiB;
const MASK64 = (1n << 64n) - 1n;
const u64 = (v: bigint) => v & MASK64;
const i64 = (v: bigint) => BigInt.asIntN(64, v);

/**
 * QEMU parses the kernel's decimal NUMBER(phys_base) as hex (strtou64 base 16; a leading '-'
 * negates). Undo that: when the header's hex digits (or those of its negation) are all decimal
 * digits, read them as decimal. 0x6291456 → 6291456; 0xfffffffbad67b7ce → −452984832.
 */
export function qemuMisparseInverse(header: bigint): bigint | undefined {
  header = u64(header);
  if (header === 0n) return undefined;
  const pos = header.toString(16);
  if (/^[0-9]+$/.test(pos) && pos.length <= 19) return u64(BigInt(pos));
  const neg = ((1n << 64n) - header).toString(16);
  if (/^[0-9]+$/.test(neg) && neg.length <= 19) return u64(-BigInt(neg));
  return undefined;
}

interface Ctx {
  mem: PhysicalMemory;
  physLimit: number;
  levels: 4 | 5;
  sme: bigint;
  vi?: Vmcoreinfo;
  cr3s: { cpu: string; root: number }[];
  file?: string;
}

type CheckOutcome = 'pass' | 'fail' | 'na';

/** 'present' when every page of the range can be read; 'hole' when some page is not RAM (or beyond the dump); else 'absent' (excluded/missing). */
async function rangeState(mem: PhysicalMemory, pa: bigint, len: number, physLimit: number): Promise<'present' | 'hole' | 'absent'> {
  if (pa < 0n || pa + BigInt(len) > BigInt(physLimit)) return 'hole';
  const ps = BigInt(mem.pageSize);
  let out: 'present' | 'absent' = 'present';
  for (let p = pa / ps; p <= (pa + BigInt(len) - 1n) / ps; p++) {
    const st = await mem.pageState(Number(p));
    if (st === 'hole') return 'hole';
    if (!isPresent(st)) out = 'absent';
  }
  return out;
}

async function present(mem: PhysicalMemory, pa: bigint, len: number, physLimit: number): Promise<boolean> {
  return (await rangeState(mem, pa, len, physLimit)) === 'present';
}

/** Read bytes when the range is present; undefined otherwise. */
async function tryRead(mem: PhysicalMemory, pa: bigint, len: number, physLimit: number): Promise<Uint8Array | undefined> {
  if (!(await present(mem, pa, len, physLimit))) return undefined;
  try {
    return await mem.readPhys(Number(pa), len);
  } catch (e) {
    if (isVmcoreError(e)) return undefined;
    throw e;
  }
}

function pgdSymbol(vi: Vmcoreinfo): bigint | undefined {
  return vi.symbol('init_top_pgt') ?? vi.symbol('swapper_pg_dir') ?? vi.symbol('init_level4_pgt');
}

/** The texts of the VMCOREINFO checks (for people; the code decides). */
type VmcoreinfoCheck = 'PGD_IN_RAM' | 'PGD_MAPS_ITSELF' | 'STEXT_MAPS' | 'UTSNAME_MATCHES' | 'CR3_SHARES_KERNEL_PGD' | 'CR3_OTHER_TABLES';
const STEP_TEXT: Record<VmcoreinfoCheck, string> = {
  PGD_IN_RAM: 'init_top_pgt in RAM',
  PGD_MAPS_ITSELF: 'init_top_pgt maps itself',
  STEXT_MAPS: '_stext maps to T(_stext)',
  UTSNAME_MATCHES: 'init_uts_ns holds Linux + OSRELEASE',
  CR3_SHARES_KERNEL_PGD: 'CPU CR3 shares PGD[511]',
  CR3_OTHER_TABLES: 'CPU CR3 shares PGD[511] (no: the CPUs ran on other page tables)',
};

/** Run the validation recipe for one candidate. */
async function validate(pb: bigint, ctx: Ctx): Promise<Omit<PhysBaseCandidate, 'sources' | 'value' | 'accepted'>> {
  const passed: ProofStep[] = [];
  const failed: ProofStep[] = [];
  const unavailable: ProofStep[] = [];
  const note = (code: VmcoreinfoCheck, o: CheckOutcome, failText?: string) => (o === 'pass' ? passed : o === 'fail' ? failed : unavailable).push(proofStep(code, o === 'fail' && failText ? failText : STEP_TEXT[code]));
  const vi = ctx.vi!;
  const mem = ctx.mem;

  // 1 + 2: init_top_pgt is a page-aligned RAM page that maps itself
  const pgdSym = pgdSymbol(vi);
  let pt: PageTables | undefined;
  if (pgdSym === undefined) {
    note('PGD_IN_RAM', 'na');
    note('PGD_MAPS_ITSELF', 'na');
  } else {
    const pgdPa = textToPhys(pgdSym, pb);
    const st = (pgdPa & 0xfffn) !== 0n ? 'hole' : await rangeState(mem, pgdPa, 4096, ctx.physLimit);
    if (st !== 'present') {
      // not page aligned or not RAM contradicts; an excluded page is just unavailable
      note('PGD_IN_RAM', st === 'hole' ? 'fail' : 'na');
      note('PGD_MAPS_ITSELF', 'na');
    } else {
      note('PGD_IN_RAM', 'pass');
      pt = new PageTables(mem, { root: Number(pgdPa), levels: ctx.levels, smeMask: ctx.sme, ...(ctx.file ? { file: ctx.file } : {}) });
      note('PGD_MAPS_ITSELF', await walkEquals(pt, pgdSym, pgdPa));
    }
  }
  // 3: _stext walks to T(_stext)
  const stext = vi.symbol('_stext');
  if (stext === undefined || !pt) note('STEXT_MAPS', 'na');
  else note('STEXT_MAPS', await walkEquals(pt, stext, textToPhys(stext, pb)));

  // 4: utsname at T(init_uts_ns + OFFSET(uts_namespace.name))
  const uts = vi.symbol('init_uts_ns');
  const off = vi.offset('uts_namespace.name');
  const rel = vi.osrelease;
  if (uts === undefined || off === undefined || rel === undefined) note('UTSNAME_MATCHES', 'na');
  else {
    const pa = textToPhys(uts + BigInt(off), pb);
    const b = await tryRead(mem, pa, NEW_UTSNAME_SIZE, ctx.physLimit);
    if (!b) {
      const st = await rangeState(mem, pa, NEW_UTSNAME_SIZE, ctx.physLimit);
      note('UTSNAME_MATCHES', st === 'hole' ? 'fail' : 'na');
    } else {
      const u = decodeUtsname(b);
      // a failure says what is there: another release is a VMCOREINFO that does not belong to
      // this memory (or was altered), no utsname a wrong value
      const there = u ? `init_uts_ns holds "${u.sysname} ${u.release}", VMCOREINFO says OSRELEASE=${rel}` : `no utsname where init_uts_ns would be (VMCOREINFO OSRELEASE=${rel})`;
      note('UTSNAME_MATCHES', u && u.sysname === 'Linux' && u.release === rel ? 'pass' : 'fail', there);
    }
  }
  // 5: a CPU's CR3 shares the kernel half of init_top_pgt (PGD[511])
  if (pt && ctx.cr3s.length) {
    let outcome: CheckOutcome = 'na';
    try {
      const mine = await pt.entry(pt.root, 511, START_KERNEL_MAP, 'PGD');
      for (const c of ctx.cr3s) {
        for (const root of [c.root, c.root & ~0x1000]) {
          const theirs = await readEntry(mem, root + 511 * 8, ctx.physLimit);
          if (theirs === undefined) continue;
          if (theirs === mine && (mine & 1n) === 1n) outcome = 'pass';
          else if (outcome !== 'pass') outcome = 'fail';
        }
      }
    } catch (e) {
      if (!isVmcoreError(e)) throw e;
    }
    // a mismatch does not disprove the candidate: the CPU may have been running another kernel
    // (a dump taken while the kdump kernel ran), so it only counts when it passes
    if (outcome === 'fail') note('CR3_OTHER_TABLES', 'na');
    else note('CR3_SHARES_KERNEL_PGD', outcome);
  }
  return { passed, failed, unavailable };
}

async function readEntry(mem: PhysicalMemory, pa: number, physLimit: number): Promise<bigint | undefined> {
  const b = await tryRead(mem, BigInt(pa), 8, physLimit);
  if (!b) return undefined;
  return new DataView(b.buffer, b.byteOffset, 8).getBigUint64(0, true);
}

async function walkEquals(pt: PageTables, va: bigint, expect: bigint): Promise<CheckOutcome> {
  try {
    const r = await pt.walk(va);
    return BigInt(r.pa) === expect ? 'pass' : 'fail';
  } catch (e) {
    if (!isVmcoreError(e)) throw e;
    // a table page missing from the dump proves nothing; an unmapped address contradicts.
    // The error's offset is the physical address of the entry the walk could not use.
    if (typeof e.offset !== 'number') return 'fail';
    const pfn = Math.floor(e.offset / pt.mem.pageSize);
    return pfn < pt.mem.maxPfn && isPresent(await pt.mem.pageState(pfn)) ? 'fail' : 'na';
  }
}

/** The checks that locate the kernel on their own; the others only support them. */
const STRONG: readonly ProofCode[] = ['PGD_MAPS_ITSELF', 'STEXT_MAPS', 'UTSNAME_MATCHES'];

function acceptable(c: Omit<PhysBaseCandidate, 'sources' | 'value' | 'accepted'>): boolean {
  return c.failed.length === 0 && c.passed.some((p) => STRONG.includes(p.code));
}

/** Kernel text mapping found by walking from a CR3: lowest mapped VA ≥ __START_KERNEL_map. */
export async function physBaseFromCr3(
  mem: PhysicalMemory,
  root: number,
  levels: 4 | 5,
  sme = 0n,
): Promise<{ value: bigint; va: bigint; pa: number; linearPages: number } | undefined> {
  let pt: PageTables;
  try {
    pt = new PageTables(mem, { root, levels, smeMask: sme });
  } catch {
    return undefined;
  }
  const m = await pt.lowestMapping(START_KERNEL_MAP, KERNEL_TEXT_END);
  if (!m) return undefined;
  const value = u64(BigInt(m.pa) - (m.va - START_KERNEL_MAP));
  // how far does the mapping stay linear (2 MiB steps, bounded by the text mapping)?
  let linear = 0;
  for (let va = m.va & ~(ALIGN_2M - 1n); va < KERNEL_TEXT_END && linear < 512; va += ALIGN_2M) {
    try {
      const r = await pt.walk(va);
      if (u64(BigInt(r.pa) - (va - START_KERNEL_MAP)) !== value) break;
      linear++;
    } catch {
      break;
    }
  }
  return { value, va: m.va, pa: m.pa, linearPages: linear };
}

function cpuRoots(cpus: readonly CpuRegisters[], physLimit: number): { cpu: string; root: number; levels: 4 | 5 }[] {
  const out: { cpu: string; root: number; levels: 4 | 5 }[] = [];
  for (const c of cpus) {
    if (c.cr3 === undefined || c.cr3 === 0n) continue;
    const root = c.cr3 & PTE_ADDR_MASK;
    if (root >= BigInt(physLimit)) continue;
    out.push({ cpu: cpuLabel(c), root: Number(root), levels: c.cr4 !== undefined && (c.cr4 & CR4_LA57) !== 0n ? 5 : 4 });
  }
  return out;
}

/** Find and prove phys_base. Never throws for bad memory contents; reports instead. */
export async function findPhysBase(input: PhysBaseInput): Promise<PhysBaseResult> {
  const { mem, vmcoreinfo: vi } = input;
  const physLimit = mem.maxPfn * mem.pageSize;
  const roots = cpuRoots(input.cpus ?? [], physLimit);
  const l5 = vi?.number('pgtable_l5_enabled');
  const levels: 4 | 5 = l5 !== undefined ? (l5 === 1n ? 5 : 4) : roots.some((r) => r.levels === 5) ? 5 : 4;
  const sme = vi?.number('sme_mask') ?? 0n;
  const ctx: Ctx = { mem, physLimit, levels, sme, cr3s: roots, ...(vi ? { vi } : {}), ...(input.file ? { file: input.file } : {}) };
  const notes: string[] = [];
  const header = input.headerPhysBase === undefined ? undefined : u64(input.headerPhysBase);
  const viValue = vi?.number('phys_base');
  const result: PhysBaseResult = {
    ...(header !== undefined ? { header } : {}),
    ...(viValue !== undefined ? { vmcoreinfo: u64(viValue) } : {}),
    verdict: 'cannot prove',
    proof: [],
    sources: [],
    candidates: [],
    levels,
    notes,
  };

  // ---- candidates, in priority order
  const cands = new Map<bigint, string[]>();
  const add = (v: bigint | undefined, src: string) => {
    if (v === undefined) return;
    v = u64(v);
    const l = cands.get(v);
    if (l) {
      if (!l.includes(src)) l.push(src);
    } else cands.set(v, [src]);
  };
  add(viValue, 'VMCOREINFO NUMBER(phys_base)');
  add(header, 'kdump header');
  if (header !== undefined) add(qemuMisparseInverse(header), 'kdump header read back as decimal (QEMU hex misparse)');
  for (const s of input.segments ?? []) {
    if (s.vaddr >= START_KERNEL_MAP && s.vaddr < KERNEL_TEXT_END) add(BigInt(s.paddr) - (s.vaddr - START_KERNEL_MAP), 'ELF kernel-text PT_LOAD');
  }
  const cr3Results: { cpu: string; root: number; value: bigint; pa: number; linearPages: number; levels: 4 | 5 }[] = [];
  for (const r of roots) {
    const x = await physBaseFromCr3(mem, r.root, r.levels, sme);
    if (x) {
      cr3Results.push({ cpu: r.cpu, root: r.root, value: x.value, pa: x.pa, linearPages: x.linearPages, levels: r.levels });
      add(x.value, `CR3 walk (${r.cpu}) to the lowest kernel-text mapping`);
    }
  }
  const ko = vi?.kernelOffset;
  if (vi) {
    for (const p of [16n * MiB, 32n * MiB, 64n * MiB, 2n * MiB]) add(p - 16n * MiB - (ko ?? 0n), `load address 0x${p.toString(16)} − 16 MiB − KERNELOFFSET`);
  }

  if (!vi || pgdSymbol(vi) === undefined && vi.symbol('init_uts_ns') === undefined) {
    // ---- no VMCOREINFO: CR3 walk + utsname inside the kernel image
    notes.push(vi ? 'VMCOREINFO has no init_top_pgt / init_uts_ns symbols' : 'no VMCOREINFO: only CPU page tables can be used');
    for (const r of cr3Results) {
      const cand: PhysBaseCandidate = { value: r.value, sources: cands.get(r.value) ?? [], passed: [], failed: [], unavailable: [], accepted: false };
      if (r.linearPages >= 2) cand.passed.push(proofStep('CR3_TEXT_LINEAR', `CR3 (${r.cpu}) kernel-text mapping linear over ${r.linearPages} × 2 MiB`));
      else cand.unavailable.push(proofStep('CR3_TEXT_LINEAR', 'CR3 kernel-text mapping linear'));
      const imgStart = r.pa - (r.pa % (2 * 1024 * 1024));
      const found = await findUtsname(mem, imgStart, imgStart + r.linearPages * 2 * 1024 * 1024, physLimit);
      if (found) cand.passed.push(proofStep('UTSNAME_IN_IMAGE', `utsname "${found.uts.sysname} ${found.uts.release}" inside the kernel image at 0x${found.pa.toString(16)}`));
      else cand.failed.push(proofStep('UTSNAME_IN_IMAGE', 'utsname inside the kernel image'));
      cand.accepted = cand.failed.length === 0 && cand.passed.length >= 2;
      result.candidates.push(cand);
      if (cand.accepted && result.value === undefined) {
        result.value = r.value;
        result.proof = cand.passed;
        result.sources = cand.sources;
        result.pgd = r.root;
      }
    }
    if (result.value === undefined) {
      const g = cr3Results[0]?.value ?? header;
      if (g !== undefined) result.unprovenGuess = g;
    }
    return finish(result);
  }

  for (const [value, sources] of cands) {
    const v = await validate(value, ctx);
    const cand: PhysBaseCandidate = { value, sources, ...v, accepted: acceptable(v) };
    result.candidates.push(cand);
  }
  let winner = result.candidates.find((c) => c.accepted);

  if (!winner && (input.bruteForce ?? true)) {
    // ---- bounded brute force over 2 MiB steps, keyed on the cheapest strong check
    const uts = vi.symbol('init_uts_ns');
    const off = vi.offset('uts_namespace.name');
    const probe = uts !== undefined && off !== undefined ? uts + BigInt(off) : pgdSymbol(vi)!;
    const rel = probe - START_KERNEL_MAP;
    // pb such that T(probe) lies in [0, physLimit): pb ∈ [−rel, physLimit − rel)
    let pb = -rel - (i64(-rel) % ALIGN_2M + ALIGN_2M) % ALIGN_2M;
    const endPb = BigInt(physLimit) - rel;
    let tried = 0;
    notes.push(`brute force over 2 MiB steps from ${hex64(pb)} to ${hex64(endPb)}`);
    for (; pb < endPb && tried < 1 << 20; pb += ALIGN_2M, tried++) {
      if (cands.has(u64(pb))) continue;
      const pa = pb + rel;
      if (pa < 0n) continue;
      const b = await tryRead(mem, pa, uts !== undefined ? NEW_UTSNAME_SIZE : 8, physLimit);
      if (!b) continue;
      if (uts !== undefined) {
        const u = decodeUtsname(b);
        if (!u || u.sysname !== 'Linux' || u.release !== vi.osrelease) continue;
      }
      const v = await validate(u64(pb), ctx);
      const cand: PhysBaseCandidate = { value: u64(pb), sources: ['brute force (2 MiB steps)'], ...v, accepted: acceptable(v) };
      result.candidates.push(cand);
      if (cand.accepted) {
        winner = cand;
        break;
      }
    }
  }
  if (winner) {
    result.value = winner.value;
    result.proof = winner.passed;
    result.sources = winner.sources;
    const others = result.candidates.filter((c) => c.accepted && c !== winner);
    if (others.length) notes.push(`other values also passed the checks: ${others.map((c) => hex64(c.value)).join(', ')}`);
    const pgdSym = pgdSymbol(vi);
    if (pgdSym !== undefined) {
      const pgd = textToPhys(pgdSym, winner.value);
      if (pgd < BigInt(physLimit)) result.pgd = Number(pgd);
    }
  } else {
    const g = cr3Results[0]?.value;
    if (g !== undefined) result.unprovenGuess = g;
  }
  return finish(result);
}

function finish(r: PhysBaseResult): PhysBaseResult {
  if (r.value === undefined) r.verdict = 'cannot prove';
  else if (r.header === undefined) r.verdict = 'header absent';
  else r.verdict = r.header === r.value ? 'header correct' : 'header wrong';
  return r;
}

/** JSON-safe summary (64-bit values as hex strings). */
export function physBaseToJSON(r: PhysBaseResult): Record<string, unknown> {
  return {
    value: r.value === undefined ? null : hex64(r.value),
    verdict: r.verdict,
    proof: r.proof,
    sources: r.sources,
    header: r.header === undefined ? null : hex64(r.header),
    vmcoreinfo: r.vmcoreinfo === undefined ? null : hex64(r.vmcoreinfo),
    levels: r.levels,
    pgd: r.pgd === undefined ? null : '0x' + r.pgd.toString(16),
    ...(r.unprovenGuess !== undefined ? { unprovenGuess: hex64(r.unprovenGuess) } : {}),
    candidates: r.candidates.map((c) => ({
      value: hex64(c.value),
      sources: c.sources,
      accepted: c.accepted,
      passed: c.passed,
      failed: c.failed,
      unavailable: c.unavailable,
    })),
    notes: r.notes,
  };
}
