/**
 * The x86_64 kernel stack unwinder: ORC first, as the kernel's own arch/x86/kernel/unwind_orc.c
 * (unwind_next_frame) does it, then frame pointers, then a stack scan, the last two marked as
 * guesses. Every walk is bounded (frame count, stack ranges, strictly growing stack pointer on
 * one stack) and ends with a typed stop reason.
 *
 * The walk is pure: memory comes through a read callback, the ORC tables and the task's stacks
 * are given. Starting states come from CPU registers (a CPU note) or a sleeping task's
 * `inactive_task_frame` (see {@link inactiveTaskStart}).
 */
import { defineStruct, type StructValue } from '../../struct.js';
import { ORC_FP_ENTRY, ORC_REG, type OrcEntry, type OrcTables } from './orc.js';
import type { StackRange, StopReason, UnwindFrame, UnwindMethod } from '../unwind.js';
import { KERNEL_LIMITS } from '../../limits.js';

/** struct pt_regs (x86_64, arch/x86/include/asm/ptrace.h): 21 longs. */
export const PtRegsX86_64 = defineStruct('pt_regs', 168, {
  r15: { off: 0, type: 'u64' },
  r14: { off: 8, type: 'u64' },
  r13: { off: 16, type: 'u64' },
  r12: { off: 24, type: 'u64' },
  bp: { off: 32, type: 'u64' },
  bx: { off: 40, type: 'u64' },
  r11: { off: 48, type: 'u64' },
  r10: { off: 56, type: 'u64' },
  r9: { off: 64, type: 'u64' },
  r8: { off: 72, type: 'u64' },
  ax: { off: 80, type: 'u64' },
  cx: { off: 88, type: 'u64' },
  dx: { off: 96, type: 'u64' },
  si: { off: 104, type: 'u64' },
  di: { off: 112, type: 'u64' },
  orig_ax: { off: 120, type: 'u64' },
  ip: { off: 128, type: 'u64' },
  cs: { off: 136, type: 'u64' },
  flags: { off: 144, type: 'u64' },
  sp: { off: 152, type: 'u64' },
  ss: { off: 160, type: 'u64' },
});
export type PtRegs = StructValue<typeof PtRegsX86_64.fields>;
/** offsetof(struct pt_regs, ip): a partial (IRET) frame starts there. */
export const IRET_FRAME_OFFSET = 128;
export const IRET_FRAME_SIZE = 40;

export interface ExceptionFrame {
  /** The frame whose pc came from these registers. */
  level: number;
  /** Address of the pt_regs on the stack (undefined for the CPU's own registers). */
  address?: bigint;
  regs: Partial<PtRegs>;
  /** Only the IRET part (ip, cs, flags, sp, ss) is valid. */
  partial: boolean;
  user: boolean;
}

export interface UnwindResult {
  frames: UnwindFrame[];
  exceptionFrames: ExceptionFrame[];
  stop: StopReason;
  /** Human-readable detail for the stop (address, register, entry). */
  stopDetail: string;
  /** The user-mode registers where the walk reached the entry from user mode. */
  user?: { rip: bigint; rsp: bigint };
}

export interface UnwindInput {
  /** Read kernel virtual memory; throws when unreadable. */
  read(va: bigint, length: number): Promise<Uint8Array>;
  /** ORC tables; undefined falls back to frame pointers. */
  orc?: OrcTables;
  /** Known stacks of this task and its CPU; empty means any readable address is accepted. */
  stacks: readonly StackRange[];
  /** Whether an address is kernel or module text. */
  isText(ip: bigint): boolean;
  /**
   * The start address of the function containing `ip` (from the symbol table), for crossing a
   * function that has no ORC data (see {@link unwind}). Optional: without it such a walk stops.
   */
  functionStart?(ip: bigint): bigint | undefined;
  /** Default 256. */
  maxFrames?: number;
}

export interface WalkStart {
  ip: bigint;
  sp: bigint;
  bp: bigint;
  /** The full register set the state came from (a CPU note), for ORC's register bases. */
  regs?: Partial<PtRegs>;
  /** ip is an interrupted instruction (look it up as is) rather than a return address. */
  signal: boolean;
}

const MASK64 = (1n << 64n) - 1n;
const u64 = (v: bigint) => v & MASK64;
const user = (regs: Partial<PtRegs>) => regs.cs !== undefined && (regs.cs & 3n) !== 0n;

