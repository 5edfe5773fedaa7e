/**
 * Crashes on other paths than sysrq-c (scripts/guest/crash-kinds.sh): guests of the 6.1.0-56
 * kernel that crash in the out-of-tree test module scripts/guest/crashmod, built in the test from
 * Debian's linux-headers package, each dumped by QEMU. Truth is the guest's console: the
 * kernel's own oops report (its RIP line and call trace, from its ORC unwinder).
 * - workqueue: NULL dereference in a work item (an oops in a kworker);
 * - bug: BUG() in the write handler of /proc/crashmod;
 * - softlockup: the write handler spins; the watchdog's hrtimer (IRQ) reports the soft lockup
 *   with the spinning task's pt_regs and panics (softlockup_panic=1);
 * - timer: NULL dereference in a hard-interrupt hrtimer callback (on the IRQ stack).
 * For each: `vmcore bt --panic` goes through the exception frame (pt_regs) to the faulting
 * function, and from there equals the console's oops trace frame for frame (`function+0xoff`,
 * `[module]`; the interrupt's own pt_regs inside the trace included); `info` names the oops, its
 * context and the faulting function. The crash signature differs between the kinds and is
 * equal for two boots of the workqueue kind with different KASLR offsets.
 * Without QEMU, make or the kernel's compiler the test skips, and under CI=true it fails.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('../../../', import.meta.url));
const CLI = join(root, 'dist/src/cli/vmcore.js');
const SCRIPT = join(root, 'scripts/guest/crash-kinds.sh');
const ABI = '6.1.0-56';
const KINDS = ['workqueue', 'bug', 'softlockup', 'timer'] as const;
type Kind = (typeof KINDS)[number];
const RUNS = ['workqueue-1', 'bug-1', 'softlockup-1', 'timer-1', 'workqueue-2'];

/** What the oops line, the context and the faulting function of each kind are (crashmod.c). */
const EXPECT: Record<Kind, { oops: RegExp; kind: string; context: string; faulting: string; panic: RegExp }> = {
  workqueue: { oops: /^BUG: kernel NULL pointer dereference/, kind: 'NULL pointer dereference', context: 'task', faulting: 'crashmod_work_fn', panic: /Fatal exception$/ },
  bug: { oops: /^kernel BUG at crashmod\/crashmod\.c:\d+!/, kind: 'BUG', context: 'task', faulting: 'crashmod_write', panic: /Fatal exception$/ },
  softlockup: { oops: /^watchdog: BUG: soft lockup - CPU#\d+ stuck for \d+s!/, kind: 'soft lockup', context: 'task', faulting: 'crashmod_spin', panic: /softlockup: hung tasks/ },
  timer: { oops: /^BUG: kernel NULL pointer dereference/, kind: 'NULL pointer dereference', context: 'irq', faulting: 'crashmod_timer_fn', panic: /Fatal exception in interrupt$/ },
};

function missing(): string | undefined {
  const has = (cmd: string, args: string[]) => spawnSync(cmd, args, { stdio: 'ignore' }).error === undefined;
  if (!has('qemu-system-x86_64', ['--version'])) return 'qemu-system-x86_64 not installed';
  if (!existsSync('/bin/busybox')) return 'busybox-static not installed';
  if (!has('make', ['--version'])) return 'make not installed';
  if (!has('gcc-12', ['--version'])) return 'gcc-12 (the 6.1 kernel compiler) not installed';
  if (!existsSync(CLI)) return 'the CLI is not built (npm run build)';
  return undefined;
}

interface Run {
  name: string;
  kind: Kind;
  dir: string;
  elf: string;
  console: string;
  kaslrOffset: string;
}

function crashKinds(): { runs: Map<string, Run> } | { skip: string } {
  const why = missing();
  if (why) {
    if (process.env['CI'] === 'true') throw new Error(`crash-kinds guests: ${why} (required in CI)`);
    return { skip: why };
  }
  const r = spawnSync('bash', [SCRIPT, ...RUNS], { encoding: 'utf8', env: { ...process.env, VMCORE_KERNEL_ABI: ABI }, maxBuffer: 64 << 20, timeout: 1_200_000 });
  if (r.status !== 0) throw new Error(`scripts/guest/crash-kinds.sh failed: ${(r.stderr ?? '').slice(-1500)}`);
  const dir = /^CRASH_KINDS_DIR=(.*)$/m.exec(r.stdout)![1]!;
  const runs = new Map<string, Run>();
  for (const name of RUNS) {
    const d = join(dir, name);
    const env = new Map([...readFileSync(join(d, 'truth.env'), 'utf8').matchAll(/^(\w+)=(.*)$/gm)].map((m) => [m[1]!, m[2]!] as const));
    runs.set(name, { name, kind: env.get('KIND') as Kind, dir: d, elf: join(d, 'qemu-elf.vmcore'), console: readFileSync(join(d, 'serial.log'), 'latin1'), kaslrOffset: env.get('KASLR_OFFSET')! });
  }
  return { runs };
}

/** One kernel-mode frame of the console's oops report: `fn+0xoff [module]`, reliable or `?`. */
interface ConsoleFrame {
  text: string;
  reliable: boolean;
}

/**
 * The oops report on the console: its first line (the oops), then the faulting context as the
 * kernel printed it: the RIP line of the oops (the faulting function) and the call trace after
 * it, where a kernel-mode `RIP: 0010:` line inside the trace is the frame an interrupt's pt_regs
 * gives (show_trace_log_lvl prints those registers in place of the frame), up to the user-mode
 * RIP or `</TASK>`.
 */
export function consoleOops(text: string, oopsRe: RegExp): { oops: string; rsp: string | null; frames: ConsoleFrame[]; panicTrace: string[] } {
  const lines = text.split(/\r?\n/).map((l) => l.replace(/^\[\s*[\d.]+\]\s?/, ''));
  const start = lines.findIndex((l) => oopsRe.test(l));
  assert.ok(start >= 0, `the console has the oops ${oopsRe}`);
  const frame = /^\s*(\? )?([A-Za-z0-9_.$]+\+0x[0-9a-f]+\/0x[0-9a-f]+(?: \[[^\]]+\])?)\s*$/;
  const rip = /^RIP: 0010:([A-Za-z0-9_.$]+\+0x[0-9a-f]+\/0x[0-9a-f]+(?: \[[^\]]+\])?)\s*$/;
  const frames: ConsoleFrame[] = [];
  let rsp: string | null = null;
  let i = start;
  for (; i < lines.length && !/^Call Trace:/.test(lines[i]!); i++) {
    const m = rip.exec(lines[i]!);
    if (m && frames.length === 0) frames.push({ text: m[1]!, reliable: true });
    const r = /^RSP: [0-9a-f]{4}:([0-9a-f]{16})/.exec(lines[i]!);
    if (r && rsp === null) rsp = `0x${BigInt(`0x${r[1]!}`).toString(16)}`;
  }
  for (i++; i < lines.length; i++) {
    const l = lines[i]!;
    if (/^\s*<\/TASK>/.test(l) || /^RIP: 0033:/.test(l)) break;
    const m = frame.exec(l) ?? rip.exec(l);
    if (m && m.length === 3) frames.push({ text: m[2]!, reliable: m[1] === undefined });
    else if (m) frames.push({ text: m[1]!, reliable: true });
  }
  // the panic's own trace (panic() prints one with dump_stack unless the oops already did)
  const panicTrace: string[] = [];
  const p = lines.findIndex((l, j) => j > i && /^Kernel panic - not syncing/.test(l));
  if (p >= 0) {
    for (let j = p + 1; j < lines.length && !/^\s*<\/TASK>/.test(lines[j]!) && !/^Kernel Offset/.test(lines[j]!); j++) {
      const m = frame.exec(lines[j]!) ?? rip.exec(lines[j]!);
      if (m && m.length === 3 && m[1] === undefined) panicTrace.push(m[2]!);
      else if (m && m.length === 2) panicTrace.push(m[1]!);
    }
  }
  return { oops: lines[start]!, rsp, frames, panicTrace };
}

