/**
 * x86_64 kernel virtual → physical translation: the kernel text mapping
 * (PA = VA − __START_KERNEL_map + phys_base), the direct map (PA = VA − page_offset_base) and a
 * real 4- or 5-level page-table walk from a root (init_top_pgt or a CPU's CR3), with 1 GiB and
 * 2 MiB pages and the AMD SME C-bit stripped from every entry.
 */
import { VmcoreError, isVmcoreError } from '../../errors.js';
import { hex64 } from '../../hex.js';
import { isPresent, type PhysicalMemory } from '../../dump.js';
import { readVirtMapped, type VirtMapping } from '../arch.js';
import { DIRECT_MAP_REGION_L4, DIRECT_MAP_REGION_L5, KERNEL_TEXT_END, START_KERNEL_MAP, textToPhys } from './addrspace.js';

/** Physical-address bits of a page-table entry (bits 12..51). */
export const PTE_ADDR_MASK = 0x000ffffffffff000n;
const PTE_PRESENT = 1n;
const PTE_PSE = 0x80n;

export const PT_LEVEL_NAMES = ['PTE', 'PMD', 'PUD', 'P4D', 'PGD'] as const;
export type PtLevelName = (typeof PT_LEVEL_NAMES)[number];

/** Name of table level `lvl` (0 = PTE); the top level is always called PGD. */
export function levelName(lvl: number, levels: 4 | 5): PtLevelName {
  return lvl === levels - 1 ? 'PGD' : PT_LEVEL_NAMES[lvl]!;
}

/** Canonical form of a 48- or 57-bit address. */
export function canonical(va: bigint, levels: 4 | 5): bigint {
  const bits = levels === 5 ? 57n : 48n;
  return BigInt.asUintN(64, BigInt.asIntN(Number(bits), va));
}

export interface WalkStep {
  level: PtLevelName;
  index: number;
  /** Physical address of the entry. */
  entryAddr: number;
  entry: bigint;
}

export interface WalkResult {
  pa: number;
  /** Size of the mapping that contains `va`: 4096, 2 MiB or 1 GiB. */
  pageSize: number;
  steps: WalkStep[];
}

export interface PageTableOptions {
  /** Physical address of the top-level table (init_top_pgt or CR3 & ~0xfff). */
  root: number;
  levels: 4 | 5;
  /** NUMBER(sme_mask): cleared from every entry. */
  smeMask?: bigint;
  /** Name used in error messages. */
  file?: string;
}

/**
 * A page-table walker over PhysicalMemory. Table pages are cached (a small LRU keyed by pfn), so
 * walking many addresses costs few page reads.
 */
export class PageTables {
  readonly root: number;
  readonly levels: 4 | 5;
  readonly smeMask: bigint;
  private readonly cache = new Map<number, DataView>();
  private readonly file?: string;

  constructor(
    readonly mem: PhysicalMemory,
    opts: PageTableOptions,
  ) {
    if (!Number.isSafeInteger(opts.root) || opts.root < 0 || opts.root % 4096 !== 0) {
      throw new VmcoreError('ADDRESS_TRANSLATION', `page-table root 0x${opts.root.toString(16)} is not a page-aligned physical address`, {
        file: opts.file,
        field: 'page-table root',
      });
    }
    this.root = opts.root;
    this.levels = opts.levels;
    this.smeMask = opts.smeMask ?? 0n;
    if (opts.file !== undefined) this.file = opts.file;
  }

  /** Read one 8-byte entry; throws ADDRESS_TRANSLATION when the table page is not in the dump. */
  async entry(tableAddr: number, index: number, va: bigint, level: string): Promise<bigint> {
    const ps = this.mem.pageSize;
    const addr = tableAddr + index * 8;
    const pfn = Math.floor(addr / ps);
    let dv = this.cache.get(pfn);
    if (!dv) {
      const st = pfn < this.mem.maxPfn ? await this.mem.pageState(pfn) : 'hole';
      if (!isPresent(st)) {
        throw new VmcoreError(
          'ADDRESS_TRANSLATION',
          `virtual address ${hex64(va)}: the ${level} table page at physical 0x${(pfn * ps).toString(16)} is not in the dump (${st})`,
          { file: this.file, field: `${level}[${index}]`, address: addr },
        );
      }
      const page = await this.mem.readPage(pfn);
      dv = new DataView(page.buffer, page.byteOffset, page.byteLength);
      if (this.cache.size >= 256) this.cache.delete(this.cache.keys().next().value as number);
      this.cache.set(pfn, dv);
    }
    return dv.getBigUint64(addr - pfn * ps, true);
  }