/**
 * inactive_task_frame of a sleeping task (arch/x86/include/asm/switch_to.h): on x86_64 r15, r14,
 * r13, r12, bx, bp, ret_addr. The offsets of bp and ret_addr and the frame size come from BTF when
 * available; the defaults are the layout of every x86_64 kernel since 4.9.
 */
export const INACTIVE_TASK_FRAME = { bp: 40, retAddr: 48, size: 56 } as const;

/**
 * The starting state of a task that is not running: thread.sp points at its
 * inactive_task_frame (unwind_orc.c unwind_start). `retFromFork` marks a new task's first frame
 * as a signal frame, as the kernel does.
 */
export async function inactiveTaskStart(
  read: UnwindInput['read'],
  threadSp: bigint,
  layout: { bp: number; retAddr: number; size: number } = INACTIVE_TASK_FRAME,
  retFromFork?: readonly bigint[],
): Promise<WalkStart> {
  const b = await read(threadSp, layout.size);
  const dv = new DataView(b.buffer, b.byteOffset, b.length);
  const ip = dv.getBigUint64(layout.retAddr, true);
  return {
    ip,
    sp: threadSp + BigInt(layout.size),
    bp: dv.getBigUint64(layout.bp, true),
    signal: retFromFork?.includes(ip) ?? false,
  };
}

/** The starting state of a running CPU from its registers (NT_PRSTATUS or QEMU's note). */
export function cpuStart(regs: Partial<PtRegs> & { ip: bigint; sp: bigint }): WalkStart {
  return { ip: regs.ip, sp: regs.sp, bp: regs.bp ?? 0n, regs, signal: true };
}

class StackReader {
  private readonly cache = new Map<bigint, Uint8Array>();
  constructor(private readonly input: UnwindInput) {}
  stackOf(addr: bigint): StackRange | undefined {
    return this.input.stacks.find((s) => addr >= s.start && addr < s.end);
  }
  /** Read a u64 on a known stack (any address when no stacks are known). */
  async word(addr: bigint): Promise<bigint> {
    if (this.input.stacks.length > 0 && !this.stackOf(addr)) throw new OffStack(addr);
    if ((addr & 7n) !== 0n && (addr & 0xfffn) > 0xff8n) {
      const b = await this.input.read(addr, 8);
      return new DataView(b.buffer, b.byteOffset, 8).getBigUint64(0, true);
    }
    const page = addr & ~0xfffn;
    let p = this.cache.get(page);
    if (!p) {
      if (this.cache.size > 64) this.cache.clear();
      p = await this.input.read(page, 4096);
      this.cache.set(page, p);
    }
    const off = Number(addr - page);
    return new DataView(p.buffer, p.byteOffset + off, 8).getBigUint64(0, true);
  }
  async block(addr: bigint, length: number): Promise<Uint8Array> {
    if (this.input.stacks.length > 0 && (!this.stackOf(addr) || !this.stackOf(addr + BigInt(length - 1)))) throw new OffStack(addr);
    return this.input.read(addr, length);
  }
}

class OffStack extends Error {
  constructor(readonly address: bigint) {
    super(`0x${address.toString(16)} is on no known stack`);
  }
}

function hx(v: bigint): string {
  return `0x${u64(v).toString(16)}`;
}

/**
 * Unwind from `start`. ORC when tables are given, else frame pointers; after an ORC or frame
 * pointer failure that is not a normal end, the rest of the current stack is scanned for text
 * addresses (frames marked unreliable, method 'scan'). Never throws for bad memory or tables:
 * the reason is in `stop`.
 */
