/**
 * ORC tables and the x86_64 unwinder on synthetic kernel text, ORC tables and stacks built here:
 * call frames, an exception pt_regs from user mode and from kernel mode, a partial (IRET) frame,
 * the end marker, every orc_entry layout, the frame-pointer fallback, and hostile input (loops,
 * stack pointers leaving the stack, unreadable pages, UNDEFINED entries, unsorted tables, frame
 * limit): each walk ends with the frames found and a typed stop reason.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  decodeOrcEntry,
  encodeOrcEntry,
  ORC_REG,
  OrcTable,
  OrcTables,
  orcLayoutForRelease,
  orcLayoutFromBtf,
  type OrcEntry,
  type OrcLayout,
} from '../../src/core/kernel/x86_64/orc.js';
import { cpuStart, inactiveTaskStart, PtRegsX86_64, unwind, type PtRegs, type UnwindInput } from '../../src/core/kernel/x86_64/unwind.js';
import { isVmcoreError } from '../../src/core/errors.js';

const TEXT = 0xffffffff81000000n;
const STACK = 0xffffc90000010000n;
const STACK_SIZE = 0x4000n;

/** Sparse little-endian memory of 4 KiB pages; reads of absent pages throw. */
class Mem {
  pages = new Map<bigint, Uint8Array>();
  unreadable = new Set<bigint>();
  page(a: bigint): Uint8Array {
    const p = a & ~0xfffn;
    let b = this.pages.get(p);
    if (!b) this.pages.set(p, (b = new Uint8Array(4096)));
    return b;
  }
  u64(a: bigint, v: bigint): void {
    const b = this.page(a);
    new DataView(b.buffer).setBigUint64(Number(a & 0xfffn), BigInt.asUintN(64, v), true);
  }
  bytes(a: bigint, data: Uint8Array): void {
    for (let i = 0; i < data.length; i++) this.page(a + BigInt(i))[Number((a + BigInt(i)) & 0xfffn)] = data[i]!;
  }
  async read(va: bigint, len: number): Promise<Uint8Array> {
    const out = new Uint8Array(len);
    for (let i = 0; i < len; i++) {
      const a = va + BigInt(i);
      const p = a & ~0xfffn;
      if (this.unreadable.has(p) || !this.pages.has(p)) throw new Error(`page 0x${p.toString(16)} not present`);
      out[i] = this.pages.get(p)![Number(a & 0xfffn)]!;
    }
    return out;
  }
}

const call = (spOffset: number, extra: Partial<OrcEntry> = {}): OrcEntry => ({
  type: 'call',
  spReg: ORC_REG.SP,
  spOffset,
  bpReg: ORC_REG.UNDEFINED,
  bpOffset: 0,
  signal: false,
  ...extra,
});

/** An ORC table from (address offset, entry) pairs, in the kernel's relative-IP encoding. */
function table(entries: [number, OrcEntry][], layout: OrcLayout = 'v3', ipBase = 0xffffffff82000000n): OrcTable {
  const ips = new Uint8Array(entries.length * 4);
  const dv = new DataView(ips.buffer);
  const orcs = new Uint8Array(entries.length * 6);
  entries.forEach(([off, e], i) => {
    dv.setInt32(i * 4, Number(TEXT + BigInt(off) - (ipBase + BigInt(i * 4))), true);
    orcs.set(encodeOrcEntry(e, layout), i * 6);
  });
  return new OrcTable('vmlinux', ipBase, ips, orcs, layout, TEXT, TEXT + 0x10000n);
}

