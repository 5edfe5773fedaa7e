/**
 * What an architecture provides to the kernel analysis: its register notes, where the kernel
 * image sits in physical memory (with proof), kernel virtual → physical translation, and the
 * register state an unwinder starts from. Arch-neutral kernel code (VMCOREINFO, dmesg, utsname,
 * the memory-section walk) lives beside this file; each architecture's code lives in its own
 * folder (x86_64/, aarch64/) and implements this interface.
 */
import { VmcoreError } from '../errors.js';
import type { Warning } from '../warnings.js';
import type { ElfNote } from '../format/elf/notes.js';
import type { PhysicalMemory } from '../dump.js';
import type { Vmcoreinfo } from './vmcoreinfo.js';
import type { KernelTypes } from './btf/reader.js';
import type { ModuleList } from './modules.js';
import type { ExceptionFrame, StackRange, StopReason, UnwindFrame } from './unwind.js';

/** Kernel virtual memory access for one dump. */
export interface KernelTranslator {
  /** Physical address of one kernel virtual address; throws VmcoreError ADDRESS_TRANSLATION. */
  virtToPhys(va: bigint): Promise<number>;
  /** `length` bytes of kernel virtual memory, each mapping translated on its own (readVirtMapped); `into` as readPhys takes it. */
  readVirt(mem: PhysicalMemory, va: bigint, length: number, into?: Uint8Array): Promise<Uint8Array>;
}

/** Where a kernel virtual address lies: its physical address, and the bytes from it to the end of the mapping (page or block) that holds it. */
export interface VirtMapping {
  pa: number;
  span: number;
}

/**
 * `length` bytes of kernel virtual memory from `va` (at most 1 GiB): each mapping is translated
 * once through `mappingAt`, and consecutive mappings that are contiguous in physical memory too
 * are read with one `mem.readPhys` (so a buffer across non-contiguous physical pages reads
 * correctly, and a vmemmap span inside one 2 MiB page costs one walk and one read). When one
 * piece covers the read, readPhys's buffer (the caller's, see PhysicalMemory) is returned as is;
 * `into` goes to that one readPhys (ReadPhysOptions.into: the result may be a view of it).
 * @throws VmcoreError OUT_OF_BOUNDS for a bad length; what `mappingAt` throws (ADDRESS_TRANSLATION)
 *         and what `mem.readPhys` throws (PAGE_NOT_PRESENT, ...)
 */
export async function readVirtMapped(mem: PhysicalMemory, va: bigint, length: number, mappingAt: (va: bigint) => Promise<VirtMapping>, file?: string, into?: Uint8Array): Promise<Uint8Array> {
  if (!Number.isSafeInteger(length) || length < 0 || length > 1 << 30) {
    throw new VmcoreError('OUT_OF_BOUNDS', `virtual read of ${length} bytes (max 1 GiB)`, { ...(file !== undefined ? { file } : {}), field: 'length' });
  }
  let out: Uint8Array | undefined;
  let done = 0;
  while (done < length) {
    const { pa, span } = await mappingAt(BigInt.asUintN(64, va + BigInt(done)));
    let n = Math.min(span, length - done);
    while (done + n < length) {
      const next = await mappingAt(BigInt.asUintN(64, va + BigInt(done + n)));
      if (next.pa !== pa + n) break;
      n += Math.min(next.span, length - done - n);
    }
    if (n === length) return mem.readPhys(pa, n, into ? { into } : undefined);
    const bytes = await mem.readPhys(pa, n);
    out ??= new Uint8Array(length);
    out.set(bytes, done);
    done += n;
  }
  return out ?? new Uint8Array(0);
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
  }): { translator: KernelTranslator | undefined; warnings: Warning[] };
  /** Where unwinding starts for one CPU's registers; undefined when pc or sp is missing. */
  unwindStart(regs: Regs): UnwindStart | undefined;
  /** The kernel stack unwinder the arch-neutral backtracer (backtrace.ts) drives. */
  createUnwinder(ctx: UnwinderContext<Regs>): Promise<ArchUnwinder<Regs>>;
  /** One pt_regs as the architecture's own register dump prints it (crash's `bt`, __show_regs). */
  formatPtRegs(e: ExceptionFrame, indent?: string): string;
  /**
   * The dump's VMCOREINFO text with the layout values the location proof rejected replaced by
   * the proven ones, in the kernel's own line format, and one change line per value; undefined
   * when every value VMCOREINFO gives agrees (or nothing was proven). Writers (convert, fix)
   * write this text, so that readers taking the layout from VMCOREINFO map the kernel right.
   */
  correctVmcoreinfo?(text: string, location: Location): { text: string; changes: string[] } | undefined;
}