  /** Physical address stored in an entry (SME bit and flag bits cleared). */
  entryAddr(e: bigint): bigint {
    return e & ~this.smeMask & PTE_ADDR_MASK;
  }

  /** Walk `va`; throws ADDRESS_TRANSLATION naming the VA and the level where it stops. */
  async walk(va: bigint): Promise<WalkResult> {
    va = BigInt.asUintN(64, va);
    const steps: WalkStep[] = [];
    let table = this.root;
    for (let lvl = this.levels - 1; lvl >= 0; lvl--) {
      const name = levelName(lvl, this.levels);
      const shift = 12n + 9n * BigInt(lvl);
      const index = Number((va >> shift) & 511n);
      const e = await this.entry(table, index, va, name);
      steps.push({ level: name, index, entryAddr: table + index * 8, entry: e });
      if ((e & PTE_PRESENT) === 0n) {
        throw new VmcoreError('ADDRESS_TRANSLATION', `virtual address ${hex64(va)} is not mapped: ${name}[${index}] = 0x${e.toString(16)} is not present`, {
          file: this.file,
          field: `${name}[${index}]`,
          offset: table + index * 8,
        });
      }
      const base = this.entryAddr(e);
      if ((lvl === 1 || lvl === 2) && (e & PTE_PSE) !== 0n) {
        const size = 1n << shift;
        const pa = (base & ~(size - 1n)) | (va & (size - 1n));
        return { pa: this.toNumber(pa, va, name), pageSize: Number(size), steps };
      }
      if (lvl === 0) return { pa: this.toNumber(base | (va & 0xfffn), va, name), pageSize: 4096, steps };
      table = this.toNumber(base, va, name);
    }
    /* c8 ignore next */
    throw new VmcoreError('ADDRESS_TRANSLATION', `virtual address ${hex64(va)}: walk did not end`, { file: this.file });
  }

  private toNumber(pa: bigint, va: bigint, level: string): number {
    if (pa > BigInt(Number.MAX_SAFE_INTEGER)) {
      throw new VmcoreError('ADDRESS_TRANSLATION', `virtual address ${hex64(va)}: ${level} entry points to physical ${hex64(pa)}, beyond any RAM`, {
        file: this.file,
        field: level,
      });
    }
    return Number(pa);
  }

  async translate(va: bigint): Promise<number> {
    return (await this.walk(va)).pa;
  }

  /**
   * The lowest mapped virtual address in [start, end) and its physical address, found by a
   * depth-first search over present entries (table pages missing from the dump are skipped).
   * Bounded: visits at most `maxTables` table pages.
   */
  async lowestMapping(start: bigint, end: bigint, maxTables = 4096): Promise<{ va: bigint; pa: number; pageSize: number } | undefined> {
    let budget = maxTables;
    const rec = async (table: number, lvl: number, base: bigint): Promise<{ va: bigint; pa: number; pageSize: number } | undefined> => {
      if (budget-- <= 0) return undefined;
      const shift = 12n + 9n * BigInt(lvl);
      const span = 1n << shift;
      const name = levelName(lvl, this.levels);
      for (let i = 0; i < 512; i++) {
        const lo = canonical(base + BigInt(i) * span, this.levels);
        const hi = lo + span;
        if (hi <= start || lo >= end) continue;
        let e: bigint;
        try {
          e = await this.entry(table, i, lo, name);
        } catch (err) {
          if (isVmcoreError(err)) return undefined;
          throw err;
        }
        if ((e & PTE_PRESENT) === 0n) continue;
        const addr = this.entryAddr(e);
        if (lvl === 0 || ((lvl === 1 || lvl === 2) && (e & PTE_PSE) !== 0n)) {
          const pageBase = addr & ~(span - 1n);
          const va = lo < start ? start : lo;
          const pa = pageBase + (va - lo);
          if (pa > BigInt(Number.MAX_SAFE_INTEGER)) continue;
          return { va, pa: Number(pa), pageSize: Number(span) };
        }
        if (addr > BigInt(Number.MAX_SAFE_INTEGER)) continue;
        const r = await rec(Number(addr), lvl - 1, lo);
        if (r) return r;
      }
      return undefined;
    };
    return rec(this.root, this.levels - 1, 0n);
  }
}

