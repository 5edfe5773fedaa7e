/**
 * A damaged page costs that page in the analyses built on symbols and types too (ps, bt, sym,
 * struct). Input: the real sample with chosen page descriptors set to size 0 and flags 0, as
 * issue 9 item 4 does for the log. Truth: drgn 0.0.22's task list of the intact sample with
 * that kernel's -dbg vmlinux (test/fixtures/ps/seabios-128M.drgn-tasks.json), and vmcore's own
 * answers on the intact sample for what the damage does not touch.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { sampleWithDamagedDescs, SAMPLE_PATH } from '../helpers/sample-variants.js';

const ROOT = fileURLToPath(new URL('../../../', import.meta.url));
const CLI = join(ROOT, 'dist/src/cli/vmcore.js');
const run = (...args: string[]) => spawnSync(process.execPath, [CLI, ...args], { encoding: 'utf8', maxBuffer: 64 << 20 });
/** The intact sample's answer to the same command: it must itself succeed, or the comparison proves nothing. */
const intact = (...args: string[]) => {
  const r = run(args[0]!, SAMPLE_PATH, ...args.slice(1));
  assert.ok(r.status === 0 && r.signal === null, `intact sample: vmcore ${args.join(' ')}: status ${r.status}, signal ${r.signal}, error ${r.error}, stderr ${r.stderr}`);
  return r;
};

interface PsRow { pid: number; tgid: number; ppid: number; cpu: number; state: string; comm: string; task: string }
const TRUTH = (JSON.parse(readFileSync(join(ROOT, 'test/fixtures/ps/seabios-128M.drgn-tasks.json'), 'utf8')) as { tasks: PsRow[] }).tasks;

function damaged(pfns: number[]): { file: string; done: () => void } {
  const dir = mkdtempSync(join(tmpdir(), 'vmcore-damaged-'));
  const file = join(dir, 'damaged.kdump');
  writeFileSync(file, sampleWithDamagedDescs(pfns));
  return { file, done: () => rmSync(dir, { recursive: true, force: true }) };
}

