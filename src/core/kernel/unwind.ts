/**
 * What every architecture's kernel stack unwinder produces (x86_64/unwind.ts: ORC;
 * aarch64/unwind.ts: frame records) and the arch-neutral backtracer (backtrace.ts) consumes:
 * the stacks a task may be on, the frames found, the exception frames (pt_regs) crossed, and why
 * a walk ended.
 */
export type StackKind = 'task' | 'irq' | 'exception' | 'entry' | 'unknown';
export interface StackRange {
  kind: StackKind;
  /** [start, end) */
  start: bigint;
  end: bigint;
  /** e.g. 'NMI' for an exception stack */
  name?: string;
}

/**
 * How a frame was found: `orc`; `fp` (frame pointer, a guess on x86_64; arm64's frame records);
 * `scan` (a text address on the stack, a guess); `call_site` (the return address into the caller
 * of a function without ORC data, proven by its call instruction, see x86_64/unwind.ts); `lr`
 * (arm64's link register or pt_regs::lr, a guess where no frame record holds it).
 */
export type UnwindMethod = 'orc' | 'fp' | 'scan' | 'call_site' | 'lr';

export interface UnwindFrame {
  level: number;
  /** The stack pointer at this frame (the caller's sp after the return for a call frame). */
  sp: bigint;
  pc: bigint;
  /** False for frame-pointer and scan guesses (printed with `?`) and after a fallback entry. */
  reliable: boolean;
  method: UnwindMethod;
  /** True when pc is an interrupted instruction (first frame, after a pt_regs), not a return address. */
  exact: boolean;
  stack: StackKind;
  stackName?: string;
}

export type StopReason =
  | 'end_of_stack' // ORC end marker: the walk is complete
  | 'user_mode' // a pt_regs from user mode: the walk is complete
  | 'bad_orc_entry' // an UNDEFINED entry or an impossible register
  | 'no_unwind_info' // neither ORC nor a valid frame pointer
  | 'unreadable' // a stack read failed
  | 'off_stack' // the stack pointer left every known stack
  | 'wrong_direction' // the stack pointer did not grow on the same stack
  | 'bad_ip' // the return address is not kernel text
  | 'frame_limit'; // the walk reached the frame limit

/**
 * One pt_regs an unwinder crossed (or a CPU's own registers): the registers by the
 * architecture's pt_regs names (x86_64: ip, sp, cs...; aarch64: x0..x30, sp, pc, pstate).
 */
export interface ExceptionFrame {
  /** The frame whose pc came from these registers. */
  level: number;
  /** Address of the pt_regs on the stack (undefined for the CPU's own registers). */
  address?: bigint;
  regs: Readonly<Record<string, bigint | undefined>>;
  /** Only part of the registers are valid (x86_64: the IRET frame). */
  partial: boolean;
  user: boolean;
}
