/**
 * Backtraces of the analysis guests (test/interop/analysis-guest.ts) against the peers and the
 * guest itself:
 * - 6.1: every sleeping task's function sequence equals drgn's `stack_trace` (drgn's inlined
 *   frames left out, and the assembly entry points, which drgn cannot name, left out of ours);
 * - 6.1 and 6.12: the panicking task's chain from `panic` down equals, frame for frame, the call
 *   trace the kernel printed on its console (its own ORC unwinder), and the user RIP/RSP equal
 *   the console's; the other CPU's running task is unwound through its IRQ stack back to its task
 *   stack; every sleeping task's walk is complete (end marker or user-mode entry) and reliable.
 *   drgn 0.0.22 cannot unwind 6.12 at all (analysis-guest.test.ts shows it).
 * - QEMU's ELF and kdump-zlib dumps of one guest give the same backtraces.
 * Symbols come from the -dbg package's System.map shifted by VMCOREINFO's KERNELOFFSET.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { dirname, join } from 'node:path';
import { openDumpFiles } from '../../src/node/index.js';
import { analyzeKernel } from '../../src/core/kernel/kernel.js';
import { loadVmlinuxBtf } from '../../src/core/kernel/btf/locate.js';
import { KernelTypes } from '../../src/core/kernel/btf/reader.js';
import { Backtracer, type TaskBacktrace } from '../../src/core/kernel/backtrace.js';
import { ANALYSIS_KERNELS, analysisGuest, drgnFunctions, type AnalysisGuest } from './analysis-guest.js';
import { systemMapSymbols } from './system-map.js';
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';

const CLI = fileURLToPath(new URL('../../src/cli/vmcore.js', import.meta.url));
const SAMPLE = fileURLToPath(new URL('../../../samples/seabios-128M.md-c-d31.kdump', import.meta.url));
const signatureOf = (file: string) => {
  const r = spawnSync(process.execPath, [CLI, 'info', file, '--json'], { encoding: 'utf8', maxBuffer: 64 << 20 });
  assert.equal(r.status, 0, r.stderr);
  return (JSON.parse(r.stdout) as { panic: { signature?: string; backtraceError?: string } }).panic;
};

/** Compiler suffixes DWARF names do not carry (.cold, .isra.0, .constprop.0, .part.0). */
const bare = (name: string) => name.replace(/\.(cold|isra|constprop|part|llvm)(\.\d+)*.*$/, '');
/** Assembly entry code drgn 0.0.22 cannot name from DWARF. */
const asm = (name: string) => /^(entry_|asm_|ret_from_fork|secondary_startup_64|common_startup_64)/.test(name);

async function backtraces(g: AnalysisGuest, file: string): Promise<TaskBacktrace[]> {
  const dump = await openDumpFiles([file]);
  try {
    const k = await analyzeKernel(dump);
    const off = BigInt(`0x${k.vmcoreinfo!.get('KERNELOFFSET')}`);
    const symbols = systemMapSymbols(join(dirname(g.vmlinux), `System.map-${g.kver}`), off);
    const stext = symbols.addressOf('_stext');
    const lb = await loadVmlinuxBtf({ readVirt: k.readVirt, symbol: (n) => symbols.addressOf(n), ...(stext ? { stext } : {}) });
    const bt = await Backtracer.create({ readVirt: k.readVirt, release: k.utsname?.release ?? g.kver, symbols, types: new KernelTypes(lb.btf, k.readVirt), cpus: k.cpus });
    assert.deepEqual(bt.warnings, []);
    const out: TaskBacktrace[] = [];
    for (const t of await bt.tasks()) out.push(await bt.backtrace(t));
    return out;
  } finally {
    await dump.close?.();
  }
}

const names = (b: TaskBacktrace) => b.frames.filter((f) => f.reliable).map((f) => f.function ?? '?');

