/**
 * aarch64 as a KernelArch: NT_PRSTATUS notes (user_pt_regs), the proof of PHYS_OFFSET and
 * kimage_voffset, translation through swapper_pg_dir with the linear map as a proven shortcut,
 * and the frame-record unwinder (arm64 kernels keep frame records: x29 chains; ./unwinder.ts).
 */
import { warning, type Warning } from '../../warnings.js';
import type { PhysicalMemory } from '../../dump.js';
import type { KernelArch } from '../arch.js';
import type { Vmcoreinfo } from '../vmcoreinfo.js';
import type { CpuRegisters } from '../x86_64/cpu.js';
import { parseAarch64CpuNotes } from './cpu.js';
import { correctAarch64Vmcoreinfo, findAarch64Location, type Aarch64Location } from './location.js';
import { Aarch64PageTables, Aarch64Translator, stripPac } from './pagetables.js';
import { aarch64UnwindStart, Aarch64Unwinder, formatAarch64ExceptionFrame } from './unwinder.js';

/**
 * The translator for an aarch64 dump: the proven tables at swapper_pg_dir for every kernel
 * address, the linear map by PHYS_OFFSET; without usable tables, the linear map and (from
 * _stext up) the kernel image by kimage_voffset as the guest's VMCOREINFO gives them.
 */
export function createAarch64Translator(input: {
  mem: PhysicalMemory;
  vmcoreinfo: Vmcoreinfo | undefined;
  location: Aarch64Location;
  cpus: readonly CpuRegisters[];
  file?: string;
}): { translator: Aarch64Translator | undefined; warnings: Warning[] } {
  const { mem, location: loc, file, vmcoreinfo } = input;
  const warnings: Warning[] = [];
  const physLimit = mem.maxPfn * mem.pageSize;
  let pageTables: Aarch64PageTables | undefined;
  if (loc.tablesRoot !== undefined && loc.granule !== undefined && loc.layout) {
    const t1sz = vmcoreinfo?.number('TCR_EL1_T1SZ');
    const vaBits = t1sz !== undefined && t1sz > 0n && t1sz < 40n ? 64 - Number(t1sz) : loc.layout.vaBits;
    pageTables = new Aarch64PageTables(mem, { root: loc.tablesRoot, granule: loc.granule, vaBits, lpa2: loc.lpa2 ?? false, ...(file ? { file } : {}) });
  }
  if (!pageTables && !loc.layout) {
    warnings.push(warning('ADDRESS_TRANSLATION_UNAVAILABLE', 'aarch64: neither the translation tables nor the linear map could be established; kernel virtual addresses cannot be read'));
    return { translator: undefined, warnings };
  }
  const stext = vmcoreinfo?.symbol('_stext');
  const image = !pageTables && stext !== undefined ? { start: stext, end: stext + (1n << 30n) } : undefined;
  if (!pageTables) warnings.push(warning('ADDRESS_TRANSLATION_UNAVAILABLE', 'aarch64: no usable translation tables; only the linear map and the kernel image can be read'));
  return {
    translator: new Aarch64Translator({
      ...(pageTables ? { pageTables } : {}),
      ...(loc.layout ? { layout: loc.layout } : {}),
      ...(image ? { image } : {}),
      physLimit,
      ...(file ? { file } : {}),
    }),
    warnings,
  };
}

export { stripPac };

export const aarch64Arch: KernelArch<CpuRegisters, Aarch64Location> = {
  name: 'aarch64',
  parseCpuNotes: parseAarch64CpuNotes,
  findKernelLocation: findAarch64Location,
  createTranslator: createAarch64Translator,
  unwindStart: aarch64UnwindStart,
  createUnwinder: async (ctx) => new Aarch64Unwinder(ctx),
  formatPtRegs: formatAarch64ExceptionFrame,
  correctVmcoreinfo: correctAarch64Vmcoreinfo,
};