export async function unwind(input: UnwindInput, start: WalkStart): Promise<UnwindResult> {
  const max = input.maxFrames ?? KERNEL_LIMITS.maxFrames;
  const mem = new StackReader(input);
  const frames: UnwindFrame[] = [];
  const exceptionFrames: ExceptionFrame[] = [];
  const push = (pc: bigint, sp: bigint, reliable: boolean, method: UnwindMethod, exact: boolean) => {
    const s = mem.stackOf(sp);
    frames.push({
      level: frames.length,
      sp,
      pc,
      reliable,
      method,
      exact,
      stack: s?.kind ?? 'unknown',
      ...(s?.name ? { stackName: s.name } : {}),
    });
  };
  const done = (stop: StopReason, stopDetail: string, extra: Partial<UnwindResult> = {}): UnwindResult => ({
    frames,
    exceptionFrames,
    stop,
    stopDetail,
    ...extra,
  });

  let ip = start.ip;
  let sp = start.sp;
  let bp = start.bp;
  let signal = start.signal;
  let regs: Partial<PtRegs> | undefined = start.regs;
  let fullRegs = start.regs !== undefined;
  let prevRegs: Partial<PtRegs> | undefined;
  if (start.regs) exceptionFrames.push({ level: 0, regs: start.regs, partial: false, user: user(start.regs) });
  if (start.regs && user(start.regs)) {
    return done('user_mode', 'the CPU was in user mode', { user: { rip: start.ip, rsp: start.sp } });
  }
  if (!input.isText(ip)) {
    push(ip, sp, false, input.orc ? 'orc' : 'fp', signal);
    return scanRest(input, mem, frames, exceptionFrames, sp, max, 'bad_ip', `start ip ${hx(ip)} is not kernel text`);
  }
  push(ip, sp, true, input.orc ? 'orc' : 'fp', signal);

  const getReg = (name: keyof PtRegs): bigint | undefined => {
    if (!regs) return undefined;
    if (fullRegs) return regs[name];
    if (prevRegs) return prevRegs[name];
    return undefined;
  };

  if (!input.orc) return framePointerWalk(input, mem, frames, exceptionFrames, sp, bp, max);

  let reliable = true;
  for (;;) {
    if (frames.length >= max) return done('frame_limit', `${max} frames`);
    if (regs && user(regs)) {
      return done('user_mode', 'entry from user mode', { user: { rip: regs.ip ?? 0n, rsp: regs.sp ?? 0n } });
    }
    const lookup = signal ? ip : ip - 1n;
    const hit = input.orc.find(lookup);
    let orc: OrcEntry;
    if (!hit) {
      // unwind_orc.c: no entry, assume a frame pointer (and the walk is no longer reliable)
      orc = ORC_FP_ENTRY;
      reliable = false;
    } else {
      orc = hit.entry;
      if (orc.type === 'undefined') {
        // A function objtool left without ORC data (Debian 6.1's __crash_kexec, where every
        // kernel-made dump's panic registers point): find its caller by the call instruction.
        const found = await callSite(input, mem, lookup, sp);
        if (!found) return scanRest(input, mem, frames, exceptionFrames, sp, max, 'bad_orc_entry', `UNDEFINED ORC entry at ${hx(lookup)}`);
        ip = found.ip;
        sp = found.sp;
        regs = undefined;
        prevRegs = undefined;
        signal = false;
        push(ip, sp, reliable, 'call_site', false);
        continue;
      }
      if (orc.type === 'end_of_stack') return done('end_of_stack', `end marker at ${hx(lookup)}`);
    }
    const prevSp = sp;
    const prevStack = mem.stackOf(sp);
    let newSp: bigint;
    let indirect = false;
    try {
      switch (orc.spReg) {
        case ORC_REG.SP: newSp = sp + BigInt(orc.spOffset); break;
        case ORC_REG.BP: newSp = bp + BigInt(orc.spOffset); break;
        case ORC_REG.SP_INDIRECT: newSp = sp; indirect = true; break;
        case ORC_REG.BP_INDIRECT: newSp = bp + BigInt(orc.spOffset); indirect = true; break;
        case ORC_REG.R10:
        case ORC_REG.R13:
        case ORC_REG.DI:
        case ORC_REG.DX: {
          const name = ({ [ORC_REG.R10]: 'r10', [ORC_REG.R13]: 'r13', [ORC_REG.DI]: 'di', [ORC_REG.DX]: 'dx' } as const)[orc.spReg];
          const v = getReg(name);
          if (v === undefined) return scanRest(input, mem, frames, exceptionFrames, sp, max, 'bad_orc_entry', `ORC needs ${name} at ${hx(ip)}, which no saved registers hold`);
          newSp = v;
          break;
        }
        default:
          return scanRest(input, mem, frames, exceptionFrames, sp, max, 'bad_orc_entry', `ORC sp_reg ${orc.spReg} at ${hx(ip)}`);
      }
      newSp = u64(newSp);
      if (indirect) {
        newSp = await mem.word(newSp);
        if (orc.spReg === ORC_REG.SP_INDIRECT) newSp = u64(newSp + BigInt(orc.spOffset));
      }
      switch (orc.type) {
        case 'call': {
          ip = await mem.word(newSp - 8n);
          sp = newSp;
          regs = undefined;
          prevRegs = undefined;
          signal = orc.signal;
          break;
        }
        case 'regs': {
          const b = await mem.block(newSp, PtRegsX86_64.size);
          const r = PtRegsX86_64.read(b, 0, true);
          ip = r.ip;
          sp = r.sp;
          regs = r;
          prevRegs = undefined;
          fullRegs = true;
          signal = true;
          exceptionFrames.push({ level: frames.length, address: newSp, regs: r, partial: false, user: user(r) });
          break;
        }
        case 'regs_partial': {
          const b = await mem.block(newSp, IRET_FRAME_SIZE);
          const dv = new DataView(b.buffer, b.byteOffset, b.length);
          const r: Partial<PtRegs> = {
            ip: dv.getBigUint64(0, true),
            cs: dv.getBigUint64(8, true),
            flags: dv.getBigUint64(16, true),
            sp: dv.getBigUint64(24, true),
            ss: dv.getBigUint64(32, true),
          };
          ip = r.ip!;
          sp = r.sp!;
          // the kernel keeps the previous full regs for get_reg (state->prev_regs)
          prevRegs = fullRegs && regs ? regs : undefined;
          regs = r;
          fullRegs = false;
          signal = true;
          exceptionFrames.push({ level: frames.length, address: newSp - BigInt(IRET_FRAME_OFFSET), regs: r, partial: true, user: user(r) });
          break;
        }
        default:
          return scanRest(input, mem, frames, exceptionFrames, prevSp, max, 'bad_orc_entry', `ORC type ${orc.type} at ${hx(ip)}`);
      }
      switch (orc.bpReg) {
        case ORC_REG.UNDEFINED: {
          const v = getReg('bp');
          if (v !== undefined) bp = v;
          break;
        }
        case ORC_REG.PREV_SP: bp = await mem.word(newSp + BigInt(orc.bpOffset)); break;
        case ORC_REG.BP: bp = await mem.word(u64(bp + BigInt(orc.bpOffset))); break;
        default:
          return scanRest(input, mem, frames, exceptionFrames, prevSp, max, 'bad_orc_entry', `ORC bp_reg ${orc.bpReg} at ${hx(ip)}`);
      }
    } catch (e) {
      if (e instanceof OffStack) return scanRest(input, mem, frames, exceptionFrames, prevSp, max, 'off_stack', `${e.message} (unwinding ${hx(ip)})`);
      return scanRest(input, mem, frames, exceptionFrames, prevSp, max, 'unreadable', `${(e as Error).message} (unwinding ${hx(ip)})`);
    }
    if (regs && user(regs)) {
      return done('user_mode', 'entry from user mode', { user: { rip: regs.ip ?? 0n, rsp: regs.sp ?? 0n } });
    }
    const newStack = mem.stackOf(sp);
    if (input.stacks.length > 0 && !newStack) {
      return scanRest(input, mem, frames, exceptionFrames, prevSp, max, 'off_stack', `sp ${hx(sp)} after ${hx(frames[frames.length - 1]!.pc)} is on no known stack`);
    }
    if (newStack === prevStack && sp <= prevSp) {
      return scanRest(input, mem, frames, exceptionFrames, prevSp, max, 'wrong_direction', `sp ${hx(sp)} <= ${hx(prevSp)} on the same stack`);
    }
    if (!input.isText(ip)) {
      return scanRest(input, mem, frames, exceptionFrames, prevSp, max, 'bad_ip', `return address ${hx(ip)} is not kernel text`);
    }
    push(ip, sp, reliable, 'orc', signal);
  }
}

