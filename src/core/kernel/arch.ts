/**
 * What an architecture provides to the kernel analysis: its register notes, where the kernel
 * image sits in physical memory (with proof), kernel virtual → physical translation, and the
 * register state an unwinder starts from. Arch-neutral kernel code (VMCOREINFO, dmesg, utsname,
 * the memory-section walk) lives beside this file; each architecture's code lives in its own
 * folder (x86_64/, aarch64/) and implements this interface.
 */
import type { ElfNote } from '../format/elf/notes.js';
import type { PhysicalMemory } from '../dump.js';
import type { Vmcoreinfo } from './vmcoreinfo.js';

/** Kernel virtual memory access for one dump. */
export interface KernelTranslator {
  /** Physical address of one kernel virtual address; throws VmcoreError ADDRESS_TRANSLATION. */
  virtToPhys(va: bigint): Promise<number>;
  /** `length` bytes of kernel virtual memory, each page translated on its own. */
  readVirt(mem: PhysicalMemory, va: bigint, length: number): Promise<Uint8Array>;
}

/** The registers an unwinder starts from on one CPU (or one task): program counter, stack pointer, frame pointer. */
export interface UnwindStart {
  /** The CPU, only when the dump proves it (see CpuRegisters.cpu); else null. */
  cpu: number | null;
  /** The pid of the task the registers belong to, when the note says so (kernel NT_PRSTATUS). */
  pid?: number;
  pc: bigint;
  sp: bigint;
  fp?: bigint;
  /** Every register the note carried, by the architecture's own names. */
  regs: Readonly<Record<string, bigint>>;
}

/** Inputs for locating the kernel image and building the translator. */
export interface KernelLocationInput<Regs> {
  mem: PhysicalMemory;
  vmcoreinfo?: Vmcoreinfo;
  /** The value the file's header claims (kdump sub-header phys_base), if any. */
  headerPhysBase?: bigint;
  /** ELF PT_LOADs (paddr, vaddr). */
  segments?: readonly { paddr: number; vaddr: bigint }[];
  cpus?: readonly Regs[];
  file?: string;
  /** Allow an expensive brute-force search when nothing else proves the location. */
  bruteForce?: boolean;
}

/**
 * One architecture. `Regs` is its per-CPU register set, `Location` its proof of where the
 * kernel sits (x86_64: the phys_base result).
 */
export interface KernelArch<Regs, Location> {
  /** The ELF machine name used by Dump.arch ('x86_64', 'aarch64'). */
  readonly name: string;
  /** Register sets from the dump's notes; notes of unknown layout are listed in `skipped`. */
  parseCpuNotes(notes: readonly ElfNote[], littleEndian: boolean, opts?: { nrCpus?: number }): { cpus: Regs[]; skipped: string[] };
  /** Find and prove the kernel's physical location; never throws for bad memory contents. */
  findKernelLocation(input: KernelLocationInput<Regs>): Promise<Location>;
  /** Kernel VA → PA for this dump, or undefined (with warnings) when nothing allows it. */
  createTranslator(input: {
    mem: PhysicalMemory;
    vmcoreinfo: Vmcoreinfo | undefined;
    location: Location;
    cpus: readonly Regs[];
    file?: string;
  }): { translator: KernelTranslator | undefined; warnings: string[] };
  /** Where unwinding starts for one CPU's registers; undefined when pc or sp is missing. */
  unwindStart(regs: Regs): UnwindStart | undefined;
}
