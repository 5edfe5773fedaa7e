/**
 * Kernel state read through the kernel's own symbols (kallsyms): per-CPU offsets, the task
 * running on each CPU, the taint mask as the kernel's letters, and the uptime.
 */
import { warning, prefixed, type Warning } from '../warnings.js';
import { isVmcoreError } from '../errors.js';
import type { KernelSymbols, ReadVirt } from './kallsyms.js';
import type { KernelTypes } from './btf/reader.js';
import { listTasks } from './tasks.js';
import { readPerCpu, type OffsetSource, type StateKernel } from './percpu.js';
import { assignCpus, type CpuRegisters, type PerCpuTask } from './x86_64/cpu.js';
import { hex64 } from '../hex.js';
import { latin1 } from '../text.js';

export type { OffsetSource, StateKernel } from './percpu.js';

async function u64At(read: ReadVirt, va: bigint): Promise<bigint> {
  const b = await read(va, 8);
  return new DataView(b.buffer, b.byteOffset, 8).getBigUint64(0, true);
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
  /** `lost`: symbols of the table the dump could not give (unreadable kallsyms pages; see KernelSymbols.lost). */
  symbols: { source: 'VMCOREINFO' | 'scan' | 'none'; count: number; lost: number; reason: string | null };
  /** `tainted_mask` as hex and as the kernel's letters (empty: not tainted). */
  taint: { mask: string; letters: string } | null;
  /** Seconds since boot (CLOCK_BOOTTIME) at the last timekeeping update, from tk_core. */
  uptime: number | null;
  /** The task_struct address each CPU was running, by CPU number. */
  currentTasks: (string | null)[];
  /** The same tasks with their pid and comm (null where the task_struct cannot be read, or without BTF). */
  running: ({ task: string; pid: number; comm: string } | null)[];
  /** The vmlinux BTF: present, how it was found (`symbols`: `__start_BTF`/`__stop_BTF`; `scan` of the kernel image), where, and why not. */
  btf: { present: boolean; source: 'symbols' | 'scan' | null; address: string | null; size: number | null; reason: string | null };
  /** Tasks on the kernel's task lists, threads included, per-CPU idle tasks not (what `nr_threads` counts); null without BTF. */
  tasks: number | null;
  /** Modules on the kernel's `modules` list; null when the list cannot be read. */
  modules: number | null;
  /**
   * The kernel-written NT_PRSTATUS notes (one per CPU that saved its registers at the crash,
   * kernel/crash_core.c crash_save_cpu: pr_pid is the pid of the task it ran, 0 for an idle task)
   * matched to CPUs by the per-CPU current tasks (see `assignCpus`): note position, pr_pid, the
   * CPU (null when the match is not unique), that CPU's current task and comm, and how it matched.
   * Empty for QEMU-written notes (their pr_pid is a vCPU number) and without symbols or BTF.
   */
  cpuNotes: CpuNoteMatch[];
  warnings: Warning[];
}

/** The kernel's BTF as `kernelStateReport` needs it (see btf/kernel-btf.ts loadKernelBtf). */
export interface StateBtf {
  types: KernelTypes;
  source: 'symbols' | 'scan';
  address: bigint;
  size: number;
}

export interface CpuNoteMatch {
  note: number;
  pid: number | null;
  cpu: number | null;
  task: string | null;
  comm: string | null;
  evidence: string | null;
}

/** Offsets of task_struct members (BTF), for {@link matchCpuNotes}. */
export interface TaskOffsets {
  offsetOf(type: string, path: string): number;
}

/**
 * Match kernel-written NT_PRSTATUS notes to CPUs: read each CPU's current task's pid, comm and
 * stack (task_struct.pid, .comm, .stack; the stack is THREAD_SIZE 16 KiB on x86_64) and give a
 * note the CPU whose current task has its pr_pid (pid > 0) or whose task stack holds its RSP
 * ({@link assignCpus}). Unreadable tasks are left out with a warning; never throws for bad memory.
 */
