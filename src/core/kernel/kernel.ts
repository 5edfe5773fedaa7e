/**
 * Kernel awareness for x86_64 dumps: VMCOREINFO (from the file, or recovered from memory), the
 * proven phys_base, CPU registers, utsname read from memory, and kernel virtual memory access.
 * This is what `info`, `dmesg`, `read --virt` and `fix` build on.
 */
import { warning, type Warning } from '../warnings.js';
import { VmcoreError, isVmcoreError } from '../errors.js';
import { LossLog } from '../loss.js';
import type { Dump, PhysicalMemory } from '../dump.js';
import type { ElfNote } from '../format/elf/notes.js';
import { findVmcoreinfoNote } from '../format/elf/notes.js';
import { Vmcoreinfo } from './vmcoreinfo.js';
import { hex64 } from '../hex.js';
import { hasStep } from './proof.js';
import { cpuToJSON, parseCpuNotes, type CpuRegisters } from './x86_64/cpu.js';
import { recoverVmcoreinfo, type RecoveredVmcoreinfo, type RecoverOptions } from './recover.js';
import { findPhysBase, physBaseToJSON, type PhysBaseResult } from './x86_64/physbase.js';
import { decodeUtsname, NEW_UTSNAME_SIZE, type Utsname } from './utsname.js';
import { recordingDump } from './recording.js';
import { textToPhys } from './x86_64/addrspace.js';
import { createX86_64Translator } from './x86_64/arch.js';
import type { KernelTranslator } from './arch.js';
import { NT_PRSTATUS } from '../format/elf/notes.js';
import { PrstatusAarch64, parseAarch64CpuNotes } from './aarch64/cpu.js';
import { findAarch64Location, isAarch64Vmcoreinfo } from './aarch64/location.js';
import { createAarch64Translator } from './aarch64/arch.js';
import { loadKernelSymbols, type KernelSymbols } from './kallsyms.js';
import { loadKernelBtf, noBtf } from './btf/kernel-btf.js';
import { findModulesHead, listModules, moduleSymbolTables, type ModuleList } from './modules.js';

export type VmcoreinfoSource = 'note' | 'kdump header' | `memory scan at 0x${string}` | 'none';

export interface KernelInfo {
  /** The kernel's architecture ('x86_64', 'aarch64'), inferred when the file does not say. */
  arch: string;
  vmcoreinfo: Vmcoreinfo | undefined;
  vmcoreinfoSource: VmcoreinfoSource;
  /** Every VMCOREINFO copy found by the memory scan (when one was run), best first. */
  recovered: RecoveredVmcoreinfo[];
  physBase: PhysBaseResult;
  cpus: CpuRegisters[];
  /** utsname read from memory through the proven mapping (init_uts_ns). */
  utsname: Utsname | undefined;
  /** CRASHTIME from VMCOREINFO (seconds since the epoch), when the kernel crashed. */
  crashTime: number | undefined;
  /** Undefined when neither a proven kernel location nor CPU page tables are available. */
  translator: KernelTranslator | undefined;
  warnings: Warning[];
  /**
   * Read kernel virtual memory (text mapping, direct map, vmalloc ... via page tables). `into`:
   * memory the result may be a view of (PhysicalMemory.readPhys, ReadPhysOptions.into).
   */
  readVirt(va: bigint, length: number, into?: Uint8Array): Promise<Uint8Array>;
  virtToPhys(va: bigint): Promise<number>;
  /**
   * The kernel's symbol table (kallsyms), loaded on the first call and kept (see
   * `loadKernelSymbols`). Rejects with NO_SYMBOLS when the tables cannot be located.
   */
  symbols(): Promise<KernelSymbols>;
  /**
   * The loaded modules: the kernel's `modules` list read through its BTF, with each module's own
   * symbols (see modules.ts `listModules`); read once. Without a kallsyms `modules` symbol
   * (CONFIG_KALLSYMS_ALL unset) the list head is searched for in the kernel image and proven
   * (`findModulesHead`); `symbolSources.modules` says which. Rejects with NO_SYMBOLS (no kallsyms,
   * or no `modules` symbol and none found) or NO_BTF (no vmlinux BTF); a damaged list gives a
   * partial list with warnings.
   */
  modules(): Promise<ModuleList>;
  /**
   * The kernel's symbols plus every module's (`KernelSymbols.withModules`): addresses in a module
   * resolve to `name+off [module]`. When the module list cannot be read, the kernel's symbols
   * alone, with a warning saying why. Rejects as symbols() does.
   */
  symbolsWithModules(): Promise<KernelSymbols>;
  /** JSON-safe summary for `info` (64-bit values as hex strings). */
  summary(): Record<string, unknown>;
}

