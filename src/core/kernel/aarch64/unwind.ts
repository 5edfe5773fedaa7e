/**
 * The arm64 kernel stack unwinder: frame records (AAPCS64 {x29, x30} pairs chained through x29),
 * as the kernel's own arch/arm64/kernel/stacktrace.c walks them, crossing exception frames
 * (struct pt_regs on the stack) and moving from the IRQ and overflow stacks back to the task
 * stack. Return addresses have their pointer-authentication bits stripped (KERNELPACMASK).
 *
 * Facts and sources (Linux 6.1 and 6.12, arch/arm64/kernel/entry.S kernel_entry,
 * arch/arm64/kernel/head.S init_cpu_task, arch/arm64/kernel/process.c copy_thread,
 * arch/arm64/kernel/entry.S call_on_irq_stack, arch/arm64/kernel/stacktrace.c):
 *  - an exception from EL1 stores {interrupted x29, ELR_EL1} in pt_regs.stackframe and points
 *    x29 at it, so the chain runs through the interrupted context: the pc read from that record
 *    is the interrupted instruction itself, not a return address. Kernels with
 *    `struct frame_record_meta` (arch/arm64/include/asm/stacktrace/frame.h) store a zero record
 *    with type FRAME_META_TYPE_PT_REGS instead, and the unwinder consumes pt_regs::pc, then
 *    pt_regs::lr, and goes on from pt_regs::regs[29];
 *  - every task's chain ends at the record in its own pt_regs at the top of its stack
 *    (task_pt_regs(task)->stackframe: zero, or type FRAME_META_TYPE_FINAL): an entry from EL0
 *    (user mode; that pt_regs holds the user registers) or the start of a kernel thread / idle
 *    task;
 *  - call_on_irq_stack leaves a frame record on the task stack and runs the handler on the
 *    per-CPU IRQ stack, so a chain only ever moves from the IRQ or overflow stack to the task
 *    stack, and upwards within one stack; the task stack is the last one.
 * The walk is pure: memory through a read callback, the stacks and the pt_regs layout given.
 */
import type { StackRange, StopReason, UnwindFrame } from '../unwind.js';
import { stripPac } from './pagetables.js';
import { hex64 } from '../../hex.js';
import { KERNEL_LIMITS } from '../../limits.js';

/** The kernel's struct pt_regs layout (from BTF; the defaults are 6.1's). */
export interface Aarch64PtRegsLayout {
  /** sizeof(struct pt_regs) */
  size: number;
  /** offsetof(struct pt_regs, stackframe) */
  stackframe: number;
  /** offsetof(struct pt_regs, stackframe.type) when the kernel has struct frame_record_meta. */
  metaType?: number;
}

/** Linux 6.1: regs[31], sp, pc, pstate, orig_x0, syscallno+unused2, sdei_ttbr1, pmr_save, stackframe[2], lockdep_hardirqs, exit_rcu. */
export const PT_REGS_6_1: Aarch64PtRegsLayout = { size: 336, stackframe: 304 };

/** FRAME_META_TYPE_FINAL / FRAME_META_TYPE_PT_REGS (arch/arm64/include/asm/stacktrace/frame.h). */
const FRAME_META_TYPE_FINAL = 1n;
const FRAME_META_TYPE_PT_REGS = 2n;

/** The general registers of one arm64 pt_regs (x0..x30, sp, pc, pstate) by name. */
export type Aarch64Regs = Record<string, bigint>;

export interface Aarch64ExceptionFrame {
  /** The frame whose pc came from these registers. */
  level: number;
  /** Address of the pt_regs on the stack. */
  address?: bigint;
  regs: Aarch64Regs;
  /** Always false on arm64 (pt_regs are saved whole). */
  partial: boolean;
  user: boolean;
}

export interface Aarch64UnwindInput {
  /** Read kernel virtual memory; throws when unreadable. */
  read(va: bigint, length: number): Promise<Uint8Array>;
  /** The task's stack first, then the CPU's IRQ and overflow stacks (a running task). */
  stacks: readonly StackRange[];
  /** The task's own stack ([stack, stack + THREAD_SIZE)): its final frame record is at its top. */
  taskStack: StackRange;
  isText(pc: bigint): boolean;
  /** Start address of the function containing `pc` (for the link-register guess), if known. */
  functionStart?(pc: bigint): bigint | undefined;
  layout: Aarch64PtRegsLayout;
  /** NUMBER(KERNELPACMASK) from VMCOREINFO, 0 without pointer authentication. */
  pacMask: bigint;
  /** Default 256. */
  maxFrames?: number;
}