// Functions of the synthetic text: leaf 0x100, mid 0x200, entry 0x300 (pt_regs at sp), thread
// bottom 0x400 (end of stack), irq 0x500 (partial regs), 0x600 undefined, 0x700 fp-style frame.
const F = { leaf: 0x100, mid: 0x200, entry: 0x300, bottom: 0x400, irq: 0x500, undef: 0x600, fp: 0x700 };
function kernelTable(layout: OrcLayout = 'v3', mid: OrcEntry = call(24)): OrcTable {
  return table(
    [
      [0x0, { type: 'undefined', spReg: ORC_REG.UNDEFINED, bpReg: 0, spOffset: 0, bpOffset: 0, signal: false }],
      [F.leaf, call(8)],
      [F.leaf + 0x10, call(16, { bpReg: ORC_REG.PREV_SP, bpOffset: -16 })],
      [F.mid, mid],
      [F.entry, { type: 'regs', spReg: ORC_REG.SP, spOffset: 0, bpReg: ORC_REG.UNDEFINED, bpOffset: 0, signal: false }],
      [F.bottom, { type: 'end_of_stack', spReg: ORC_REG.UNDEFINED, bpReg: 0, spOffset: 0, bpOffset: 0, signal: false }],
      [F.irq, { type: 'regs_partial', spReg: ORC_REG.SP, spOffset: 8, bpReg: ORC_REG.UNDEFINED, bpOffset: 0, signal: false }],
      [F.undef, { type: 'undefined', spReg: ORC_REG.UNDEFINED, bpReg: 0, spOffset: 0, bpOffset: 0, signal: false }],
      [F.fp, { type: 'call', spReg: ORC_REG.BP, spOffset: 16, bpReg: ORC_REG.PREV_SP, bpOffset: -16, signal: false }],
      [0x800, { type: 'undefined', spReg: ORC_REG.UNDEFINED, bpReg: 0, spOffset: 0, bpOffset: 0, signal: false }],
    ],
    layout,
  );
}

function input(mem: Mem, orc: OrcTable | undefined, extra: Partial<UnwindInput> = {}): UnwindInput {
  return {
    read: (va, len) => mem.read(va, len),
    ...(orc ? { orc: new OrcTables([orc]) } : {}),
    stacks: [{ kind: 'task', start: STACK, end: STACK + STACK_SIZE }],
    isText: (ip) => ip >= TEXT && ip < TEXT + 0x800n,
    ...extra,
  };
}

function ptRegs(r: Partial<PtRegs>): Uint8Array {
  return PtRegsX86_64.encode(r, true);
}

/** leaf (bp pushed) <- mid (24-byte frame) <- entry with a user-mode pt_regs. */
function syscallStack(mem: Mem): { sp0: bigint } {
  const sp0 = STACK + 0x3000n;
  mem.page(STACK + 0x2000n);
  mem.u64(sp0, 0x1111n); // saved bp
  mem.u64(sp0 + 8n, TEXT + BigInt(F.mid + 0x50)); // return into mid
  // mid's frame: sp0+16 .. sp0+40, return address at sp0+32
  mem.u64(sp0 + 32n, TEXT + BigInt(F.entry + 0x40)); // return into entry
  // pt_regs at sp0+40
  mem.bytes(sp0 + 40n, ptRegs({ ip: 0x401000n, cs: 0x33n, sp: 0x7ffc0000n, ss: 0x2bn, flags: 0x202n, bp: 0x2222n }));
  return { sp0 };
}

test('orc_entry layouts: v1, v2, v3 round-trip, end markers, layout from release and BTF', () => {
  for (const layout of ['v1', 'v2', 'v3'] as const) {
    for (const e of [call(8), call(16, { bpReg: ORC_REG.PREV_SP, bpOffset: -16 }), { ...call(0), type: 'regs' as const }, { ...call(8), type: 'regs_partial' as const }]) {
      assert.deepEqual(decodeOrcEntry(encodeOrcEntry(e, layout), 0, layout), e, `${layout} ${e.type}`);
    }
  }
  // v1: sp_reg UNDEFINED with end=1 is the end of the stack, without it an error
  assert.equal(decodeOrcEntry(new Uint8Array([0, 0, 0, 0, 0x00, 0x04]), 0, 'v1').type, 'end_of_stack');
  assert.equal(decodeOrcEntry(new Uint8Array([0, 0, 0, 0, 0x00, 0x00]), 0, 'v1').type, 'undefined');
  // v3: type 1 is END_OF_STACK, 3 REGS; v1 reads type bits 8-9 (REGS = 1)
  assert.equal(decodeOrcEntry(new Uint8Array([0, 0, 0, 0, 0x05, 0x03]), 0, 'v3').type, 'regs');
  assert.equal(decodeOrcEntry(new Uint8Array([0, 0, 0, 0, 0x05, 0x01]), 0, 'v1').type, 'regs');
  assert.equal(decodeOrcEntry(new Uint8Array([0, 0, 0, 0, 0x05, 0x08]), 0, 'v3').signal, true);
  assert.equal(decodeOrcEntry(new Uint8Array([0xf8, 0xff, 0, 0, 0x05, 0x02]), 0, 'v3').spOffset, -8);
  assert.equal(orcLayoutForRelease('6.1.0-56-cloud-amd64'), 'v1');
  assert.equal(orcLayoutForRelease('6.3.7'), 'v2');
  assert.equal(orcLayoutForRelease('6.12.107+deb12-cloud-amd64'), 'v3');
  assert.equal(orcLayoutForRelease('4.19.0'), 'v1');
  assert.throws(() => orcLayoutForRelease('garbage'), (e) => isVmcoreError(e) && e.code === 'UNSUPPORTED');
  assert.equal(orcLayoutFromBtf([{ name: 'sp_reg' }, { name: 'type', bitSize: 3 }, { name: 'signal' }]), 'v3');
  assert.equal(orcLayoutFromBtf([{ name: 'sp_reg' }, { name: 'type', bitSize: 2 }, { name: 'end' }]), 'v1');
  assert.equal(orcLayoutFromBtf([{ name: 'sp_reg' }, { name: 'type', bitSize: 2 }, { name: 'signal' }, { name: 'end' }]), 'v2');
  assert.equal(orcLayoutFromBtf([{ name: 'x' }]), undefined);
});