export interface AnalyzeOptions {
  /** Scan memory for VMCOREINFO when the file has none (default true). */
  recover?: boolean;
  recoverOptions?: RecoverOptions;
  /** Allow the 2 MiB brute-force phys_base search (default true). */
  bruteForce?: boolean;
}

/** The parts of a Dump the analysis uses (so tests can pass SparseMemory plus notes). */
export interface KernelInput extends PhysicalMemory {
  readonly notes: readonly ElfNote[];
  readonly vmcoreinfoText: string | undefined;
  readonly littleEndian?: boolean;
  readonly arch?: string;
  readonly files?: readonly { name: string }[];
  details?: Dump['details'];
}

/**
 * Run the analysis through a recorder and return the page frames it read: the pages a small
 * excerpt fixture of `dump` must keep for the analysis to give the same answer. Further reads
 * through `info.readVirt` (e.g. the kernel log) are recorded too; call `pfns()` again after them.
 */
export async function analyzeKernelRecorded(
  dump: Dump,
  opts: AnalyzeOptions = {},
): Promise<{ info: KernelInfo; pfns: () => number[] }> {
  const { dump: wrapped, recorder } = recordingDump(dump);
  const info = await analyzeKernel(wrapped, opts);
  return { info, pfns: () => recorder.pfns() };
}

/** VMCOREINFO recovery in which an unreadable page is skipped with a warning (src/core/loss.ts). */
async function recoverWithLosses(mem: PhysicalMemory, o: RecoverOptions | undefined, warnings: Warning[]): Promise<RecoveredVmcoreinfo[]> {
  const losses = new LossLog();
  const r = await recoverVmcoreinfo(mem, { ...o, losses });
  warnings.push(...losses.warnings());
  return r;
}

/**
 * Analyse the kernel in a dump: VMCOREINFO (from the file, else recovered by a scan of memory),
 * the architecture, the CPU registers of the notes (NT_PRSTATUS, QEMU's "QEMU" notes), the
 * proven phys_base (x86_64) or PHYS_OFFSET / kimage_voffset (arm64), the kernel's page tables
 * and utsname read from memory (init_uts_ns).
 * @param dump an opened `Dump` (or any `KernelInput`: memory plus notes).
 * @param opts `recover: false` skips the memory scan for VMCOREINFO; `bruteForce: false` skips
 *   the phys_base search in 2 MiB steps.
 * @returns a `KernelInfo`: `readVirt(va, length)` reads kernel virtual memory (bytes),
 *   `symbols()`, `modules()` and `symbolsWithModules()` load kallsyms and the module list on
 *   demand. What cannot be found or proven is a warning (`warnings`, `physBase.verdict`
 *   'cannot prove'), not an error.
 * @throws only the read errors of `dump` that are not page losses (IO, HTTP, DECOMPRESS);
 *   `readVirt` rejects with ADDRESS_TRANSLATION or PAGE_NOT_PRESENT for an address it cannot read.
 * Facts: Documentation/admin-guide/kdump/vmcoreinfo.rst, arch/x86/kernel/head64.c (phys_base),
 * arch/arm64/mm/init.c (memstart_addr), include/linux/utsname.h.
 */