for (const abi of ANALYSIS_KERNELS) {
  const g = analysisGuest(abi);
  test(`bt on the ${abi} analysis guest: drgn, the console's panic trace, both CPUs, ELF = kdump`, { skip: 'skip' in g ? g.skip : false }, async () => {
    if ('skip' in g) return;
    const all = await backtraces(g, g.elf);
    const d = g.drgn;
    assert.equal(all.length, d.tasks.length, 'every task drgn lists');
    const byTask = new Map(all.map((b) => [`0x${b.task.task.toString(16)}`, b]));

    // sleeping tasks: complete, reliable walks; on 6.1 equal to drgn's
    let compared = 0;
    for (const t of d.tasks) {
      const b = byTask.get(t.task);
      assert.ok(b, `task ${t.pid} ${t.comm} at ${t.task}`);
      assert.equal(b.task.pid, t.pid);
      assert.equal(b.task.comm, t.comm);
      assert.equal(b.task.state, t.state, `state of ${t.pid}`);
      if (t.on_cpu !== null) continue;
      assert.equal(b.start, 'inactive_task_frame');
      assert.ok(b.stop === 'end_of_stack' || b.stop === 'user_mode', `${t.pid} ${t.comm}: ${b.stop} ${b.stopDetail}`);
      assert.ok(b.frames.every((f) => f.reliable && f.method === 'orc'), `${t.pid} reliable`);
      // drgn gives a task whose pid equals a QEMU note's pr_pid (vCPU + 1) that CPU's registers
      if (abi.startsWith('6.1.') && t.pid >= 1 && t.pid <= d.cpus.length) {
        // a peer's quirk, noted rather than required: it depends on where the other CPU stopped
        if (!(t.stack?.some((f) => f.function === 'panic' || f.function === 'stop_this_cpu') || t.stack?.[0]?.function === null)) {
          process.stderr.write(`note: drgn's pid ${t.pid} did not get a CPU's registers on this boot\n`);
        }
        continue;
      }
      if (abi.startsWith('6.1.') && t.stack) {
        assert.deepEqual(
          names(b).filter((n) => !asm(n)).map(bare),
          drgnFunctions(t.stack),
          `pid ${t.pid} ${t.comm} equals drgn's stack_trace`,
        );
        compared++;
      }
    }
    if (abi.startsWith('6.1.')) assert.ok(compared > 50, `compared ${compared} tasks with drgn`);

    // the panicking task: its chain from panic equals the kernel's own trace on the console
    const panicTrace = g.console.traces.find((t) => t.frames.some((f) => f.function === 'sysrq_handle_crash'))!;
    const consoleChain = panicTrace.frames.filter((f) => f.reliable).map((f) => f.function);
    const init = all.find((b) => b.task.pid === 1)!;
    assert.equal(init.start, 'cpu registers');
    assert.equal(init.stop, 'user_mode');
    const ours = names(init);
    assert.deepEqual(ours.slice(ours.indexOf('panic')), consoleChain.slice(consoleChain.indexOf('panic')));
    const rip = /RIP: 0033:(0x[0-9a-f]+)/.exec(panicTrace.text)?.[1];
    const rsp = /RSP: 002b:([0-9a-f]+)/.exec(panicTrace.text)?.[1];
    const user = init.user as { rip: bigint; rsp: bigint };
    assert.equal(`0x${user.rip.toString(16)}`, rip);
    assert.equal(user.rsp, BigInt(`0x${rsp}`));

    // the other CPU: its running task was stopped by the panic's IPI on the IRQ stack
    const other = all.find((b) => b.task.activeCpu !== null && b.task.pid !== 1)!;
    assert.ok(other, 'a task running on the other CPU');
    assert.equal(other.start, 'cpu registers');
    assert.equal(other.frames[0]!.function, 'stop_this_cpu');
    assert.equal(other.frames[0]!.stack, 'irq');
    assert.ok(other.frames.some((f) => f.stack === 'task'), 'back on the task stack');
    assert.ok(other.stop === 'user_mode' || other.stop === 'end_of_stack', other.stopDetail);
    assert.ok(other.exceptionFrames.some((e) => e.address !== undefined && !e.user), 'crossed a kernel-mode pt_regs');

    // the same bug (sysrq-c) on another boot of the same kernel (the sample: no KASLR, one CPU,
    // makedumpfile) and on this KASLR boot has one signature
    if (abi.startsWith('6.1.')) {
      const here = signatureOf(g.elf);
      assert.ok(here.signature, here.backtraceError);
      assert.equal(here.signature, signatureOf(SAMPLE).signature);
    }

    // the kdump-zlib (flattened) dump of the same guest gives the same answers
    const fromKdump = await backtraces(g, g.kdump);
    const key = (bs: TaskBacktrace[]) => bs.map((b) => `${b.task.pid} ${b.stop} ${b.frames.map((f) => `${f.sp.toString(16)}:${f.function}`).join(',')}`);
    assert.deepEqual(key(fromKdump), key(all));
  });
}
