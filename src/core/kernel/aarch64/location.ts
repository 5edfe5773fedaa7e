/**
 * Where an aarch64 kernel sits, proven from the dump: PHYS_OFFSET (memstart_addr, the physical
 * address at the start of the linear map, which is what the kdump header's phys_base field
 * carries on arm64 for crash and makedumpfile), kimage_voffset (kernel image VA − PA), the linear
 * map's PAGE_OFFSET and the translation-table shape.
 *
 * QEMU fills the kdump header's phys_base on arm64 with NUMBER(PHYS_OFFSET) when the guest
 * published VMCOREINFO through `-device vmcoreinfo`, and otherwise with the lowest guest RAM
 * address (target/arm/arch_dump.c): a guess that is wrong whenever the kernel's memstart_addr is
 * not that address (linear-map randomisation, RAM not aligned to ARM64_MEMSTART_ALIGN, 52-bit VA
 * kernels on 48-bit hardware). Each value here is accepted only after checks that cannot pass by
 * chance: the translation tables at swapper_pg_dir map themselves and the kernel text to the
 * image addresses kimage_voffset gives, init_uts_ns holds "Linux" and OSRELEASE, and linear-map
 * addresses translate through the tables to where PHYS_OFFSET puts them.
 *
 * Sources: arch/arm64/include/asm/memory.h, arch/arm64/mm/init.c (arm64_memblock_init),
 * arch/arm64/kernel/crash_core.c / vmcore_info.c (the VMCOREINFO keys), reference formats.md §3.3.
 */
import { isVmcoreError } from '../../errors.js';
import type { KernelLocationInput } from '../arch.js';
import type { Vmcoreinfo } from '../vmcoreinfo.js';
import type { CpuRegisters } from '../x86_64/cpu.js';
import type { PhysBaseResult, PhysBaseVerdict } from '../x86_64/physbase.js';
import { decodeUtsname, NEW_UTSNAME_SIZE } from '../utsname.js';
import { hasStep, proofStep, type ProofStep } from '../proof.js';
import { Aarch64PageTables, type Aarch64Layout, type Granule } from './pagetables.js';

const MASK64 = (1n << 64n) - 1n;
const u64 = (v: bigint) => v & MASK64;

/** The aarch64 kernel location: the shared phys_base-shaped verdict plus the layout. */
export interface Aarch64Location extends PhysBaseResult {
  /** The proven layout (undefined when kimage_voffset or the tables could not be proven). */
  layout?: Aarch64Layout;
  /** Physical address of swapper_pg_dir when the tables were usable. */
  tablesRoot?: number;
  granule?: Granule;
  /** Translation levels of the kernel half. */
  tableLevels?: number;
  /** FEAT_LPA2 descriptors (52-bit output addresses with 4/16 KiB pages). */
  lpa2?: boolean;
}

const LINEAR_MAP = proofStep('LINEAR_MAP_AGREES', 'linear map agrees through the tables');

/** PAGE_OFFSET of a kernel with `vaBits` (5.4+: the linear map is the bottom half of the kernel space). */
export const pageOffsetFor = (vaBits: number) => u64(-(1n << BigInt(vaBits)));

/**
 * Find and prove PHYS_OFFSET and kimage_voffset. Never throws for bad memory contents: every
 * failed check is recorded in `notes`, and the verdict says what could be proven.
 */