export async function analyzeKernel(dump: KernelInput, opts: AnalyzeOptions = {}): Promise<KernelInfo> {
  const warnings: Warning[] = [];
  const file = dump.files?.[0]?.name;
  const details = dump.details ? await dump.details({ codecs: 'none' }) : undefined;

  let vmcoreinfo: Vmcoreinfo | undefined;
  let source: VmcoreinfoSource = 'none';
  let recovered: RecoveredVmcoreinfo[] = [];
  if (dump.vmcoreinfoText !== undefined && dump.vmcoreinfoText.length > 0) {
    vmcoreinfo = new Vmcoreinfo(dump.vmcoreinfoText);
    source = findVmcoreinfoNote(dump.notes) ? 'note' : 'kdump header';
  }
  // The architecture: the file's, else what the notes and VMCOREINFO say (QEMU writes machine
  // "Unknown" into arm64 kdump headers).
  let arch = kernelArchOf(dump.arch, dump.notes, vmcoreinfo);
  if (arch === undefined && !vmcoreinfo && (opts.recover ?? true)) {
    recovered = await recoverWithLosses(dump, opts.recoverOptions, warnings);
    if (recovered[0]) arch = kernelArchOf(dump.arch, dump.notes, new Vmcoreinfo(recovered[0].text));
  }
  if (arch !== undefined && dump.arch !== arch && dump.arch !== 'unknown' && dump.arch !== 'Unknown' && dump.arch !== '') {
    warnings.push(warning('HEADER_FIELD_IGNORED', `the file names the machine ${JSON.stringify(dump.arch)}, the kernel's VMCOREINFO and CPU notes ${arch}: analysed as ${arch}`));
  }
  if (arch === 'aarch64') return analyzeAarch64(dump, opts, { vmcoreinfo, source, recovered, details, file, warnings });
  const x86_64 = arch === undefined || arch === 'x86_64';
  if (!x86_64) warnings.push(warning('ARCH_UNSUPPORTED', `architecture ${dump.arch}: kernel analysis is implemented for x86_64 and aarch64`));
  const { cpus, skipped } = parseCpuNotes(dump.notes, dump.littleEndian ?? true, details?.nrCpus !== undefined ? { nrCpus: details.nrCpus } : {});
  warnings.push(...skipped.map((s) => warning('CPU_NOTE_SKIPPED', s)));

  const physBaseInput = {
    mem: dump as PhysicalMemory,
    ...(details?.headerPhysBase !== undefined ? { headerPhysBase: details.headerPhysBase } : {}),
    ...(details?.segments ? { segments: details.segments } : {}),
    cpus,
    ...(file ? { file } : {}),
    bruteForce: opts.bruteForce ?? true,
  };

  let physBase: PhysBaseResult | undefined;
  if (!vmcoreinfo && (opts.recover ?? true)) {
    if (recovered.length === 0) recovered = await recoverWithLosses(dump, opts.recoverOptions, warnings);
    // take the best-ranked copy that proves a phys_base; else the best-ranked copy
    for (const r of x86_64 ? recovered.slice(0, 8) : []) {
      const vi = new Vmcoreinfo(r.text);
      const pb = await findPhysBase({ ...physBaseInput, vmcoreinfo: vi, bruteForce: false });
      if (pb.value !== undefined) {
        vmcoreinfo = vi;
        source = r.source as VmcoreinfoSource;
        physBase = pb;
        break;
      }
    }
    if (!vmcoreinfo && recovered[0]) {
      vmcoreinfo = new Vmcoreinfo(recovered[0].text);
      source = recovered[0].source as VmcoreinfoSource;
    }
    if (recovered.length > 1) warnings.push(warning('VMCOREINFO_COPIES', `${recovered.length} VMCOREINFO copies found in memory; using the one at ${source.replace('memory scan at ', '')}`));
  }
  if (!x86_64) {
    // x86_64 page tables and phys_base mean nothing on other architectures: report, do not guess
    const v = vmcoreinfo?.number('phys_base');
    physBase ??= {
      ...(details?.headerPhysBase !== undefined ? { header: details.headerPhysBase } : {}),
      ...(v !== undefined ? { vmcoreinfo: v } : {}),
      verdict: 'cannot prove',
      proof: [],
      sources: [],
      candidates: [],
      levels: 4,
      notes: [`not analysed: architecture ${dump.arch}`],
    };
  }
  physBase ??= await findPhysBase({ ...physBaseInput, ...(vmcoreinfo ? { vmcoreinfo } : {}) });
  if (physBase.verdict === 'header wrong') {
    warnings.push(warning('PHYS_BASE_HEADER_WRONG', `the file's header phys_base ${hex64(physBase.header!)} is wrong; the true value is ${hex64(physBase.value!)}`));
  }
  if (physBase.verdict === 'cannot prove' && x86_64) warnings.push(warning('PHYS_BASE_UNPROVEN', 'phys_base could not be proven; kernel virtual addresses in the text mapping cannot be trusted'));

  // translator: page tables from init_top_pgt when phys_base is proven, else from a CPU's CR3
  const physLimit = dump.maxPfn * dump.pageSize;
  let translator: KernelTranslator | undefined;
  if (x86_64) {
    const t = createX86_64Translator({ mem: dump, vmcoreinfo, location: physBase, cpus, ...(file ? { file } : {}) });
    translator = t.translator;
    warnings.push(...t.warnings);
  }

  // utsname from memory through the proven mapping
  let utsname: Utsname | undefined;
  const uts = vmcoreinfo?.symbol('init_uts_ns');
  const off = vmcoreinfo?.offset('uts_namespace.name');
  if (physBase.value !== undefined && uts !== undefined && off !== undefined) {
    const pa = textToPhys(uts + BigInt(off), physBase.value);
    if (pa + BigInt(NEW_UTSNAME_SIZE) <= BigInt(physLimit)) {
      try {
        utsname = decodeUtsname(await dump.readPhys(Number(pa), NEW_UTSNAME_SIZE));
      } catch (e) {
        if (!isVmcoreError(e)) throw e;
        warnings.push(warning('UTSNAME_UNREADABLE', `utsname: ${e.message}`));
      }
    }
  }

  return buildKernelInfo(dump, { vmcoreinfo, source, recovered, physBase, cpus, utsname, translator, warnings, file });
}

