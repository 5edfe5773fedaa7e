import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Btf } from '../../src/core/kernel/btf/btf.js';
import { KernelTypes } from '../../src/core/kernel/btf/reader.js';
import { listTasks, taskStateChar } from '../../src/core/kernel/tasks.js';
import { VmcoreError } from '../../src/core/errors.js';
import { BtfBuilder } from '../helpers/btf-builder.js';

test('taskStateChar follows fs/proc/array.c task_state_to_char (4.14+ bits)', () => {
  const cases: [number, number, string][] = [
    [0, 0, 'R'], [0x1, 0, 'S'], [0x2, 0, 'D'], [0x4, 0, 'T'], [0x8, 0, 't'], [0x80, 0x10, 'X'], [0x80, 0x20, 'Z'], [0, 0x20, 'Z'],
    [0x40, 0, 'P'], [0x402, 0, 'I'], [0x102, 0, 'D'] /* TASK_KILLABLE */, [0x101, 0, 'S'], [0x1000, 0, 'D'] /* RTLOCK_WAIT */,
    [0x8001, 0, 'D'] /* FROZEN */, [0x2001, 0, 'S'] /* FREEZABLE sleeper */, [0x200, 0, 'R'] /* WAKING */, [0x104, 0, 'T'],
  ];
  for (const [s, x, c] of cases) assert.equal(taskStateChar(s, x), c, `state 0x${s.toString(16)} exit 0x${x.toString(16)}`);
});

/** A small kernel: task_struct, signal_struct, rq; tasks laid out in one buffer at BASE. */
const BASE = 0xffff888000000000n;
const TS = 0x100; // sizeof(task_struct) here
function kernel() {
  const b = new BtfBuilder();
  const int = b.int('int', 4, { signed: true });
  const uint = b.int('unsigned int', 4);
  const char = b.int('char', 1, { char: true });
  const idx = b.int('__ARRAY_SIZE_TYPE__', 4);
  const lhPtr = b.ptr(b.nextId + 1);
  const lh = b.struct('list_head', 16, [['next', lhPtr, 0], ['prev', lhPtr, 64]]);
  const ti = b.struct('thread_info', 24, [['flags', b.int('long unsigned int', 8), 0], ['cpu', uint, 128]]);
  const tsPtr = b.ptr(b.nextId + 3);
  const sig = b.struct('signal_struct', 32, [['nr_threads', int, 0], ['thread_head', lh, 64]]);
  const sigPtr = b.ptr(sig);
  const voidPtr = b.ptr(0);
  b.struct('task_struct', TS, [
    ['thread_info', ti, 0], ['__state', uint, 24 * 8], ['tasks', lh, 32 * 8], ['exit_state', int, 48 * 8], ['pid', int, 52 * 8],
    ['tgid', int, 56 * 8], ['real_parent', tsPtr, 64 * 8], ['thread_node', lh, 72 * 8], ['signal', sigPtr, 88 * 8],
    ['comm', b.array(char, idx, 16), 96 * 8], ['mm', voidPtr, 112 * 8],
  ]);
  b.struct('rq', 24, [['nr_running', uint, 0], ['curr', tsPtr, 64], ['idle', tsPtr, 128]]);
  return new Btf(b.build());
}

interface T { pid: number; tgid: number; parent: number; cpu: number; state: number; comm: string; user?: boolean }

