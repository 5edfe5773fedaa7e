/**
 * Panic summary: when the dump shows a crash, the panic line from the kernel log, the CPU that
 * logged it and that CPU's registers (NT_PRSTATUS or QEMU CPU state).
 */
import type { KernelInfo } from './kernel.js';
import { readDmesg, type DmesgLog } from './dmesg.js';
import { kernelPacMask, stripPac } from './aarch64/pagetables.js';
import { cpuLabel, cpuToJSON, registersOfCpu, registersOfTask, type CpuRegisters } from './x86_64/cpu.js';
import { latin1 } from '../text.js';

const PANIC_RE = /Kernel panic - not syncing: .*|BUG: .*|general protection fault.*|Oops: .*/;

export interface PanicSummary {
  message: string | null;
  /** The CPU that panicked: the record's caller (C<n>), or 0 on a one-CPU machine. */
  cpu: number | null;
  /** The task that logged the panic (caller T<pid>), when the record says so. */
  task: number | null;
  /** Seconds since boot of the panic record ("[    6.566704]"). */
  uptime: string | null;
  crashTime: string | null;
  registers: Record<string, unknown> | null;
  registersSource: string | null;
  /** Why no registers are shown, when there are CPU notes but none is known to be the panic's. */
  registersNote: string | null;
}

/**
 * The panic summary of `kernel`'s dump, or null when the log shows no panic and no crash time.
 * @param log the kernel log, read from the dump when absent
 * @param opts.runningPids the pid of the task each CPU was running (index = CPU number, from
 *   the per-CPU current task: `kernelStateReport`'s `running`). With it, the panic's CPU is the
 *   one CPU that ran the task that logged the panic (caller T<pid>), and its registers that
 *   CPU's note, when no note carries that pid (QEMU's notes carry vCPU numbers).
 */
/**
 * A CPU's registers as JSON (cpuToJSON); on aarch64 `lr` is the code address, its
 * pointer-authentication bits stripped with KERNELPACMASK (kernelPacMask), and `lr_raw` the
 * saved value when they differ.
 */
function registersJSON(regs: CpuRegisters, kernel: KernelInfo): Record<string, unknown> {
  const o = cpuToJSON(regs);
  const pac = regs.arch === 'aarch64' ? kernelPacMask(kernel.vmcoreinfo) : undefined;
  if (pac !== undefined && regs.lr !== undefined) {
    const lr = stripPac(regs.lr, pac);
    if (lr !== regs.lr) {
      o['lr'] = '0x' + lr.toString(16);
      o['lr_raw'] = '0x' + regs.lr.toString(16);
    }
  }
  return o;
}

export async function panicSummary(kernel: KernelInfo, log?: DmesgLog, littleEndian = true, opts: { runningPids?: readonly (number | null)[] } = {}): Promise<PanicSummary | null> {
  let dmesg = log;
  if (!dmesg && kernel.vmcoreinfo && kernel.translator) {
    try {
      dmesg = await readDmesg({ vmcoreinfo: kernel.vmcoreinfo, readVirt: (va, n) => kernel.readVirt(va, n), littleEndian });
    } catch {
      dmesg = undefined;
    }
  }
  let message: string | null = null;
  let cpu: number | null = null;
  let task: number | null = null;
  let uptime: string | null = null;
  if (dmesg) {
    for (const r of dmesg.records) {
      const t = latin1(r.text);
      const m = PANIC_RE.exec(t);
      if (m && (message === null || t.includes('Kernel panic'))) {
        message = m[0];
        cpu = null;
        task = null;
        if (r.callerId !== undefined) {
          if (r.callerId & 0x80000000) cpu = r.callerId & 0x7fffffff;
          else task = r.callerId;
        }
        uptime = `${r.tsNsec / 1_000_000_000n}.${((r.tsNsec % 1_000_000_000n) / 1000n).toString().padStart(6, '0')}`;
        if (t.includes('Kernel panic')) break;
      }
    }
  }
  if (message === null && kernel.crashTime === undefined) return null;
  const cpus = kernel.cpus;
  const prNotes = cpus.filter((c) => c.source === 'NT_PRSTATUS');
  const oneCpu = cpus.length > 0 && cpus.every((c) => c.cpu === 0);
  if (cpu === null && oneCpu) cpu = 0;
  // Which note belongs to the panic: by the task that logged it (its pr_pid), by its CPU when
  // the notes prove CPU numbers, never by position.
  let regs: CpuRegisters | undefined;
  if (task !== null) regs = registersOfTask(cpus, task);
  if (!regs && cpu === null && task !== null && task > 0 && opts.runningPids) {
    // the CPU whose current task logged the panic (per-CPU data), when exactly one ran it
    const ran = opts.runningPids.flatMap((pid, c) => (pid === task ? [c] : []));
    if (ran.length === 1) cpu = ran[0]!;
  }
  if (!regs && cpu !== null) regs = registersOfCpu(cpus, cpu);
  if (regs && cpu === null && regs.cpu !== null) cpu = regs.cpu;
  let registersNote: string | null = null;
  if (!regs && cpus.length > 0) {
    const who = task !== null ? `task ${task}` : cpu !== null ? `CPU ${cpu}` : 'the panic';
    registersNote =
      prNotes.length > 0 && prNotes.every((c) => c.pidIsTask)
        ? `no CPU note is known to be ${who}'s (${prNotes.length} NT_PRSTATUS notes, pids ${prNotes.map((c) => c.pid).join(', ')})`
        : `no CPU note is known to be ${who}'s (the notes give vCPU numbers; which vCPU ran ${who} needs the kernel's per-CPU data)`;
  }
  return {
    message,
    cpu,
    task,
    uptime,
    crashTime: kernel.crashTime ? new Date(kernel.crashTime * 1000).toISOString() : null,
    registers: regs ? registersJSON(regs, kernel) : null,
    registersSource: regs ? `${regs.source} (${cpuLabel(regs)})` : null,
    registersNote,
  };
}
