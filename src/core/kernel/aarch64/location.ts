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
import { warning, type Warning } from '../../warnings.js';
import { isVmcoreError } from '../../errors.js';
import type { KernelLocationInput } from '../arch.js';
import type { Vmcoreinfo } from '../vmcoreinfo.js';
import type { CpuRegisters } from '../x86_64/cpu.js';
import type { PhysBaseResult, PhysBaseVerdict } from '../x86_64/physbase.js';
import { decodeUtsname, findUtsname, NEW_UTSNAME_SIZE, type Utsname } from '../utsname.js';
import { parseSigned } from '../vmcoreinfo.js';
import { hex64 } from '../../hex.js';
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
  /** The release init_uts_ns holds in memory, when the image was proven. */
  release?: string;
  /**
   * VMCOREINFO values that failed their check or disagree with the proven location, each naming
   * the key and both values (kimage_voffset, VA_BITS, OSRELEASE, KERNELOFFSET).
   */
  warnings: Warning[];
}

/** At most this many utsname copies in memory are tried as init_uts_ns when searching for kimage_voffset. */
const MAX_UTSNAME_HITS = 64;

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
  const warnings: Warning[] = [];
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
    warnings,
  };
  if (!vi) {
    notes.push('no VMCOREINFO: the kernel image and linear map cannot be located');
    return base;
  }

  // translation-table shape
  const pageSize = vi.pageSize ?? 4096;
  if (pageSize !== 4096 && pageSize !== 16384 && pageSize !== 65536) {
    notes.push(`PAGESIZE ${pageSize} is not an aarch64 granule`);
    return base;
  }
  const granule = pageSize as Granule;
  const t1sz = vi.number('TCR_EL1_T1SZ');
  const viVaBits = vi.number('VA_BITS');
  const vaBitsActual = t1sz !== undefined && t1sz > 0n && t1sz < 40n ? 64 - Number(t1sz) : Number(viVaBits ?? 48n);
  const pacMask = u64(vi.number('KERNELPACMASK') ?? 0n);
  const stext = vi.symbol('_stext');
  const swapper = vi.symbol('swapper_pg_dir');
  const uts = vi.symbol('init_uts_ns');
  const utsOff = vi.offset('uts_namespace.name') ?? 0;
  if (swapper === undefined) notes.push('no SYMBOL(swapper_pg_dir) in VMCOREINFO');

  /**
   * The image checks for one kimage_voffset: swapper_pg_dir maps itself, _stext maps to
   * _stext − kimage_voffset, init_uts_ns holds "Linux" and a release. Proven when the tables
   * map the text and init_uts_ns holds Linux (its release is OSRELEASE's, or memory's when the
   * tables proved the image), or, without usable tables, when init_uts_ns holds Linux + OSRELEASE.
   */
  const checkImage = async (kv: bigint) => {
    const steps: ProofStep[] = [];
    const why: string[] = [];
    const kimgToPhys = (va: bigint) => u64(va - kv);
    let tables: Aarch64PageTables | undefined;
    let lpa2 = false;
    if (swapper !== undefined) {
      const root = kimgToPhys(swapper);
      if (!inRam(root)) why.push(`swapper_pg_dir would be at physical 0x${root.toString(16)}, outside the dump's memory`);
      else {
        steps.push(proofStep('PGD_IN_RAM', 'swapper_pg_dir in RAM'));
        // 52-bit output addresses with 4/16 KiB pages use the LPA2 descriptor format (TCR_EL1.DS)
        for (const tryLpa2 of vaBitsActual > 48 && granule !== 65536 ? [true, false] : [false]) {
          try {
            const t = new Aarch64PageTables(mem, { root: Number(root), granule, vaBits: vaBitsActual, lpa2: tryLpa2, ...(file ? { file } : {}) });
            if ((await t.translate(swapper)) === Number(root)) {
              tables = t;
              lpa2 = tryLpa2;
              steps.push(proofStep('PGD_MAPS_ITSELF', 'swapper_pg_dir maps itself'));
              break;
            }
            why.push('the tables at swapper_pg_dir do not map swapper_pg_dir to itself');
          } catch (e) {
            if (!isVmcoreError(e)) throw e;
            why.push(`translation tables at swapper_pg_dir: ${e.message}`);
          }
        }
      }
    }
    if (tables && stext !== undefined) {
      try {
        if ((await tables.translate(stext)) === Number(kimgToPhys(stext))) steps.push(proofStep('STEXT_MAPS', '_stext maps to _stext − kimage_voffset'));
        else why.push('_stext does not map to _stext − kimage_voffset');
      } catch (e) {
        if (!isVmcoreError(e)) throw e;
        why.push(`_stext: ${e.message}`);
      }
    }
    // init_uts_ns through the image mapping
    let utsname: Utsname | undefined;
    if (uts !== undefined) {
      const pa = kimgToPhys(uts + BigInt(utsOff));
      if (inRam(pa) && inRam(pa + BigInt(NEW_UTSNAME_SIZE))) {
        try {
          const u = decodeUtsname(await mem.readPhys(Number(pa), NEW_UTSNAME_SIZE));
          if (u && u.sysname === 'Linux' && vi.osrelease !== undefined && u.release === vi.osrelease) {
            steps.push(proofStep('UTSNAME_MATCHES', 'init_uts_ns holds Linux + OSRELEASE'));
            utsname = u;
          } else if (u && u.sysname === 'Linux' && /^\d+\.\d+/.test(u.release) && hasStep(steps, 'STEXT_MAPS')) {
            steps.push(proofStep('UTSNAME_IN_IMAGE', `init_uts_ns holds Linux ${u.release}`));
            utsname = u;
          } else why.push(`init_uts_ns through kimage_voffset ${u ? `reads "${u.sysname}" "${u.release}"` : 'holds no utsname'}, not Linux ${vi.osrelease ?? ''}`.trimEnd());
        } catch (e) {
          if (!isVmcoreError(e)) throw e;
          why.push(`init_uts_ns: ${e.message}`);
        }
      } else why.push(`init_uts_ns would be at physical 0x${pa.toString(16)}, outside the dump's memory`);
    }
    const proven = utsname !== undefined && (tables === undefined ? hasStep(steps, 'UTSNAME_MATCHES') : hasStep(steps, 'STEXT_MAPS'));
    return { kv, steps, why, tables, lpa2, utsname, proven };
  };

  // kimage_voffset: VMCOREINFO's, else an ELF PT_LOAD that maps the kernel text, else memory
  const viKv = vi.number('kimage_voffset');
  const tried = new Set<bigint>();
  let image: Awaited<ReturnType<typeof checkImage>> | undefined;
  let firstFailure: Awaited<ReturnType<typeof checkImage>> | undefined;
  const attempt = async (kv: bigint, src: string) => {
    kv = u64(kv);
    if (image || tried.has(kv)) return;
    tried.add(kv);
    const r = await checkImage(kv);
    if (r.proven) {
      image = r;
      sources.push(src);
    } else firstFailure ??= r;
  };
  if (viKv !== undefined) await attempt(viKv, 'VMCOREINFO NUMBER(kimage_voffset)');
  if (!image && stext !== undefined) {
    const seg = input.segments?.find((s) => s.vaddr !== 0n && s.vaddr <= stext && stext - s.vaddr < 1n << 32n && s.vaddr !== BigInt(s.paddr));
    if (seg) await attempt(seg.vaddr - BigInt(seg.paddr), 'ELF PT_LOAD of the kernel text');
  }
  // memory: each utsname ("Linux", a release) at init_uts_ns's offset in its page gives a
  // kimage_voffset, accepted only when the tables at swapper_pg_dir then map the kernel text
  if (!image && uts !== undefined && swapper !== undefined && stext !== undefined) {
    const want = Number((uts + BigInt(utsOff)) % BigInt(granule));
    let from = 0;
    for (let hits = 0; !image && hits < MAX_UTSNAME_HITS && from < physLimit; hits++) {
      const f = await findUtsname(mem, from, physLimit, physLimit);
      if (!f) break;
      from = f.pa + 1;
      if (f.pa % granule !== want) continue;
      await attempt(uts + BigInt(utsOff) - BigInt(f.pa), `memory: init_uts_ns at physical 0x${f.pa.toString(16)}, checked through the tables`);
    }
  }
  if (viKv !== undefined && (!image || image.kv !== u64(viKv))) {
    const why = firstFailure?.why.join('; ') ?? 'not proven';
    warnings.push(warning('VMCOREINFO_DISAGREES',
      image
        ? `VMCOREINFO NUMBER(kimage_voffset)=${hex64(u64(viKv))} fails its check (${why}); the value proven from memory is ${hex64(image.kv)}`
        : `VMCOREINFO NUMBER(kimage_voffset)=${hex64(u64(viKv))} fails its check (${why}); no value could be proven from memory`,
    ));
  }
  if (!image) {
    if (firstFailure) {
      proof.push(...firstFailure.steps);
      notes.push(...firstFailure.why);
      notes.push('kimage_voffset could not be proven');
    } else notes.push('kimage_voffset is unknown (no NUMBER(kimage_voffset), no PT_LOAD of the kernel text, no init_uts_ns in memory that the tables confirm)');
    return { ...base, notes };
  }
  proof.push(...image.steps);
  const kimageVoffset = image.kv;
  const kimgToPhys = (va: bigint) => u64(va - kimageVoffset);
  const tables = image.tables;
  const lpa2 = image.lpa2;
  const release = image.utsname!.release;
  if (vi.osrelease !== undefined && release !== vi.osrelease) {
    warnings.push(warning('VMCOREINFO_DISAGREES', `VMCOREINFO OSRELEASE ${vi.osrelease} differs from init_uts_ns in memory (${release}); the release in memory is used`));
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
  // VA_BITS: VMCOREINFO's (a 52-bit kernel on 48-bit hardware keeps PAGE_OFFSET(52) and moves
  // memstart_addr, arch/arm64/mm/init.c), else the size TCR_EL1_T1SZ gives, else 48
  const vaBitsCands = [...new Set([Number(viVaBits ?? BigInt(vaBitsActual)), vaBitsActual, 48])];
  let physOffset: bigint | undefined;
  let pageOffset: bigint | undefined;
  let vaBits: number | undefined;
  const resultCands: PhysBaseResult['candidates'] = [];
  for (const c of candidates) {
    const passed: ProofStep[] = [];
    const failed: ProofStep[] = [];
    let found: { po: bigint; vb: number } | undefined;
    if (tables) {
      for (const vb of vaBitsCands) {
        for (const po of new Set([pageOffsetFor(vaBitsActual), pageOffsetFor(vb)])) {
          let ok = 0;
          for (const pa of probes) {
            // linear VA of pa: PAGE_OFFSET(VA_BITS) + (pa − PHYS_OFFSET) (memory.h __phys_to_virt)
            const va = u64(pageOffsetFor(vb) + pa - c.value);
            if (va < po) continue;
            try {
              if ((await tables.translate(va)) === Number(pa)) ok++;
            } catch (e) {
              if (!isVmcoreError(e)) throw e;
            }
          }
          if (ok === probes.length) {
            found = { po, vb };
            break;
          }
        }
        if (found) break;
      }
      if (found) passed.push(LINEAR_MAP);
      else failed.push(LINEAR_MAP);
    }
    const accepted = found !== undefined && physOffset === undefined;
    if (accepted) {
      physOffset = c.value;
      pageOffset = found!.po;
      vaBits = found!.vb;
    }
    resultCands.push({ value: c.value, sources: c.sources, accepted, passed, failed, unavailable: tables ? [] : [LINEAR_MAP] });
  }
  if (physOffset !== undefined) proof.push(LINEAR_MAP);
  else if (!tables && viPhysOffset !== undefined) {
    // no usable tables: the guest's own value stands, but unproven
    notes.push('no usable translation tables: NUMBER(PHYS_OFFSET) is taken as written');
  }
  if (vaBits !== undefined && viVaBits !== undefined && BigInt(vaBits) !== viVaBits) {
    const t = t1sz !== undefined ? `TCR_EL1_T1SZ ${hex64(t1sz)} gives ${vaBitsActual}` : 'no TCR_EL1_T1SZ';
    warnings.push(warning('VMCOREINFO_DISAGREES', `VMCOREINFO NUMBER(VA_BITS)=${viVaBits} fails its check (the linear map does not translate through the tables with it; ${t}); the linear map agrees with VA_BITS ${vaBits}`));
  }
  vaBits ??= Number(viVaBits ?? BigInt(vaBitsActual));
  const kernelOffsetWarning = checkKernelOffset(vi.kernelOffset, stext, vaBits, release);
  if (kernelOffsetWarning) warnings.push(kernelOffsetWarning);

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
    release,
    verdict,
    candidates: resultCands,
    levels: tables?.levels ?? 0,
    ...(tables ? { pgd: tables.root, tablesRoot: tables.root, tableLevels: tables.levels } : {}),
    ...(layout ? { layout } : {}),
    granule,
    lpa2,
    notes,
    warnings,
  };
}