/** The KernelInfo object over a finished analysis (shared by every architecture). */
function buildKernelInfo(
  dump: KernelInput,
  a: {
    vmcoreinfo: Vmcoreinfo | undefined;
    source: VmcoreinfoSource;
    recovered: RecoveredVmcoreinfo[];
    physBase: PhysBaseResult;
    cpus: CpuRegisters[];
    utsname: Utsname | undefined;
    translator: KernelTranslator | undefined;
    warnings: Warning[];
    file: string | undefined;
    arch?: string;
    extra?: Record<string, unknown>;
  },
): KernelInfo {
  const { vmcoreinfo, source, recovered, physBase, cpus, utsname, translator, warnings, file } = a;
  const noTranslator = () =>
    new VmcoreError(
      vmcoreinfo ? 'ADDRESS_TRANSLATION' : 'NO_VMCOREINFO',
      vmcoreinfo
        ? `kernel virtual addresses cannot be translated: ${a.arch === 'aarch64' ? 'kimage_voffset and the translation tables are not proven' : 'phys_base is not proven and no CPU page tables are available'}`
        : 'kernel virtual addresses cannot be translated: no VMCOREINFO in the file or in memory, and no CPU page tables',
      { ...(file ? { file } : {}) },
    );
  let symbols: Promise<KernelSymbols> | undefined;
  let modules: Promise<ModuleList> | undefined;
  let withModules: Promise<KernelSymbols> | undefined;
  const info: KernelInfo = {
    arch: a.arch ?? 'x86_64',
    vmcoreinfo,
    vmcoreinfoSource: source,
    recovered,
    physBase,
    cpus,
    utsname,
    crashTime: vmcoreinfo?.crashTime,
    translator,
    warnings,
    async readVirt(va, length, into) {
      if (!translator) throw noTranslator();
      return translator.readVirt(dump, va, length, into);
    },
    async virtToPhys(va) {
      if (!translator) throw noTranslator();
      return translator.virtToPhys(va);
    },
    symbols() {
      symbols ??= loadKernelSymbols(info, { ...(file ? { file } : {}) });
      return symbols;
    },
    modules() {
      modules ??= (async () => {
        const syms = await info.symbols();
        const kb = await loadKernelBtf(info, { ...(file ? { file } : {}) }).catch((e: unknown) => {
          throw noBtf('the module list', e);
        });
        // kernels without CONFIG_KALLSYMS_ALL: the list head found and proven in the image
        const known = syms.addressOf('modules');
        const warnings: Warning[] = [];
        const from = syms.addressOf('__init_begin') ?? syms.addressOf('_etext');
        const head = known ?? (from !== undefined ? await findModulesHead(kb.types, (va, n) => info.readVirt(va, n), from, warnings) : undefined);
        if (known === undefined && from === undefined) warnings.push(warning('SYMBOLS_UNAVAILABLE', 'modules: no kallsyms symbol, and neither __init_begin nor _etext to search from'));
        if (head === undefined) throw new VmcoreError('NO_SYMBOLS', `the module list needs the kernel symbol \`modules\` (kallsyms): ${warnings.map((w) => w.text).join('; ')}`, { field: 'modules' });
        const list = await listModules(kb.types, (n) => (n === 'modules' ? head : syms.addressOf(n)));
        list.warnings.unshift(...warnings);
        list.symbolSources = { modules: known !== undefined ? 'kallsyms' : 'memory search (modules)' };
        return list;
      })();
      return modules;
    },
    symbolsWithModules() {
      withModules ??= (async () => {
        const syms = await info.symbols();
        try {
          const list = await info.modules();
          return syms.withModules(moduleSymbolTables(list), list.warnings);
        } catch (e) {
          if (!isVmcoreError(e)) throw e;
          return syms.withModules([], [warning('MODULE_UNREADABLE', `module symbols: ${e.message}`)]);
        }
      })();
      return withModules;
    },
    summary() {
      return {
        arch: a.arch ?? 'x86_64',
        vmcoreinfoSource: source,
        osrelease: vmcoreinfo?.osrelease ?? null,
        crashTime: vmcoreinfo?.crashTime ?? null,
        kernelOffset: vmcoreinfo?.kernelOffset === undefined ? null : hex64(vmcoreinfo.kernelOffset),
        physBase: physBaseToJSON(physBase),
        ...(a.extra ?? {}),
        utsname: utsname ?? null,
        cpus: cpus.map(cpuToJSON),
        recoveredCopies: recovered.map((r) => ({ addr: '0x' + r.addr.toString(16), form: r.form, hasCrashTime: r.hasCrashTime, length: r.text.length })),
        warnings,
      };
    },
  };
  return info;
}

