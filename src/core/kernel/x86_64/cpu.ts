/**
 * Per-CPU register sets from a dump's notes: "CORE" NT_PRSTATUS (x86_64 336-byte and i386
 * 144-byte elf_prstatus) and QEMU's "QEMU" CPU-state note (QEMUCPUState, 432 bytes, which also
 * carries control registers, segment bases and IDTR/GDTR).
 * Layouts: reference formats.md §2.4 and §2.6.
 */
import { hex } from '../../hex.js';
import { defineStruct } from '../../struct.js';
import { NT_PRSTATUS, type ElfNote } from '../../format/elf/notes.js';
export { cpuCountOfNotes } from '../../format/elf/notes.js';

/** x86_64 struct elf_prstatus (336 bytes); pr_reg is struct user_regs_struct. */
export const PrstatusX86_64 = defineStruct('elf_prstatus_x86_64', 336, {
  si_signo: { off: 0, type: 'i32' },
  pr_cursig: { off: 12, type: 'u16' },
  pr_pid: { off: 32, type: 'i32' },
  pr_ppid: { off: 36, type: 'i32' },
  r15: { off: 112, type: 'u64' },
  r14: { off: 120, type: 'u64' },
  r13: { off: 128, type: 'u64' },
  r12: { off: 136, type: 'u64' },
  rbp: { off: 144, type: 'u64' },
  rbx: { off: 152, type: 'u64' },
  r11: { off: 160, type: 'u64' },
  r10: { off: 168, type: 'u64' },
  r9: { off: 176, type: 'u64' },
  r8: { off: 184, type: 'u64' },
  rax: { off: 192, type: 'u64' },
  rcx: { off: 200, type: 'u64' },
  rdx: { off: 208, type: 'u64' },
  rsi: { off: 216, type: 'u64' },
  rdi: { off: 224, type: 'u64' },
  orig_rax: { off: 232, type: 'u64' },
  rip: { off: 240, type: 'u64' },
  cs: { off: 248, type: 'u64' },
  rflags: { off: 256, type: 'u64' },
  rsp: { off: 264, type: 'u64' },
  ss: { off: 272, type: 'u64' },
  fs_base: { off: 280, type: 'u64' },
  gs_base: { off: 288, type: 'u64' },
  ds: { off: 296, type: 'u64' },
  es: { off: 304, type: 'u64' },
  fs: { off: 312, type: 'u64' },
  gs: { off: 320, type: 'u64' },
  pr_fpvalid: { off: 328, type: 'i32' },
});

/** i386 struct elf_prstatus (144 bytes); pr_reg is 17 × u32. */
export const PrstatusI386 = defineStruct('elf_prstatus_i386', 144, {
  si_signo: { off: 0, type: 'i32' },
  pr_cursig: { off: 12, type: 'u16' },
  pr_pid: { off: 24, type: 'i32' },
  pr_ppid: { off: 28, type: 'i32' },
  ebx: { off: 72, type: 'u32' },
  ecx: { off: 76, type: 'u32' },
  edx: { off: 80, type: 'u32' },
  esi: { off: 84, type: 'u32' },
  edi: { off: 88, type: 'u32' },
  ebp: { off: 92, type: 'u32' },
  eax: { off: 96, type: 'u32' },
  ds: { off: 100, type: 'u32' },
  es: { off: 104, type: 'u32' },
  fs: { off: 108, type: 'u32' },
  gs: { off: 112, type: 'u32' },
  orig_eax: { off: 116, type: 'u32' },
  eip: { off: 120, type: 'u32' },
  cs: { off: 124, type: 'u32' },
  eflags: { off: 128, type: 'u32' },
  esp: { off: 132, type: 'u32' },
  ss: { off: 136, type: 'u32' },
  pr_fpvalid: { off: 140, type: 'i32' },
});

const seg = (off: number) => ({ off, type: 'u64' as const });

