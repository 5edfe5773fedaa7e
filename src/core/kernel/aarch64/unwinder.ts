/**
 * The arm64 side of the backtracer (../backtrace.ts): THREAD_SIZE and the pt_regs layout from
 * BTF, the per-CPU IRQ and overflow stacks, the starting state (the CPU's registers for a running
 * task, thread.cpu_context for a sleeping one), then the frame-record walk of ./unwind.ts; pt_regs
 * printed as the kernel's __show_regs prints them.
 *
 * Facts and sources: arch/arm64/include/asm/memory.h (THREAD_SIZE: at least 16 KiB and a page,
 * here sizeof(union thread_union)), arch/arm64/kernel/irq.c (irq_stack_ptr: the base of the
 * IRQ_STACK_SIZE = THREAD_SIZE stack), arch/arm64/include/asm/stacktrace.h (overflow_stack,
 * OVERFLOW_STACK_SIZE = 4 KiB), arch/arm64/include/asm/processor.h (thread_saved_pc/fp/sp:
 * thread.cpu_context as cpu_switch_to saved it), arch/arm64/kernel/process.c __show_regs.
 */
import { hex16 } from '../../hex.js';
import { warning } from '../../warnings.js';
import type { ArchUnwinder, ArchWalk, UnwinderContext, UnwindStart, UnwindTask } from '../arch.js';
import type { ExceptionFrame, StackRange } from '../unwind.js';
import type { CpuRegisters } from '../x86_64/cpu.js';
import { PT_REGS_6_1, unwindAarch64, type Aarch64PtRegsLayout, type Aarch64Regs, type Aarch64WalkStart } from './unwind.js';

/** PC, SP and the frame pointer x29 (pointer-authentication bits are not set in saved PCs). */
export function aarch64UnwindStart(r: CpuRegisters): UnwindStart | undefined {
  if (r.pc === undefined || r.sp === undefined) return undefined;
  const regs: Record<string, bigint> = { pc: r.pc, sp: r.sp };
  r.x?.forEach((v, i) => (regs[`x${i}`] = v));
  if (r.pstate !== undefined) regs.pstate = r.pstate;
  return { cpu: r.cpu, pc: r.pc, sp: r.sp, ...(r.fp !== undefined ? { fp: r.fp } : {}), regs };
}

/** arm64 OVERFLOW_STACK_SIZE (arch/arm64/include/asm/stacktrace.h: SZ_4K). */
export const AARCH64_OVERFLOW_STACK_SIZE = 0x1000n;

/** The arm64 unwinder: frame records (x29 chains) across pt_regs and the IRQ/overflow stacks. */
export class Aarch64Unwinder implements ArchUnwinder<CpuRegisters> {
  readonly threadSpPath = 'thread.cpu_context.sp';
  readonly currentFromRunqueue = true;
  /** THREAD_SIZE and IRQ_STACK_SIZE: sizeof(union thread_union), at least 16 KiB and a page. */
  readonly threadSize: bigint;
  readonly ptRegs: Aarch64PtRegsLayout = PT_REGS_6_1;
  private readonly irqStackPtr: bigint | undefined;
  private readonly overflowStack: bigint | undefined;

  /** THREAD_SIZE from BTF's union thread_union, the pt_regs layout and frame_record_meta from BTF; warnings say what is assumed. */
  constructor(private readonly ctx: UnwinderContext<CpuRegisters>) {
    const btf = ctx.types.btf;
    const tu = btf.find('thread_union');
    const page = BigInt(ctx.pageSize ?? 4096);
    this.threadSize = tu !== undefined ? BigInt(btf.sizeOf(tu)) : page > 0x4000n ? page : 0x4000n;
    this.irqStackPtr = ctx.symbol('irq_stack_ptr');
    this.overflowStack = ctx.symbol('overflow_stack');
    const pr = btf.find('pt_regs');
    if (pr === undefined) {
      ctx.warnings.push(warning('LAYOUT_ASSUMED', 'no struct pt_regs in BTF: the layout of Linux 6.1 is assumed'));
      return;
    }
    try {
      const layout: Aarch64PtRegsLayout = { size: btf.sizeOf(pr), stackframe: btf.offsetOf('pt_regs', 'stackframe') };
      if (btf.find('frame_record_meta') !== undefined) layout.metaType = btf.offsetOf('pt_regs', 'stackframe.type');
      this.ptRegs = layout;
    } catch (e) {
      ctx.warnings.push(warning('LAYOUT_ASSUMED', `struct pt_regs: ${(e as Error).message}; the layout of Linux 6.1 is assumed`));
    }
  }

