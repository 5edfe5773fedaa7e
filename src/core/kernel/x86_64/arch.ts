/**
 * x86_64 as a KernelArch: NT_PRSTATUS / QEMU CPU-state notes, the phys_base proof, page-table
 * translation rooted at init_top_pgt (or a CPU's CR3), RIP/RSP/RBP as the unwinder's start and
 * the ORC unwinder (./unwinder.ts).
 */
import { warning, type Warning } from '../../warnings.js';
import { isVmcoreError } from '../../errors.js';
import type { PhysicalMemory } from '../../dump.js';
import type { KernelArch, UnwindStart } from '../arch.js';
import type { Vmcoreinfo } from '../vmcoreinfo.js';
import { parseCpuNotes, type CpuRegisters } from './cpu.js';
import { findPhysBase, type PhysBaseResult } from './physbase.js';
import { PageTables, PTE_ADDR_MASK, X86_64Translator } from './pagetables.js';
import { formatX86_64ExceptionFrame, X86_64Unwinder } from './unwinder.js';

/**
 * The translator for a dump: page tables from the proven init_top_pgt (PhysBaseResult.pgd), else
 * from the first CPU whose CR3 lies inside the dump; the text mapping from the proven
 * phys_base. Undefined when neither is available. Warnings name a page-table root that is unusable.
 */
export function createX86_64Translator(input: {
  mem: PhysicalMemory;
  vmcoreinfo: Vmcoreinfo | undefined;
  location: PhysBaseResult;
  cpus: readonly CpuRegisters[];
  file?: string;
}): { translator: X86_64Translator | undefined; warnings: Warning[] } {
  const { mem, location: physBase, cpus, file } = input;
  const warnings: Warning[] = [];
  const physLimit = mem.maxPfn * mem.pageSize;
  const sme = input.vmcoreinfo?.number('sme_mask') ?? 0n;
  let root = physBase.pgd;
  if (root === undefined) {
    const c = cpus.find((x) => x.cr3 !== undefined && x.cr3 !== 0n && (x.cr3 & PTE_ADDR_MASK) < BigInt(physLimit));
    if (c) root = Number(c.cr3! & PTE_ADDR_MASK);
  }
  let pageTables: PageTables | undefined;
  if (root !== undefined) {
    try {
      pageTables = new PageTables(mem, { root, levels: physBase.levels === 5 ? 5 : 4, smeMask: sme, ...(file ? { file } : {}) });
    } catch (e) {
      if (!isVmcoreError(e)) throw e;
      warnings.push(warning('ADDRESS_TRANSLATION_UNAVAILABLE', e.message));
    }
  }
  let translator: X86_64Translator | undefined;
  if (pageTables || physBase.value !== undefined) {
    translator = new X86_64Translator({
      ...(pageTables ? { pageTables } : {}),
      ...(physBase.value !== undefined ? { physBase: physBase.value } : {}),
      physLimit,
      ...(file ? { file } : {}),
    });
  }
  return { translator, warnings };
}

/** RIP, RSP and RBP of one CPU's registers (every other register passed along by name). */
export function x86_64UnwindStart(r: CpuRegisters): UnwindStart | undefined {
  if (r.rip === undefined || r.rsp === undefined) return undefined;
  const regs: Record<string, bigint> = {};
  for (const [k, v] of Object.entries(r)) if (typeof v === 'bigint') regs[k] = v;
  return { cpu: r.cpu, ...(r.pidIsTask && r.pid !== undefined ? { pid: r.pid } : {}), pc: r.rip, sp: r.rsp, ...(r.rbp !== undefined ? { fp: r.rbp } : {}), regs };
}

export const x86_64Arch: KernelArch<CpuRegisters, PhysBaseResult> = {
  name: 'x86_64',
  parseCpuNotes,
  findKernelLocation: findPhysBase,
  createTranslator: createX86_64Translator,
  unwindStart: x86_64UnwindStart,
  createUnwinder: (ctx) => X86_64Unwinder.create(ctx),
  formatPtRegs: formatX86_64ExceptionFrame,
};