/** QEMUCPUState (qemu target/i386/arch_dump.c), version 1, 432 bytes. Segment bases at +16. */
export const QemuCpuState = defineStruct('QEMUCPUState', 432, {
  version: { off: 0, type: 'u32' },
  size: { off: 4, type: 'u32' },
  rax: { off: 8, type: 'u64' },
  rbx: { off: 16, type: 'u64' },
  rcx: { off: 24, type: 'u64' },
  rdx: { off: 32, type: 'u64' },
  rsi: { off: 40, type: 'u64' },
  rdi: { off: 48, type: 'u64' },
  rsp: { off: 56, type: 'u64' },
  rbp: { off: 64, type: 'u64' },
  r8: { off: 72, type: 'u64' },
  r9: { off: 80, type: 'u64' },
  r10: { off: 88, type: 'u64' },
  r11: { off: 96, type: 'u64' },
  r12: { off: 104, type: 'u64' },
  r13: { off: 112, type: 'u64' },
  r14: { off: 120, type: 'u64' },
  r15: { off: 128, type: 'u64' },
  rip: { off: 136, type: 'u64' },
  rflags: { off: 144, type: 'u64' },
  cs: { off: 152, type: 'u32' },
  ds: { off: 176, type: 'u32' },
  es: { off: 200, type: 'u32' },
  fs: { off: 224, type: 'u32' },
  gs: { off: 248, type: 'u32' },
  ss: { off: 272, type: 'u32' },
  fs_base: seg(224 + 16),
  gs_base: seg(248 + 16),
  ldt_base: seg(296 + 16),
  tr_base: seg(320 + 16),
  gdt_limit: { off: 344 + 4, type: 'u32' },
  gdt_base: seg(344 + 16),
  idt_limit: { off: 368 + 4, type: 'u32' },
  idt_base: seg(368 + 16),
  cr0: { off: 392, type: 'u64' },
  cr2: { off: 408, type: 'u64' },
  cr3: { off: 416, type: 'u64' },
  cr4: { off: 424, type: 'u64' },
});

/** QEMU ≥ 5.x appends kernel_gs_base (KERNEL_GS_BASE MSR), size 440, version still 1. */
export const QemuCpuStateKgs = defineStruct('QEMUCPUState.kernel_gs_base', 440, {
  kernel_gs_base: { off: 432, type: 'u64' },
});

export type CpuSource = 'NT_PRSTATUS' | 'QEMU';

/** One CPU's registers from one note. Register values are bigint; absent ones are undefined. */
export interface CpuRegisters {
  /** Position of the note among the notes of its source (0-based). Not a CPU number. */
  index: number;
  /**
   * The CPU number, only when the dump proves it (`cpuEvidence` says how), else null. The
   * kernel writes one note per CPU that saved its registers and /proc/vmcore drops the empty
   * ones (fs/proc/vmcore.c merge_note_headers_elf64), so a note's position is not its CPU.
   */
  cpu: number | null;
  cpuEvidence: string | null;
  source: CpuSource;
  arch: 'x86_64' | 'i386' | 'aarch64';
  /** NT_PRSTATUS pr_pid (the task's pid for the kernel; cpu index + 1 for QEMU). */
  pid?: number;
  /**
   * True when `pid` is the pid of the task that ran on that CPU (kernel-written notes:
   * kernel/crash_core.c crash_save_cpu sets pr_pid = current->pid, 0 for an idle task).
   * False for QEMU-written NT_PRSTATUS notes, whose pr_pid is the vCPU index + 1
   * (qemu target/i386/arch_dump.c).
   */
  pidIsTask: boolean;
  rip?: bigint; rsp?: bigint; rbp?: bigint; rflags?: bigint;
  rax?: bigint; rbx?: bigint; rcx?: bigint; rdx?: bigint; rsi?: bigint; rdi?: bigint;
  r8?: bigint; r9?: bigint; r10?: bigint; r11?: bigint; r12?: bigint; r13?: bigint; r14?: bigint; r15?: bigint;
  origRax?: bigint;
  cs?: bigint; ss?: bigint; ds?: bigint; es?: bigint; fs?: bigint; gs?: bigint;
  fsBase?: bigint; gsBase?: bigint; kernelGsBase?: bigint;
  cr0?: bigint; cr2?: bigint; cr3?: bigint; cr4?: bigint;
  gdtBase?: bigint; idtBase?: bigint; idtLimit?: number;
  /** aarch64: program counter, stack pointer, PSTATE, frame pointer (x29), link register (x30), x0..x30. */
  pc?: bigint; sp?: bigint; pstate?: bigint; fp?: bigint; lr?: bigint;
  x?: readonly bigint[];
}

/** CR4.LA57: 5-level paging. */
export const CR4_LA57 = 1n << 12n;

/**
 * Parse every NT_PRSTATUS and QEMU CPU-state note. Notes whose size matches no known layout
 * are skipped (listed in `skipped`), never fatal.
 *
 * CPU numbers are set only where the notes prove them (see `CpuRegisters.cpu`):
 *  - QEMU writes, for every vCPU in cpu_index order, one NT_PRSTATUS with pr_pid = index + 1
 *    and one QEMU CPU-state note (qemu target/i386/arch_dump.c, dump/dump.c): when the
 *    NT_PRSTATUS pids are exactly 1..n and the QEMU notes number n, note i is vCPU i, and the
 *    NT_PRSTATUS pids are vCPU numbers, not tasks;
 *  - a machine with one CPU (`opts.nrCpus` 1, e.g. the kdump header's nr_cpus) and one note.
 * Kernel-written notes otherwise carry no CPU number: match them to a task by pid
 * (`registersOfTask`), or to CPUs with the per-CPU current task (`assignCpus`).
 */
