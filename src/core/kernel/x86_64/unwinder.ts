/**
 * The x86_64 side of the backtracer (../backtrace.ts): the ORC tables of the kernel image and of
 * each module read from memory, THREAD_SIZE and the per-CPU IRQ and exception stacks, the
 * starting state (the CPU's registers for a running task, thread.sp's inactive_task_frame for a
 * sleeping one), then {@link unwind}; pt_regs printed as crash prints them.
 *
 * Facts and sources: the kernel's arch/x86/kernel/unwind_orc.c (tables, orc_find, unwind_start),
 * arch/x86/include/asm/switch_to.h (inactive_task_frame), arch/x86/kernel/irq_64.c
 * (hardirq_stack_ptr = top of the 16 KiB IRQ stack - 8), arch/x86/include/asm/cpu_entry_area.h
 * (cea_exception_stacks), arch/x86/include/asm/page_64_types.h (THREAD_SIZE). Structure offsets
 * come from BTF.
 */
import { hex16 } from '../../hex.js';
import { warning } from '../../warnings.js';
import { isVmcoreError } from '../../errors.js';
import type { ArchUnwinder, ArchWalk, UnwinderContext, UnwindTask } from '../arch.js';
import type { ModuleList } from '../modules.js';
import type { ExceptionFrame as AnyExceptionFrame, StackRange } from '../unwind.js';
import type { CpuRegisters } from './cpu.js';
import { orcLayoutForRelease, orcLayoutFromBtf, OrcTable, OrcTables, type OrcLayout } from './orc.js';
import { cpuStart, inactiveTaskStart, INACTIVE_TASK_FRAME, unwind, type PtRegs, type WalkStart } from './unwind.js';
import { KERNEL_LIMITS } from '../../limits.js';
import { hex64 } from '../../hex.js';

/** THREAD_SIZE on x86_64 (arch/x86/include/asm/page_64_types.h, KASAN doubles it). */
export const THREAD_SIZE = 0x4000n;
export const IRQ_STACK_SIZE = 0x4000n;
const MAX_ORC_ENTRIES = KERNEL_LIMITS.maxOrcEntries;


/** The x86_64 unwinder: ORC (kernel and modules), frame pointers and a stack scan as guesses. */
export class X86_64Unwinder implements ArchUnwinder<CpuRegisters> {
  readonly threadSpPath = 'thread.sp';
  readonly currentFromRunqueue = false;
  orc: OrcTables | undefined;
  layout: OrcLayout | undefined;
  private retFromFork: bigint[] = [];
  private irqVar: bigint | undefined;
  private ceaVar: bigint | undefined;
  private exc: { name: string; off: bigint; size: bigint }[] = [];

  private constructor(private readonly ctx: UnwinderContext<CpuRegisters>) {}

  /** The ORC layout (BTF's struct orc_entry, else the release's) and the kernel's ORC tables; warnings say what is missing. */
  static async create(ctx: UnwinderContext<CpuRegisters>): Promise<X86_64Unwinder> {
    const u = new X86_64Unwinder(ctx);
    await u.init();
    return u;
  }

  private async init(): Promise<void> {
    const { types, symbol } = this.ctx;
    const btf = types.btf;
    this.retFromFork = ['ret_from_fork', 'ret_from_fork_asm'].map((n) => symbol(n)).filter((v): v is bigint => v !== undefined);
    const orcId = btf.find('orc_entry');
    const fromBtf = orcId !== undefined ? orcLayoutFromBtf(btf.members(orcId)) : undefined;
    try {
      this.layout = fromBtf ?? orcLayoutForRelease(this.ctx.release);
    } catch (e) {
      this.ctx.warnings.push(warning('UNWIND_DATA_UNAVAILABLE', (e as Error).message));
    }
    await this.loadKernelOrc();
    // per-CPU stacks: hardirq_stack_ptr (in pcpu_hot from 6.2 on) and cea_exception_stacks
    const off = (type: string, path: string): bigint | undefined => {
      try {
        return BigInt(btf.offsetOf(type, path));
      } catch {
        return undefined;
      }
    };
    const pcpuHot = symbol('pcpu_hot');
    const hot = pcpuHot !== undefined ? off('pcpu_hot', 'hardirq_stack_ptr') : undefined;
    this.irqVar = pcpuHot !== undefined && hot !== undefined ? pcpuHot + hot : symbol('hardirq_stack_ptr');
    this.ceaVar = symbol('cea_exception_stacks');
    const ceaId = btf.find('cea_exception_stacks');
    if (ceaId !== undefined) {
      for (const m of btf.members(ceaId)) {
        const mm = /^(\w+)_stack$/.exec(m.name);
        if (!mm) continue;
        this.exc.push({ name: mm[1]!, off: BigInt(m.bitOffset >> 3), size: BigInt(btf.sizeOf(m.type)) });
      }
    }
  }

