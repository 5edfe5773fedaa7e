/**
 * SPARSEMEM `mem_section` walk (reference analysis.md §4.2), and the end of the kernel's memory
 * model: one past the last pfn of the highest section that has a mem_map. QEMU dumps also hold
 * firmware ROM blocks (0xfffc0000 SeaBIOS, 0xffe00000 OVMF) far above a small guest's RAM;
 * makedumpfile clamps max_mapnr to the mem_map extent and then misplaces the input's bitmaps of
 * such a file (it reads a 2nd bitmap sized for the clamped max_mapnr), so `vmcore fix` drops
 * pages beyond this limit.
 */
import { isVmcoreError } from '../errors.js';
import type { Vmcoreinfo } from './vmcoreinfo.js';
import { KERNEL_LIMITS } from '../limits.js';

const SECTION_HAS_MEM_MAP = 2n;
/** section_mem_map flag bits (PRESENT, HAS_MEM_MAP, ONLINE, EARLY, TAINT_ZONE_DEVICE, VMEMMAP_PREINIT). */
const SECTION_MAP_FLAGS = 0x3fn;
const MAX_ROOTS = KERNEL_LIMITS.maxMemSectionRoots;

export interface KernelMemoryEnd {
  /** One past the last pfn of the highest section with a mem_map. */
  endPfn: number;
  sections: number;
  extreme: boolean;
}

/** What the walk needs of the kernel analysis. */
export interface SectionWalkInput {
  vmcoreinfo: Vmcoreinfo | undefined;
  /** Kernel virtual memory; `into` as KernelInfo.readVirt takes it (page filtering reuses one buffer). */
  readVirt(va: bigint, length: number, into?: Uint8Array): Promise<Uint8Array>;
}

/** One section with a mem_map. */
export interface MemSection {
  nr: number;
  startPfn: number;
  /** Exclusive. */
  endPfn: number;
  /** Kernel virtual address of the struct page of `startPfn`. */
  memMap: bigint;
}

export interface SectionLayout {
  pagesPerSection: number;
  extreme: boolean;
}

/**
 * Every SPARSEMEM section that has a mem_map, in ascending order, through VMCOREINFO
 * (SYMBOL/LENGTH/SIZE(mem_section), OFFSET(mem_section.section_mem_map), NUMBER(SECTION_SIZE_BITS),
 * NUMBER(MAX_PHYSMEM_BITS)). section_mem_map holds mem_map − first_pfn × SIZE(page) with flag
 * bits below bit 6 (kernel `include/linux/mmzone.h`, sparse_encode_mem_map). Reads one root
 * (one page of mem_section structs) at a time. Returns undefined when the keys are missing or
 * implausible; a read error of the root array or of a root throws (VmcoreError).
 */
export function memSectionLayout(vi: Vmcoreinfo, pageSize: number): (SectionLayout & { ms: bigint; roots: number; size: number; off: number; perRoot: number }) | undefined {
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
  if (roots * (extreme ? 8 : size) > KERNEL_LIMITS.maxMemSectionArrayBytes) return undefined;
  return { ms, roots, size, off, pagesPerSection, extreme, perRoot: extreme ? perRootExtreme : roots };
}

export async function* memSections(k: SectionWalkInput, pageSize: number): AsyncGenerator<MemSection> {
  const vi = k.vmcoreinfo;
  if (!vi) return;
  const L = memSectionLayout(vi, pageSize);
  if (!L) return;
  const pageSizeOf = BigInt(vi.size('page') ?? 0);
  function* scan(buf: Uint8Array, firstNr: number, n: number): Generator<MemSection> {
    const dv = new DataView(buf.buffer, buf.byteOffset, buf.length);
    for (let j = 0; j < n; j++) {
      const map = dv.getBigUint64(j * L!.size + L!.off, true);
      if (!(map & SECTION_HAS_MEM_MAP)) continue;
      const nr = firstNr + j;
      const startPfn = nr * L!.pagesPerSection;
      yield { nr, startPfn, endPfn: startPfn + L!.pagesPerSection, memMap: BigInt.asUintN(64, (map & ~SECTION_MAP_FLAGS) + BigInt(startPfn) * pageSizeOf) };
    }
  }
  if (L.extreme) {
    const ptrs = await k.readVirt(L.ms, L.roots * 8);
    const pv = new DataView(ptrs.buffer, ptrs.byteOffset, ptrs.length);
    for (let i = 0; i < L.roots; i++) {
      const root = pv.getBigUint64(i * 8, true);
      if (root === 0n) continue;
      yield* scan(await k.readVirt(root, L.perRoot * L.size), i * L.perRoot, L.perRoot);
    }
  } else {
    yield* scan(await k.readVirt(L.ms, L.roots * L.size), 0, L.roots);
  }
}

/**
 * The end of the kernel's memory model through the mem_section walk. Undefined when the keys or
 * the memory are not there (then nothing is dropped).
 */
export async function kernelMemoryEnd(k: SectionWalkInput & { translator?: unknown }, pageSize: number): Promise<KernelMemoryEnd | undefined> {
  const vi = k.vmcoreinfo;
  if (!vi || !k.translator) return undefined;
  const L = memSectionLayout(vi, pageSize);
  if (!L) return undefined;
  try {
    let last: MemSection | undefined;
    let count = 0;
    for await (const s of memSections(k, pageSize)) {
      last = s;
      count++;
    }
    if (!last) return undefined;
    return { endPfn: last.endPfn, sections: count, extreme: L.extreme };
  } catch (e) {
    if (isVmcoreError(e)) return undefined;
    throw e;
  }
}