export function parseCpuNotes(notes: readonly ElfNote[], littleEndian = true, opts: { nrCpus?: number } = {}): { cpus: CpuRegisters[]; skipped: string[] } {
  const cpus: CpuRegisters[] = [];
  const skipped: string[] = [];
  let nPr = 0;
  let nQemu = 0;
  for (const n of notes) {
    if (n.name === 'CORE' && n.type === NT_PRSTATUS) {
      const cpu = nPr++;
      if (n.desc.length === PrstatusX86_64.size) {
        const r = PrstatusX86_64.read(n.desc, 0, littleEndian);
        cpus.push({
          index: cpu, cpu: null, cpuEvidence: null, pidIsTask: true, source: 'NT_PRSTATUS', arch: 'x86_64', pid: r.pr_pid,
          rip: r.rip, rsp: r.rsp, rbp: r.rbp, rflags: r.rflags,
          rax: r.rax, rbx: r.rbx, rcx: r.rcx, rdx: r.rdx, rsi: r.rsi, rdi: r.rdi,
          r8: r.r8, r9: r.r9, r10: r.r10, r11: r.r11, r12: r.r12, r13: r.r13, r14: r.r14, r15: r.r15,
          origRax: r.orig_rax, cs: r.cs, ss: r.ss, ds: r.ds, es: r.es, fs: r.fs, gs: r.gs,
          fsBase: r.fs_base, gsBase: r.gs_base,
        });
      } else if (n.desc.length === PrstatusI386.size) {
        const r = PrstatusI386.read(n.desc, 0, littleEndian);
        const b = BigInt;
        cpus.push({
          index: cpu, cpu: null, cpuEvidence: null, pidIsTask: true, source: 'NT_PRSTATUS', arch: 'i386', pid: r.pr_pid,
          rip: b(r.eip), rsp: b(r.esp), rbp: b(r.ebp), rflags: b(r.eflags),
          rax: b(r.eax), rbx: b(r.ebx), rcx: b(r.ecx), rdx: b(r.edx), rsi: b(r.esi), rdi: b(r.edi),
          origRax: b(r.orig_eax), cs: b(r.cs), ss: b(r.ss), ds: b(r.ds), es: b(r.es), fs: b(r.fs), gs: b(r.gs),
        });
      } else {
        skipped.push(`NT_PRSTATUS note ${cpu}: unknown size ${n.desc.length}`);
      }
    } else if (n.name === 'QEMU' && n.type === 0) {
      const cpu = nQemu++;
      if (n.desc.length < QemuCpuState.size) {
        skipped.push(`QEMU CPU-state note ${cpu}: ${n.desc.length} bytes, expected ${QemuCpuState.size}`);
        continue;
      }
      const r = QemuCpuState.read(n.desc, 0, littleEndian);
      if (r.version !== 1 || r.size < QemuCpuState.size || r.size > n.desc.length) {
        skipped.push(`QEMU CPU-state note ${cpu}: version ${r.version}, size ${r.size} (expected version 1, size 432 or more)`);
        continue;
      }
      const b = BigInt;
      cpus.push({
        index: cpu, cpu: null, cpuEvidence: null, pidIsTask: false, source: 'QEMU', arch: 'x86_64',
        rip: r.rip, rsp: r.rsp, rbp: r.rbp, rflags: r.rflags,
        rax: r.rax, rbx: r.rbx, rcx: r.rcx, rdx: r.rdx, rsi: r.rsi, rdi: r.rdi,
        r8: r.r8, r9: r.r9, r10: r.r10, r11: r.r11, r12: r.r12, r13: r.r13, r14: r.r14, r15: r.r15,
        cs: b(r.cs), ss: b(r.ss), ds: b(r.ds), es: b(r.es), fs: b(r.fs), gs: b(r.gs),
        fsBase: r.fs_base, gsBase: r.gs_base,
        cr0: r.cr0, cr2: r.cr2, cr3: r.cr3, cr4: r.cr4,
        gdtBase: r.gdt_base, idtBase: r.idt_base, idtLimit: r.idt_limit,
        ...(r.size >= QemuCpuStateKgs.size ? { kernelGsBase: QemuCpuStateKgs.read(n.desc, 0, littleEndian).kernel_gs_base } : {}),
      });
    }
  }
  numberCpus(cpus, opts.nrCpus);
  return { cpus, skipped };
}