/** KIMAGE_VADDR (the link address of _text) is MODULES_END = _PAGE_END(VA_BITS_MIN) + MODULES_VSIZE: 128 MiB before Linux 6.5, 2 GiB since (arch/arm64/include/asm/memory.h). */
const MODULES_VSIZES = [128n << 20n, 2n << 30n];
/** _stext lies less than this above _text (the image header and head text, arch/arm64/kernel/vmlinux.lds.S). */
const STEXT_SLACK = 2n << 20n;

/**
 * Check VMCOREINFO's KERNELOFFSET (kaslr_offset(): the runtime _text − KIMAGE_VADDR) against the
 * proven image: _stext − KERNELOFFSET must be the link address of _stext, just above KIMAGE_VADDR.
 * @param kernelOffset KERNELOFFSET (bytes); @param stext SYMBOL(_stext) (virtual address);
 * @param vaBits the proven VA_BITS; @param release the release in memory (picks KIMAGE_VADDR for
 * the message). @returns a warning naming both values, or undefined when it
 * agrees or cannot be checked. Source: arch/arm64/include/asm/memory.h (KIMAGE_VADDR,
 * kaslr_offset), arch/arm64/kernel/crash_core.c / vmcore_info.c.
 */
export function checkKernelOffset(kernelOffset: bigint | undefined, stext: bigint | undefined, vaBits: number, release?: string): Warning | undefined {
  if (kernelOffset === undefined || stext === undefined) return undefined;
  const vaBitsMin = Math.min(vaBits, 48);
  const pageEnd = u64(-(1n << BigInt(vaBitsMin - 1)));
  const kimageVaddrs = MODULES_VSIZES.map((m) => u64(pageEnd + m));
  const link = u64(stext - kernelOffset);
  if (kimageVaddrs.some((k) => u64(link - k) < STEXT_SLACK)) return undefined;
  // the release in memory says which KIMAGE_VADDR the kernel was linked at
  const m = release !== undefined ? /^(\d+)\.(\d+)/.exec(release) : null;
  const which = m ? [Number(m[1]) * 1000 + Number(m[2]) >= 6005 ? kimageVaddrs[1]! : kimageVaddrs[0]!] : kimageVaddrs;
  const gives = which.map((k) => `${hex64(u64(stext - k))} (KIMAGE_VADDR ${hex64(k)})`).join(' or ');
  return warning('VMCOREINFO_DISAGREES', `VMCOREINFO KERNELOFFSET=${hex64(kernelOffset)} disagrees with the proven kernel image: _stext ${hex64(stext)} − KERNELOFFSET = ${hex64(link)} is not the link address of _stext (within 2 MiB above KIMAGE_VADDR); the image gives _stext − KIMAGE_VADDR = ${gives}`);
}