  taskStack(stackBase: bigint): StackRange {
    return { kind: 'task', start: stackBase, end: stackBase + this.threadSize };
  }

  coversText(): boolean {
    return false;
  }

  /** Modules carry no unwind data of their own on arm64 (their frame records are on the stacks). */
  async loadModules(): Promise<void> {}

  /** The CPU's IRQ stack (irq_stack_ptr is its base) and its overflow stack (the per-CPU array itself). */
  async cpuStacks(perCpu: (va: bigint | undefined) => Promise<bigint | undefined>, offset: bigint): Promise<StackRange[]> {
    const stacks: StackRange[] = [];
    const irq = await perCpu(this.irqStackPtr);
    if (irq !== undefined && irq !== 0n) stacks.push({ kind: 'irq', name: 'IRQ', start: irq, end: irq + this.threadSize });
    if (this.overflowStack !== undefined) {
      const o = BigInt.asUintN(64, this.overflowStack + offset);
      stacks.push({ kind: 'exception', name: 'overflow', start: o, end: o + AARCH64_OVERFLOW_STACK_SIZE });
    }
    return stacks;
  }

  async unwind(t: UnwindTask, regs: CpuRegisters | undefined, stacks: readonly StackRange[], opts: { maxFrames?: number }): Promise<ArchWalk> {
    const taskStack = stacks[0] ?? this.taskStack(t.stackBase);
    const u = regs ? aarch64UnwindStart(regs) : undefined;
    let how: ArchWalk['start'];
    let start: Aarch64WalkStart;
    try {
      if (u) {
        how = 'cpu registers';
        start = { pc: u.pc, sp: u.sp, fp: u.fp ?? 0n, fromRegisters: true, ...(u.regs['x30'] !== undefined ? { lr: u.regs['x30'] } : {}), ...(u.regs['pstate'] !== undefined ? { pstate: u.regs['pstate'] } : {}) };
      } else {
        const th = await this.ctx.types.read('task_struct', t.task);
        how = 'cpu_context';
        start = { pc: th.ptr('thread.cpu_context.pc'), sp: th.ptr('thread.cpu_context.sp'), fp: th.ptr('thread.cpu_context.fp'), fromRegisters: false };
      }
    } catch (e) {
      return { frames: [], exceptionFrames: [], stop: 'unreadable', stopDetail: (e as Error).message, start: 'none', error: (e as Error).message };
    }
    const r = await unwindAarch64(
      {
        read: this.ctx.readVirt,
        stacks,
        taskStack,
        isText: (pc) => this.ctx.isText(pc),
        functionStart: (pc) => this.ctx.functionStart(pc),
        layout: this.ptRegs,
        pacMask: this.ctx.pacMask ?? 0n,
        ...(opts.maxFrames ? { maxFrames: opts.maxFrames } : {}),
      },
      start,
    );
    return { ...r, start: how };
  }
}


/** arm64 pt_regs as the kernel's __show_regs lays them out (pc, lr, sp, pstate, then x29..x0). */
export function formatAarch64PtRegs(r: Aarch64Regs, indent = '    '): string {
  const lines = [`pc : ${hex16(r['pc'])}  lr : ${hex16(r['x30'])}`, `sp : ${hex16(r['sp'])}  pstate: ${BigInt.asUintN(64, r['pstate'] ?? 0n).toString(16).padStart(8, '0')}`];
  for (let i = 29; i >= 0; i -= 3) {
    const cols: string[] = [];
    for (let j = i; j > i - 3 && j >= 0; j--) cols.push(`x${j}`.padEnd(3) + `: ${hex16(r[`x${j}`])}`);
    lines.push(cols.join(' '));
  }
  return lines.map((l) => indent + l).join('\n');
}

/** An exception frame of the arm64 walk, printed by {@link formatAarch64PtRegs}. */
export function formatAarch64ExceptionFrame(e: ExceptionFrame, indent?: string): string {
  return formatAarch64PtRegs(e.regs as Aarch64Regs, indent);
}
