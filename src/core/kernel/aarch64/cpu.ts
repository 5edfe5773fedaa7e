/**
 * aarch64 register sets from a dump's "CORE" NT_PRSTATUS notes. The kernel (crash_save_cpu) and
 * QEMU (target/arm/arch_dump.c, aarch64_write_elf64_prstatus) both write struct elf_prstatus
 * with pr_reg = struct user_pt_regs { u64 regs[31]; u64 sp; u64 pc; u64 pstate; }.
 * Layout: include/uapi/linux/elfcore.h, arch/arm64/include/uapi/asm/ptrace.h; 392 bytes.
 */
import { defineStruct } from '../../struct.js';
import { NT_PRSTATUS, type ElfNote } from '../../format/elf/notes.js';
import type { CpuRegisters } from '../x86_64/cpu.js';

/** arm64 struct elf_prstatus (392 bytes); pr_reg is user_pt_regs (34 × u64) at 112. */
export const PrstatusAarch64 = defineStruct('elf_prstatus_aarch64', 392, {
  si_signo: { off: 0, type: 'i32' },
  pr_cursig: { off: 12, type: 'u16' },
  pr_pid: { off: 32, type: 'i32' },
  pr_ppid: { off: 36, type: 'i32' },
  pr_reg: { off: 112, type: 'bytes', size: 31 * 8 },
  sp: { off: 360, type: 'u64' },
  pc: { off: 368, type: 'u64' },
  pstate: { off: 376, type: 'u64' },
  pr_fpvalid: { off: 384, type: 'i32' },
});

/** PSTATE.M[3:0]: the exception level and stack the CPU was in (EL1h = 5, EL0t = 0). */
export function pstateMode(pstate: bigint): 'EL0' | 'EL1' | 'EL2' | 'EL3' {
  return (['EL0', 'EL1', 'EL2', 'EL3'] as const)[Number((pstate >> 2n) & 3n)]!;
}

/** NT_PRFPREG: QEMU writes one after each vCPU's NT_PRSTATUS on arm (the kernel's crash notes have none). */
const NT_PRFPREG = 2;

/**
 * Parse every aarch64 NT_PRSTATUS note. A note of another size is listed in `skipped`, never
 * fatal. CPU numbers are set only where the notes prove them (see `CpuRegisters.cpu`):
 *  - QEMU (target/arm/arch_dump.c) writes for every vCPU, in order, NT_PRSTATUS with
 *    pr_pid = vCPU index + 1 followed by NT_PRFPREG (and NT_ARM_SVE): when the pids are exactly
 *    1..n and the NT_PRFPREG notes number n, note i is vCPU i and pr_pid is no task;
 *  - one note on a machine with one CPU (`opts.nrCpus` 1).
 * Kernel-written notes (crash_save_cpu: pr_pid = current->pid) otherwise carry no CPU number.
 */
export function parseAarch64CpuNotes(notes: readonly ElfNote[], littleEndian = true, opts: { nrCpus?: number } = {}): { cpus: CpuRegisters[]; skipped: string[] } {
  const cpus: CpuRegisters[] = [];
  const skipped: string[] = [];
  let n = 0;
  for (const note of notes) {
    if (note.name !== 'CORE' || note.type !== NT_PRSTATUS) continue;
    const cpu = n++;
    if (note.desc.length !== PrstatusAarch64.size) {
      skipped.push(`NT_PRSTATUS note ${cpu}: ${note.desc.length} bytes, expected ${PrstatusAarch64.size} for aarch64`);
      continue;
    }
    const r = PrstatusAarch64.read(note.desc, 0, littleEndian);
    const dv = new DataView(r.pr_reg.buffer, r.pr_reg.byteOffset, r.pr_reg.byteLength);
    const x: bigint[] = [];
    for (let i = 0; i < 31; i++) x.push(dv.getBigUint64(i * 8, littleEndian));
    cpus.push({
      index: cpu,
      cpu: null,
      cpuEvidence: null,
      pidIsTask: true,
      source: 'NT_PRSTATUS',
      arch: 'aarch64',
      pid: r.pr_pid,
      pc: r.pc,
      sp: r.sp,
      pstate: r.pstate,
      fp: x[29]!,
      lr: x[30]!,
      x,
    });
  }
  const fpregs = notes.filter((x) => x.name === 'CORE' && x.type === NT_PRFPREG).length;
  if (cpus.length > 0 && fpregs === cpus.length && cpus.every((c, i) => c.pid === i + 1)) {
    for (const c of cpus) {
      c.cpu = c.index;
      c.pidIsTask = false;
      c.cpuEvidence = 'QEMU-written NT_PRSTATUS (with NT_PRFPREG): pr_pid is the vCPU number + 1';
    }
  } else if (opts.nrCpus === 1 && cpus.length === 1) {
    cpus[0]!.cpu = 0;
    cpus[0]!.cpuEvidence = 'the only CPU (nr_cpus 1)';
  }
  return { cpus, skipped };
}
