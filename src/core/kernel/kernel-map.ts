/**
 * Kernel virtual addresses for ELF program headers, so that readers which translate kernel
 * addresses through p_vaddr (vmcore-dmesg, gdb, drgn on arm64) work on our ELF output: the
 * linear/direct map (p_vaddr = directMapBase + paddr) and an alias PT_LOAD of the kernel image,
 * as the kernel's own /proc/vmcore has them. Each architecture computes them from VMCOREINFO and
 * the proven location; other architectures get none.
 */
import type { Dump } from '../dump.js';
import type { ElfAliasSpec } from '../format/elf/writer.js';
import type { Vmcoreinfo } from './vmcoreinfo.js';
import { x86_64KernelMappings } from './x86_64/kernel-map.js';
import { aarch64KernelMappings } from './aarch64/kernel-map.js';
import { isAarch64Vmcoreinfo } from './aarch64/location.js';

export interface KernelMappings {
  /** p_vaddr − p_paddr of the linear (direct) map of all RAM. */
  directMapBase?: bigint;
  kernelImage?: ElfAliasSpec;
}

/**
 * The mappings for `dump`. `physBase` is the proven location value: phys_base on x86_64,
 * PHYS_OFFSET on aarch64. Empty without VMCOREINFO or for other architectures.
 */
export async function kernelMappings(dump: Dump, vmci: Vmcoreinfo | undefined, physBase: bigint): Promise<KernelMappings> {
  if (dump.arch === 'aarch64' || isAarch64Vmcoreinfo(vmci)) return aarch64KernelMappings(vmci, physBase);
  return x86_64KernelMappings(dump, vmci, physBase);
}
