/**
 * Kernel state read through the kernel's own symbols (kallsyms): per-CPU offsets, the task
 * running on each CPU, the taint mask as the kernel's letters, and the uptime.
 */
import { isVmcoreError } from '../errors.js';
import type { KernelSymbols, ReadVirt } from './kallsyms.js';

/** Hard cap on CPUs read (NR_CPUS is 8192 on distribution kernels). */
export const MAX_CPUS = 8192;

export interface StateKernel {
  readVirt: ReadVirt;
}

async function u64At(read: ReadVirt, va: bigint): Promise<bigint> {
  const b = await read(va, 8);
  return new DataView(b.buffer, b.byteOffset, 8).getBigUint64(0, true);
}
async function u32At(read: ReadVirt, va: bigint): Promise<number> {
  const b = await read(va, 4);
  return new DataView(b.buffer, b.byteOffset, 4).getUint32(0, true);
}

export interface PerCpu {
  /** Number of possible CPU ids (`nr_cpu_ids`), capped at {@link MAX_CPUS}. */
  nrCpuIds: number;
  /** `__per_cpu_offset[cpu]` for cpu < nrCpuIds. */
  offsets: bigint[];
  /** The task_struct each CPU ran at the time of the dump (undefined where unreadable). */
  currentTasks: (bigint | undefined)[];
  /** Which per-CPU variable held it: `pcpu_hot.current_task` (6.2+) or `current_task`. */
  currentSource: 'pcpu_hot' | 'current_task' | undefined;
  warnings: string[];
}

/**
 * Per-CPU data of an x86_64 kernel (little-endian, 64-bit): `__per_cpu_offset[]` (arch/x86,
 * include/asm-generic/percpu.h) for the first `nr_cpu_ids` CPUs, and each CPU's current task:
 * the per-CPU `pcpu_hot` (6.2+, `current_task` is its first member, arch/x86/include/asm/current.h)
 * or the per-CPU `current_task` (before 6.2).
 * @param fallbackCpus CPU count to use when `nr_cpu_ids` is absent (e.g. the CPU notes).
 * @returns partial results with warnings; never throws for unreadable memory.
 */
export async function readPerCpu(kernel: StateKernel, syms: KernelSymbols, fallbackCpus = 1): Promise<PerCpu> {
  const warnings: string[] = [];
  const read = kernel.readVirt;
  let nr = fallbackCpus;
  const nrSym = syms.addressOf('nr_cpu_ids');
  if (nrSym !== undefined) {
    try {
      nr = await u32At(read, nrSym);
    } catch (e) {
      if (!isVmcoreError(e)) throw e;
      warnings.push(`nr_cpu_ids: ${e.message}`);
    }
  }
  if (nr < 1 || nr > MAX_CPUS) {
    warnings.push(`nr_cpu_ids = ${nr} is implausible; reading ${Math.min(Math.max(fallbackCpus, 1), MAX_CPUS)} CPUs`);
    nr = Math.min(Math.max(fallbackCpus, 1), MAX_CPUS);
  }
  const offsets: bigint[] = [];
  const arr = syms.addressOf('__per_cpu_offset');
  if (arr === undefined) warnings.push('no __per_cpu_offset symbol');
  else {
    try {
      const b = await read(arr, nr * 8);
      const dv = new DataView(b.buffer, b.byteOffset, b.length);
      for (let i = 0; i < nr; i++) offsets.push(dv.getBigUint64(i * 8, true));
    } catch (e) {
      if (!isVmcoreError(e)) throw e;
      warnings.push(`__per_cpu_offset: ${e.message}`);
    }
  }
  const hot = syms.addressOf('pcpu_hot');
  const cur = hot ?? syms.addressOf('current_task');
  const currentSource = hot !== undefined ? 'pcpu_hot' : cur !== undefined ? 'current_task' : undefined;
  const currentTasks: (bigint | undefined)[] = [];
  if (cur === undefined) warnings.push('neither pcpu_hot nor current_task is a kernel symbol');
  for (let i = 0; i < offsets.length; i++) {
    if (cur === undefined) break;
    try {
      currentTasks.push(await u64At(read, BigInt.asUintN(64, cur + offsets[i]!)));
    } catch (e) {
      if (!isVmcoreError(e)) throw e;
      currentTasks.push(undefined);
      warnings.push(`CPU ${i} current task: ${e.message}`);
    }
  }
  return { nrCpuIds: nr, offsets, currentTasks, currentSource, warnings };
}

/**
 * The kernel's taint flags, bit number → letter when set (kernel/panic.c taint_flags[],
 * include/linux/panic.h TAINT_*). Bit 0 prints 'P' when set and 'G' when clear.
 */
export const TAINT_LETTERS: readonly string[] = [
  'P', // 0 PROPRIETARY_MODULE
  'F', // 1 FORCED_MODULE
  'S', // 2 CPU_OUT_OF_SPEC
  'R', // 3 FORCED_RMMOD
  'M', // 4 MACHINE_CHECK
  'B', // 5 BAD_PAGE
  'U', // 6 USER
  'D', // 7 DIE
  'A', // 8 OVERRIDDEN_ACPI_TABLE
  'W', // 9 WARN
  'C', // 10 CRAP
  'I', // 11 FIRMWARE_WORKAROUND
  'O', // 12 OOT_MODULE
  'E', // 13 UNSIGNED_MODULE
  'L', // 14 SOFTLOCKUP
  'K', // 15 LIVEPATCH
  'X', // 16 AUX
  'T', // 17 RANDSTRUCT
  'N', // 18 TEST (6.0+)
  'J', // 19 FWCTL (6.15+)
];