test('ORC lookup: the last entry at or below ip, relative IPs, misses outside the text', () => {
  const t = kernelTable();
  assert.equal(t.count, 10);
  assert.deepEqual(t.find(TEXT + BigInt(F.leaf + 0x20)), call(16, { bpReg: ORC_REG.PREV_SP, bpOffset: -16 }));
  assert.deepEqual(t.find(TEXT + BigInt(F.leaf)), call(8));
  assert.deepEqual(t.find(TEXT + BigInt(F.mid + 0xff)), call(24));
  assert.equal(t.find(TEXT - 1n), undefined);
  assert.equal(t.find(TEXT + 0x10000n), undefined);
});

test('hostile ORC tables: unsorted IPs or a short entry table are typed errors', () => {
  const ips = new Uint8Array(8);
  new DataView(ips.buffer).setInt32(0, 0x100, true);
  new DataView(ips.buffer).setInt32(4, 0x0, true); // slot 1 + 0 < slot 0 + 0x100
  assert.throws(() => new OrcTable('vmlinux', TEXT, ips, new Uint8Array(12), 'v3', TEXT, TEXT + 0x1000n), (e) => isVmcoreError(e) && e.code === 'BAD_FIELD');
  assert.throws(() => new OrcTable('vmlinux', TEXT, ips, new Uint8Array(6), 'v3', TEXT, TEXT + 0x1000n), (e) => isVmcoreError(e) && e.field === 'orc_unwind');
});

test('unwind a syscall: call frames, then the user-mode pt_regs ends the walk with the user RIP/RSP', async () => {
  for (const layout of ['v1', 'v3'] as const) {
    const mem = new Mem();
    const { sp0 } = syscallStack(mem);
    const r = await unwind(input(mem, kernelTable(layout)), cpuStart({ ip: TEXT + BigInt(F.leaf + 0x20), sp: sp0, bp: sp0, cs: 0x10n }));
    assert.equal(r.stop, 'user_mode', r.stopDetail);
    assert.deepEqual(
      r.frames.map((f) => [f.pc - TEXT, f.sp - sp0, f.reliable, f.exact]),
      [
        [BigInt(F.leaf + 0x20), 0n, true, true],
        [BigInt(F.mid + 0x50), 16n, true, false],
        [BigInt(F.entry + 0x40), 40n, true, false],
      ],
      layout,
    );
    assert.deepEqual(r.user, { rip: 0x401000n, rsp: 0x7ffc0000n });
    const exc = r.exceptionFrames.find((e) => e.address !== undefined)!;
    assert.equal(exc.address, sp0 + 40n);
    assert.equal(exc.user, true);
    assert.equal(exc.regs.bp, 0x2222n);
  }
});

