/**
 * The end of the kernel's memory model: one past the last pfn of the highest SPARSEMEM
 * section that has a mem_map (reference analysis.md §4.2). QEMU dumps also hold firmware ROM
 * blocks (0xfffc0000 SeaBIOS, 0xffe00000 OVMF) far above a small guest's RAM; makedumpfile
 * clamps max_mapnr to the mem_map extent and then misplaces the input's bitmaps of such a file
 * (it reads a 2nd bitmap sized for the clamped max_mapnr), so `vmcore fix` drops pages beyond
 * this limit.
 */
import { isVmcoreError } from '../errors.js';
import type { KernelInfo } from './kernel.js';

const SECTION_HAS_MEM_MAP = 2n;
/** Sanity limits: 2^16 roots, 2^12 sections per root. */
const MAX_ROOTS = 1 << 16;

export interface KernelMemoryEnd {
  /** One past the last pfn of the highest section with a mem_map. */
  endPfn: number;
  sections: number;
  extreme: boolean;
}

/**
 * Walk mem_section through VMCOREINFO (SYMBOL/LENGTH/SIZE(mem_section),
 * OFFSET(mem_section.section_mem_map), NUMBER(SECTION_SIZE_BITS)). Undefined when the keys or
 * the memory are not there (then nothing is dropped).
 */
export async function kernelMemoryEnd(k: KernelInfo, pageSize: number): Promise<KernelMemoryEnd | undefined> {
  const vi = k.vmcoreinfo;
  if (!vi || !k.translator) return undefined;
  const ms = vi.symbol('mem_section');
  const roots = vi.length('mem_section');
  const size = vi.size('mem_section');
  const off = vi.offset('mem_section.section_mem_map');
  const bits = vi.number('SECTION_SIZE_BITS');
  const maxPhys = vi.number('MAX_PHYSMEM_BITS');
  if (ms === undefined || roots === undefined || size === undefined || off === undefined || bits === undefined) return undefined;
  if (roots <= 0 || roots > MAX_ROOTS || size < 8 || size > 256 || off + 8 > size || bits < 12n || bits > 40n) return undefined;
  const pageShift = Math.log2(pageSize);
  const pagesPerSection = 2 ** (Number(bits) - pageShift);
  if (!Number.isInteger(pageShift) || pagesPerSection < 1) return undefined;
  // SPARSEMEM_EXTREME: LENGTH = NR_MEM_SECTIONS / SECTIONS_PER_ROOT, mem_section is a pointer
  // to an array of root pointers, each root an array of PAGE_SIZE / SIZE(mem_section) sections.
  const perRootExtreme = Math.floor(pageSize / size);
  let extreme = false;
  if (maxPhys !== undefined && maxPhys > bits && maxPhys < 64n) {
    const nrSections = 2 ** Number(maxPhys - bits);
    extreme = roots === Math.ceil(nrSections / perRootExtreme);
  } else extreme = roots < 1 << 14; // NR_MEM_SECTIONS is large; a short array means roots
  try {
    let last = -1;
    let count = 0;
    const scan = (buf: Uint8Array, firstNr: number, n: number) => {
      const dv = new DataView(buf.buffer, buf.byteOffset, buf.length);
      for (let j = 0; j < n; j++) {
        const map = dv.getBigUint64(j * size + off, true);
        if (map & SECTION_HAS_MEM_MAP) {
          last = firstNr + j;
          count++;
        }
      }
    };
    if (extreme) {
      const ptrs = await k.readVirt(ms, roots * 8);
      const pv = new DataView(ptrs.buffer, ptrs.byteOffset, ptrs.length);
      for (let i = 0; i < roots; i++) {
        const root = pv.getBigUint64(i * 8, true);
        if (root === 0n) continue;
        scan(await k.readVirt(root, perRootExtreme * size), i * perRootExtreme, perRootExtreme);
      }
    } else {
      scan(await k.readVirt(ms, roots * size), 0, roots);
    }
    if (last < 0) return undefined;
    return { endPfn: (last + 1) * pagesPerSection, sections: count, extreme };
  } catch (e) {
    if (isVmcoreError(e)) return undefined;
    throw e;
  }
}