interface BtFrame {
  level: number;
  function: string | null;
  offset: number | null;
  size: number | null;
  module: string | null;
  reliable: boolean;
  stack: string;
  pc: string;
}
interface BtTask {
  pid: number;
  comm: string;
  panic: boolean;
  frames: BtFrame[];
  exception_frames: { level: number; address: string; user: boolean; regs: Record<string, string> }[];
  stop: string;
}

function cli(args: string[]): unknown {
  const r = spawnSync(process.execPath, [CLI, ...args, '--json'], { encoding: 'utf8', maxBuffer: 256 << 20 });
  assert.equal(r.status, 0, `vmcore ${args.join(' ')}: ${r.stderr}`);
  return JSON.parse(r.stdout);
}

const frameText = (f: BtFrame) =>
  f.function === null ? `${f.pc}${f.module ? ` [${f.module}]` : ''}` : `${f.function}+0x${(f.offset ?? 0).toString(16)}/0x${(f.size ?? 0).toString(16)}${f.module ? ` [${f.module}]` : ''}`;
/** Without the symbol: `[module]` for a module frame, so the kernel frames are checked on their own. */
const withoutModuleSymbols = (s: string) => (/ \[[^\]]+\]$/.test(s) ? `? ${/ (\[[^\]]+\])$/.exec(s)![1]}` : s);

const g = crashKinds();
const skip = 'skip' in g ? g.skip : false;
const runs = 'runs' in g ? g.runs : new Map<string, Run>();
const infos = new Map<string, { panic: Record<string, unknown> & { signature?: string; oops?: string } }>();
const info = (r: Run) => {
  if (!infos.has(r.name)) infos.set(r.name, cli(['info', r.elf]) as { panic: Record<string, unknown> });
  return infos.get(r.name)!;
};