/** Memory: task i at BASE + i*TS; signal of group g at SIG + g*32; runqueues; symbols. */
function world(tasks: T[], opts: { cpus?: number; current?: number[]; idle?: number[]; nrThreads?: number; mutate?: (dv: DataView) => void } = {}) {
  const SIG = BASE + 0x100000n;
  const PCPU = BASE + 0x200000n;
  const size = 0x300000;
  const buf = new Uint8Array(size);
  const dv = new DataView(buf.buffer);
  const at = (va: bigint) => Number(va - BASE);
  const addr = (i: number) => BASE + BigInt(i * TS);
  const put = (va: bigint, v: bigint) => dv.setBigUint64(at(va), v, true);
  // the idle tasks are the first `cpus`; index 0 is init_task
  const leaders = tasks.map((t, i) => ({ t, i })).filter(({ t, i }) => t.pid === t.tgid && t.pid !== 0 && i > 0);
  const link = (heads: bigint, nodes: bigint[]) => {
    const all = [heads, ...nodes];
    for (let k = 0; k < all.length; k++) {
      put(all[k]!, all[(k + 1) % all.length]!);
      put(all[k]! + 8n, all[(k + all.length - 1) % all.length]!);
    }
  };
  for (const [i, t] of tasks.entries()) {
    const va = addr(i);
    dv.setUint32(at(va) + 16, t.cpu, true);
    dv.setUint32(at(va) + 24, t.state, true);
    dv.setInt32(at(va) + 52, t.pid, true);
    dv.setInt32(at(va) + 56, t.tgid, true);
    put(va + 64n, addr(tasks.findIndex((x) => x.pid === t.parent)));
    put(va + 88n, SIG + BigInt(t.tgid * 32));
    buf.set(new TextEncoder().encode(t.comm), at(va) + 96);
    if (t.user) put(va + 112n, 0xffff888012340000n);
  }
  link(addr(0) + 32n, leaders.map(({ i }) => addr(i) + 32n));
  for (const { t } of [{ t: tasks[0]! }, ...leaders]) {
    const members = tasks.map((x, i) => ({ x, i })).filter(({ x, i }) => x.tgid === t.tgid && (x.pid !== 0 || i === 0));
    link(SIG + BigInt(t.tgid * 32) + 8n, members.map(({ i }) => addr(i) + 72n));
  }
  const cpus = opts.cpus ?? 1;
  const syms: Record<string, bigint> = {
    init_task: addr(0), nr_threads: PCPU - 16n, nr_cpu_ids: PCPU - 8n, __per_cpu_offset: PCPU, runqueues: 0x1000n,
  };
  dv.setInt32(at(PCPU - 16n), opts.nrThreads ?? tasks.filter((t) => t.pid !== 0).length, true);
  dv.setUint32(at(PCPU - 8n), cpus, true);
  for (let c = 0; c < cpus; c++) {
    const off = PCPU + 0x1000n * BigInt(c + 1) - 0x1000n; // rq of cpu c at PCPU + 0x1000*(c+1)
    put(PCPU + BigInt(8 * c), off);
    const rq = off + 0x1000n;
    put(rq + 8n, addr(opts.current?.[c] ?? c));
    put(rq + 16n, addr(opts.idle?.[c] ?? c));
  }
  opts.mutate?.(dv);
  const readVirt = async (va: bigint, len: number) => {
    const o = Number(va - BASE);
    if (va < BASE || o + len > size) throw new VmcoreError('PAGE_NOT_PRESENT', `0x${va.toString(16)} is not in the dump`, { offset: va });
    return buf.slice(o, o + len);
  };
  return { types: new KernelTypes(kernel(), readVirt), symbol: (n: string) => syms[n], addr };
}

const TASKS: T[] = [
  { pid: 0, tgid: 0, parent: 0, cpu: 0, state: 0, comm: 'swapper/0' },
  { pid: 0, tgid: 0, parent: 0, cpu: 1, state: 0, comm: 'swapper/1' },
  { pid: 1, tgid: 1, parent: 0, cpu: 1, state: 1, comm: 'init', user: true },
  { pid: 2, tgid: 2, parent: 0, cpu: 0, state: 1, comm: 'kthreadd' },
  { pid: 3, tgid: 3, parent: 2, cpu: 0, state: 0x402, comm: 'kworker/0:0' },
  { pid: 10, tgid: 10, parent: 1, cpu: 0, state: 0, comm: 'sh', user: true },
  { pid: 11, tgid: 10, parent: 1, cpu: 1, state: 2, comm: 'sh-thread', user: true },
];

test('task walk: processes, threads, idle task per CPU, running tasks, the panic, ppid, state letters', async () => {
  const w = world(TASKS, { cpus: 2, current: [5, 2] });
  const r = await listTasks({ types: w.types, symbol: w.symbol, panic: { cpu: 0, task: null } });
  assert.deepEqual(r.warnings, []);
  assert.equal(r.nrThreads, 5);
  assert.deepEqual(
    r.tasks.map((t) => [t.pid, t.tgid, t.ppid, t.cpu, t.state, t.comm, t.active, t.panic, t.kthread, t.idle]),
    [
      [0, 0, 0, 0, 'R', 'swapper/0', false, false, true, true],
      [0, 0, 0, 1, 'R', 'swapper/1', false, false, true, true],
      [1, 1, 0, 1, 'S', 'init', true, false, false, false],
      [2, 2, 0, 0, 'S', 'kthreadd', false, false, true, false],
      [3, 3, 2, 0, 'I', 'kworker/0:0', false, false, true, false],
      [10, 10, 1, 0, 'R', 'sh', true, true, false, false],
      [11, 10, 1, 1, 'D', 'sh-thread', false, false, false, false],
    ],
  );
  assert.equal(r.tasks[5]!.task, w.addr(5));
  // the panic by the pid that logged it
  const r2 = await listTasks({ types: w.types, symbol: w.symbol, panic: { cpu: null, task: 1 } });
  assert.deepEqual(r2.tasks.filter((t) => t.panic).map((t) => t.pid), [1]);
});

test('task walk: a loop in the task list is detected and bounded, with a partial answer', async () => {
  const w = world(TASKS, {
    cpus: 1,
    mutate: (dv) => {
      // kthreadd's tasks.next points back at init's tasks (not at the head)
      dv.setBigUint64(3 * TS + 32, BASE + BigInt(2 * TS + 32), true);
    },
  });
  const r = await listTasks({ types: w.types, symbol: w.symbol });
  assert.ok(r.warnings.some((x) => x.code === 'LIST_DAMAGED' && /loops at 0xffff888000000220/.test(x.text)), r.warnings.map((x) => x.text).join('; '));
  assert.deepEqual(r.tasks.map((t) => t.pid), [0, 1, 2]);
});

