/**
 * CPU notes are matched to the panic by task (pr_pid) or by a proven CPU number, never by
 * their position (issue: a note's position is not its CPU when some CPUs saved none).
 * Inputs: the real sample with its note area rebuilt (test/helpers/sample-variants.ts).
 */
import { type Warning } from '../../src/core/warnings.js';
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { BufferSource } from '../../src/core/io/source.js';
import { openDump } from '../../src/core/format/open.js';
import { nodeCodecs } from '../../src/node/codecs.js';
import { analyzeKernel } from '../../src/core/kernel/kernel.js';
import { panicSummary } from '../../src/core/kernel/panic.js';
import { describeDump } from '../../src/core/info.js';
import { assignCpus, cpuLabel, parseCpuNotes, QemuCpuState, registersOfTask } from '../../src/core/kernel/x86_64/cpu.js';
import { sampleWithCpuNotes } from '../helpers/sample-variants.js';
import { matchCpuNotes } from '../../src/core/kernel/state.js';
import { VmcoreError } from '../../src/core/errors.js';
import { prstatusDesc } from './kernel-synth.js';

const CLI = fileURLToPath(new URL('../../src/cli/vmcore.js', import.meta.url));
// the sample's own NT_PRSTATUS (the panicking init task, pid 1)
const RIP = '0xffffffff819c3643';
const RSP = '0xffffc90000013d20';
const idle = (i: number) => ({ pid: 0, rip: 0xffffffff81e00000n + BigInt(i), rsp: 0xffffffff82a03e00n + BigInt(i * 0x100) });

async function panicOf(bytes: Uint8Array) {
  const dump = await openDump([new BufferSource(bytes, 'variant.kdump')], nodeCodecs());
  const kernel = await analyzeKernel(dump);
  const panic = await panicSummary(kernel, undefined, true);
  const info = await describeDump(dump, kernel, { panic: panic as Record<string, unknown> | null });
  return { panic: panic!, info, kernel };
}