/** How far above the stack pointer {@link callSite} looks: the kernel warns at 2 KiB frames (CONFIG_FRAME_WARN). */
export const CALL_SITE_WINDOW = 0x1000n;

/**
 * The caller of a function that has no ORC data at `ip`: the first word above `sp` (on the same
 * stack, within CALL_SITE_WINDOW) that is a return address right after a direct call (`e8 rel32`)
 * whose target is the start of the function containing `ip`, and whose own ORC entry is defined.
 * A stale return address into another function fails the target check. Undefined when the
 * function start is unknown or no such word exists. The caller's sp is the slot + 8.
 */
async function callSite(input: UnwindInput, mem: StackReader, ip: bigint, sp: bigint): Promise<{ ip: bigint; sp: bigint } | undefined> {
  const target = input.functionStart?.(ip);
  if (target === undefined || !input.orc) return undefined;
  const stack = mem.stackOf(sp);
  const end = stack ? (stack.end < sp + CALL_SITE_WINDOW ? stack.end : sp + CALL_SITE_WINDOW) : sp + CALL_SITE_WINDOW;
  for (let a = (sp + 7n) & ~7n; a + 8n <= end; a += 8n) {
    let v: bigint;
    try {
      v = await mem.word(a);
    } catch {
      return undefined;
    }
    if (!input.isText(v) || !input.isText(v - 5n)) continue;
    let code: Uint8Array;
    try {
      code = await input.read(v - 5n, 5);
    } catch {
      continue;
    }
    if (code[0] !== 0xe8) continue;
    const rel = new DataView(code.buffer, code.byteOffset, 5).getInt32(1, true);
    if (u64(v + BigInt(rel)) !== target) continue;
    const e = input.orc.find(v - 1n)?.entry;
    if (!e || e.type === 'undefined') continue;
    return { ip: v, sp: a + 8n };
  }
  return undefined;
}