for (const name of RUNS.filter((n) => n.endsWith('-1'))) {
  test(`crash kind ${name.replace(/-1$/, '')}: bt --panic through the pt_regs equals the console's oops trace; info names the oops`, { skip }, async (t) => {
    const r = runs.get(name)!;
    const want = EXPECT[r.kind];
    const c = consoleOops(r.console, want.oops);
    const bt = (cli(['bt', '--panic', r.elf]) as { tasks: BtTask[] }).tasks;
    assert.equal(bt.length, 1);
    const b = bt[0]!;
    assert.ok(b.panic);
    // the faulting context: from the first kernel-mode pt_regs on the panicking task's stacks
    const exc = b.exception_frames.find((e) => !e.user);
    assert.ok(exc, 'a kernel-mode pt_regs (the oops or the interrupt) on the stack');
    const ours = b.frames.filter((f) => f.level >= exc.level && f.reliable);
    assert.equal(ours[0]!.module, 'crashmod', `the frame after the pt_regs is in the module: ${frameText(ours[0]!)}`);
    assert.equal(ours[0]!.stack, want.context, 'the stack the fault happened on');
    const theirs = c.frames.filter((f) => f.reliable).map((f) => f.text);
    assert.ok(theirs[0]!.startsWith(`${want.faulting}+`), `the console's RIP is in ${want.faulting}: ${theirs[0]}`);
    assert.ok(b.stop === 'user_mode' || b.stop === 'end_of_stack', `complete walk: ${b.stop}`);
    // the pt_regs crossed is the one the kernel printed: its RSP line
    assert.equal(exc.regs['sp'], c.rsp, "the pt_regs' sp is the oops report's RSP");
    // panic() ran on the IRQ stack when the crash came from the timer interrupt (the hrtimer's
    // NULL dereference, the watchdog's hrtimer for the soft lockup)
    const panicFrame = b.frames.find((f) => f.function === 'panic')!;
    assert.equal(panicFrame.stack, r.kind === 'timer' || r.kind === 'softlockup' ? 'irq' : 'task', 'the stack panic() ran on');

    await t.test('kernel frames and the module frames\' [crashmod] equal the console', () => {
      assert.deepEqual(ours.map(frameText).map(withoutModuleSymbols), theirs.map(withoutModuleSymbols));
    });
    await t.test('module frames named as the console names them (function+0xoff/0xsize [crashmod])', () => {
      assert.deepEqual(ours.map(frameText), theirs);
    });
    if (c.panicTrace.length > 0) {
      // the panic's own trace (the soft lockup's: panic in the watchdog's hrtimer on the IRQ
      // stack, then the looping task's pt_regs): function names from panic on
      await t.test('the chain from panic equals the panic\'s own trace on the console', () => {
        const fn = (s: string) => s.replace(/\+0x.*$/, '') + (/ \[[^\]]+\]$/.test(s) ? ` ${/(\[[^\]]+\])$/.exec(s)![1]}` : '');
        const names = b.frames.filter((f) => f.reliable).map((f) => `${f.function ?? '?'}${f.module ? ` [${f.module}]` : ''}`);
        assert.deepEqual(names.slice(names.indexOf('panic')).map(withoutModuleSymbols), c.panicTrace.map(fn).slice(c.panicTrace.map(fn).indexOf('panic')).map(withoutModuleSymbols));
      });
    }

    await t.test('info names the oops, its context and the faulting function', () => {
      const p = info(r).panic as Record<string, unknown> & { oops?: string; message?: string; backtrace?: { frames: BtFrame[] } };
      assert.equal(p.oops, c.oops, 'the oops line');
      assert.match(String(p.message), want.panic);
      assert.equal(p['oopsKind'], want.kind);
      assert.equal(p['oopsContext'], want.context);
      const f = p['faulting'] as { function: string | null; module: string | null; level: number } | undefined;
      assert.ok(f, 'panic.faulting');
      assert.equal(f.module, 'crashmod');
      assert.equal(f.level, exc.level);
      assert.deepEqual(p.backtrace!.frames.map((x) => x.pc), b.frames.map((x) => x.pc), 'panic.backtrace = bt --panic');
      assert.equal(f.function, want.faulting, 'the faulting function by name');
    });
  });
}

test('crash signature: different for the four kinds, equal for two KASLR boots of one kind', { skip }, () => {
  const sig = (n: string) => {
    const p = info(runs.get(n)!).panic;
    assert.match(String(p.signature), /^v1:[0-9a-f]{16}$/);
    return p.signature!;
  };
  const kinds = ['workqueue-1', 'bug-1', 'softlockup-1', 'timer-1'].map(sig);
  assert.equal(new Set(kinds).size, 4, `four signatures: ${kinds.join(' ')}`);
  const a = runs.get('workqueue-1')!;
  const b = runs.get('workqueue-2')!;
  assert.notEqual(a.kaslrOffset, b.kaslrOffset, 'two KASLR offsets');
  assert.equal(sig('workqueue-2'), sig('workqueue-1'));
  // the chain holds the module's function, not the interrupted task's (timer: what the CPU ran
  // when the hrtimer fired differs from boot to boot)
  const chain = info(runs.get('timer-1')!).panic['signatureChain'] as string[];
  assert.equal(chain[0], 'crashmod_timer_fn [crashmod]');
});