/**
 * The proven layout written into a VMCOREINFO text: NUMBER(kimage_voffset), NUMBER(VA_BITS) and
 * NUMBER(PHYS_OFFSET) lines whose value differs from the proven location are rewritten in the
 * kernel's own format (`0x%llx`, `%llu`; arch/arm64/kernel/crash_core.c, vmcore_info.c since
 * 6.10). Only values the location proved through the translation tables are written: the
 * layout must exist and PHYS_OFFSET must have passed LINEAR_MAP_AGREES (a VA_BITS that passes
 * its check stays as written, e.g. 52 on 48-bit hardware). Lines are kept in order; a key
 * VMCOREINFO does not have is not added.
 * @returns the corrected text and one "KEY old -> new" line per change, or undefined when
 *   nothing differs or nothing was proven.
 */
export function correctAarch64Vmcoreinfo(text: string, loc: Aarch64Location): { text: string; changes: string[] } | undefined {
  const l = loc.layout;
  if (!l || loc.verdict === 'cannot prove' || loc.value === undefined || !hasStep(loc.proof, 'LINEAR_MAP_AGREES')) return undefined;
  const proven: Record<string, { value: bigint; format: (v: bigint) => string }> = {
    'NUMBER(kimage_voffset)': { value: u64(l.kimageVoffset), format: (v) => '0x' + v.toString(16) },
    'NUMBER(VA_BITS)': { value: BigInt(l.vaBits), format: (v) => v.toString(10) },
    'NUMBER(PHYS_OFFSET)': { value: u64(l.physOffset), format: (v) => '0x' + v.toString(16) },
  };
  const changes: string[] = [];
  const lines = text.split('\n').map((line) => {
    const eq = line.indexOf('=');
    const want = eq > 0 ? proven[line.slice(0, eq)] : undefined;
    if (!want) return line;
    const key = line.slice(0, eq);
    const raw = line.slice(eq + 1).replace(/\0+$/, '').trimEnd();
    const written = parseSigned(raw);
    if (written !== undefined && u64(written) === want.value) return line;
    changes.push(`VMCOREINFO ${key} ${raw} -> ${want.format(want.value)} (proven through the translation tables)`);
    return `${key}=${want.format(want.value)}`;
  });
  return changes.length ? { text: lines.join('\n'), changes } : undefined;
}

/** Whether a VMCOREINFO describes an arm64 kernel (keys only arch/arm64 publishes). */
export function isAarch64Vmcoreinfo(vi: Vmcoreinfo | undefined): boolean {
  return !!vi && vi.has('NUMBER(kimage_voffset)') && (vi.has('NUMBER(PHYS_OFFSET)') || vi.has('NUMBER(VA_BITS)'));
}