test('a kernel thread ends at the end marker; a sleeping task starts from its inactive_task_frame', async () => {
  const mem = new Mem();
  const threadSp = STACK + 0x3f00n;
  // inactive_task_frame: r15 r14 r13 r12 bx bp ret_addr
  mem.u64(threadSp + 40n, 0x3333n);
  mem.u64(threadSp + 48n, TEXT + BigInt(F.mid + 0x10));
  const sp = threadSp + 56n;
  mem.u64(sp + 16n, TEXT + BigInt(F.bottom + 0x8)); // mid's return address (frame of 24)
  const start = await inactiveTaskStart((va, n) => mem.read(va, n), threadSp);
  assert.deepEqual(start, { ip: TEXT + BigInt(F.mid + 0x10), sp, bp: 0x3333n, signal: false });
  const r = await unwind(input(mem, kernelTable('v1')), start);
  assert.equal(r.stop, 'end_of_stack');
  assert.deepEqual(r.frames.map((f) => f.pc - TEXT), [BigInt(F.mid + 0x10), BigInt(F.bottom + 8)]);
  assert.ok(r.frames.every((f) => f.reliable && f.method === 'orc'));
  // ret_from_fork as the saved return address makes the first lookup exact (signal)
  const s2 = await inactiveTaskStart((va, n) => mem.read(va, n), threadSp, undefined, [TEXT + BigInt(F.mid + 0x10)]);
  assert.equal(s2.signal, true);
});

test('a kernel-mode interrupt: the full pt_regs on the stack is crossed and the interrupted function is exact', async () => {
  const mem = new Mem();
  const sp0 = STACK + 0x2000n;
  const below = STACK + 0x2800n; // the interrupted context's stack
  mem.page(sp0);
  mem.page(below);
  mem.u64(sp0 + 16n, TEXT + BigInt(F.entry + 0x10)); // mid returns into the entry code
  mem.bytes(sp0 + 24n, ptRegs({ ip: TEXT + BigInt(F.mid + 0x80), cs: 0x10n, sp: below, bp: 0x4444n, flags: 0x246n }));
  mem.u64(below + 16n, TEXT + BigInt(F.bottom + 1));
  const r = await unwind(input(mem, kernelTable()), cpuStart({ ip: TEXT + BigInt(F.mid + 0x8), sp: sp0, bp: 0n, cs: 0x10n }));
  assert.equal(r.stop, 'end_of_stack', r.stopDetail);
  assert.deepEqual(
    r.frames.map((f) => [f.pc - TEXT, f.exact]),
    [
      [BigInt(F.mid + 8), true],
      [BigInt(F.entry + 0x10), false],
      [BigInt(F.mid + 0x80), true],
      [BigInt(F.bottom + 1), false],
    ],
  );
  const exc = r.exceptionFrames.filter((e) => e.address !== undefined);
  assert.equal(exc.length, 1);
  assert.equal(exc[0]!.user, false);
  assert.equal(exc[0]!.level, 2);
});

test('a partial (IRET) frame: ip, cs, flags, sp, ss at sp+offset; the IRQ stack switches back to the task stack', async () => {
  const mem = new Mem();
  const IRQ = 0xffffc90000100000n;
  const irqSp = IRQ + 0x3f00n;
  mem.page(irqSp);
  const taskSp = STACK + 0x3000n;
  mem.page(taskSp);
  // on the IRQ stack: irq's frame: the IRET frame starts at sp+8
  const iret = new Uint8Array(40);
  const dv = new DataView(iret.buffer);
  dv.setBigUint64(0, TEXT + BigInt(F.mid + 0x40), true); // ip
  dv.setBigUint64(8, 0x10n, true); // cs
  dv.setBigUint64(24, taskSp, true); // sp: back on the task stack
  mem.bytes(irqSp + 8n, iret);
  mem.u64(taskSp + 16n, TEXT + BigInt(F.bottom + 2));
  const stacks = [
    { kind: 'task' as const, start: STACK, end: STACK + STACK_SIZE },
    { kind: 'irq' as const, start: IRQ, end: IRQ + 0x4000n },
  ];
  const r = await unwind(input(mem, kernelTable(), { stacks }), cpuStart({ ip: TEXT + BigInt(F.irq + 4), sp: irqSp, bp: 0n, cs: 0x10n }));
  assert.equal(r.stop, 'end_of_stack', r.stopDetail);
  assert.deepEqual(r.frames.map((f) => f.stack), ['irq', 'task', 'task']);
  const p = r.exceptionFrames.find((e) => e.partial)!;
  assert.equal(p.address, irqSp + 8n - 128n);
  assert.equal(p.regs.ip, TEXT + BigInt(F.mid + 0x40));
});