export interface Aarch64WalkStart {
  pc: bigint;
  sp: bigint;
  /** x29 */
  fp: bigint;
  /** x30 of a CPU's registers (the link-register guess for the first frame). */
  lr?: bigint;
  pstate?: bigint;
  /** The CPU's registers (pc is the interrupted instruction); else a sleeping task's cpu_context (pc is a return address). */
  fromRegisters: boolean;
}

export interface Aarch64UnwindResult {
  frames: UnwindFrame[];
  exceptionFrames: Aarch64ExceptionFrame[];
  stop: StopReason;
  stopDetail: string;
  /** The user-mode pc and sp where the walk reached the entry from EL0. */
  user?: { pc: bigint; sp: bigint };
}

/** PSTATE.M[3:2] = 0: EL0 (user mode). */
export const isUserPstate = (pstate: bigint) => ((pstate >> 2n) & 3n) === 0n;

/** pt_regs registers from the bytes of one pt_regs (regs[31], sp, pc, pstate at 0..271). */
export function decodePtRegs(b: Uint8Array): Aarch64Regs {
  const dv = new DataView(b.buffer, b.byteOffset, b.length);
  const r: Aarch64Regs = {};
  for (let i = 0; i < 31; i++) r[`x${i}`] = dv.getBigUint64(i * 8, true);
  r['sp'] = dv.getBigUint64(248, true);
  r['pc'] = dv.getBigUint64(256, true);
  r['pstate'] = dv.getBigUint64(264, true);
  return r;
}

/**
 * Walk one task's frame records. Never throws: an unreadable or implausible record ends the walk
 * with a typed stop reason and the frames found so far.
 */
