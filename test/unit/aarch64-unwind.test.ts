/**
 * The arm64 frame-record unwinder on synthetic stacks laid out as Linux 6.1's entry code and
 * call_on_irq_stack lay them out (arch/arm64/kernel/entry.S, stacktrace.c): a chain on the IRQ
 * stack back to the task stack, an exception frame (pt_regs with its record {x29, ELR}), return
 * addresses carrying pointer-authentication bits, the final record of the entry from EL0; and
 * the frame_record_meta form (FRAME_META_TYPE_PT_REGS / FINAL) of later kernels. Broken chains
 * stop with a typed reason.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { unwindAarch64, PT_REGS_6_1, type Aarch64UnwindInput } from '../../src/core/kernel/aarch64/unwind.js';

const TEXT = 0xffff800008010000n;
const PAC = 0xff7f000000000000n; // KERNELPACMASK of a 48-bit VA kernel with pointer authentication
const TASK = { kind: 'task' as const, start: 0xffff800008020000n, end: 0xffff800008024000n };
const IRQ = { kind: 'irq' as const, name: 'IRQ', start: 0xffff800008000000n, end: 0xffff800008004000n };

class Mem {
  readonly words = new Map<bigint, bigint>();
  set(addr: bigint, ...vals: bigint[]) {
    vals.forEach((v, i) => this.words.set(addr + BigInt(i * 8), v));
  }
  read = async (va: bigint, n: number) => {
    const b = new Uint8Array(n);
    const dv = new DataView(b.buffer);
    for (let i = 0; i < n; i += 8) {
      const w = this.words.get(va + BigInt(i));
      if (w === undefined && !(va >= TASK.start && va < TASK.end) && !(va >= IRQ.start && va < IRQ.end)) throw new Error(`unmapped 0x${va.toString(16)}`);
      dv.setBigUint64(i, w ?? 0n, true);
    }
    return b;
  };
}

/** A return address with a PAC in the bits the mask covers (bit 55 stays set, as in a kernel VA). */
const signed = (a: bigint) => (a & ~PAC) | (0x2an << 48n);

function input(mem: Mem, extra: Partial<Aarch64UnwindInput> = {}): Aarch64UnwindInput {
  return {
    read: mem.read,
    stacks: [TASK, IRQ],
    taskStack: TASK,
    isText: (pc) => pc >= TEXT && pc < TEXT + 0x100000n,
    layout: PT_REGS_6_1,
    pacMask: PAC,
    ...extra,
  };
}

/** pt_regs at `at`: x29, x30, sp, pc, pstate; the record at stackframe. */
function ptRegs(mem: Mem, at: bigint, r: { x29: bigint; x30: bigint; sp: bigint; pc: bigint; pstate: bigint }, record: [bigint, bigint]) {
  mem.set(at + 29n * 8n, r.x29, r.x30, r.sp, r.pc, r.pstate);
  mem.set(at + BigInt(PT_REGS_6_1.stackframe), ...record);
}

test('arm64 unwind: IRQ stack -> exception frame -> task stack -> entry from EL0, PAC stripped', async () => {
  const mem = new Mem();
  const finalRec = TASK.end - 336n + 304n;
  // task stack, from the top: the user pt_regs (final record zero), el0 handler records
  ptRegs(mem, TASK.end - 336n, { x29: 0x1234n, x30: 0n, sp: 0xfffff000n, pc: 0x400123n, pstate: 0n }, [0n, 0n]);
  const r3 = TASK.end - 0x400n; // the record of a C function called from the EL0 entry
  mem.set(r3, finalRec, signed(TEXT + 0x5004n));
  const r2 = TASK.end - 0x500n; // the interrupted function's record
  mem.set(r2, r3, signed(TEXT + 0x4008n));
  // an exception from EL1 at TEXT+0x3000 in the function whose record is r2
  const regs = TASK.end - 0x900n;
  ptRegs(mem, regs, { x29: r2, x30: signed(TEXT + 0x2ff0n), sp: TASK.end - 0x600n, pc: TEXT + 0x3000n, pstate: 0x80400005n }, [r2, TEXT + 0x3000n]);
  const r1 = TASK.end - 0xa00n; // el1 irq handler's record, pointing at pt_regs.stackframe
  mem.set(r1, regs + 304n, signed(TEXT + 0x2004n)); // returns into the entry vector
  const r0t = TASK.end - 0xa40n; // call_on_irq_stack's record on the task stack
  mem.set(r0t, r1, signed(TEXT + 0x1804n));
  const r0 = IRQ.end - 0x40n; // the IRQ handler's record on the IRQ stack
  mem.set(r0, r0t, signed(TEXT + 0x1004n));
  const res = await unwindAarch64(input(mem), { pc: TEXT + 0x100n, sp: IRQ.end - 0x80n, fp: r0, lr: signed(TEXT + 0x1004n), pstate: 0x5n, fromRegisters: true });
  assert.equal(res.stop, 'user_mode', res.stopDetail);
  assert.deepEqual(
    res.frames.map((f) => [f.pc - TEXT, f.stack, f.exact]),
    [
      [0x100n, 'irq', true],
      [0x1004n, 'irq', false],
      [0x1804n, 'task', false],
      [0x2004n, 'task', false],
      [0x3000n, 'task', true],
      [0x4008n, 'task', false],
      [0x5004n, 'task', false],
    ],
  );
  assert.deepEqual(res.exceptionFrames.map((e) => [e.level, e.address, e.user]), [[4, regs, false], [7, TASK.end - 336n, true]]);
  assert.deepEqual(res.user, { pc: 0x400123n, sp: 0xfffff000n });
});

