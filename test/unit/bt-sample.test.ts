/**
 * `vmcore bt` on the bundled sample (Debian 6.1 guest, sysrq-c, makedumpfile -c -d 31). The
 * expected chain, offsets and user registers are the ones the guest's kernel printed on its
 * console for this very panic (shared corpus case seabios-nokaslr-1cpu-128M-vmci-panic,
 * serial.log: "Call Trace:" ... "RIP: 0033:0x47b7a0", "RSP: 002b:00007ffe8f9cb798").
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = fileURLToPath(new URL('../../../', import.meta.url));
const CLI = join(ROOT, 'dist/src/cli/vmcore.js');
const SAMPLE = join(ROOT, 'samples/seabios-128M.md-c-d31.kdump');
const run = (...args: string[]) => spawnSync(process.execPath, [CLI, ...args], { encoding: 'utf8', maxBuffer: 64 << 20 });

interface JFrame { function: string | null; offset: number; size: number; reliable: boolean; stack: string }
interface JTask { pid: number; comm: string; panic: boolean; active: boolean; state: string; start: string; stop: string; user: { rip: string; rsp: string } | null; frames: JFrame[]; exception_frames: { user: boolean; regs: Record<string, string> }[] }

test('bt: the panicking task of the sample equals the console trace of the same panic', () => {
  const r = run('bt', SAMPLE, '--json');
  assert.equal(r.status, 0, r.stderr);
  const j = JSON.parse(r.stdout) as { tasks: JTask[]; warnings: { code: string; text: string }[] };
  assert.equal(j.tasks.length, 1);
  const t = j.tasks[0]!;
  assert.equal(t.pid, 1);
  assert.equal(t.comm, 'init');
  assert.equal(t.panic, true);
  assert.equal(t.start, 'cpu registers');
  assert.equal(t.stop, 'user_mode');
  const chain = t.frames.map((f) => `${f.function}+0x${f.offset.toString(16)}/0x${f.size.toString(16)}`);
  // the console's reliable frames from sysrq_handle_crash down (panic itself: the registers were
  // saved later in panic than where it called dump_stack)
  assert.deepEqual(chain.slice(2), [
    'sysrq_handle_crash+0x16/0x20',
    '__handle_sysrq.cold+0x44/0x11c',
    'write_sysrq_trigger+0x24/0x40',
    'proc_reg_write+0x56/0xa0',
    'vfs_write+0xc7/0x3f0',
    'ksys_write+0x6b/0xf0',
    'do_syscall_64+0x5d/0x90',
    'entry_SYSCALL_64_after_hwframe+0x6e/0xd8',
  ]);
  assert.equal(t.frames[1]!.function, 'panic');
  assert.ok(t.frames.every((f) => f.reliable && f.stack === 'task'));
  assert.deepEqual(t.user, { rip: '0x47b7a0', rsp: '0x7ffe8f9cb798' });
  const regs = t.exception_frames[t.exception_frames.length - 1]!;
  assert.equal(regs.user, true);
  assert.equal(regs.regs['r15'], '0x7ffe8f9cb800');
  assert.equal(regs.regs['orig_ax'], '0x1');
  // text form
  const txt = run('bt', SAMPLE);
  assert.equal(txt.status, 0, txt.stderr);
  assert.match(txt.stdout, /^PID: 1 +TASK: [0-9a-f]+ +CPU: 0 +COMMAND: "init"/);
  assert.match(txt.stdout, / #3 \[[0-9a-f]+\] __handle_sysrq\.cold\+0x44\/0x11c\n/);
  assert.match(txt.stdout, /RIP: 000000000047b7a0 {2}RSP: 00007ffe8f9cb798 {2}RFLAGS: 00000202/);
});

test('bt -a: every task of the sample, complete reliable walks; PIDs select; usage errors', () => {
  const r = run('bt', SAMPLE, '-a', '--json');
  assert.equal(r.status, 0, r.stderr);
  const j = JSON.parse(r.stdout) as { tasks: JTask[] };
  assert.ok(j.tasks.length > 40, `${j.tasks.length} tasks`);
  for (const t of j.tasks) {
    assert.ok(t.stop === 'end_of_stack' || t.stop === 'user_mode', `${t.pid} ${t.comm}: ${t.stop}`);
    assert.ok(t.frames.length >= 2 && t.frames.every((f) => f.reliable && f.function !== null), `${t.pid} ${t.comm}`);
    if (!t.active) assert.equal(t.frames[0]!.function, '__schedule', `${t.pid} ${t.comm} sleeps in __schedule`);
  }
  const kthreadd = j.tasks.find((t) => t.pid === 2)!;
  assert.deepEqual(kthreadd.frames.map((f) => f.function), ['__schedule', 'schedule', 'kthreadd', 'ret_from_fork']);
  const one = JSON.parse(run('bt', SAMPLE, '2', '--json').stdout) as { tasks: JTask[] };
  assert.deepEqual(one.tasks.map((t) => t.pid), [2]);
  assert.equal(run('bt', SAMPLE, '-a', '2').status, 2);
  // a PID with no task: the others are printed, exit 1 with NO_TASK (as sym for an unknown name)
  const some = run('bt', SAMPLE, '2', '99999');
  assert.equal(some.status, 1);
  assert.match(some.stdout, /^PID: 2 /m);
  assert.match(some.stderr, /NO_TASK: .*no task with pid 99999/);
  assert.equal(run('bt', SAMPLE, '99999', '--json').status, 1);
});