/** Frame-pointer walk (CONFIG_UNWINDER_FRAME_POINTER kernels, or no ORC tables found). */
async function framePointerWalk(
  input: UnwindInput,
  mem: StackReader,
  frames: UnwindFrame[],
  exceptionFrames: ExceptionFrame[],
  sp: bigint,
  bp: bigint,
  max: number,
): Promise<UnwindResult> {
  let prevBp = sp - 8n;
  for (;;) {
    if (frames.length >= max) return { frames, exceptionFrames, stop: 'frame_limit', stopDetail: `${max} frames` };
    if (bp === 0n) return { frames, exceptionFrames, stop: 'end_of_stack', stopDetail: 'frame pointer 0' };
    if (bp <= prevBp || (bp & 7n) !== 0n) return scanRest(input, mem, frames, exceptionFrames, sp, max, 'no_unwind_info', `frame pointer ${hx(bp)} does not grow`);
    let next: bigint;
    let ret: bigint;
    try {
      next = await mem.word(bp);
      ret = await mem.word(bp + 8n);
    } catch (e) {
      const why = e instanceof OffStack ? 'off_stack' : 'unreadable';
      return scanRest(input, mem, frames, exceptionFrames, sp, max, why, (e as Error).message);
    }
    if (!input.isText(ret)) return scanRest(input, mem, frames, exceptionFrames, sp, max, 'no_unwind_info', `no return address at ${hx(bp + 8n)}`);
    sp = bp + 16n;
    frames.push({ level: frames.length, sp, pc: ret, reliable: false, method: 'fp', exact: false, stack: mem.stackOf(sp)?.kind ?? 'unknown' });
    prevBp = bp;
    bp = next;
  }
}

/**
 * After a failure: every word of the rest of the current stack that holds a text address is a
 * guess ('scan', unreliable), as the kernel's show_trace_log_lvl prints `? ` entries.
 */
async function scanRest(
  input: UnwindInput,
  mem: StackReader,
  frames: UnwindFrame[],
  exceptionFrames: ExceptionFrame[],
  from: bigint,
  max: number,
  stop: StopReason,
  stopDetail: string,
): Promise<UnwindResult> {
  const stack = mem.stackOf(from);
  // without known stacks, scan at most 4 KiB
  const end = stack ? stack.end : (from & ~0xfffn) + 0x1000n;
  const limit = Math.min(max, frames.length + 64);
  for (let a = (from + 7n) & ~7n; a + 8n <= end && frames.length < limit; a += 8n) {
    let v: bigint;
    try {
      v = await mem.word(a);
    } catch {
      break;
    }
    if (input.isText(v)) {
      frames.push({ level: frames.length, sp: a, pc: v, reliable: false, method: 'scan', exact: false, stack: stack?.kind ?? 'unknown' });
    }
  }
  return { frames, exceptionFrames, stop, stopDetail };
}
