/**
 * Panic summary: when the dump shows a crash, the panic line from the kernel log, the CPU that
 * logged it and that CPU's registers (NT_PRSTATUS or QEMU CPU state).
 */
import type { KernelInfo } from './kernel.js';
import { readDmesg, type DmesgLog } from './dmesg.js';
import { cpuToJSON } from './x86_64/cpu.js';

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
}

export async function panicSummary(kernel: KernelInfo, log?: DmesgLog, littleEndian = true): Promise<PanicSummary | null> {
  let dmesg = log;
  if (!dmesg && kernel.vmcoreinfo && kernel.translator) {
    try {
      dmesg = await readDmesg({ vmcoreinfo: kernel.vmcoreinfo, readVirt: (va, n) => kernel.readVirt(va, n), littleEndian });
    } catch {
      dmesg = undefined;
    }
  }
  const dec = new TextDecoder('latin1');
  let message: string | null = null;
  let cpu: number | null = null;
  let task: number | null = null;
  let uptime: string | null = null;
  if (dmesg) {
    for (const r of dmesg.records) {
      const t = dec.decode(r.text);
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
  const nCpus = new Set(kernel.cpus.map((c) => c.cpu)).size;
  if (cpu === null && nCpus === 1) cpu = kernel.cpus[0]!.cpu;
  const regs = cpu !== null ? (kernel.cpus.find((c) => c.cpu === cpu && c.source === 'NT_PRSTATUS') ?? kernel.cpus.find((c) => c.cpu === cpu)) : kernel.cpus[0];
  return {
    message,
    cpu,
    task,
    uptime,
    crashTime: kernel.crashTime ? new Date(kernel.crashTime * 1000).toISOString() : null,
    registers: regs ? cpuToJSON(regs) : null,
    registersSource: regs ? `${regs.source} (cpu ${regs.cpu})` : null,
  };
}
