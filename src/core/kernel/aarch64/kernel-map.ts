/**
 * aarch64 ELF program-header addresses: the linear map, p_vaddr = PAGE_OFFSET + (paddr −
 * PHYS_OFFSET) (arch/arm64/include/asm/memory.h __phys_to_virt), and the kernel image alias,
 * p_vaddr = paddr + kimage_voffset from _stext up to the highest image symbol VMCOREINFO lists
 * plus 16 MiB (VMCOREINFO does not give _end), as /proc/vmcore and /proc/kcore describe them.
 */
import { parseHex, type Vmcoreinfo } from '../vmcoreinfo.js';
import type { KernelMappings } from '../kernel-map.js';
import { pageOffsetFor } from './location.js';

const u64 = (v: bigint) => BigInt.asUintN(64, v);

export function aarch64KernelMappings(vmci: Vmcoreinfo | undefined, physOffset: bigint): KernelMappings {
  if (!vmci) return {};
  const out: KernelMappings = {};
  const vaBits = Number(vmci.number('VA_BITS') ?? 48n);
  if (vaBits >= 36 && vaBits <= 52) out.directMapBase = u64(pageOffsetFor(vaBits) - physOffset);
  const kv = vmci.number('kimage_voffset');
  const stext = vmci.symbol('_stext');
  if (kv !== undefined && stext !== undefined) {
    const paddr = u64(stext - u64(kv));
    let top = stext;
    for (const [k, v] of vmci.entries) {
      if (!k.startsWith('SYMBOL(')) continue;
      const a = parseHex(v);
      if (a !== undefined && a > top && a - stext < 1n << 30n) top = a;
    }
    const MB2 = 1n << 21n;
    const end = ((top + MB2) / MB2) * MB2 + (16n << 20n);
    if (paddr < BigInt(Number.MAX_SAFE_INTEGER)) out.kernelImage = { vaddr: stext, paddr: Number(paddr), size: Number(end - stext) };
  }
  return out;
}