  private async loadKernelOrc(): Promise<void> {
    const { symbol } = this.ctx;
    const ipStart = symbol('__start_orc_unwind_ip');
    const ipStop = symbol('__stop_orc_unwind_ip');
    const orcStart = symbol('__start_orc_unwind');
    if (ipStart === undefined || ipStop === undefined || orcStart === undefined || !this.layout) {
      this.ctx.warnings.push(warning('UNWIND_DATA_UNAVAILABLE', 'no ORC tables (__start_orc_unwind_ip, __stop_orc_unwind_ip, __start_orc_unwind): frame pointers and stack scan only'));
      return;
    }
    const n = (ipStop - ipStart) / 4n;
    if (n <= 0n || n > BigInt(MAX_ORC_ENTRIES)) {
      this.ctx.warnings.push(warning('UNWIND_DATA_UNAVAILABLE', `ORC IP table of ${n} entries at ${hex64(ipStart)} is not plausible: frame pointers and stack scan only`));
      return;
    }
    try {
      const ips = await this.ctx.readVirt(ipStart, Number(n) * 4);
      const orcs = await this.ctx.readVirt(orcStart, Number(n) * 6);
      // the kernel's table also covers init text beyond _etext: take the IPs' own range
      const t = new OrcTable('vmlinux', ipStart, ips, orcs, this.layout, 0n, 0n);
      this.orc = new OrcTables([t]);
    } catch (e) {
      this.ctx.warnings.push(warning('UNWIND_DATA_UNAVAILABLE', `kernel ORC tables unreadable: ${(e as Error).message}`));
    }
  }

  taskStack(stackBase: bigint): StackRange {
    return { kind: 'task', start: stackBase, end: stackBase + THREAD_SIZE };
  }

  /** Init and entry text the kernel's ORC table covers. */
  coversText(pc: bigint): boolean {
    return this.orc?.tables[0]?.find(pc) !== undefined;
  }

  /** Each module's ORC tables (`struct module.arch`: num_orcs, orc_unwind_ip, orc_unwind). */
  async loadModules(list: ModuleList): Promise<void> {
    const { types } = this.ctx;
    const hasOrc = (() => {
      try {
        types.btf.offsetOf('module', 'arch.num_orcs');
        return true;
      } catch {
        return false;
      }
    })();
    const tables: OrcTable[] = [];
    for (const m of list.modules) {
      const core = m.regions.find((r) => r.name === 'text');
      if (!hasOrc || !this.layout || !core) continue;
      try {
        const num = m.object.num('arch.num_orcs');
        if (num > 0 && num < MAX_ORC_ENTRIES) {
          const ipAddr = m.object.ptr('arch.orc_unwind_ip');
          const orcAddr = m.object.ptr('arch.orc_unwind');
          const ips = await this.ctx.readVirt(ipAddr, num * 4);
          const orcs = await this.ctx.readVirt(orcAddr, num * 6);
          tables.push(new OrcTable(m.name, ipAddr, ips, orcs, this.layout, core.start, core.start + BigInt(core.size)));
        }
      } catch (e) {
        if (!isVmcoreError(e)) throw e;
        this.ctx.warnings.push(warning('MODULE_UNREADABLE', `module ${m.name}: ORC tables: ${e.message}`));
      }
    }
    if (tables.length > 0 && this.orc) this.orc = new OrcTables([...this.orc.tables, ...tables]);
  }

  /** The 16 KiB IRQ stack below hardirq_stack_ptr + 8 and each exception stack of the CPU's cpu_entry_area. */
  async cpuStacks(perCpu: (va: bigint | undefined) => Promise<bigint | undefined>): Promise<StackRange[]> {
    const stacks: StackRange[] = [];
    const irq = await perCpu(this.irqVar);
    if (irq !== undefined && irq !== 0n) stacks.push({ kind: 'irq', name: 'IRQ', start: irq + 8n - IRQ_STACK_SIZE, end: irq + 8n });
    const cea = await perCpu(this.ceaVar);
    if (cea !== undefined && cea !== 0n) {
      for (const e of this.exc) stacks.push({ kind: 'exception', name: e.name, start: cea + e.off, end: cea + e.off + e.size });
    }
    return stacks;
  }