test('ps: a damaged page inside two task_structs costs the task whose members it holds; the list goes on around it', () => {
  // pfn 0x3e1c holds the end of pid 6's slab object (at ...3e1b000, 6 KiB; BTF's sizeof, 9728,
  // counts the largest FPU state) and the start of pid 7's (at ...3e1c800), with pid 7's link
  // in init_task.tasks. Pid 6's members that ps reads are in its first page.
  const d = damaged([0x3e1c]);
  try {
    const r = run('ps', d.file, '--json');
    assert.equal(r.status, 0, r.stderr);
    const got = (JSON.parse(r.stdout) as PsRow[]).filter((t) => t.pid !== 0);
    const want = TRUTH.filter((t) => t.task !== '0xffff888003e1c800');
    assert.equal(want.length, TRUTH.length - 1);
    assert.deepEqual(
      got.map((t) => [t.pid, t.tgid, t.ppid, t.state, t.comm, t.task]),
      want.map((t) => [t.pid, t.tgid, t.ppid, t.state, t.comm, t.task]),
    );
    assert.match(r.stderr, /warning: init_task\.tasks: the task at 0xffff888003e1c800 cannot be read; left out/);
    assert.match(r.stderr, /task_struct at 0xffff888003e1c800: .*pfn 0x3e1c/);
    assert.match(r.stderr, /task_struct at 0xffff888003e1b000: only the first 4096 of 9728 bytes are readable \(.*pfn 0x3e1c.*\); listed from them/);
    assert.match(r.stderr, /found 46 tasks, the kernel's nr_threads says 47/);
    // the walk went on past the lost task: pids after it in init_task.tasks are there
    assert.ok(got.some((t) => t.pid === 8) && got.some((t) => t.pid === 98));
  } finally {
    d.done();
  }
});

test("bt -a: a damaged page of one task's kernel stack costs that task's backtrace, named; the others are the intact sample's", () => {
  // kthreadd (pid 2): stack 0xffffc90000018000, its top page 0xffffc9000001b000 at pfn 0x3e05
  const d = damaged([0x3e05]);
  try {
    const whole = intact('bt', '-a', '--json');
    const r = run('bt', d.file, '-a', '--json');
    assert.equal(r.status, 0, r.stderr);
    type Bt = { tasks: { pid: number; task: string; frames: unknown[]; stop: string; error?: string }[] };
    const a = JSON.parse(whole.stdout) as Bt;
    const b = JSON.parse(r.stdout) as Bt;
    assert.equal(b.tasks.length, a.tasks.length);
    for (let i = 0; i < a.tasks.length; i++) {
      if (a.tasks[i]!.pid === 2) continue;
      assert.deepEqual(b.tasks[i], a.tasks[i], `pid ${a.tasks[i]!.pid}`);
    }
    const k = b.tasks.find((t) => t.pid === 2)!;
    assert.ok(a.tasks.find((t) => t.pid === 2)!.frames.length > 0);
    assert.deepEqual(k.frames, []);
    assert.equal(k.stop, 'unreadable');
    assert.match(k.error ?? '', /stack of task 2 at 0xffffc9000001b[0-9a-f]{3} \(stack 0xffffc90000018000\): .*pfn 0x3e05/);
    // the text form says it for that task and goes on
    const txt = run('bt', d.file, '-a');
    assert.equal(txt.status, 0, txt.stderr);
    assert.match(txt.stdout, /PID: 2 .*"kthreadd"[^\n]*\n\s+\(no backtrace: stack of task 2 at /);
    assert.match(txt.stdout, /PID: 3 /);
  } finally {
    d.done();
  }
});

test('a damaged page of the BTF type section costs the types in it: sym, ps and struct answer as before, with a warning naming the page', () => {
  // __start_BTF is 0xffffffff82438070 (pfn 0x2438); pfn 0x2500 is inside its type section
  const d = damaged([0x2500]);
  try {
    const want = intact('sym', 'schedule', '0xffffffff81a114f5', '--json');
    const s = run('sym', d.file, 'schedule', '0xffffffff81a114f5', '--json');
    assert.equal(s.status, 0, s.stderr);
    assert.equal(s.stdout, want.stdout);
    for (const args of [['ps', '--json'], ['struct', 'task_struct.pid', '0xffff888003de9800']]) {
      const r = run(args[0]!, d.file, ...args.slice(1));
      assert.equal(r.status, 0, `${args[0]}: ${r.stderr}`);
      assert.equal(r.stdout, intact(...args).stdout);
      assert.match(r.stderr, /warning: vmlinux BTF at 0xffffffff82438070: types \d+\.\.\d+ \(\d+\) are lost: .*pfn 0x2500/);
    }
  } finally {
    d.done();
  }
});

test("a damaged page holding task_struct's BTF record: ps and struct say that type may be lost, naming the page (exit 1)", () => {
  // task_struct is BTF type 192, its record at 0xffffffff82439690 (pfn 0x2439)
  const d = damaged([0x2439]);
  try {
    for (const args of [['ps'], ['struct', 'task_struct.pid', '0xffff888003de9800']]) {
      const r = run(args[0]!, d.file, ...args.slice(1));
      assert.equal(r.status, 1, `${args[0]}: ${r.stderr}`);
      assert.equal(r.stdout, '');
      assert.match(r.stderr, /PAGE_DAMAGED: .*no type task_struct \(it may be among the types lost to unreadable pages: ids \d+\.\.\d+: .*pfn 0x2439/);
    }
  } finally {
    d.done();
  }
});

test('a damaged page of kallsyms_names costs the symbols in it: sym says which are unknown and why; ps, info and dmesg answer as before', () => {
  // kallsyms_names is 0xffffffff82175590 .. 0xffffffff822c9d08 (VMCOREINFO); pfn 0x2200 is inside
  // it and holds the names of two 256-symbol blocks, schedule's among them
  const d = damaged([0x2200]);
  try {
    const s = run('sym', d.file, 'schedule', '0xffffffff81a114f5');
    assert.equal(s.status, 1, s.stderr);
    assert.equal(s.stdout, '');
    assert.match(s.stderr, /warning: kallsyms_names: 0xffffffff82200000\.\.0xffffffff82201000 cannot be read \(.*pfn 0x2200.*\); 512 of 87347 symbols lost/);
    assert.match(s.stderr, /NO_SYMBOLS: .*no kernel symbol for schedule, 0xffffffff81a114f5 \(unknown: \d+ symbols from 0x[0-9a-f]+ lost, kallsyms_names at 0xffffffff82200000: .*pfn 0x2200/);
    const p = run('sym', d.file, 'panic', '0xffffffff819c3643', '--json');
    assert.equal(p.status, 0, p.stderr);
    assert.equal(p.stdout, intact('sym', 'panic', '0xffffffff819c3643', '--json').stdout);
    const i = run('info', d.file, '--json');
    assert.equal(i.status, 0, i.stderr);
    const ks = (JSON.parse(i.stdout) as { kernelState: { symbols: { source: string; count: number; lost: number; reason: string | null }; warnings: { code: string; text: string }[] } }).kernelState;
    assert.deepEqual(ks.symbols, { source: 'VMCOREINFO', count: 87347 - 512, lost: 512, reason: null });
    assert.ok(ks.warnings.some((w) => w.code === 'SYMBOLS_DAMAGED' && /kallsyms_names: .*pfn 0x2200/.test(w.text)));
    const ps = run('ps', d.file, '--json');
    assert.equal(ps.status, 0, ps.stderr);
    assert.equal(ps.stdout, intact('ps', '--json').stdout);
    const m = run('dmesg', d.file);
    assert.equal(m.status, 0, m.stderr);
    assert.equal(m.stdout, intact('dmesg').stdout);
  } finally {
    d.done();
  }
});

// The kind, beyond the chosen examples: any one page the task walk reads, other than the symbol
// and type tables, damaged in turn. Each must give a task list (never a throw), every task listed
// must be drgn's, and a task that is missing must be accounted for by a warning.
test('the kind: one damaged page among those the task walk reads costs at most the tasks in it, with a warning', async () => {
  const { BufferSource } = await import('../../src/core/io/source.js');
  const { openDump } = await import('../../src/core/format/open.js');
  const { nodeCodecs } = await import('../../src/node/codecs.js');
  const { analyzeKernel, analyzeKernelRecorded } = await import('../../src/core/kernel/kernel.js');
  const { loadKernelBtf } = await import('../../src/core/kernel/btf/kernel-btf.js');
  const { listTasks } = await import('../../src/core/kernel/tasks.js');
  const { sampleBytes } = await import('../helpers/sample-variants.js');
  type Info = Awaited<ReturnType<typeof analyzeKernel>>;
  const walk = async (info: Info) => {
    const syms = await info.symbols();
    const kb = await loadKernelBtf(info);
    return listTasks({ types: kb.types, symbol: (n) => syms.addressOf(n) });
  };
  // the pages read by the walk alone: recorded after symbols and BTF are loaded
  const { info, pfns } = await analyzeKernelRecorded(await openDump([new BufferSource(sampleBytes(), 'sample.kdump')], nodeCodecs()));
  const syms = await info.symbols();
  await loadKernelBtf(info);
  const before = new Set(pfns());
  const intact = await walk(info);
  assert.equal(intact.tasks.filter((t) => !t.idle).length, TRUTH.length);
  const walked = pfns().filter((p) => !before.has(p));
  assert.ok(walked.length > 10, `${walked.length} pages read by the walk`);
  // task_struct pages first (where the losses are), then a deterministic spread of the rest
  const taskPfns = new Set(TRUTH.map((t) => Number((BigInt(t.task) - 0xffff888000000000n) >> 12n)));
  const chosen = [...walked.filter((p) => taskPfns.has(p)).slice(0, 3), ...walked.filter((p) => !taskPfns.has(p)).filter((_, i) => i % 7 === 3).slice(0, 3)];
  assert.ok(syms.count > 0 && chosen.length >= 4, `chosen ${chosen.map((p) => p.toString(16))}`);
  const truth = new Map(TRUTH.map((t) => [t.task, t]));
  for (const pfn of chosen) {
    const d = await openDump([new BufferSource(sampleWithDamagedDescs([pfn]), 'damaged.kdump')], nodeCodecs());
    const r = await walk(await analyzeKernel(d));
    const listed = r.tasks.filter((t) => !t.idle);
    for (const t of listed) {
      const want = truth.get('0x' + t.task.toString(16));
      assert.ok(want, `pfn 0x${pfn.toString(16)}: task 0x${t.task.toString(16)} is not drgn's`);
      assert.deepEqual([t.pid, t.comm, t.state], [want.pid, want.comm, want.state], `pfn 0x${pfn.toString(16)}`);
    }
    if (listed.length < TRUTH.length) {
      assert.ok(r.warnings.some((w) => new RegExp(`pfn 0x${pfn.toString(16)}\\b`).test(w.text)), `pfn 0x${pfn.toString(16)}: ${TRUTH.length - listed.length} tasks lost without a warning naming the page: ${r.warnings.map((x) => x.text).join('; ')}`);
      assert.ok(r.warnings.some((w) => w.code === 'TASKS_MISMATCH' && /nr_threads says 47/.test(w.text)));
    }
    // a page holding task_structs costs at most the tasks that overlap it (6 KiB objects)
    const overlapping = TRUTH.filter((t) => {
      const a = BigInt(t.task) - 0xffff888000000000n;
      return a >> 12n <= BigInt(pfn) && (a + 0x17ffn) >> 12n >= BigInt(pfn);
    });
    if (taskPfns.has(pfn)) assert.ok(listed.length >= TRUTH.length - overlapping.length, `pfn 0x${pfn.toString(16)}: ${listed.length} of ${TRUTH.length} listed, ${overlapping.length} tasks overlap it`);
  }
});
