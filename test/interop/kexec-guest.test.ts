/**
 * A dump made by the kernel itself (test/interop/kexec-guest.ts, scripts/guest/kexec-guest.sh):
 * Debian's 6.1.0-56 cloud kernel panicked by sysrq-c on CPU 0 while CPU 1 was busy in read_zero,
 * so the panic stopped CPU 1 by NMI; the capture kernel saved /proc/vmcore as ELF and through
 * makedumpfile -d 31 -c. On both files, against the guest's own console, drgn (with the -dbg
 * vmlinux; it matches the kernel's NT_PRSTATUS notes to tasks by pr_pid) and crash 8.0.2:
 * - info: the producer, the panic line and the panicking CPU/task of the console, each
 *   NT_PRSTATUS note matched to its CPU and to the task drgn sees running there;
 * - ps equals drgn's task list; sym gives the -dbg System.map's addresses shifted by KASLR;
 * - bt --panic equals the console's call trace (the kernel's own ORC unwinder) from
 *   sysrq_handle_crash down, offsets included, and crosses __crash_kexec, which has no ORC data;
 * - bt of the task on the NMI-stopped CPU equals drgn's stack trace of it (function and pc);
 * - dmesg equals the first kernel's console.
 * Under CI=true a missing prerequisite fails the test instead of skipping it.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { drgnFunctions } from './analysis-guest.js';
import { kexecGuest } from './kexec-guest.js';

const CLI = join(fileURLToPath(new URL('../../../', import.meta.url)), 'dist/src/cli/vmcore.js');

function vmcore(args: string[]): string {
  const r = spawnSync(process.execPath, [CLI, ...args], { encoding: 'utf8', maxBuffer: 256 << 20, timeout: 300_000 });
  assert.equal(r.status, 0, `vmcore ${args.join(' ')}: ${r.stderr}`);
  return r.stdout;
}

interface Frame { function: string | null; offset: number | null; pc: string; reliable: boolean; method: string }
interface TaskBt { pid: number; comm: string; cpu: number; start: string; frames: Frame[]; user: { rip: string; rsp: string } | null; stop: string; stop_detail: string }

/** Compiler suffixes DWARF names do not carry. */
const bare = (name: string) => name.replace(/\.(cold|isra|constprop|part|llvm)(\.\d+)*.*$/, '');
/** Assembly entry code drgn 0.0.22 cannot name from DWARF. */
const asm = (name: string) => /^(entry_|asm_|ret_from_fork|secondary_startup_64|common_startup_64)/.test(name);

const g = kexecGuest();
const skip = 'skip' in g ? g.skip : false;

if (!('skip' in g)) {
  test('kdump guest: harness timings', (t) => {
    t.diagnostic(`capture ${g.timings['BOOT_S']} s, extraction ${g.timings['EXTRACT_S']} s, drgn ${g.timings['DRGN_S']} s, crash ${g.timings['CRASH_S']} s (${g.dir})`);
    assert.match(g.captureConsole, /makedumpfile Completed/);
    assert.deepEqual(g.drgn.errors, []);
  });
}

// The console's panic: the line, and "CPU: n PID: p Comm: c" of the panicking context
const panicLine = () => ('skip' in g ? '' : /Kernel panic - not syncing: .*/.exec(g.console.text)![0].trim());
const panicWho = () => {
  if ('skip' in g) return { cpu: -1, pid: -1, comm: '' };
  const m = /Kernel panic - not syncing[^\n]*\n(?:[^\n]*\n)*?[^\n]*CPU: (\d+) PID: (\d+) Comm: (\S+)/.exec(g.console.text)!;
  return { cpu: Number(m[1]), pid: Number(m[2]), comm: m[3]! };
};