test('hostile stacks: loops, leaving the stack, unreadable pages, UNDEFINED entries and the frame limit stop with a reason', async () => {
  // a frame that does not move sp: wrong direction
  {
    const mem = new Mem();
    const sp0 = STACK + 0x1000n;
    mem.u64(sp0 - 8n, TEXT + BigInt(F.mid + 4));
    const t = kernelTable('v3', call(0));
    const r = await unwind(input(mem, t), cpuStart({ ip: TEXT + BigInt(F.mid + 2), sp: sp0, bp: 0n, cs: 0x10n }));
    assert.equal(r.stop, 'wrong_direction', r.stopDetail);
    assert.equal(r.frames[0]!.reliable, true);
  }
  // an sp offset beyond the stack
  {
    const mem = new Mem();
    const sp0 = STACK + 0x3ff0n;
    mem.page(sp0);
    const t = kernelTable('v3', call(0x4000));
    const r = await unwind(input(mem, t), cpuStart({ ip: TEXT + BigInt(F.mid + 2), sp: sp0, bp: 0n, cs: 0x10n }));
    assert.equal(r.stop, 'off_stack', r.stopDetail);
    assert.equal(r.frames.length >= 1, true);
  }
  // an unreadable stack page
  {
    const mem = new Mem();
    const sp0 = STACK + 0x1000n;
    mem.page(sp0);
    mem.unreadable.add(sp0 & ~0xfffn);
    const r = await unwind(input(mem, kernelTable()), cpuStart({ ip: TEXT + BigInt(F.mid + 2), sp: sp0, bp: 0n, cs: 0x10n }));
    assert.equal(r.stop, 'unreadable', r.stopDetail);
    assert.equal(r.frames.length, 1);
  }
  // an UNDEFINED entry: the rest of the stack is scanned, the guesses are unreliable
  {
    const mem = new Mem();
    const sp0 = STACK + 0x3fc0n;
    mem.page(sp0);
    mem.u64(sp0 + 16n, TEXT + BigInt(F.mid + 9));
    mem.u64(sp0 + 40n, 0xdeadn);
    const r = await unwind(input(mem, kernelTable()), cpuStart({ ip: TEXT + BigInt(F.undef + 2), sp: sp0, bp: 0n, cs: 0x10n }));
    assert.equal(r.stop, 'bad_orc_entry');
    assert.deepEqual(r.frames.map((f) => [f.method, f.reliable]), [['orc', true], ['scan', false]]);
    assert.equal(r.frames[1]!.sp, sp0 + 16n);
  }
  // a function without ORC data (Debian 6.1's __crash_kexec, where a kernel-made dump's panic
  // registers point): its caller is the first return address after an `e8` call to it; a text
  // address not after a call and a stale return address from a call to another function are passed
  {
    const mem = new Mem();
    const sp0 = STACK + 0x3f00n;
    mem.page(sp0);
    const callTo = (ret: bigint, target: bigint) => {
      const b = new Uint8Array(5);
      b[0] = 0xe8;
      new DataView(b.buffer).setInt32(1, Number(target - ret), true);
      mem.bytes(ret - 5n, b);
    };
    mem.page(TEXT); // the text is readable (zeros: no call before mid+9)
    mem.u64(sp0 + 8n, TEXT + BigInt(F.mid + 9)); // text, but no call precedes it
    callTo(TEXT + BigInt(F.mid + 0x30), TEXT + BigInt(F.leaf));
    mem.u64(sp0 + 16n, TEXT + BigInt(F.mid + 0x30)); // a stale return from a call to leaf
    callTo(TEXT + BigInt(F.mid + 0x40), TEXT + BigInt(F.undef));
    mem.u64(sp0 + 24n, TEXT + BigInt(F.mid + 0x40)); // the real caller: call undef
    mem.u64(sp0 + 48n, TEXT + BigInt(F.bottom + 8)); // mid's frame of 24 bytes, then the thread's bottom
    const starts = Object.values(F).sort((a, b) => b - a);
    const functionStart = (ip: bigint) => {
      const off = Number(ip - TEXT);
      const f = starts.find((s) => s <= off);
      return f === undefined ? undefined : TEXT + BigInt(f);
    };
    const start = cpuStart({ ip: TEXT + BigInt(F.undef + 0x20), sp: sp0, bp: 0n, cs: 0x10n });
    const r = await unwind(input(mem, kernelTable(), { functionStart }), start);
    assert.equal(r.stop, 'end_of_stack', r.stopDetail);
    assert.deepEqual(
      r.frames.map((f) => [f.pc - TEXT, f.sp - sp0, f.method, f.reliable]),
      [
        [BigInt(F.undef + 0x20), 0n, 'orc', true],
        [BigInt(F.mid + 0x40), 32n, 'call_site', true],
        [BigInt(F.bottom + 8), 56n, 'orc', true],
      ],
    );
    // without the function's start (no symbols) the walk stops there and scans, as before
    const r2 = await unwind(input(mem, kernelTable()), start);
    assert.equal(r2.stop, 'bad_orc_entry');
    assert.ok(r2.frames.slice(1).every((f) => f.method === 'scan' && !f.reliable));
  }
  // a recursion that never ends within the limit
  {
    const mem = new Mem();
    const sp0 = STACK + 0x100n;
    for (let i = 0n; i < 40n; i++) mem.u64(sp0 + 24n * i + 16n, TEXT + BigInt(F.mid + 7));
    const r = await unwind(input(mem, kernelTable(), { maxFrames: 10 }), cpuStart({ ip: TEXT + BigInt(F.mid + 7), sp: sp0, bp: 0n, cs: 0x10n }));
    assert.equal(r.stop, 'frame_limit');
    assert.equal(r.frames.length, 10);
  }
  // a start ip outside the text
  {
    const mem = new Mem();
    mem.page(STACK + 0x100n);
    const r = await unwind(input(mem, kernelTable()), cpuStart({ ip: 0x1234n, sp: STACK + 0x100n, bp: 0n, cs: 0x10n }));
    assert.equal(r.stop, 'bad_ip');
  }
  // the CPU in user mode: nothing to unwind in the kernel
  {
    const r = await unwind(input(new Mem(), kernelTable()), cpuStart({ ip: 0x401000n, sp: 0x7ffc0000n, bp: 0n, cs: 0x33n }));
    assert.equal(r.stop, 'user_mode');
    assert.deepEqual(r.user, { rip: 0x401000n, rsp: 0x7ffc0000n });
  }
});