/**
 * Letters of the set taint bits, in bit order (`DW` for a kernel that oopsed after a warning);
 * an empty string for an untainted kernel. Unknown bits print as `?`.
 */
export function taintLetters(mask: bigint): string {
  let s = '';
  for (let i = 0n; i < 64n && mask >> i !== 0n; i++) if ((mask >> i) & 1n) s += TAINT_LETTERS[Number(i)] ?? '?';
  return s;
}

/** `tainted_mask` (kernel/panic.c): the mask, or undefined when it cannot be read. */
export async function readTaint(kernel: StateKernel, syms: KernelSymbols): Promise<{ mask: bigint; letters: string } | undefined> {
  const a = syms.addressOf('tainted_mask');
  if (a === undefined) return undefined;
  try {
    const mask = await u64At(kernel.readVirt, a);
    return { mask, letters: taintLetters(mask) };
  } catch (e) {
    if (!isVmcoreError(e)) throw e;
    return undefined;
  }
}

/** A member offset source (BTF), for the timekeeper route of {@link readUptime}. */
export interface OffsetSource {
  offsetOf(type: string, path: string): number;
}

/**
 * Seconds since boot (CLOCK_BOOTTIME) at the last timekeeping update before the dump:
 * `tk_core.timekeeper.tkr_mono.base + offs_boot` (kernel/time/timekeeping.c; `tk_core` holds a
 * seqcount then the timekeeper, cacheline-aligned: the timekeeper is found by its `tkr_mono.clock`
 * pointer being a kernel symbol). Needs the kernel's types for the timekeeper's layout.
 */
export async function readUptime(kernel: StateKernel, syms: KernelSymbols, types: OffsetSource): Promise<number | undefined> {
  const tk = syms.addressOf('tk_core');
  if (tk === undefined) return undefined;
  let base: number;
  let boot: number;
  let clock: number;
  try {
    base = types.offsetOf('timekeeper', 'tkr_mono.base');
    boot = types.offsetOf('timekeeper', 'offs_boot');
    clock = types.offsetOf('timekeeper', 'tkr_mono.clock');
  } catch (e) {
    if (!isVmcoreError(e)) throw e;
    return undefined;
  }
  // the timekeeper starts after the seqcount: 8-byte aligned, within the first 64 bytes
  for (let start = 8n; start <= 64n; start += 8n) {
    try {
      const c = await u64At(kernel.readVirt, tk + start + BigInt(clock));
      const s = syms.symbolize(c);
      if (!s || s.offset !== 0n) continue;
      const b = await u64At(kernel.readVirt, tk + start + BigInt(base));
      const o = await u64At(kernel.readVirt, tk + start + BigInt(boot));
      const ns = BigInt.asIntN(64, b) + BigInt.asIntN(64, o);
      if (ns < 0n) return undefined;
      return Number(ns) / 1e9;
    } catch (e) {
      if (!isVmcoreError(e)) throw e;
      return undefined;
    }
  }
  return undefined;
}

/** What `info` reports from the kernel's symbols (JSON-safe; addresses as 0x hex). */
export interface KernelStateReport {
  /** Where the symbol table came from, and its size; `none` with the reason when absent. */
  symbols: { source: 'VMCOREINFO' | 'scan' | 'none'; count: number; reason: string | null };
  /** `tainted_mask` as hex and as the kernel's letters (empty: not tainted). */
  taint: { mask: string; letters: string } | null;
  /** Seconds since boot (CLOCK_BOOTTIME) at the last timekeeping update, from tk_core. */
  uptime: number | null;
  /** The task_struct address each CPU was running, by CPU number. */
  currentTasks: (string | null)[];
  warnings: string[];
}

/**
 * The symbol-based part of `info`: symbol source, taint, uptime (when `types` gives the
 * timekeeper layout), per-CPU current tasks. Never throws for unreadable or absent data: the
 * fields are null and `warnings` says why.
 */
export async function kernelStateReport(
  kernel: StateKernel & { symbols(): Promise<KernelSymbols> },
  opts: { cpus?: number; types?: () => Promise<OffsetSource | undefined> } = {},
): Promise<KernelStateReport> {
  const hex = (v: bigint) => '0x' + BigInt.asUintN(64, v).toString(16);
  let syms: KernelSymbols;
  try {
    syms = await kernel.symbols();
  } catch (e) {
    if (!isVmcoreError(e)) throw e;
    return { symbols: { source: 'none', count: 0, reason: e.message }, taint: null, uptime: null, currentTasks: [], warnings: [] };
  }
  const warnings = [...syms.warnings];
  const taint = await readTaint(kernel, syms);
  const pc = await readPerCpu(kernel, syms, opts.cpus ?? 1);
  warnings.push(...pc.warnings);
  let uptime: number | undefined;
  const types = opts.types ? await opts.types().catch(() => undefined) : undefined;
  if (types) uptime = await readUptime(kernel, syms, types);
  return {
    symbols: { source: syms.source, count: syms.count, reason: null },
    taint: taint ? { mask: hex(taint.mask), letters: taint.letters } : null,
    uptime: uptime === undefined ? null : Math.round(uptime * 1e6) / 1e6,
    currentTasks: pc.currentTasks.map((t) => (t === undefined ? null : hex(t))),
    warnings,
  };
}