export async function findAarch64Location(input: KernelLocationInput<CpuRegisters>): Promise<Aarch64Location> {
  const { mem, vmcoreinfo: vi, headerPhysBase: header, file } = input;
  const notes: string[] = [];
  const proof: ProofStep[] = [];
  const sources: string[] = [];
  const physLimit = mem.maxPfn * mem.pageSize;
  const inRam = (pa: bigint) => pa >= 0n && pa < BigInt(physLimit);
  const viPhysOffset = vi?.number('PHYS_OFFSET');
  const base: Aarch64Location = {
    ...(header !== undefined ? { header } : {}),
    ...(viPhysOffset !== undefined ? { vmcoreinfo: u64(viPhysOffset) } : {}),
    verdict: 'cannot prove',
    proof,
    sources,
    candidates: [],
    levels: 0,
    notes,
  };
  if (!vi) {
    notes.push('no VMCOREINFO: the kernel image and linear map cannot be located');
    return base;
  }

  // kimage_voffset: from VMCOREINFO, else from an ELF PT_LOAD that maps the kernel text
  const stext = vi.symbol('_stext');
  let kimageVoffset = vi.number('kimage_voffset');
  if (kimageVoffset !== undefined) sources.push('VMCOREINFO NUMBER(kimage_voffset)');
  else if (stext !== undefined) {
    const seg = input.segments?.find((s) => s.vaddr !== 0n && s.vaddr <= stext && stext - s.vaddr < 1n << 32n && s.vaddr !== BigInt(s.paddr));
    if (seg) {
      kimageVoffset = u64(seg.vaddr - BigInt(seg.paddr));
      sources.push('ELF PT_LOAD of the kernel text');
    }
  }
  if (kimageVoffset === undefined) {
    notes.push('kimage_voffset is unknown (no NUMBER(kimage_voffset), no PT_LOAD of the kernel text)');
    return base;
  }
  kimageVoffset = u64(kimageVoffset);
  const kimgToPhys = (va: bigint) => u64(va - kimageVoffset!);

  // translation-table shape
  const pageSize = vi.pageSize ?? 4096;
  if (pageSize !== 4096 && pageSize !== 16384 && pageSize !== 65536) {
    notes.push(`PAGESIZE ${pageSize} is not an aarch64 granule`);
    return base;
  }
  const granule = pageSize as Granule;
  const vaBits = Number(vi.number('VA_BITS') ?? 48n);
  const t1sz = vi.number('TCR_EL1_T1SZ');
  const vaBitsActual = t1sz !== undefined && t1sz > 0n && t1sz < 40n ? 64 - Number(t1sz) : vaBits;
  const pacMask = u64(vi.number('KERNELPACMASK') ?? 0n);

  // the tables at swapper_pg_dir, through the image mapping
  const swapper = vi.symbol('swapper_pg_dir');
  let tables: Aarch64PageTables | undefined;
  let lpa2 = false;
  if (swapper === undefined) notes.push('no SYMBOL(swapper_pg_dir) in VMCOREINFO');
  else {
    const root = kimgToPhys(swapper);
    if (!inRam(root)) notes.push(`swapper_pg_dir would be at physical 0x${root.toString(16)}, outside the dump's memory`);
    else {
      proof.push(proofStep('PGD_IN_RAM', 'swapper_pg_dir in RAM'));
      // 52-bit output addresses with 4/16 KiB pages use the LPA2 descriptor format (TCR_EL1.DS)
      for (const tryLpa2 of vaBitsActual > 48 && granule !== 65536 ? [true, false] : [false]) {
        try {
          const t = new Aarch64PageTables(mem, { root: Number(root), granule, vaBits: vaBitsActual, lpa2: tryLpa2, ...(file ? { file } : {}) });
          if ((await t.translate(swapper)) === Number(root)) {
            tables = t;
            lpa2 = tryLpa2;
            proof.push(proofStep('PGD_MAPS_ITSELF', 'swapper_pg_dir maps itself'));
            break;
          }
          notes.push('the tables at swapper_pg_dir do not map swapper_pg_dir to itself');
        } catch (e) {
          if (!isVmcoreError(e)) throw e;
          notes.push(`translation tables at swapper_pg_dir: ${e.message}`);
        }
      }
    }
  }
  if (tables && stext !== undefined) {
    try {
      if ((await tables.translate(stext)) === Number(kimgToPhys(stext))) proof.push(proofStep('STEXT_MAPS', '_stext maps to _stext − kimage_voffset'));
      else notes.push('_stext does not map to _stext − kimage_voffset');
    } catch (e) {
      if (!isVmcoreError(e)) throw e;
      notes.push(`_stext: ${e.message}`);
    }
  }
  // init_uts_ns through the image mapping
  const uts = vi.symbol('init_uts_ns');
  const utsOff = vi.offset('uts_namespace.name') ?? 0;
  if (uts !== undefined && vi.osrelease) {
    const pa = kimgToPhys(uts + BigInt(utsOff));
    if (inRam(pa) && inRam(pa + BigInt(NEW_UTSNAME_SIZE))) {
      try {
        const u = decodeUtsname(await mem.readPhys(Number(pa), NEW_UTSNAME_SIZE));
        if (u && u.sysname === 'Linux' && u.release === vi.osrelease) proof.push(proofStep('UTSNAME_MATCHES', 'init_uts_ns holds Linux + OSRELEASE'));
        else notes.push(`init_uts_ns through kimage_voffset reads "${u?.sysname}" "${u?.release}", not Linux ${vi.osrelease}`);
      } catch (e) {
        if (!isVmcoreError(e)) throw e;
        notes.push(`init_uts_ns: ${e.message}`);
      }
    }
  }
  const imageProven = hasStep(proof, 'UTSNAME_MATCHES') && (tables === undefined || hasStep(proof, 'STEXT_MAPS'));
  if (!imageProven) {
    notes.push('kimage_voffset could not be proven');
    return { ...base, notes };
  }

  // PHYS_OFFSET: every candidate checked through the tables on linear-map addresses of RAM we know
  const candidates: { value: bigint; sources: string[] }[] = [];
  const addCand = (v: bigint | undefined, src: string) => {
    if (v === undefined) return;
    v = u64(v);
    const c = candidates.find((x) => x.value === v);
    if (c) c.sources.push(src);
    else candidates.push({ value: v, sources: [src] });
  };
  addCand(viPhysOffset, 'VMCOREINFO NUMBER(PHYS_OFFSET)');
  addCand(header, 'file header');
  // linear-map probes: physical addresses known to be RAM (the tables, the kernel image)
  const probes: bigint[] = [];
  if (swapper !== undefined) probes.push(kimgToPhys(swapper));
  if (stext !== undefined) probes.push(kimgToPhys(stext));
  probes.push(kimgToPhys(uts!));
  const pageOffsets = [...new Set([pageOffsetFor(vaBitsActual), pageOffsetFor(vaBits)])];
  let physOffset: bigint | undefined;
  let pageOffset: bigint | undefined;
  const resultCands: PhysBaseResult['candidates'] = [];
  for (const c of candidates) {
    const passed: ProofStep[] = [];
    const failed: ProofStep[] = [];
    if (tables) {
      for (const po of pageOffsets) {
        let ok = 0;
        for (const pa of probes) {
          // linear VA of pa: PAGE_OFFSET(VA_BITS) + (pa − PHYS_OFFSET) (memory.h __phys_to_virt)
          const va = u64(pageOffsetFor(vaBits) + pa - c.value);
          if (va < po) continue;
          try {
            if ((await tables.translate(va)) === Number(pa)) ok++;
          } catch (e) {
            if (!isVmcoreError(e)) throw e;
          }
        }
        if (ok === probes.length) {
          passed.push(LINEAR_MAP);
          pageOffset ??= po;
          break;
        }
      }
      if (passed.length === 0) failed.push(LINEAR_MAP);
    }
    const accepted = passed.length > 0 && physOffset === undefined;
    if (accepted) physOffset = c.value;
    resultCands.push({ value: c.value, sources: c.sources, accepted, passed, failed, unavailable: tables ? [] : [LINEAR_MAP] });
  }
  if (physOffset !== undefined) proof.push(LINEAR_MAP);
  else if (!tables && viPhysOffset !== undefined) {
    // no usable tables: the guest's own value stands, but unproven
    notes.push('no usable translation tables: NUMBER(PHYS_OFFSET) is taken as written');
  }

  let verdict: PhysBaseVerdict = 'cannot prove';
  if (physOffset !== undefined) {
    verdict = header === undefined ? 'header absent' : u64(header) === physOffset ? 'header correct' : 'header wrong';
  }
  const layout: Aarch64Layout | undefined =
    physOffset !== undefined || (!tables && viPhysOffset !== undefined)
      ? { vaBits, pageOffset: pageOffset ?? pageOffsetFor(vaBits), physOffset: physOffset ?? u64(viPhysOffset!), kimageVoffset, pacMask }
      : undefined;
  if (verdict === 'header wrong' && header !== undefined && vi && !vi.has('NUMBER(PHYS_OFFSET)')) {
    notes.push('the header holds the lowest RAM address, QEMU\'s guess when the guest published no VMCOREINFO');
  }
  return {
    ...base,
    ...(physOffset !== undefined ? { value: physOffset } : {}),
    verdict,
    candidates: resultCands,
    levels: tables?.levels ?? 0,
    ...(tables ? { pgd: tables.root, tablesRoot: tables.root, tableLevels: tables.levels } : {}),
    ...(layout ? { layout } : {}),
    granule,
    lpa2,
    notes,
  };
}

/** Whether a VMCOREINFO describes an arm64 kernel (keys only arch/arm64 publishes). */
export function isAarch64Vmcoreinfo(vi: Vmcoreinfo | undefined): boolean {
  return !!vi && vi.has('NUMBER(kimage_voffset)') && (vi.has('NUMBER(PHYS_OFFSET)') || vi.has('NUMBER(VA_BITS)'));
}