export async function matchCpuNotes(
  kernel: StateKernel,
  notes: readonly CpuRegisters[],
  currentTasks: readonly (bigint | undefined)[],
  types: TaskOffsets,
  warnings: Warning[] = [],
): Promise<CpuNoteMatch[]> {
  const kernelNotes = notes.filter((c) => c.source === 'NT_PRSTATUS' && c.pidIsTask);
  if (kernelNotes.length === 0) return [];
  let off: { pid: number; comm: number; stack: number };
  try {
    off = { pid: types.offsetOf('task_struct', 'pid'), comm: types.offsetOf('task_struct', 'comm'), stack: types.offsetOf('task_struct', 'stack') };
  } catch (e) {
    if (!isVmcoreError(e)) throw e;
    warnings.push(warning('CPU_NOTES_UNMATCHED', `CPU notes not matched: ${e.message}`));
    return [];
  }
  const perCpu: (PerCpuTask & { task: bigint; comm: string })[] = [];
  for (let cpu = 0; cpu < currentTasks.length; cpu++) {
    const t = currentTasks[cpu];
    if (t === undefined || t === 0n) continue;
    try {
      const pb = await kernel.readVirt(t + BigInt(off.pid), 4);
      const pid = new DataView(pb.buffer, pb.byteOffset, 4).getInt32(0, true);
      const comm = latin1(await kernel.readVirt(t + BigInt(off.comm), 16)).replace(/\0.*$/s, '');
      const stack = await u64At(kernel.readVirt, t + BigInt(off.stack));
      perCpu.push({ cpu, pid, stackStart: stack, stackEnd: stack + 0x4000n, task: t, comm });
    } catch (e) {
      if (!isVmcoreError(e)) throw e;
      warnings.push(warning('TASK_UNREADABLE', `CPU ${cpu} current task ${hex64(t)}: ${e.message}`));
    }
  }
  return assignCpus(kernelNotes, perCpu).map((c) => {
    const p = c.cpu === null ? undefined : perCpu.find((x) => x.cpu === c.cpu);
    return { note: c.index, pid: c.pid ?? null, cpu: c.cpu, task: p ? hex64(p.task) : null, comm: p?.comm ?? null, evidence: c.cpuEvidence };
  });
}

/**
 * The symbol-based part of `info`: symbol source, taint, per-CPU current tasks, and with the
 * kernel's BTF (`opts.btf`) the uptime, the running tasks' pid and comm, the task count; the
 * module count from `opts.modules`. Never throws for unreadable or absent data: the fields are
 * null and `warnings` says why.
 */
export async function kernelStateReport(
  kernel: StateKernel & { symbols(): Promise<KernelSymbols> },
  opts: { cpus?: number; notes?: readonly CpuRegisters[]; btf?: () => Promise<StateBtf>; modules?: () => Promise<{ modules: readonly unknown[]; warnings: readonly Warning[] }> } = {},
): Promise<KernelStateReport> {
  let syms: KernelSymbols;
  const noBtf = (reason: string) => ({ present: false, source: null, address: null, size: null, reason });
  try {
    syms = await kernel.symbols();
  } catch (e) {
    if (!isVmcoreError(e)) throw e;
    return { symbols: { source: 'none', count: 0, lost: 0, reason: e.message }, taint: null, uptime: null, currentTasks: [], running: [], cpuNotes: [], btf: noBtf('no kernel symbols'), tasks: null, modules: null, warnings: [] };
  }
  const warnings = [...syms.warnings];
  const taint = await readTaint(kernel, syms);
  let btf: StateBtf | undefined;
  let btfReason = 'not looked for';
  if (opts.btf) {
    try {
      btf = await opts.btf();
    } catch (e) {
      if (!isVmcoreError(e)) throw e;
      btfReason = e.message;
    }
  }
  const pc = await readPerCpu(kernel, syms, { cpus: opts.cpus ?? 1, ...(btf ? { types: btf.types } : {}) });
  warnings.push(...pc.warnings);
  let uptime: number | undefined;
  let tasks: number | null = null;
  const running: KernelStateReport['running'] = pc.currentTasks.map(() => null);
  if (btf) {
    uptime = await readUptime(kernel, syms, btf.types);
    try {
      const list = await listTasks({ types: btf.types, symbol: (n) => syms.addressOf(n), perCpuOffsets: pc.offsets });
      tasks = list.tasks.filter((t) => !t.idle).length;
      pc.currentTasks.forEach((va, cpu) => {
        const t = va === undefined ? undefined : list.tasks.find((x) => x.task === va);
        if (t) running[cpu] = { task: hex64(t.task), pid: t.pid, comm: t.comm };
      });
      warnings.push(...list.warnings.map((w) => prefixed('tasks: ', w)));
    } catch (e) {
      if (!isVmcoreError(e)) throw e;
      warnings.push(warning('TASK_UNREADABLE', `tasks: ${e.message}`));
    }
  }
  let modules: number | null = null;
  if (opts.modules) {
    try {
      const m = await opts.modules();
      modules = m.modules.length;
      warnings.push(...m.warnings);
    } catch (e) {
      if (!isVmcoreError(e)) throw e;
      warnings.push(warning('MODULE_UNREADABLE', `modules: ${e.message}`));
    }
  }
  const cpuNotes = btf && opts.notes ? await matchCpuNotes(kernel, opts.notes, pc.currentTasks, btf.types, warnings) : [];
  return {
    symbols: { source: syms.source, count: syms.count, lost: syms.lost.reduce((n, l) => n + l.count, 0), reason: null },
    taint: taint ? { mask: hex64(taint.mask), letters: taint.letters } : null,
    uptime: uptime === undefined ? null : Math.round(uptime * 1e6) / 1e6,
    currentTasks: pc.currentTasks.map((t) => (t === undefined ? null : hex64(t))),
    running,
    btf: btf ? { present: true, source: btf.source, address: hex64(btf.address), size: btf.size, reason: null } : noBtf(btfReason),
    tasks,
    modules,
    cpuNotes,
    warnings,
  };
}
