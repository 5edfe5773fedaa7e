/**
 * aarch64 kernel address translation: the stage-1 translation table walk for the TTBR1 (kernel)
 * half of the address space, with 4 KiB, 16 KiB and 64 KiB granules, 36- to 52-bit virtual
 * addresses, block mappings, and 52-bit output addresses (FEAT_LPA with 64 KiB pages, FEAT_LPA2
 * with 4/16 KiB pages), plus the two linear shortcuts the kernel itself uses: the linear map
 * (PHYS_OFFSET) and the kernel image (kimage_voffset).
 *
 * Sources: Arm ARM D8 "The AArch64 Virtual Memory System Architecture" (descriptor formats,
 * levels per granule); arch/arm64/include/asm/memory.h (__virt_to_phys, __lm_to_phys,
 * __kimg_to_phys, PAGE_OFFSET); arch/arm64/include/asm/pgtable-hwdef.h.
 */
import { hex } from '../../hex.js';
import { VmcoreError } from '../../errors.js';
import type { PhysicalMemory } from '../../dump.js';
import { readVirtMapped, type KernelTranslator, type VirtMapping } from '../arch.js';
import type { Vmcoreinfo } from '../vmcoreinfo.js';

const MASK64 = (1n << 64n) - 1n;
const u64 = (v: bigint) => v & MASK64;

export type Granule = 4096 | 16384 | 65536;

export interface Aarch64PageTableOptions {
  /** Physical address of the top-level table (swapper_pg_dir, or TTBR1_EL1's base address). */
  root: number;
  granule: Granule;
  /** Virtual address bits of the TTBR1 half (64 − TCR_EL1.T1SZ): 36 to 52. */
  vaBits: number;
  /** Descriptors carry 52-bit output addresses (FEAT_LPA2 with 4/16 KiB granules: TCR_EL1.DS). */
  lpa2?: boolean;
  file?: string;
}

/** Number of translation levels and the shift of each, for a granule and VA size (Arm ARM D8.2). */
export function walkShape(granule: Granule, vaBits: number): { levels: number; shifts: number[]; startLevel: number } {
  const g = Math.log2(granule);
  const per = g - 3;
  if (!Number.isInteger(vaBits) || vaBits < 25 || vaBits > 52) {
    throw new VmcoreError('BAD_FIELD', `aarch64 VA size ${vaBits} bits is outside 25..52`, { field: 'VA_BITS' });
  }
  const levels = Math.ceil((vaBits - g) / per);
  const startLevel = 4 - levels;
  const shifts: number[] = [];
  for (let l = startLevel; l <= 3; l++) shifts.push(g + (3 - l) * per);
  return { levels, shifts, startLevel };
}

/** A resolved translation: the physical address and the size of the mapping it came from. */
export interface Aarch64Mapping {
  pa: number;
  /** Bytes mapped by the descriptor found (page, or 2 MiB / 32 MiB / 512 MiB / 1 GiB block). */
  size: number;
}

/** The kernel's (TTBR1) translation tables in a dump. */
export class Aarch64PageTables {
  readonly root: number;
  readonly granule: Granule;
  readonly vaBits: number;
  readonly lpa2: boolean;
  private readonly shape: ReturnType<typeof walkShape>;
  private readonly file: string | undefined;
  private readonly cache = new Map<number, Uint8Array>();

  constructor(private readonly mem: PhysicalMemory, opts: Aarch64PageTableOptions) {
    this.shape = walkShape(opts.granule, opts.vaBits);
    this.root = opts.root;
    this.granule = opts.granule;
    this.vaBits = opts.vaBits;
    this.lpa2 = opts.lpa2 ?? false;
    this.file = opts.file;
    const limit = mem.maxPfn * mem.pageSize;
    if (!Number.isSafeInteger(opts.root) || opts.root < 0 || opts.root >= limit || opts.root % 64 !== 0) {
      throw new VmcoreError('ADDRESS_TRANSLATION', `aarch64 translation table root ${hex(opts.root)} is not inside the dump's memory`, {
        file: this.file,
        field: 'swapper_pg_dir',
      });
    }
  }

  get levels(): number {
    return this.shape.levels;
  }

  /** The output address of a table, page or block descriptor (bits above the granule). */
  private outputAddress(desc: bigint, shift: number): bigint {
    const g = BigInt(Math.log2(this.granule));
    let pa: bigint;
    if (this.granule === 65536 && !this.lpa2) {
      // FEAT_LPA: OA[47:16] in bits [47:16], OA[51:48] in bits [15:12]
      pa = (desc & 0x0000ffffffff0000n) | (((desc >> 12n) & 0xfn) << 48n);
    } else if (this.lpa2) {
      // FEAT_LPA2: OA[49:g] in bits [49:g], OA[51:50] in bits [9:8]
      pa = (desc & ((1n << 50n) - (1n << g))) | (((desc >> 8n) & 3n) << 50n);
    } else {
      pa = desc & ((1n << 48n) - (1n << g));
    }
    return pa & ~((1n << BigInt(shift)) - 1n);
  }

