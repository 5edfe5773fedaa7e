/**
 * Kernel virtual addresses for ELF program headers (x86_64), so that readers which translate
 * kernel addresses through p_vaddr (vmcore-dmesg, gdb) work on our ELF output:
 *  - the direct map: p_vaddr = page_offset_base + paddr. page_offset_base is read from memory
 *    through SYMBOL(page_offset_base) when VMCOREINFO has it (KASLR kernels), else it is the
 *    fixed 0xffff888000000000 (4-level) / 0xff11000000000000 (5-level) when KASLR is off
 *    (no KERNELOFFSET, or KERNELOFFSET=0);
 *  - the kernel image: an alias PT_LOAD from SYMBOL(_stext) (virtual) to
 *    _stext - __START_KERNEL_map + phys_base (physical), like the kernel's own /proc/vmcore.
 * Returns nothing for other architectures or without VMCOREINFO.
 */
import type { Dump } from '../../dump.js';
import { isVmcoreError } from '../../errors.js';
import { parseHex, type Vmcoreinfo } from '../vmcoreinfo.js';
import { DIRECT_MAP_DEFAULT_L4, DIRECT_MAP_DEFAULT_L5, KERNEL_IMAGE_SIZE, START_KERNEL_MAP } from './addrspace.js';

import type { KernelMappings } from '../kernel-map.js';

export async function x86_64KernelMappings(dump: Dump, vmci: Vmcoreinfo | undefined, physBase: bigint): Promise<KernelMappings> {
  if (!vmci || dump.arch !== 'x86_64') return {};
  const out: KernelMappings = {};
  const kphys = (v: bigint) => BigInt.asUintN(64, v - START_KERNEL_MAP + physBase);
  const pob = vmci.symbol('page_offset_base');
  if (pob !== undefined && pob >= START_KERNEL_MAP) {
    try {
      const b = await dump.readPhys(Number(kphys(pob)), 8);
      const v = new DataView(b.buffer, b.byteOffset, 8).getBigUint64(0, true);
      if (v >= 0xff00000000000000n) out.directMapBase = v;
    } catch (e) {
      // not in the dump: leave p_vaddr = p_paddr
      if (!isVmcoreError(e)) throw e;
    }
  } else {
    const ko = vmci.kernelOffset;
    if (ko === undefined || ko === 0n) out.directMapBase = vmci.number('pgtable_l5_enabled') === 1n ? DIRECT_MAP_DEFAULT_L5 : DIRECT_MAP_DEFAULT_L4;
  }
  const stext = vmci.symbol('_stext');
  if (stext !== undefined && stext >= START_KERNEL_MAP) {
    const paddr = kphys(stext);
    if (paddr < BigInt(Number.MAX_SAFE_INTEGER)) {
      // The image ends at _end, which VMCOREINFO does not give: cover up to the highest
      // kernel-image symbol it lists, rounded up to 2 MiB, plus 16 MiB for data/bss beyond it.
      let top = stext;
      for (const [k, v] of vmci.entries) {
        if (!k.startsWith('SYMBOL(')) continue;
        const a = parseHex(v);
        if (a !== undefined && a >= stext && a < START_KERNEL_MAP + KERNEL_IMAGE_SIZE && a > top) top = a;
      }
      const MB2 = 1n << 21n;
      let end = ((top + MB2) / MB2) * MB2 + (16n << 20n);
      if (end > START_KERNEL_MAP + KERNEL_IMAGE_SIZE) end = START_KERNEL_MAP + KERNEL_IMAGE_SIZE;
      out.kernelImage = { vaddr: stext, paddr: Number(paddr), size: Number(end - stext) };
    }
  }
  return out;
}