function numberCpus(cpus: CpuRegisters[], nrCpus: number | undefined): void {
  const pr = cpus.filter((c) => c.source === 'NT_PRSTATUS');
  const qemu = cpus.filter((c) => c.source === 'QEMU');
  if (qemu.length > 0 && (pr.length === 0 || (pr.length === qemu.length && pr.every((c, i) => c.pid === i + 1)))) {
    for (const c of qemu) {
      c.cpu = c.index;
      c.cpuEvidence = 'QEMU writes one CPU-state note per vCPU, in vCPU order';
    }
    for (const c of pr) {
      c.cpu = c.index;
      c.pidIsTask = false;
      c.cpuEvidence = 'QEMU-written NT_PRSTATUS: pr_pid is the vCPU number + 1';
    }
    return;
  }
  if (nrCpus === 1 && pr.length === 1 && qemu.length === 0) {
    pr[0]!.cpu = 0;
    pr[0]!.cpuEvidence = 'the only CPU (nr_cpus 1)';
  }
}

/** How a note is named to a reader: "cpu N" when its CPU is known, else its position and pid. */
export function cpuLabel(c: CpuRegisters): string {
  if (c.cpu !== null) return `cpu ${c.cpu}`;
  return `note ${c.index}${c.pid !== undefined && c.pidIsTask ? `, pid ${c.pid}` : ''}`;
}

/**
 * The registers of the task with `pid`: the kernel-written NT_PRSTATUS note whose pr_pid is
 * `pid`. Only pid > 0 identifies a task (every idle task has pid 0), and only when exactly one
 * note matches. Undefined when no note, or more than one, matches.
 */
export function registersOfTask(cpus: readonly CpuRegisters[], pid: number): CpuRegisters | undefined {
  if (!(pid > 0)) return undefined;
  const m = cpus.filter((c) => c.source === 'NT_PRSTATUS' && c.pidIsTask && c.pid === pid);
  return m.length === 1 ? m[0] : undefined;
}

/** The registers of CPU `cpu`, when a note is known to be that CPU's (NT_PRSTATUS preferred). */
export function registersOfCpu(cpus: readonly CpuRegisters[], cpu: number): CpuRegisters | undefined {
  return cpus.find((c) => c.cpu === cpu && c.source === 'NT_PRSTATUS') ?? cpus.find((c) => c.cpu === cpu);
}

/** What the kernel says ran on one CPU: its current task's pid, and optionally that task's stack. */
export interface PerCpuTask {
  cpu: number;
  /** pid of the CPU's current task (0 for its idle task). */
  pid: number;
  /** The task's kernel stack [stackStart, stackEnd) (task_struct.stack, THREAD_SIZE), if known. */
  stackStart?: bigint;
  stackEnd?: bigint;
}

/**
 * Give kernel-written notes their CPU numbers from the per-CPU current task (read from memory
 * with symbols: x86_64 `pcpu_hot.current_task` or `current_task`, plus `__per_cpu_offset`).
 * A note is assigned a CPU when exactly one CPU runs a task with its pr_pid (pid > 0), or, for
 * any pid, when its RSP lies on exactly one candidate CPU's task stack. Notes already numbered
 * (QEMU) are returned unchanged. Returns new objects; the input is not modified.
 */
export function assignCpus(cpus: readonly CpuRegisters[], perCpu: readonly PerCpuTask[]): CpuRegisters[] {
  const taken = new Set(cpus.filter((c) => c.cpu !== null).map((c) => c.cpu));
  return cpus.map((c) => {
    if (c.cpu !== null || c.source !== 'NT_PRSTATUS' || !c.pidIsTask || c.pid === undefined) return { ...c };
    let cand = perCpu.filter((p) => p.pid === c.pid && !taken.has(p.cpu));
    let how = `pr_pid ${c.pid} is the current task of that CPU only`;
    if (cand.length !== 1 || c.pid === 0) {
      const rsp = c.rsp;
      const onStack = rsp === undefined ? [] : cand.filter((p) => p.stackStart !== undefined && p.stackEnd !== undefined && rsp >= p.stackStart && rsp < p.stackEnd);
      cand = onStack;
      how = `RSP on the stack of that CPU's current task (pid ${c.pid})`;
    }
    if (cand.length !== 1) return { ...c };
    taken.add(cand[0]!.cpu);
    return { ...c, cpu: cand[0]!.cpu, cpuEvidence: how };
  });
}

/** JSON-safe form: 64-bit values as 0x hex strings. */
export function cpuToJSON(c: CpuRegisters): Record<string, unknown> {
  const o: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(c)) {
    o[k] = typeof v === 'bigint' ? hex(v) : Array.isArray(v) ? v.map((x) => (typeof x === 'bigint' ? hex(x) : x)) : v;
  }
  return o;
}