for (const kind of ['elf', 'kdump'] as const) {
  const file = () => ('skip' in g ? '' : kind === 'elf' ? g.elf : g.kdump);

  test(`kdump guest (${kind}): info names the producer, the console's panic, and matches each NT_PRSTATUS note to its CPU and task by pid`, { skip }, () => {
    if ('skip' in g) return;
    const info = JSON.parse(vmcore(['info', file(), '--json'])) as {
      producer: string;
      panic: { message: string; cpu: number | null; task: number | null; registers: { pid: number; rip: string } | null; signature?: string; signatureChain?: string[] };
      kernelState: { cpuNotes: { note: number; pid: number; cpu: number | null; task: string | null; comm: string | null }[]; currentTasks: string[] };
    };
    assert.equal(info.producer, kind === 'elf' ? 'kernel' : 'makedumpfile');
    const who = panicWho();
    assert.equal(info.panic.message, panicLine());
    assert.equal(info.panic.task, who.pid);
    assert.equal(info.panic.cpu, who.cpu);
    assert.equal(info.panic.registers?.pid, who.pid);
    // one note per CPU, each matched to the CPU whose current task (drgn) has the note's pid
    const notes = info.kernelState.cpuNotes;
    assert.equal(notes.length, g.drgn.cpus.length);
    for (const n of notes) {
      assert.notEqual(n.cpu, null, `note ${n.note} (pid ${n.pid}) matched`);
      const current: string = g.drgn.cpus.find((c) => c.cpu === n.cpu)!.current;
      assert.equal(n.task, current, `note ${n.note}: CPU ${n.cpu}'s current task`);
      const t: { pid: number; comm: string } = g.drgn.tasks.find((x) => x.task === current)!;
      assert.equal(n.pid, t.pid, `note ${n.note}: pr_pid is the pid of the task drgn sees on CPU ${n.cpu}`);
      assert.equal(n.comm, t.comm);
    }
    assert.deepEqual(notes.map((n) => n.cpu).sort(), g.drgn.cpus.map((c) => c.cpu).sort());
    // crash marks the same tasks active ('>' in ps: pid and CPU)
    const active = [...g.crash.ps.matchAll(/^>\s+(\d+)\s+\d+\s+(\d+)\s/gm)].map((m) => `${m[1]}@${m[2]}`).sort();
    assert.deepEqual(notes.map((n) => `${n.pid}@${n.cpu}`).sort(), active);
    assert.match(g.crash.sys, new RegExp(`PANIC: "${panicLine()}"`));
    // the signature's chain starts after the kexec and panic machinery
    assert.deepEqual(info.panic.signatureChain, ['sysrq_handle_crash', '__handle_sysrq', 'write_sysrq_trigger', 'proc_reg_write', 'vfs_write']);
  });

  test(`kdump guest (${kind}): ps equals drgn's tasks and lists the console's processes`, { skip }, () => {
    if ('skip' in g) return;
    const ps = JSON.parse(vmcore(['ps', file(), '--json'])) as { pid: number; tgid: number; ppid: number; cpu: number; state: string; comm: string; task: string; active: boolean; panic: boolean }[];
    const key = (t: { task: string; pid: number; tgid: number; ppid: number; comm: string; state: string }) => `${t.task} ${t.pid} ${t.tgid} ${t.ppid} ${t.comm} ${t.state}`;
    assert.deepEqual(ps.map(key).sort(), g.drgn.tasks.map(key).sort());
    const cpuOf = new Map(g.drgn.tasks.map((t) => [t.task, t.cpu]));
    for (const t of ps) assert.equal(t.cpu, cpuOf.get(t.task), `cpu of ${t.pid} ${t.comm}`);
    assert.deepEqual(ps.filter((t) => t.active).map((t) => t.task).sort(), g.drgn.cpus.map((c) => c.current).sort());
    assert.deepEqual(ps.filter((t) => t.panic).map((t) => t.pid), [panicWho().pid]);
    // the console's ps (busybox: pid, ppid, comm), less the ps itself and the loops' `sleep 1`
    // children (a new one every second)
    assert.ok(g.console.ps.length >= 6, `${g.console.ps.length} console ps rows`);
    const loop = new Set(g.console.ps.filter((x) => x.comm === 'sh').map((x) => x.pid));
    for (const p of g.console.ps.filter((x) => x.comm !== 'ps' && !loop.has(x.ppid))) {
      assert.ok(ps.some((t) => t.pid === p.pid && t.ppid === p.ppid && (p.comm.startsWith('[') || p.comm.startsWith(t.comm) || t.comm.startsWith(p.comm))), `console ps ${p.pid} ${p.comm}`);
    }
    assert.ok(ps.some((t) => t.comm === 'dd' && t.active), 'the busy dd runs on a CPU');
  });

  test(`kdump guest (${kind}): sym equals the -dbg System.map shifted by KASLR and the guest's /proc/kallsyms sample`, { skip }, () => {
    if ('skip' in g) return;
    const off = BigInt(g.drgn.kaslr_offset);
    const map = readFileSync(join(dirname(g.vmlinux), `System.map-${g.kver}`), 'latin1');
    const text = [...map.matchAll(/^([0-9a-f]{16}) [tT] (\w+)$/gm)];
    const sample: [string, string][] = text.filter((_, i) => i % 500 === 0).map((m) => [m[2]!, `0x${(BigInt(`0x${m[1]!}`) + off).toString(16)}`]);
    sample.push(...[...g.console.kallsyms].filter(([, a]) => BigInt(a) >= 0xffffffff80000000n && BigInt(a) < 0xffffffffc0000000n));
    assert.ok(sample.length > 100, `${sample.length} symbols`);
    const answers = JSON.parse(vmcore(['sym', file(), ...sample.map(([n]) => n), '--json'])) as { query: string; address: string }[];
    for (const [name, addr] of sample) {
      const mine = answers.filter((a) => a.query === name).map((a) => a.address);
      assert.ok(mine.includes(addr), `${name}: expected ${addr}, vmcore ${mine.join(',')}`);
    }
  });

  test(`kdump guest (${kind}): bt --panic equals the console's call trace and crosses __crash_kexec (no ORC data) to the user-mode entry`, { skip }, () => {
    if ('skip' in g) return;
    const out = JSON.parse(vmcore(['bt', file(), '--panic', '--json'])) as { tasks: TaskBt[] };
    assert.equal(out.tasks.length, 1);
    const b = out.tasks[0]!;
    assert.equal(b.pid, panicWho().pid);
    assert.equal(b.start, 'cpu registers');
    assert.equal(b.stop, 'user_mode', b.stop_detail);
    assert.ok(b.frames.every((f) => f.reliable), 'every frame reliable');
    // crash_setup_regs() saved the registers inside __crash_kexec; panic called it
    assert.deepEqual(b.frames.slice(0, 2).map((f) => [f.function, f.method]), [['__crash_kexec', 'orc'], ['panic', 'call_site']]);
    // the console's trace was printed by dump_stack() in panic(): from the function panic was
    // called by, frame for frame with offsets
    const trace = g.console.traces[0]!.frames.filter((f) => f.reliable);
    const from = trace.findIndex((f) => f.function === 'panic') + 1;
    assert.ok(from > 0, 'the console trace has panic');
    const theirs = trace.slice(from).map((f) => `${f.function}+${f.offset}`);
    const ours = b.frames.slice(2).map((f) => `${f.function}+0x${f.offset!.toString(16)}`);
    assert.deepEqual(ours, theirs);
    // the user-mode registers the console printed after the trace
    const rip = /RIP: 0033:(0x[0-9a-f]+)/.exec(g.console.traces[0]!.text)![1]!;
    const rsp = /RSP: 002b:([0-9a-f]+)/.exec(g.console.traces[0]!.text)![1]!;
    assert.deepEqual(b.user, { rip, rsp: `0x${BigInt(`0x${rsp}`).toString(16)}` });
    // drgn (DWARF) agrees, inlined frames left out
    const d = g.drgn.tasks.find((t) => t.pid === b.pid && t.on_cpu !== null)!;
    assert.deepEqual(b.frames.map((f) => bare(f.function!)).filter((n) => !asm(n)), drgnFunctions(d.stack!));
    // crash's bt of the task: the same chain from __crash_kexec to do_syscall_64 (after that crash
    // lists stale frames it finds on the stack)
    const block = g.crash.btA.split(/\n(?=PID: )/).find((s) => s.startsWith(`PID: ${b.pid} `))!;
    const crashFns = [...block.matchAll(/^\s*#\d+ \[[0-9a-f]+\] (\S+) at/gm)].map((m) => m[1]!);
    const i = crashFns.indexOf('__crash_kexec');
    const j = crashFns.indexOf('do_syscall_64');
    assert.deepEqual(crashFns.slice(i, j + 1), b.frames.map((f) => f.function!).slice(0, b.frames.findIndex((f) => f.function === 'do_syscall_64') + 1));
  });

  test(`kdump guest (${kind}): bt of the task on the CPU stopped by NMI equals drgn's stack trace of it`, { skip }, (t) => {
    if ('skip' in g) return;
    const info = JSON.parse(vmcore(['info', file(), '--json'])) as { kernelState: { cpuNotes: { pid: number; cpu: number | null }[] } };
    const other = info.kernelState.cpuNotes.find((n) => n.cpu !== panicWho().cpu)!;
    assert.ok(other.pid > 0, `CPU ${other.cpu} ran a task (pid ${other.pid}), not its idle task`);
    const out = JSON.parse(vmcore(['bt', file(), String(other.pid), '--json'])) as { tasks: TaskBt[] };
    const b = out.tasks.find((t) => t.cpu === other.cpu)!;
    assert.ok(b, `bt of pid ${other.pid} on CPU ${other.cpu}`);
    assert.equal(b.start, 'cpu registers');
    assert.equal(b.stop, 'user_mode', b.stop_detail);
    const d = g.drgn.tasks.find((t) => t.pid === other.pid && t.on_cpu === other.cpu)!;
    assert.ok(d.stack && d.stack.length > 0, `drgn: ${d.stack_error}`);
    if (b.stop_detail === 'the CPU was in user mode') {
      // the NMI came while dd ran its own code between two reads (rare with 16 MiB reads): no
      // kernel frames, the note's user-mode registers, where drgn's first frame is
      assert.deepEqual(b.frames, []);
      assert.ok(b.user && BigInt(b.user.rip) < 0x800000000000n, `user rip ${b.user?.rip}`);
      assert.equal(BigInt(d.stack[0]!.pc ?? -1), BigInt(b.user.rip));
      return;
    }
    // drgn 0.0.22 leaves a frame without a program counter where it cannot read the return
    // address its unwind rules name; its trace up to there is what can be compared
    const cut = d.stack.findIndex((f) => f.pc === null);
    const drgnFrames = (cut < 0 ? d.stack : d.stack.slice(0, cut)).filter((f) => !f.inline && f.function !== null);
    // (with no whole trace from drgn, crash's below is the reference for the rest)
    assert.ok(cut >= 0 || drgnFrames.length > 0, `drgn named no frame: ${JSON.stringify(d.stack)}`);
    const ours = b.frames.filter((f) => !asm(f.function ?? '')).slice(0, cut < 0 ? undefined : drgnFrames.length);
    if (cut >= 0) t.diagnostic(`drgn lost the pc after ${drgnFrames.length} named frames; compared those, and crash's trace`);
    assert.deepEqual(ours.map((f) => bare(f.function!)), drgnFrames.map((f) => f.function));
    assert.deepEqual(ours.map((f) => f.pc), drgnFrames.map((f) => f.pc));
    // crash starts on the NMI stack (crash_nmi_callback ... end_repeat_nmi), then gives the
    // interrupted context: the same chain down to do_syscall_64
    const block = g.crash.btA.split(/\n(?=PID: )/).find((s) => s.startsWith(`PID: ${other.pid} `))!;
    const below = block.split('<NMI exception stack>')[1] ?? '';
    const crashFns = [...below.matchAll(/^\s*#\d+ \[[0-9a-f]+\] (\S+) at/gm)].map((m) => m[1]!);
    const j = crashFns.indexOf('do_syscall_64');
    const k = b.frames.findIndex((f) => f.function === 'do_syscall_64');
    assert.deepEqual(crashFns.slice(0, j + 1), b.frames.slice(0, k + 1).map((f) => f.function));
  });

  test(`kdump guest (${kind}): dmesg equals the first kernel's console`, { skip }, () => {
    if ('skip' in g) return;
    const log = JSON.parse(vmcore(['dmesg', file(), '--json'])) as { records: { timestamp: string; level: number; text: string }[] };
    // the console prints levels below the default console_loglevel 7, each line with the stamp
    const ours = log.records.filter((r) => r.level < 7).flatMap((r) => r.text.split('\n').map((l) => `[${r.timestamp.padStart(12)}] ${l}`));
    const console: string[] = [];
    for (const raw of g.console.text.split('\n')) {
      const m = /\[ *\d+\.\d{6}\] .*/.exec(raw.replace(/\r$/, ''));
      if (m) console.push(m[0]);
    }
    assert.ok(console.length > 300, `${console.length} console lines`);
    assert.deepEqual(ours, console);
  });
}