export interface TranslatorOptions {
  /** Page tables (from init_top_pgt or a CR3); without them only the linear mappings work. */
  pageTables?: PageTables;
  /** Proven phys_base: enables the kernel text mapping without a walk. */
  physBase?: bigint;
  /** page_offset_base; found from the page tables when omitted. */
  directMapBase?: bigint;
  /** Highest physical address + 1 (maxPfn * pageSize). */
  physLimit: number;
  file?: string;
}

/**
 * Kernel VA → PA. Text mapping and direct map are linear (no table reads); any other address
 * is walked through the page tables.
 */
export class X86_64Translator {
  readonly pageTables?: PageTables;
  readonly physBase?: bigint;
  private directBase?: bigint | null;
  private readonly physLimit: number;
  private readonly file?: string;

  constructor(opts: TranslatorOptions) {
    if (opts.pageTables) this.pageTables = opts.pageTables;
    if (opts.physBase !== undefined) this.physBase = BigInt.asUintN(64, opts.physBase);
    if (opts.directMapBase !== undefined) this.directBase = opts.directMapBase;
    this.physLimit = opts.physLimit;
    if (opts.file !== undefined) this.file = opts.file;
  }

  get levels(): 4 | 5 {
    return this.pageTables?.levels ?? 4;
  }

  /**
   * page_offset_base: the lowest mapped VA of the direct-map region minus its PA, required to be
   * 1 GiB aligned (libaddrxlat's method). Undefined when there are no page tables or nothing
   * in that region is mapped.
   */
  async directMapBase(): Promise<bigint | undefined> {
    if (this.directBase !== undefined) return this.directBase ?? undefined;
    this.directBase = null;
    const pt = this.pageTables;
    if (!pt) return undefined;
    const region = pt.levels === 5 ? DIRECT_MAP_REGION_L5 : DIRECT_MAP_REGION_L4;
    const m = await pt.lowestMapping(region.start, region.end);
    if (m) {
      const base = m.va - BigInt(m.pa);
      if ((base & ((1n << 30n) - 1n)) === 0n) this.directBase = base;
    }
    return this.directBase ?? undefined;
  }

  /** Translate one kernel virtual address. */
  async virtToPhys(va: bigint): Promise<number> {
    va = BigInt.asUintN(64, va);
    if (this.physBase !== undefined && va >= START_KERNEL_MAP && va < KERNEL_TEXT_END) {
      return this.checkPhys(textToPhys(va, this.physBase), va, 'kernel text mapping');
    }
    if (this.pageTables) return this.pageTables.translate(va);
    throw new VmcoreError('ADDRESS_TRANSLATION', `virtual address ${hex64(va)}: no page tables and not in the kernel text mapping`, {
      file: this.file,
      field: 'virtual address',
    });
  }

  /** Translate through the direct map only (no page tables read once the base is known). */
  async directToPhys(va: bigint): Promise<number> {
    const base = await this.directMapBase();
    if (base === undefined) {
      throw new VmcoreError('ADDRESS_TRANSLATION', `virtual address ${hex64(va)}: the direct-map base is unknown`, { file: this.file });
    }
    return this.checkPhys(BigInt.asUintN(64, va) - base, va, 'direct map');
  }

  private checkPhys(pa: bigint, va: bigint, how: string): number {
    if (pa < 0n || pa >= BigInt(this.physLimit)) {
      throw new VmcoreError('ADDRESS_TRANSLATION', `virtual address ${hex64(va)} (${how}) gives physical ${hex64(pa)}, outside the dump's memory`, {
        file: this.file,
        field: how,
      });
    }
    return Number(pa);
  }

  /**
   * Physical address of `va` and the bytes from it to the end of the mapping that holds it (the
   * rest of its 4 KiB, 2 MiB or 1 GiB page; the rest of a 4 KiB page in the kernel text mapping).
   */
  private async mappingAt(va: bigint): Promise<VirtMapping> {
    if (this.pageTables && !(this.physBase !== undefined && va >= START_KERNEL_MAP && va < KERNEL_TEXT_END)) {
      const w = await this.pageTables.walk(va);
      return { pa: w.pa, span: w.pageSize - Number(va & BigInt(w.pageSize - 1)) };
    }
    return { pa: await this.virtToPhys(va), span: 4096 - Number(va & 0xfffn) };
  }

  /** `length` bytes of kernel virtual memory, each mapping translated once (readVirtMapped). */
  readVirt(mem: PhysicalMemory, va: bigint, length: number, into?: Uint8Array): Promise<Uint8Array> {
    return readVirtMapped(mem, va, length, (a) => this.mappingAt(a), this.file, into);
  }
}
