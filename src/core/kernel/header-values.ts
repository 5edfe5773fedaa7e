/**
 * The values a writer of a dump records in its headers, from the kernel's own memory: the
 * proven phys_base (x86_64; PHYS_OFFSET on arm64), utsname from init_uts_ns, the number of
 * CPUs, the crash time, VMCOREINFO (recovered from memory when the file has none) and the end
 * of the kernel's memory model (above it QEMU dumps firmware ROM, not kernel memory), and the
 * VMCOREINFO with the layout values the location proof rejected replaced by the proven ones
 * (arm64 kimage_voffset, VA_BITS, PHYS_OFFSET: the ELF program headers are derived from it).
 * `convertDump`, `fixDump` and `vmcore dump` write these, so that every path (CLI or library)
 * writes the same header for the same dump.
 */
import type { Utsname } from '../dump.js';
import { cpuCountOfNotes, type ElfNote } from '../format/elf/notes.js';
import type { KernelInfo } from './kernel.js';
import { kernelMemoryEnd } from './memsection.js';
import { kernelArch } from './archs.js';

export interface KernelHeaderValues {
  /** The proven phys_base (verdict not "cannot prove"), else undefined: the writer falls back. */
  physBase?: bigint;
  /** init_uts_ns read through the proven mapping, when it holds a release. */
  utsname?: Utsname;
  /** CPUs: the NT_PRSTATUS notes of the dump (0 when it has none). */
  nrCpus: number;
  /** Crash time (seconds since the epoch) from VMCOREINFO CRASHTIME. */
  crashTime?: number;
  /**
   * A VMCOREINFO note to add: the text recovered from memory when the file carries none (with
   * the corrections of `vmcoreinfoChanges` applied).
   */
  vmcoreinfoNote?: ElfNote;
  /**
   * The file's own VMCOREINFO text with the layout values the kernel's location proof rejected
   * replaced by the proven ones (`KernelArch.correctVmcoreinfo`; aarch64: NUMBER(kimage_voffset),
   * NUMBER(VA_BITS), NUMBER(PHYS_OFFSET)), when it holds any: writers write it in place of the
   * file's note, and derive the ELF program headers (kernelMappings) from it. Undefined when
   * every value agrees, nothing was proven, or the file has no VMCOREINFO.
   */
  vmcoreinfoText?: string;
  /** One line per corrected VMCOREINFO value ("VMCOREINFO KEY old -> new (...)"); empty when none. */
  vmcoreinfoChanges: string[];
  /**
   * One past the last page frame of the kernel's memory model (mem_section), when it is below
   * the dump's max_mapnr: the pages above are firmware (QEMU dumps its ROM there), which
   * makedumpfile cannot re-filter. Undefined when the memory model could not be read.
   */
  memoryEndPfn?: number;
  /** True when the memory model (mem_section) could not be read, so no end is known. */
  memoryModelUnread?: boolean;
}

/**
 * Derive the header values from an analysed kernel (`analyzeKernel`). Inputs: the dump's notes
 * and VMCOREINFO text, its page size and max_mapnr (pages). Reads memory only to find the end
 * of the memory model (mem_section). Never throws for damaged memory: a value it cannot find is
 * left undefined.
 */
export async function kernelHeaderValues(
  dump: { notes: readonly ElfNote[]; vmcoreinfoText: string | undefined; pageSize: number; maxPfn: number },
  kernel: KernelInfo,
): Promise<KernelHeaderValues> {
  const out: KernelHeaderValues = { nrCpus: cpuCountOfNotes(dump.notes), vmcoreinfoChanges: [] };
  const pb = kernel.physBase;
  if (pb.value !== undefined && pb.verdict !== 'cannot prove') out.physBase = pb.value;
  if (kernel.utsname?.release) out.utsname = kernel.utsname;
  if (kernel.crashTime) out.crashTime = kernel.crashTime;
  const text = dump.vmcoreinfoText || kernel.vmcoreinfo?.text;
  const corrected = text ? kernelArch(kernel.arch)?.correctVmcoreinfo?.(text, kernel.physBase) : undefined;
  if (corrected) out.vmcoreinfoChanges = corrected.changes;
  if (dump.vmcoreinfoText) {
    if (corrected) out.vmcoreinfoText = corrected.text;
  } else if (text) out.vmcoreinfoNote = { name: 'VMCOREINFO', type: 0, desc: new TextEncoder().encode(corrected?.text ?? text) };
  const end = await kernelMemoryEnd(kernel, dump.pageSize);
  if (!end) out.memoryModelUnread = true;
  else if (end.endPfn < dump.maxPfn) out.memoryEndPfn = end.endPfn;
  return out;
}