test('8 CPUs, 4 notes (CPUs 0-3 saved none), the panicking task second: its registers; its CPU from the per-CPU current task, not the note position', async () => {
  const b = sampleWithCpuNotes([idle(0), { pid: 1 }, idle(2), idle(3)], 8);
  const { panic, info, kernel } = await panicOf(b);
  assert.equal(panic.task, 1);
  assert.equal(panic.registers!.rip, RIP);
  assert.equal(panic.registers!.rsp, RSP);
  assert.equal(panic.registers!.pid, 1);
  // the notes cannot tell which CPUs saved them
  assert.equal(panic.cpu, null);
  assert.equal(panic.registersSource, 'NT_PRSTATUS (note 1, pid 1)');
  assert.ok(kernel.cpus.every((c) => c.cpu === null));
  assert.equal(info.nrCpus, 8);
  // the text report says the same
  const dir = mkdtempSync(join(tmpdir(), 'vmcore-cpu-'));
  try {
    const f = join(dir, 'v.kdump');
    writeFileSync(f, b);
    const r = spawnSync(process.execPath, [CLI, 'info', f], { encoding: 'utf8' });
    assert.equal(r.status, 0, r.stderr);
    assert.match(r.stdout, new RegExp(`Registers +RIP ${RIP} +RSP ${RSP} .*\\[NT_PRSTATUS \\(note 1, pid 1\\), saved by the kernel at the crash\\]`));
    // the CPU comes from the kernel's per-CPU data (CPU 0 ran init, pid 1), never from the
    // note's position (1); the idle notes (pid 0) match no CPU: their RSP is on no current task's stack
    assert.match(r.stdout, /CPU notes +NT_PRSTATUS note 0 +pid 0 +CPU unknown\n +NT_PRSTATUS note 1 +pid 1 +CPU 0 +task 0x[0-9a-f]+ \(init\) +\[pr_pid 1 is the current task of that CPU only\]/);
    assert.match(r.stdout, /Panic .*\(CPU 0, task 1,/);
    assert.doesNotMatch(r.stdout, /CPU 1\b/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('all 8 notes, the panicking task on the sixth: its registers, not note 0', async () => {
  const specs = [0, 1, 2, 3, 4, 5, 6, 7].map((i) => (i === 5 ? { pid: 1 } : idle(i)));
  const { panic } = await panicOf(sampleWithCpuNotes(specs, 8));
  assert.equal(panic.registers!.rip, RIP);
  assert.equal(panic.registers!.rsp, RSP);
  assert.equal(panic.registersSource, 'NT_PRSTATUS (note 5, pid 1)');
});

test('no note of the panicking task: no registers, and a reason instead of note 0', async () => {
  const { panic } = await panicOf(sampleWithCpuNotes([idle(0), idle(1)], 2));
  assert.equal(panic.registers, null);
  assert.match(panic.registersNote!, /no CPU note is known to be task 1's \(2 NT_PRSTATUS notes, pids 0, 0\)/);
});

test('one CPU, one kernel note: that note is CPU 0', async () => {
  const { panic } = await panicOf(sampleWithCpuNotes([{ pid: 1 }], 1));
  assert.equal(panic.cpu, 0);
  assert.equal(panic.registersSource, 'NT_PRSTATUS (cpu 0)');
});

test('the real sample (QEMU notes: pr_pid is the vCPU number + 1, not a task)', async () => {
  const { panic, kernel } = await panicOf((await import('../helpers/sample-variants.js')).sampleBytes());
  assert.deepEqual(kernel.cpus.map((c) => [c.source, c.cpu, c.pidIsTask]), [['NT_PRSTATUS', 0, false], ['QEMU', 0, false]]);
  assert.equal(panic.cpu, 0);
  assert.equal(panic.registers!.rip, RIP);
});

test('QEMU notes of 2 vCPUs: CPU numbers proven; a task pid is not matched to a vCPU pid', () => {
  const { cpus } = parseCpuNotes([
    { name: 'CORE', type: 1, desc: prstatusDesc({ pid: 1, rip: 1n, rsp: 0n }) },
    { name: 'CORE', type: 1, desc: prstatusDesc({ pid: 2, rip: 2n, rsp: 0n }) },
    { name: 'QEMU', type: 0, desc: new Uint8Array(0) },
  ]);
  // one QEMU note for two NT_PRSTATUS (the 2nd was cut): not QEMU's pattern, so not numbered
  assert.deepEqual(cpus.map((c) => c.cpu), [null, null]);
  assert.equal(registersOfTask(cpus, 2)?.rip, 2n);
});

test('assignCpus: by unique pid, and idle notes by RSP on the CPU current task stack', () => {
  const { cpus } = parseCpuNotes([
    { name: 'CORE', type: 1, desc: prstatusDesc({ pid: 0, rip: 0n, rsp: 0x5100n }) },
    { name: 'CORE', type: 1, desc: prstatusDesc({ pid: 77, rip: 0n, rsp: 0x9000n }) },
    { name: 'CORE', type: 1, desc: prstatusDesc({ pid: 0, rip: 0n, rsp: 0x7100n }) },
  ]);
  const out = assignCpus(cpus, [
    { cpu: 0, pid: 0, stackStart: 0x1000n, stackEnd: 0x3000n },
    { cpu: 4, pid: 0, stackStart: 0x5000n, stackEnd: 0x7000n },
    { cpu: 5, pid: 77 },
    { cpu: 6, pid: 0, stackStart: 0x7000n, stackEnd: 0x9000n },
  ]);
  assert.deepEqual(out.map((c) => c.cpu), [4, 5, 6]);
  assert.deepEqual(out.map(cpuLabel), ['cpu 4', 'cpu 5', 'cpu 6']);
  assert.equal(cpus[0]!.cpu, null, 'input unchanged');
  // two idle CPUs and no stacks: not assigned
  assert.deepEqual(assignCpus(cpus, [{ cpu: 0, pid: 0 }, { cpu: 1, pid: 0 }]).map((c) => c.cpu), [null, null, null]);
});

test('matchCpuNotes: kernel-written notes get the CPU whose current task has their pid, with its task and comm; an unreadable task is a warning', async () => {
  const { cpus } = parseCpuNotes([
    { name: 'CORE', type: 1, desc: prstatusDesc({ pid: 103, rip: 0n, rsp: 0x9000n }) }, // the NMI-stopped CPU's note comes first here
    { name: 'CORE', type: 1, desc: prstatusDesc({ pid: 1, rip: 0n, rsp: 0x5100n }) },
  ]);
  // two task_structs: pid at 0x10, comm at 0x20, stack at 0x40
  const TASK0 = 0xffff888000001000n;
  const TASK1 = 0xffff888000002000n;
  const mem = new Map<bigint, Uint8Array>();
  const task = (at: bigint, pid: number, comm: string, stack: bigint) => {
    const b = new Uint8Array(0x100);
    const dv = new DataView(b.buffer);
    dv.setInt32(0x10, pid, true);
    b.set(new TextEncoder().encode(comm), 0x20);
    dv.setBigUint64(0x40, stack, true);
    mem.set(at, b);
  };
  task(TASK0, 1, 'init', 0x4000n);
  task(TASK1, 103, 'dd', 0x8000n);
  const readVirt = async (va: bigint, n: number) => {
    for (const [a, b] of mem) if (va >= a && va + BigInt(n) <= a + BigInt(b.length)) return b.slice(Number(va - a), Number(va - a) + n);
    throw new VmcoreError('ADDRESS_TRANSLATION', `0x${va.toString(16)} not mapped`, {});
  };
  const types = { offsetOf: (_t: string, p: string) => ({ pid: 0x10, comm: 0x20, stack: 0x40 })[p]! };
  const m = await matchCpuNotes({ readVirt }, cpus, [TASK0, TASK1], types);
  assert.deepEqual(m, [
    { note: 0, pid: 103, cpu: 1, task: '0xffff888000002000', comm: 'dd', evidence: 'pr_pid 103 is the current task of that CPU only' },
    { note: 1, pid: 1, cpu: 0, task: '0xffff888000001000', comm: 'init', evidence: 'pr_pid 1 is the current task of that CPU only' },
  ]);
  const warnings: Warning[] = [];
  const partial = await matchCpuNotes({ readVirt }, cpus, [TASK0, 0xffff888000009000n], types, warnings);
  assert.deepEqual(partial.map((c) => c.cpu), [null, 0]);
  assert.equal(warnings.length, 1);
  // QEMU-written notes (pr_pid = vCPU + 1) are not matched by pid
  const qemu = parseCpuNotes([
    { name: 'CORE', type: 1, desc: prstatusDesc({ pid: 1, rip: 0n, rsp: 0n }) },
    { name: 'QEMU', type: 0, desc: qemuCpuState() },
  ]).cpus;
  assert.deepEqual(await matchCpuNotes({ readVirt }, qemu, [TASK0], types), []);
});

function qemuCpuState(): Uint8Array {
  const b = new Uint8Array(432);
  const dv = new DataView(b.buffer);
  dv.setUint32(0, 1, true);
  dv.setUint32(4, 432, true);
  return b;
}

test('QEMU notes of 2 vCPUs and a panic logged by task 1: its CPU is the one whose current task is pid 1 (per-CPU data), its registers that CPU note', async () => {
  const qemuNote = { name: 'QEMU', type: 0, desc: QemuCpuState.encode({ version: 1, size: QemuCpuState.size }, true) };
  const { cpus } = parseCpuNotes([
    { name: 'CORE', type: 1, desc: prstatusDesc({ pid: 1, rip: 0x1000n, rsp: 0x10n }) },
    { name: 'CORE', type: 1, desc: prstatusDesc({ pid: 2, rip: 0x2000n, rsp: 0x20n }) },
    qemuNote,
    qemuNote,
  ]);
  assert.deepEqual(cpus.filter((c) => c.source === 'NT_PRSTATUS').map((c) => [c.cpu, c.pidIsTask]), [[0, false], [1, false]]);
  const text = new TextEncoder().encode('Kernel panic - not syncing: Fatal exception');
  const log = { records: [{ text, callerId: 1, tsNsec: 16_778_686_000n }] } as unknown as Parameters<typeof panicSummary>[1];
  const kernel = { cpus } as unknown as Parameters<typeof panicSummary>[0];
  // without the per-CPU data: no registers (pr_pid 2 is vCPU 1, not task 2... nor task 1)
  const blind = await panicSummary(kernel, log, true);
  assert.equal(blind!.registers, null);
  assert.equal(blind!.cpu, null);
  // CPU 0 ran pid 0, CPU 1 ran pid 1: the panic is CPU 1's, its registers vCPU 1's note
  const seen = await panicSummary(kernel, log, true, { runningPids: [0, 1] });
  assert.equal(seen!.cpu, 1);
  assert.equal(seen!.registers!.rip, '0x2000');
  assert.equal(seen!.registersSource, 'NT_PRSTATUS (cpu 1)');
  // two CPUs ran pid 1 (impossible, or unreadable data): nothing is guessed
  const twice = await panicSummary(kernel, log, true, { runningPids: [1, 1] });
  assert.equal(twice!.registers, null);
});

test('the panicking task runs on CPU 0 but no note holds its registers: bt marks its frames (from its last switch) as guesses and says why; no signature from them', async () => {
  const b = sampleWithCpuNotes([idle(2), idle(3)], 8);
  const dir = mkdtempSync(join(tmpdir(), 'vmcore-cpu-'));
  try {
    const f = join(dir, 'v.kdump');
    writeFileSync(f, b);
    const r = spawnSync(process.execPath, [CLI, 'bt', f, '--json'], { encoding: 'utf8' });
    assert.equal(r.status, 0, r.stderr);
    const j = JSON.parse(r.stdout) as { tasks: { pid: number; frames: { reliable: boolean }[] }[]; warnings: { code: string; text: string }[] };
    const t = j.tasks.find((x) => x.pid === 1)!;
    assert.ok(t.frames.length > 0);
    assert.ok(t.frames.every((x) => !x.reliable), 'every frame is a guess');
    assert.ok(j.warnings.some((w) => w.code === 'REGISTERS_STALE' && /pid 1 \(init\) was running on CPU 0, but the dump holds no registers of that CPU/.test(w.text)), JSON.stringify(j.warnings));
    const i = spawnSync(process.execPath, [CLI, 'info', f, '--json'], { encoding: 'utf8' });
    assert.equal(i.status, 0, i.stderr);
    assert.deepEqual((JSON.parse(i.stdout) as { panic: { signatureChain: string[] } }).panic.signatureChain, []);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