  private async readDesc(tablePa: number, index: number): Promise<bigint> {
    const addr = tablePa + index * 8;
    const page = addr - (addr % 4096);
    let buf = this.cache.get(page);
    if (!buf) {
      buf = await this.mem.readPhys(page, 4096);
      if (this.cache.size > 256) this.cache.clear();
      this.cache.set(page, buf);
    }
    return new DataView(buf.buffer, buf.byteOffset, buf.byteLength).getBigUint64(addr - page, true);
  }

  /**
   * Walk the tables for one kernel virtual address (the TTBR1 half: the bits above vaBits all
   * ones). Throws VmcoreError ADDRESS_TRANSLATION naming the level and descriptor when the
   * address is not mapped or a table lies outside the dump.
   */
  async lookup(va: bigint): Promise<Aarch64Mapping> {
    va = u64(va);
    const vaMask = (1n << BigInt(this.vaBits)) - 1n;
    if ((va | vaMask) !== MASK64) {
      throw new VmcoreError('ADDRESS_TRANSLATION', `virtual address ${hex(va)} is not in the kernel (TTBR1) half of a ${this.vaBits}-bit address space`, {
        file: this.file,
        field: 'virtual address',
      });
    }
    const limit = this.mem.maxPfn * this.mem.pageSize;
    const g = Math.log2(this.granule);
    const per = g - 3;
    let table = this.root;
    const { shifts, startLevel } = this.shape;
    for (let i = 0; i < shifts.length; i++) {
      const level = startLevel + i;
      const shift = shifts[i]!;
      const bits = i === 0 ? this.vaBits - shift : per;
      const index = Number((va >> BigInt(shift)) & ((1n << BigInt(bits)) - 1n));
      let desc: bigint;
      try {
        desc = await this.readDesc(table, index);
      } catch (e) {
        throw new VmcoreError('ADDRESS_TRANSLATION', `virtual address ${hex(va)}: level ${level} table at ${hex(table)} cannot be read (${(e as Error).message})`, {
          file: this.file,
          field: `level ${level} descriptor`,
        });
      }
      if ((desc & 1n) === 0n) {
        throw new VmcoreError('ADDRESS_TRANSLATION', `virtual address ${hex(va)} is not mapped (level ${level} descriptor ${hex(desc)} invalid)`, {
          file: this.file,
          field: `level ${level} descriptor`,
        });
      }
      const isTable = (desc & 2n) !== 0n;
      if (level === 3 || !isTable) {
        if (level === 3 && !isTable) {
          throw new VmcoreError('ADDRESS_TRANSLATION', `virtual address ${hex(va)}: reserved level 3 descriptor ${hex(desc)}`, {
            file: this.file,
            field: 'level 3 descriptor',
          });
        }
        const base = this.outputAddress(desc, shift);
        const pa = base + (va & ((1n << BigInt(shift)) - 1n));
        if (pa >= BigInt(limit)) {
          throw new VmcoreError('ADDRESS_TRANSLATION', `virtual address ${hex(va)} maps to physical ${hex(pa)}, outside the dump's memory`, {
            file: this.file,
            field: `level ${level} descriptor`,
          });
        }
        return { pa: Number(pa), size: 2 ** shift };
      }
      const next = this.outputAddress(desc, g);
      if (next >= BigInt(limit)) {
        throw new VmcoreError('ADDRESS_TRANSLATION', `virtual address ${hex(va)}: level ${level + 1} table at ${hex(next)} is outside the dump's memory`, {
          file: this.file,
          field: `level ${level} descriptor`,
        });
      }
      table = Number(next);
    }
    throw new VmcoreError('ADDRESS_TRANSLATION', `virtual address ${hex(va)}: walk ended without a leaf descriptor`, { file: this.file });
  }

  async translate(va: bigint): Promise<number> {
    return (await this.lookup(va)).pa;
  }
}