export async function unwindAarch64(input: Aarch64UnwindInput, start: Aarch64WalkStart): Promise<Aarch64UnwindResult> {
  const max = input.maxFrames ?? KERNEL_LIMITS.maxFrames;
  const frames: UnwindFrame[] = [];
  const exceptionFrames: Aarch64ExceptionFrame[] = [];
  const { layout, taskStack } = input;
  const finalRecord = taskStack.end - BigInt(layout.size) + BigInt(layout.stackframe);
  const stackOf = (a: bigint, len = 16n) => input.stacks.find((s) => a >= s.start && a + len <= s.end);
  const u64s = async (va: bigint, n: number) => {
    const b = await input.read(va, n * 8);
    const dv = new DataView(b.buffer, b.byteOffset, b.length);
    return Array.from({ length: n }, (_, i) => dv.getBigUint64(i * 8, true));
  };
  const readRegs = async (va: bigint) => decodePtRegs(await input.read(va, 272));
  const push = (pc: bigint, sp: bigint, exact: boolean, reliable = true, method: UnwindFrame['method'] = 'fp') => {
    const s = stackOf(sp, 0n) ?? stackOf(sp - 1n, 0n);
    frames.push({ level: frames.length, sp, pc, reliable, method, exact, stack: s?.kind ?? 'unknown', ...(s?.name ? { stackName: s.name } : {}) });
  };
  const done = (stop: StopReason, stopDetail: string, user?: { pc: bigint; sp: bigint }): Aarch64UnwindResult => ({
    frames,
    exceptionFrames,
    stop,
    stopDetail,
    ...(user ? { user } : {}),
  });
  /** The final record: the entry from EL0 (user registers in that pt_regs) or the bottom of a kernel thread. */
  const final = async (): Promise<Aarch64UnwindResult> => {
    const addr = finalRecord - BigInt(layout.stackframe);
    try {
      const regs = await readRegs(addr);
      if (isUserPstate(regs['pstate']!) && regs['pc'] !== 0n) {
        exceptionFrames.push({ level: frames.length, address: addr, regs, partial: false, user: true });
        return done('user_mode', `pt_regs at ${hex64(addr)}`, { pc: regs['pc']!, sp: regs['sp']! });
      }
    } catch {
      /* the record itself was read: the walk is complete either way */
    }
    return done('end_of_stack', `final frame record at ${hex64(finalRecord)}`);
  };

  if (start.fromRegisters && start.pstate !== undefined && isUserPstate(start.pstate)) {
    return done('user_mode', 'the CPU was in user mode (EL0)', { pc: start.pc, sp: start.sp });
  }
  push(start.pc, start.sp, start.fromRegisters);
  let fp = start.fp;
  let prev: { fp: bigint; stack: StackRange } | undefined;
  const visited = new Set<StackRange>();
  const firstStack = stackOf(start.sp, 0n);
  if (firstStack) visited.add(firstStack);
  let guessLr = start.fromRegisters && start.lr !== undefined;
  while (frames.length < max) {
    if (fp === finalRecord) return final();
    if (fp === 0n) return done('no_unwind_info', 'frame pointer 0 before the final frame record');
    if ((fp & 0xfn) !== 0n) return done('off_stack', `frame record at ${hex64(fp)} is not 16-byte aligned`);
    const stack = stackOf(fp);
    if (!stack) return done('off_stack', `frame record at ${hex64(fp)} is on no stack of this task`);
    if (prev) {
      if (stack === prev.stack && fp <= prev.fp) return done('wrong_direction', `frame record at ${hex64(fp)} below the previous one at ${hex64(prev.fp)}`);
      if (stack !== prev.stack && (visited.has(stack) || prev.stack === taskStack)) return done('wrong_direction', `frame record at ${hex64(fp)} moves to the ${stack.kind} stack from the ${prev.stack.kind} stack`);
    }
    visited.add(stack);
    let nextFp: bigint;
    let lr: bigint;
    try {
      [nextFp, lr] = (await u64s(fp, 2)) as [bigint, bigint];
    } catch (e) {
      return done('unreadable', `frame record at ${hex64(fp)}: ${(e as Error).message}`);
    }
    // the CPU's link register when the first function has not stored it in a record (yet)
    if (guessLr) {
      guessLr = false;
      const lrPc = stripPac(start.lr!, input.pacMask);
      const f0 = input.functionStart?.(start.pc);
      const f1 = input.functionStart?.(lrPc - 1n);
      if (input.isText(lrPc) && lrPc !== stripPac(lr, input.pacMask) && f0 !== undefined && f1 !== undefined && f0 !== f1) push(lrPc, start.sp, false, false, 'lr');
    }
    const regsAddr = fp - BigInt(layout.stackframe);
    const regsOnStack = stackOf(regsAddr, BigInt(layout.size)) === stack;
    if (layout.metaType !== undefined && nextFp === 0n && lr === 0n) {
      let type: bigint;
      try {
        [type] = (await u64s(regsAddr + BigInt(layout.metaType), 1)) as [bigint];
      } catch (e) {
        return done('unreadable', `frame_record_meta at ${hex64(fp)}: ${(e as Error).message}`);
      }
      if (type === FRAME_META_TYPE_FINAL) return final();
      if (type !== FRAME_META_TYPE_PT_REGS || !regsOnStack) return done('no_unwind_info', `frame_record_meta at ${hex64(fp)} of type ${type}`);
      let regs: Aarch64Regs;
      try {
        regs = await readRegs(regsAddr);
      } catch (e) {
        return done('unreadable', `pt_regs at ${hex64(regsAddr)}: ${(e as Error).message}`);
      }
      if (isUserPstate(regs['pstate']!)) return final();
      exceptionFrames.push({ level: frames.length, address: regsAddr, regs, partial: false, user: false });
      push(regs['pc']!, regs['sp']!, true);
      const regLr = stripPac(regs['x30']!, input.pacMask);
      if (input.isText(regLr)) push(regLr, regs['sp']!, false, false, 'lr');
      prev = { fp, stack };
      fp = regs['x29']!;
      continue;
    }
    if (nextFp === 0n && lr === 0n) return done('no_unwind_info', `zero frame record at ${hex64(fp)} that is not the task's final one`);
    // an exception from EL1: the record inside pt_regs holds the interrupted x29 and pc
    if (layout.metaType === undefined && regsOnStack) {
      try {
        const regs = await readRegs(regsAddr);
        if (regs['pc'] === lr && regs['x29'] === nextFp && !isUserPstate(regs['pstate']!) && input.isText(stripPac(lr, input.pacMask))) {
          exceptionFrames.push({ level: frames.length, address: regsAddr, regs, partial: false, user: false });
          push(stripPac(lr, input.pacMask), regs['sp']!, true);
          prev = { fp, stack };
          fp = nextFp;
          continue;
        }
      } catch {
        /* not a pt_regs: an ordinary record */
      }
    }
    const pc = stripPac(lr, input.pacMask);
    if (!input.isText(pc)) return done('bad_ip', `return address ${hex64(lr)} in the record at ${hex64(fp)} is not kernel text`);
    push(pc, fp, false);
    prev = { fp, stack };
    fp = nextFp;
  }
  return done('frame_limit', `${max} frames`);
}