test('task walk: a pointer to nowhere costs no task: the rest of the list is walked backwards from its head', async () => {
  const w = world(TASKS, { cpus: 1, mutate: (dv) => dv.setBigUint64(2 * TS + 32, 0xdead000000000000n, true) });
  const r = await listTasks({ types: w.types, symbol: w.symbol });
  assert.ok(r.warnings.some((x) => x.code === 'TASK_UNREADABLE' && /task_struct at 0xdeacffffffffffe0: .*not in the dump/.test(x.text)), r.warnings.map((x) => x.text).join('; '));
  assert.ok(r.warnings.some((x) => x.code === 'TASK_UNREADABLE' && /the task at 0xdeacffffffffffe0 cannot be read; left out/.test(x.text)), r.warnings.map((x) => x.text).join('; '));
  assert.ok(r.warnings.some((x) => x.code === 'LIST_DAMAGED' && /list node at 0xdead000000000000: .*walked backwards from its head/.test(x.text)), r.warnings.map((x) => x.text).join('; '));
  assert.ok(!r.warnings.some((x) => x.code === 'TASKS_MISMATCH' && /nr_threads says/.test(x.text)), r.warnings.map((x) => x.text).join('; '));
  assert.deepEqual(r.tasks.map((t) => t.pid), [0, 1, 2, 3, 10, 11]);
});

test('task walk: a broken link in the backward walk too loses only the tasks between the breaks', async () => {
  const w = world(TASKS, {
    cpus: 1,
    mutate: (dv) => {
      dv.setBigUint64(2 * TS + 32, 0xdead000000000000n, true); // init's tasks.next
      dv.setBigUint64(5 * TS + 32 + 8, 0xdead000000000000n, true); // sh's tasks.prev
    },
  });
  const r = await listTasks({ types: w.types, symbol: w.symbol });
  // sh's prev leads back to the node where the forward walk broke: the loss shows in the count
  assert.ok(r.warnings.some((x) => x.code === 'TASKS_MISMATCH' && /found 3 tasks, the kernel's nr_threads says 5/.test(x.text)), r.warnings.map((x) => x.text).join('; '));
  // init from the forward walk; sh and its thread from the backward one; kthreadd and kworker lost
  assert.deepEqual(r.tasks.map((t) => t.pid), [0, 1, 10, 11]);
});

test('task walk: bounded by nr_threads and the hard cap; no init_task symbol is NO_SYMBOLS', async () => {
  const w = world(TASKS, { cpus: 1 });
  const r = await listTasks({ types: w.types, symbol: w.symbol, maxTasks: 3 });
  assert.ok(r.warnings.some((x) => x.code === 'LIST_DAMAGED' && /more than 3 tasks/.test(x.text)), r.warnings.map((x) => x.text).join('; '));
  assert.ok(r.tasks.length <= 4);
  await assert.rejects(listTasks({ types: w.types, symbol: () => undefined }), (e: VmcoreError) => e.code === 'NO_SYMBOLS' && /init_task/.test(e.message));
});

// The bundled sample (Debian 6.1.0-56, one CPU); the truth is drgn 0.0.22's for_each_task with
// that kernel's -dbg vmlinux (test/fixtures/ps/README.md).
test('vmcore ps --json on the real sample: the same tasks as drgn, with pid, tgid, ppid, cpu, state, comm', async () => {
  const { spawnSync } = await import('node:child_process');
  const { readFileSync } = await import('node:fs');
  const { fileURLToPath } = await import('node:url');
  const root = fileURLToPath(new URL('../../../', import.meta.url));
  const r = spawnSync(process.execPath, [root + 'dist/src/cli/vmcore.js', 'ps', root + 'samples/seabios-128M.md-c-d31.kdump', '--json'], { encoding: 'utf8' });
  assert.equal(r.status, 0, r.stderr);
  const ours = JSON.parse(r.stdout) as { pid: number; tgid: number; ppid: number; cpu: number; state: string; comm: string; task: string; active: boolean; panic: boolean }[];
  const truth = (JSON.parse(readFileSync(root + 'test/fixtures/ps/seabios-128M.drgn-tasks.json', 'utf8')) as { tasks: typeof ours }).tasks;
  const strip = ({ pid, tgid, ppid, cpu, state, comm, task }: (typeof ours)[number]) => ({ pid, tgid, ppid, cpu, state, comm, task });
  assert.deepEqual(ours.filter((t) => t.pid !== 0).map(strip), truth.map(strip).sort((a, b) => a.pid - b.pid));
  assert.deepEqual(ours[0], { pid: 0, tgid: 0, ppid: 0, cpu: 0, state: 'R', comm: 'swapper/0', task: '0xffffffff82a1aa40', active: false, panic: false });
  // the panic was logged by pid 1 (caller T1), running on the only CPU
  assert.deepEqual(ours.filter((t) => t.panic || t.active).map((t) => [t.pid, t.active, t.panic]), [[1, true, true]]);
});