/** Where the kernel's linear map and image sit: the values of arch/arm64/include/asm/memory.h. */
export interface Aarch64Layout {
  /** Virtual address bits of the kernel half (VA_BITS, or 64 − TCR_EL1_T1SZ when smaller). */
  vaBits: number;
  /** PAGE_OFFSET: the linear map's first virtual address. */
  pageOffset: bigint;
  /** PHYS_OFFSET (memstart_addr): the physical address at PAGE_OFFSET. */
  physOffset: bigint;
  /** kimage_voffset: kernel image VA − PA. */
  kimageVoffset: bigint;
  /** KERNELPACMASK: pointer-authentication bits of kernel return addresses, or 0. */
  pacMask: bigint;
}

/** The linear map: [PAGE_OFFSET, PAGE_OFFSET + 2^(vaBits−1)) on 5.4+ kernels. */
export function linearRegion(layout: Aarch64Layout): { start: bigint; end: bigint } {
  return { start: layout.pageOffset, end: u64(layout.pageOffset + (1n << BigInt(layout.vaBits - 1))) || MASK64 };
}

/**
 * The pointer-authentication bits of kernel return addresses: VMCOREINFO NUMBER(KERNELPACMASK)
 * (arch/arm64/kernel/crash_core.c), else every bit above NUMBER(VA_BITS) (a kernel text address
 * has them all set). Undefined when VMCOREINFO gives neither.
 */
export function kernelPacMask(vi: Vmcoreinfo | undefined): bigint | undefined {
  const vaBits = vi?.number('VA_BITS');
  return vi?.number('KERNELPACMASK') ?? (vaBits !== undefined && vaBits > 0n && vaBits < 64n ? BigInt.asUintN(64, -(1n << vaBits)) : undefined);
}

/** Set the pointer-authentication bits of a kernel return address back to ones (ptrauth_strip_kernel_insn_pac). */
export function stripPac(addr: bigint, pacMask: bigint): bigint {
  return pacMask === 0n ? addr : u64(addr | pacMask);
}

/**
 * Kernel VA → PA for an aarch64 dump: the linear map and the kernel image by their offsets when
 * proven, everything else (vmalloc, modules, vmemmap, fixmap) through the translation tables.
 */
export class Aarch64Translator implements KernelTranslator {
  constructor(
    private readonly opts: {
      pageTables?: Aarch64PageTables;
      layout?: Aarch64Layout;
      /** [start, end) of the kernel image VAs (_text .. _end) when known. */
      image?: { start: bigint; end: bigint };
      physLimit: number;
      file?: string;
    },
  ) {}

  get pageTables(): Aarch64PageTables | undefined {
    return this.opts.pageTables;
  }

  /** The physical address of `va` in the linear map or the kernel image, else undefined. */
  private linearPhys(va: bigint): number | undefined {
    const { layout, image } = this.opts;
    if (layout) {
      const lin = linearRegion(layout);
      if (va >= lin.start && va < lin.end) return this.check(va - layout.pageOffset + layout.physOffset, va, 'linear map');
      if (image && va >= image.start && va < image.end) return this.check(u64(va - layout.kimageVoffset), va, 'kernel image');
    }
    return undefined;
  }

  async virtToPhys(va: bigint): Promise<number> {
    va = u64(va);
    const pa = this.linearPhys(va);
    if (pa !== undefined) return pa;
    if (this.opts.pageTables) return this.opts.pageTables.translate(va);
    throw new VmcoreError('ADDRESS_TRANSLATION', `virtual address ${hex(va)}: no translation tables and not in the linear map or kernel image`, {
      file: this.opts.file,
      field: 'virtual address',
    });
  }

  private check(pa: bigint, va: bigint, how: string): number {
    if (pa < 0n || pa >= BigInt(this.opts.physLimit)) {
      throw new VmcoreError('ADDRESS_TRANSLATION', `virtual address ${hex(va)} (${how}) gives physical ${hex(pa)}, outside the dump's memory`, {
        file: this.opts.file,
        field: how,
      });
    }
    return Number(pa);
  }

  /** `va`'s physical address and the rest of its mapping: the table's page or block, or the rest of a 4 KiB page of the linear map or image. */
  private async mappingAt(va: bigint): Promise<VirtMapping> {
    const pa = this.linearPhys(va);
    if (pa !== undefined || !this.opts.pageTables) return { pa: pa ?? (await this.virtToPhys(va)), span: 4096 - Number(va & 0xfffn) };
    const m = await this.opts.pageTables.lookup(va);
    return { pa: m.pa, span: m.size - Number(va & BigInt(m.size - 1)) };
  }

  /** `length` bytes of kernel virtual memory, each mapping translated once (readVirtMapped). */
  readVirt(mem: PhysicalMemory, va: bigint, length: number, into?: Uint8Array): Promise<Uint8Array> {
    return readVirtMapped(mem, va, length, (a) => this.mappingAt(a), this.opts.file, into);
  }
}