/** The kernel's architecture: the file's, else inferred from the CPU notes or VMCOREINFO. */
/**
 * Whether the kernel in `dump` can be analysed: its architecture (kernelArchOf: the file's
 * machine, else what VMCOREINFO and the CPU notes say) is x86_64 or aarch64, or not known (then
 * the analysis tries x86_64 and says what it could not find). A header whose machine string is
 * damaged does not stop it when VMCOREINFO names the architecture. The one test every command
 * makes before analysing (info, bt, convert, fix).
 */
export function kernelAnalysable(dump: { arch: string; notes: readonly ElfNote[]; vmcoreinfoText?: string | undefined }): boolean {
  const vi = dump.vmcoreinfoText ? new Vmcoreinfo(dump.vmcoreinfoText) : undefined;
  const arch = kernelArchOf(dump.arch, dump.notes, vi);
  return arch === undefined || arch === 'x86_64' || arch === 'aarch64';
}

export function kernelArchOf(fileArch: string | undefined, notes: readonly ElfNote[], vi: Vmcoreinfo | undefined): string | undefined {
  if (fileArch === 'x86_64' || fileArch === 'aarch64') return fileArch;
  if (isAarch64Vmcoreinfo(vi)) return 'aarch64';
  if (vi?.has('NUMBER(phys_base)') || vi?.has('SYMBOL(init_top_pgt)')) return 'x86_64';
  if (notes.some((n) => n.name === 'CORE' && n.type === NT_PRSTATUS && n.desc.length === PrstatusAarch64.size)) return 'aarch64';
  if (fileArch && fileArch !== 'unknown' && fileArch !== 'Unknown') return fileArch;
  return undefined;
}

/**
 * aarch64: registers from NT_PRSTATUS, PHYS_OFFSET and kimage_voffset proven (the phys_base
 * slot of the result carries PHYS_OFFSET, which is what the kdump header's phys_base field holds
 * on arm64), translation through swapper_pg_dir, utsname read through it.
 */