test('arm64 unwind: the link register of a function without its own record is a guess', async () => {
  const mem = new Mem();
  const finalRec = TASK.end - 336n + 304n;
  const r0 = TASK.end - 0x800n;
  mem.set(r0, finalRec, signed(TEXT + 0x3004n));
  const fnStart = (pc: bigint) => pc & ~0xfffn;
  const res = await unwindAarch64(input(mem, { functionStart: fnStart }), { pc: TEXT + 0x1010n, sp: r0 - 0x10n, fp: r0, lr: signed(TEXT + 0x2008n), pstate: 0x5n, fromRegisters: true });
  assert.equal(res.stop, 'end_of_stack');
  assert.deepEqual(res.frames.map((f) => [f.pc - TEXT, f.reliable, f.method]), [[0x1010n, true, 'fp'], [0x2008n, false, 'lr'], [0x3004n, true, 'fp']]);
});

test('arm64 unwind: frame_record_meta (PT_REGS then FINAL)', async () => {
  const layout = { size: 352, stackframe: 304, metaType: 320 };
  const mem = new Mem();
  const finalRegs = TASK.end - 352n;
  mem.set(finalRegs + 304n, 0n, 0n, 1n); // FINAL, a kernel thread (pstate EL1, pc 0)
  const r2 = TASK.end - 0x600n;
  mem.set(r2, finalRegs + 304n, TEXT + 0x6004n);
  const regs = TASK.end - 0x900n;
  mem.set(regs + 29n * 8n, r2, TEXT + 0x5008n, TASK.end - 0x700n, TEXT + 0x5000n, 0x5n);
  mem.set(regs + 304n, 0n, 0n, 2n); // PT_REGS
  const r0 = TASK.end - 0xa00n;
  mem.set(r0, regs + 304n, TEXT + 0x2004n);
  const res = await unwindAarch64(input(mem, { layout }), { pc: TEXT + 0x1000n, sp: r0 - 0x20n, fp: r0, fromRegisters: false });
  assert.equal(res.stop, 'end_of_stack', res.stopDetail);
  assert.deepEqual(res.frames.map((f) => [f.pc - TEXT, f.exact, f.method]), [[0x1000n, false, 'fp'], [0x2004n, false, 'fp'], [0x5000n, true, 'fp'], [0x5008n, false, 'lr'], [0x6004n, false, 'fp']]);
  assert.equal(res.exceptionFrames[0]!.address, regs);
});

test('arm64 unwind: loops, stacks left behind, bad return addresses and unreadable records stop the walk', async () => {
  const mem = new Mem();
  const a = TASK.end - 0x800n;
  const b = TASK.end - 0x900n;
  mem.set(b, a, TEXT + 0x10n);
  mem.set(a, b, TEXT + 0x20n); // back down: a loop
  let r = await unwindAarch64(input(mem), { pc: TEXT, sp: b - 0x10n, fp: b, fromRegisters: false });
  assert.equal(r.stop, 'wrong_direction');
  assert.equal(r.frames.length, 3);
  mem.set(a, IRQ.end - 0x100n, TEXT + 0x20n); // task stack -> IRQ stack: never
  mem.set(IRQ.end - 0x100n, 0n, TEXT + 0x30n);
  r = await unwindAarch64(input(mem), { pc: TEXT, sp: b - 0x10n, fp: b, fromRegisters: false });
  assert.equal(r.stop, 'wrong_direction');
  mem.set(a, TASK.end - 0x700n, 0x1234n); // not text
  r = await unwindAarch64(input(mem), { pc: TEXT, sp: b - 0x10n, fp: b, fromRegisters: false });
  assert.equal(r.stop, 'bad_ip');
  r = await unwindAarch64(input(mem), { pc: TEXT, sp: b - 0x10n, fp: 0xffff000000001000n, fromRegisters: false });
  assert.equal(r.stop, 'off_stack');
  r = await unwindAarch64(input(mem, { stacks: [TASK, { kind: 'irq', start: 0xffff800009000000n, end: 0xffff800009004000n }] }), { pc: TEXT, sp: 0xffff800009000100n, fp: 0xffff800009000100n, fromRegisters: false });
  assert.equal(r.stop, 'unreadable');
  r = await unwindAarch64(input(mem, { maxFrames: 2 }), { pc: TEXT, sp: b - 0x10n, fp: b, fromRegisters: false });
  assert.equal(r.stop, 'frame_limit');
  // a CPU in user mode: no kernel frames
  r = await unwindAarch64(input(mem), { pc: 0x400000n, sp: 0xfff0n, fp: 0n, pstate: 0x0n, fromRegisters: true });
  assert.equal(r.stop, 'user_mode');
  assert.equal(r.frames.length, 0);
});
