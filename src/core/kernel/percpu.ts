/**
 * Per-CPU data of an x86_64 kernel through its own symbols (kallsyms): `__per_cpu_offset[]` and
 * the task each CPU was running. The one reader of them: `info`, `ps` and `bt` all use it.
 */
import { warning, type Warning } from '../warnings.js';
import { isVmcoreError } from '../errors.js';
import type { ReadVirt } from './kallsyms.js';
import { KERNEL_LIMITS } from '../limits.js';

/** Symbol addresses by name (kallsyms, or a System.map). */
export interface SymbolAddresses {
  addressOf(name: string): bigint | undefined;
  /** The per-CPU offsets when the source proved them itself (task-symbols.ts), instead of `__per_cpu_offset[]`. */
  perCpuOffsets?: readonly bigint[];
}

/** A member offset source (BTF). */
export interface OffsetSource {
  offsetOf(type: string, path: string): number;
}

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

const MAX_CPUS = KERNEL_LIMITS.maxCpus;

export interface PerCpu {
  /** Number of possible CPU ids (`nr_cpu_ids`), capped at {@link MAX_CPUS}. */
  nrCpuIds: number;
  /** `__per_cpu_offset[cpu]` for cpu < nrCpuIds. */
  offsets: bigint[];
  /** The task_struct each CPU ran at the time of the dump (undefined where unreadable). */
  currentTasks: (bigint | undefined)[];
  /** Which per-CPU variable held it: `pcpu_hot.current_task` (6.2+) or `current_task`. */
  currentSource: 'pcpu_hot' | 'current_task' | undefined;
  warnings: Warning[];
}

/**
 * Per-CPU data of an x86_64 kernel (little-endian, 64-bit): `__per_cpu_offset[]` (arch/x86,
 * include/asm-generic/percpu.h) for the first `nr_cpu_ids` CPUs, and each CPU's current task:
 * the per-CPU `pcpu_hot` (6.2+, `current_task` is its first member, arch/x86/include/asm/current.h)
 * or the per-CPU `current_task` (before 6.2).
 * The index into `__per_cpu_offset[]` is the CPU number (a proven one, unlike a note's position).
 * @param opts.cpus CPU count to use when `nr_cpu_ids` is absent (e.g. the CPU notes; default 1).
 * @param opts.types the kernel's BTF, for the offset of `current_task` in `struct pcpu_hot` (0 without it).
 * @param opts.current false: the offsets only (no current tasks, no warning about them).
 * @returns partial results with warnings; never throws for unreadable memory.
 */
export async function readPerCpu(
  kernel: StateKernel,
  syms: SymbolAddresses,
  opts: { cpus?: number; types?: OffsetSource; current?: boolean } = {},
): Promise<PerCpu> {
  const fallbackCpus = opts.cpus ?? 1;
  const types = opts.types;
  const warnings: Warning[] = [];
  const read = kernel.readVirt;
  let nr = syms.perCpuOffsets?.length ?? fallbackCpus;
  const nrSym = syms.perCpuOffsets ? undefined : syms.addressOf('nr_cpu_ids');
  if (nrSym !== undefined) {
    try {
      nr = await u32At(read, nrSym);
    } catch (e) {
      if (!isVmcoreError(e)) throw e;
      warnings.push(warning('PERCPU_UNAVAILABLE', `nr_cpu_ids: ${e.message}`));
    }
  }
  if (nr < 1 || nr > MAX_CPUS) {
    warnings.push(warning('PERCPU_UNAVAILABLE', `nr_cpu_ids = ${nr} is implausible; reading ${Math.min(Math.max(fallbackCpus, 1), MAX_CPUS)} CPUs`));
    nr = Math.min(Math.max(fallbackCpus, 1), MAX_CPUS);
  }
  const offsets: bigint[] = [];
  const arr = syms.addressOf('__per_cpu_offset');
  if (syms.perCpuOffsets) offsets.push(...syms.perCpuOffsets);
  else if (arr === undefined) warnings.push(warning('PERCPU_UNAVAILABLE', 'no __per_cpu_offset symbol'));
  else {
    try {
      const b = await read(arr, nr * 8);
      const dv = new DataView(b.buffer, b.byteOffset, b.length);
      for (let i = 0; i < nr; i++) offsets.push(dv.getBigUint64(i * 8, true));
    } catch (e) {
      if (!isVmcoreError(e)) throw e;
      warnings.push(warning('PERCPU_UNAVAILABLE', `__per_cpu_offset: ${e.message}`));
    }
  }
  const hot = syms.addressOf('pcpu_hot');
  let hotOff = 0n;
  if (hot !== undefined && types) {
    try {
      hotOff = BigInt(types.offsetOf('pcpu_hot', 'current_task'));
    } catch (e) {
      if (!isVmcoreError(e)) throw e;
    }
  }
  const cur = hot !== undefined ? hot + hotOff : syms.addressOf('current_task');
  const currentSource = hot !== undefined ? 'pcpu_hot' : cur !== undefined ? 'current_task' : undefined;
  const currentTasks: (bigint | undefined)[] = [];
  if (cur === undefined && opts.current !== false) warnings.push(warning('PERCPU_UNAVAILABLE', 'neither pcpu_hot nor current_task is a kernel symbol'));
  for (let i = 0; i < offsets.length; i++) {
    if (cur === undefined || opts.current === false) break;
    try {
      currentTasks.push(await u64At(read, BigInt.asUintN(64, cur + offsets[i]!)));
    } catch (e) {
      if (!isVmcoreError(e)) throw e;
      currentTasks.push(undefined);
      warnings.push(warning('PERCPU_UNAVAILABLE', `CPU ${i} current task: ${e.message}`));
    }
  }
  return { nrCpuIds: nr, offsets, currentTasks, currentSource, warnings };
}