test('no ORC entry for an ip: the frame-pointer fallback entry, frames unreliable; no tables: a frame-pointer walk', async () => {
  const mem = new Mem();
  const sp0 = STACK + 0x2000n;
  const bp1 = sp0 + 0x20n;
  const bp2 = sp0 + 0x60n;
  mem.page(sp0);
  mem.u64(bp1, bp2);
  mem.u64(bp1 + 8n, TEXT + BigInt(F.fp + 0x10));
  mem.u64(bp2, 0n);
  mem.u64(bp2 + 8n, TEXT + BigInt(F.bottom + 3));
  // text without a covering table entry: the kernel's orc_fp_entry
  const narrow = new OrcTables([
    new OrcTable('vmlinux', 0xffffffff82000000n, new Uint8Array(0), new Uint8Array(0), 'v3', TEXT, TEXT + 0x10000n),
  ]);
  const r = await unwind({ ...input(mem, undefined), orc: narrow }, cpuStart({ ip: TEXT + BigInt(F.mid + 1), sp: sp0, bp: bp1, cs: 0x10n }));
  assert.deepEqual(r.frames.map((f) => f.pc - TEXT), [BigInt(F.mid + 1), BigInt(F.fp + 0x10), BigInt(F.bottom + 3)]);
  assert.deepEqual(r.frames.map((f) => f.reliable), [true, false, false]);
  // no tables at all
  const r2 = await unwind(input(mem, undefined), cpuStart({ ip: TEXT + BigInt(F.mid + 1), sp: sp0, bp: bp1, cs: 0x10n }));
  assert.equal(r2.stop, 'end_of_stack');
  assert.deepEqual(r2.frames.map((f) => [f.pc - TEXT, f.method, f.reliable]), [
    [BigInt(F.mid + 1), 'fp', true],
    [BigInt(F.fp + 0x10), 'fp', false],
    [BigInt(F.bottom + 3), 'fp', false],
  ]);
  // a frame pointer that points back down is a stop, not a loop
  mem.u64(bp2, bp1);
  mem.u64(bp2 + 8n, TEXT + BigInt(F.fp + 0x11));
  const r3 = await unwind(input(mem, undefined), cpuStart({ ip: TEXT + BigInt(F.mid + 1), sp: sp0, bp: bp1, cs: 0x10n }));
  assert.equal(r3.stop, 'no_unwind_info');
  assert.ok(r3.frames.length < 40);
});