  async unwind(t: UnwindTask, regs: CpuRegisters | undefined, stacks: readonly StackRange[], opts: { maxFrames?: number }): Promise<ArchWalk> {
    let start: WalkStart;
    let how: ArchWalk['start'];
    try {
      if (regs && regs.rip !== undefined && regs.rsp !== undefined) {
        start = cpuStart(toPtRegs(regs) as Partial<PtRegs> & { ip: bigint; sp: bigint });
        how = 'cpu registers';
      } else {
        const f = this.inactiveFrameLayout();
        start = await inactiveTaskStart(this.ctx.readVirt, t.threadSp, f, this.retFromFork);
        how = 'inactive_task_frame';
      }
    } catch (e) {
      // the saved frame (inactive_task_frame at thread.sp) is on the task's stack: name the stack
      const msg = `stack of task ${t.pid} at 0x${t.threadSp.toString(16)} (stack 0x${t.stackBase.toString(16)}): ${(e as Error).message}`;
      return { frames: [], exceptionFrames: [], stop: 'unreadable', stopDetail: msg, start: 'none', error: msg };
    }
    const r = await unwind(
      {
        read: this.ctx.readVirt,
        ...(this.orc ? { orc: this.orc } : {}),
        stacks,
        isText: (ip) => this.ctx.isText(ip),
        functionStart: (ip) => this.ctx.functionStart(ip),
        ...(opts.maxFrames ? { maxFrames: opts.maxFrames } : {}),
      },
      start,
    );
    return { ...r, start: how };
  }

  private inactiveFrameLayout(): { bp: number; retAddr: number; size: number } {
    const btf = this.ctx.types.btf;
    const id = btf.find('inactive_task_frame');
    if (id === undefined) return INACTIVE_TASK_FRAME;
    try {
      return { bp: btf.offsetOf('inactive_task_frame', 'bp'), retAddr: btf.offsetOf('inactive_task_frame', 'ret_addr'), size: btf.sizeOf(id) };
    } catch {
      return INACTIVE_TASK_FRAME;
    }
  }
}

/** CPU note registers as pt_regs names. */
export function toPtRegs(c: CpuRegisters): Partial<PtRegs> {
  const r: Partial<PtRegs> = {};
  const map: [keyof PtRegs, keyof CpuRegisters][] = [
    ['r15', 'r15'], ['r14', 'r14'], ['r13', 'r13'], ['r12', 'r12'], ['bp', 'rbp'], ['bx', 'rbx'], ['r11', 'r11'], ['r10', 'r10'],
    ['r9', 'r9'], ['r8', 'r8'], ['ax', 'rax'], ['cx', 'rcx'], ['dx', 'rdx'], ['si', 'rsi'], ['di', 'rdi'], ['orig_ax', 'origRax'],
    ['ip', 'rip'], ['cs', 'cs'], ['flags', 'rflags'], ['sp', 'rsp'], ['ss', 'ss'],
  ];
  for (const [p, c2] of map) {
    const v = c[c2];
    if (typeof v === 'bigint') r[p] = v;
  }
  return r;
}


/** pt_regs as crash prints them (RIP/RSP/RFLAGS, then the general registers, ORIG_RAX, CS, SS). */
export function formatPtRegs(r: Partial<PtRegs>, partial: boolean, indent = '    '): string {
  const cs = BigInt.asUintN(16, r.cs ?? 0n).toString(16).padStart(4, '0');
  const ss = BigInt.asUintN(16, r.ss ?? 0n).toString(16).padStart(4, '0');
  const lines = [`RIP: ${hex16(r.ip)}  RSP: ${hex16(r.sp)}  RFLAGS: ${BigInt.asUintN(64, r.flags ?? 0n).toString(16).padStart(8, '0')}`];
  if (!partial) {
    lines.push(
      `RAX: ${hex16(r.ax)}  RBX: ${hex16(r.bx)}  RCX: ${hex16(r.cx)}`,
      `RDX: ${hex16(r.dx)}  RSI: ${hex16(r.si)}  RDI: ${hex16(r.di)}`,
      `RBP: ${hex16(r.bp)}   R8: ${hex16(r.r8)}   R9: ${hex16(r.r9)}`,
      `R10: ${hex16(r.r10)}  R11: ${hex16(r.r11)}  R12: ${hex16(r.r12)}`,
      `R13: ${hex16(r.r13)}  R14: ${hex16(r.r14)}  R15: ${hex16(r.r15)}`,
      `ORIG_RAX: ${hex16(r.orig_ax)}  CS: ${cs}  SS: ${ss}`,
    );
  } else lines.push(`CS: ${cs}  SS: ${ss}  (partial pt_regs: IRET frame only)`);
  return lines.map((l) => indent + l).join('\n');
}

/** An exception frame of the x86_64 walk, printed by {@link formatPtRegs}. */
export function formatX86_64ExceptionFrame(e: AnyExceptionFrame, indent?: string): string {
  return formatPtRegs(e.regs as Partial<PtRegs>, e.partial, indent);
}