async function analyzeAarch64(
  dump: KernelInput,
  opts: AnalyzeOptions,
  s: {
    vmcoreinfo: Vmcoreinfo | undefined;
    source: VmcoreinfoSource;
    recovered: RecoveredVmcoreinfo[];
    details: Awaited<ReturnType<NonNullable<Dump['details']>>> | undefined;
    file: string | undefined;
    warnings: Warning[];
  },
): Promise<KernelInfo> {
  const { details, file, warnings } = s;
  let { vmcoreinfo, source, recovered } = s;
  const { cpus, skipped } = parseAarch64CpuNotes(dump.notes, dump.littleEndian ?? true, details?.nrCpus !== undefined ? { nrCpus: details.nrCpus } : {});
  warnings.push(...skipped.map((s) => warning('CPU_NOTE_SKIPPED', s)));
  if (!vmcoreinfo && (opts.recover ?? true)) {
    if (recovered.length === 0) recovered = await recoverWithLosses(dump, opts.recoverOptions, warnings);
    if (recovered[0]) {
      vmcoreinfo = new Vmcoreinfo(recovered[0].text);
      source = recovered[0].source as VmcoreinfoSource;
    }
    if (recovered.length > 1) warnings.push(warning('VMCOREINFO_COPIES', `${recovered.length} VMCOREINFO copies found in memory; using the one at ${source.replace('memory scan at ', '')}`));
  }
  const loc = await findAarch64Location({
    mem: dump,
    ...(vmcoreinfo ? { vmcoreinfo } : {}),
    ...(details?.headerPhysBase !== undefined ? { headerPhysBase: details.headerPhysBase } : {}),
    ...(details?.segments ? { segments: details.segments } : {}),
    cpus,
    ...(file ? { file } : {}),
  });
  if (loc.verdict === 'header wrong') {
    warnings.push(warning('PHYS_BASE_HEADER_WRONG', `the file's header phys_base (PHYS_OFFSET on arm64) ${hex64(loc.header!)} is wrong; the true value is ${hex64(loc.value!)}`));
  }
  warnings.push(...loc.warnings);
  if (loc.verdict === 'cannot prove') warnings.push(warning('PHYS_BASE_UNPROVEN', 'aarch64: PHYS_OFFSET and kimage_voffset could not be proven; kernel virtual addresses cannot be trusted'));
  const t = createAarch64Translator({ mem: dump, vmcoreinfo, location: loc, cpus, ...(file ? { file } : {}) });
  warnings.push(...t.warnings);
  let utsname: Utsname | undefined;
  const uts = vmcoreinfo?.symbol('init_uts_ns');
  if (t.translator && uts !== undefined && (hasStep(loc.proof, 'UTSNAME_MATCHES') || hasStep(loc.proof, 'UTSNAME_IN_IMAGE'))) {
    try {
      utsname = decodeUtsname(await t.translator.readVirt(dump, uts + BigInt(vmcoreinfo?.offset('uts_namespace.name') ?? 0), NEW_UTSNAME_SIZE));
    } catch (e) {
      if (!isVmcoreError(e)) throw e;
      warnings.push(warning('UTSNAME_UNREADABLE', `utsname: ${e.message}`));
    }
  }
  const layout = loc.layout;
  return buildKernelInfo(dump, {
    vmcoreinfo,
    source,
    recovered,
    physBase: loc,
    cpus,
    utsname,
    translator: t.translator,
    warnings,
    file,
    arch: 'aarch64',
    extra: {
      aarch64: {
        physOffset: layout ? hex64(layout.physOffset) : null,
        kimageVoffset: layout ? hex64(layout.kimageVoffset) : null,
        pageOffset: layout ? hex64(layout.pageOffset) : null,
        vaBits: layout?.vaBits ?? null,
        granule: loc.granule ?? null,
        tableLevels: loc.tableLevels ?? null,
        swapperPgDir: loc.tablesRoot === undefined ? null : '0x' + loc.tablesRoot.toString(16),
        pacMask: layout ? hex64(layout.pacMask) : null,
      },
    },
  });
}