/** What the arch-neutral backtracer gives an architecture's unwinder. */
export interface UnwinderContext<Regs> {
  /** Kernel virtual memory; throws when unreadable. */
  readVirt(va: bigint, length: number): Promise<Uint8Array>;
  /** The kernel's release (UTS_RELEASE), for layouts BTF does not describe. */
  release: string;
  /** Kernel symbol addresses (kallsyms or a System.map). */
  symbol(name: string): bigint | undefined;
  types: KernelTypes;
  /** Every CPU's registers from the dump's notes. */
  cpus: readonly Regs[];
  /** The kernel's page size in bytes (VMCOREINFO PAGESIZE), when known. */
  pageSize?: number;
  /** The pointer-authentication bits of return addresses (arm64 NUMBER(KERNELPACMASK)), when known. */
  pacMask?: bigint;
  /** Kernel or module text (the symbol ranges and what the unwinder itself covers). */
  isText(pc: bigint): boolean;
  /** The start address of the function holding `pc`, from the symbols. */
  functionStart(pc: bigint): bigint | undefined;
  /** Where the unwinder reports what is missing (shown with the backtraces). */
  warnings: Warning[];
}

/** The task an unwinder walks: task_struct address, pid, its stack and saved stack pointer. */
export interface UnwindTask {
  task: bigint;
  pid: number;
  /** task_struct.stack */
  stackBase: bigint;
  /** The saved stack pointer at {@link ArchUnwinder.threadSpPath}. */
  threadSp: bigint;
}

/** One task's walk, before symbolization. */
export interface ArchWalk {
  frames: UnwindFrame[];
  exceptionFrames: ExceptionFrame[];
  stop: StopReason;
  stopDetail: string;
  /** The user-mode program counter and stack pointer at the entry from user mode, by the architecture's names. */
  user?: Readonly<Record<string, bigint>>;
  /** Where the starting state came from: the CPU's registers or the saved state of a sleeping task. */
  start: 'cpu registers' | 'inactive_task_frame' | 'cpu_context' | 'none';
  /** Set when no walk was possible (the starting state was unreadable). */
  error?: string;
}

/**
 * An architecture's kernel stack unwinder: the stack sizes, where a CPU's current task is kept,
 * the per-CPU IRQ/exception stacks, the starting state of a running or sleeping task and the walk.
 * The arch-neutral parts (task list, per-CPU offsets, module text, symbols, results) live in
 * backtrace.ts.
 */
export interface ArchUnwinder<Regs> {
  /** The task_struct member holding a sleeping task's saved stack pointer (x86_64 thread.sp). */
  readonly threadSpPath: string;
  /**
   * Read each CPU's current task from the runqueue (rq.curr) instead of the per-CPU `current`
   * variable (arm64 keeps current in sp_el0, which no per-CPU variable mirrors).
   */
  readonly currentFromRunqueue: boolean;
  /** A task's stack: [stack, stack + THREAD_SIZE). */
  taskStack(stackBase: bigint): StackRange;
  /** Text the unwinder's own data covers beyond the symbols' text ranges (x86_64: the kernel ORC table). */
  coversText(pc: bigint): boolean;
  /** The modules' own unwind data (x86_64: each module's ORC tables). */
  loadModules(list: ModuleList): Promise<void>;
  /**
   * The IRQ and exception stacks of one CPU. `perCpu(va)` reads the u64 of a per-CPU variable at
   * symbol address `va` for this CPU (undefined when unreadable or `va` is undefined); `offset`
   * is the CPU's __per_cpu_offset.
   */
  cpuStacks(perCpu: (va: bigint | undefined) => Promise<bigint | undefined>, offset: bigint): Promise<StackRange[]>;
  /**
   * Walk one task: from `regs` (the CPU registers of a running task) or else the task's saved
   * state. `stacks` holds the task's stack first, then its CPU's stacks. Never throws for bad
   * memory: the reason is in `stop` / `error`.
   */
  unwind(task: UnwindTask, regs: Regs | undefined, stacks: readonly StackRange[], opts: { maxFrames?: number }): Promise<ArchWalk>;
}
