/**
 * The analysis guest itself (scripts/guest/analysis-guest.sh, test/interop/analysis-guest.ts):
 * for each kernel series, the truth drgn and crash read from the dumps agrees with what the guest
 * printed about itself on its console (ps, /proc/modules, /proc/kallsyms, the panic's own call
 * trace). The symbol, type and backtrace tests compare vmcore with this truth, so it must hold.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { ANALYSIS_KERNELS, analysisGuest } from './analysis-guest.js';

for (const abi of ANALYSIS_KERNELS) {
  const g = analysisGuest(abi);
  const skip = 'skip' in g ? g.skip : false;
  test(`analysis guest ${abi}: dumps, 2 CPUs, KASLR, modules, user processes; drgn agrees with the console`, { skip }, () => {
    if ('skip' in g) return;
    for (const f of [g.elf, g.kdump, g.fixedElf, g.serial]) assert.ok(existsSync(f), f);
    const d = g.drgn;
    // drgn 0.0.22's prog.threads() walks task_struct.thread_group, which 6.12 no longer has
    assert.deepEqual(d.errors.filter((e) => !(abi.startsWith('6.12') && /thread_group/.test(e))), []);
    assert.equal(d.release, g.kver);
    assert.equal(d.cpus.length, 2, 'two possible CPUs');
    assert.notEqual(d.kaslr_offset, '0x0', 'KASLR moved the kernel');
    // modules: drgn's list equals /proc/modules (name, load address, size)
    const mods = (xs: { name: string; base: string; size: number }[]) => xs.map((m) => `${m.name} ${m.base} ${m.size}`).sort();
    assert.deepEqual(mods(d.modules), mods(g.console.modules));
    assert.deepEqual(g.console.modules.map((m) => m.name).sort(), ['dummy', 'loop', 'qemu_fw_cfg']);
    // symbols: every sampled name drgn resolved has the address /proc/kallsyms printed
    // Per-CPU symbols (kallsyms shows their small section offsets) come out of drgn 0.0.22 with
    // the KASLR offset added: shown here, and the reason the tests take them from /proc/kallsyms.
    let compared = 0;
    let perCpu = 0;
    for (const [name, addr] of Object.entries(d.symbols)) {
      const k = g.console.kallsyms.get(name);
      if (k === undefined) continue;
      if (BigInt(k) < 0x200000n) {
        assert.equal(BigInt(addr), BigInt(k) + BigInt(d.kaslr_offset), `${name}: drgn adds the KASLR offset to a per-CPU symbol`);
        perCpu++;
        continue;
      }
      assert.equal(addr, k, name);
      compared++;
    }
    assert.ok(perCpu >= 1, 'a per-CPU symbol was compared');
    assert.ok(compared >= 5, `compared ${compared} symbols`);
    // tasks: every process ps listed is in drgn's task list with the same parent
    const byPid = new Map(d.tasks.filter((t) => t.pid > 0).map((t) => [t.pid, t]));
    assert.ok(g.console.ps.length > 20);
    // ps itself and the children of the sleep loops (`sleep 1`, listed as "sleep" or, caught while
    // busybox re-executes itself, as "exe") exit before the panic; the plain `sleep 100000` stays
    const loopShells = new Set(g.console.ps.filter((p) => p.comm === 'sh').map((p) => p.pid));
    for (const p of g.console.ps) {
      if (p.comm === 'ps' || loopShells.has(p.ppid)) continue;
      const t = byPid.get(p.pid);
      assert.ok(t, `pid ${p.pid} ${p.comm} in drgn`);
      assert.equal(t.ppid, p.ppid, `ppid of ${p.pid}`);
    }
    const sleepers = d.tasks.filter((t) => (t.comm === 'sleep' || t.comm === 'sh') && !t.kernel_thread && t.state === 'S');
    assert.ok(d.tasks.filter((t) => t.comm === 'sh').length >= 4, 'the 4 busybox sleep loops');
    assert.ok(d.tasks.some((t) => t.comm === 'sleep'), 'a sleep');
    assert.ok(d.tasks.filter((t) => t.kernel_thread).length > 20, 'kernel threads');
    assert.equal(d.tasks.filter((t) => t.idle_cpu !== undefined || (t.pid === 0 && t.comm.startsWith('swapper'))).length, 2, 'an idle task per CPU');
    // the panic: the kernel's own trace on the console names sysrq_handle_crash under panic
    const trace = g.console.traces.find((t) => t.frames.some((f) => f.function === 'sysrq_handle_crash'));
    assert.ok(trace, 'the panic trace on the console');
    const reliable = trace.frames.filter((f) => f.reliable).map((f) => f.function);
    assert.ok(reliable.indexOf('panic') < reliable.indexOf('sysrq_handle_crash'));
    // the panicking task is the current task of an online CPU
    const init = d.tasks.find((t) => t.pid === 1)!;
    assert.ok(d.cpus.some((c) => c.online && c.current === init.task), 'init runs on an online CPU');
    if (abi.startsWith('6.1.')) {
      // sleeping tasks have drgn stack traces through schedule
      for (const t of sleepers) assert.ok(t.stack?.some((f) => f.function === 'schedule'), `pid ${t.pid} sleeps in schedule`);
    } else {
      // drgn 0.0.22 does not know 6.12's orc_entry layout (types renumbered in 6.4): it cannot unwind
      for (const t of sleepers) assert.match(t.stack_error ?? '', /unknown ORC entry type/, `pid ${t.pid}`);
    }
    if (abi.startsWith('6.1.')) {
      assert.ok(g.crash, 'crash output for 6.1');
      for (const m of g.console.modules) assert.match(g.crash.mod, new RegExp(`\\b${m.name}\\b`));
      // crash 8.0.2 does not find Debian 6.1.192's tasks in the PID hash: its ps lists only the
      // idle and the active tasks (the corpus's crash sessions show the same warning)
      assert.match(g.crash.log, /not found in PID hash/);
      assert.match(g.crash.ps, /^>\s+1\s+0\s+\d\s+[0-9a-f]+\s+RU\s.*\binit$/m);
      for (const t of sleepers) assert.doesNotMatch(g.crash.ps, new RegExp(`^\\s*>?\\s*${t.pid}\\s+${t.ppid}\\s`, 'm'));
      assert.match(g.crash.btA, /sysrq_handle_crash/);
      assert.match(g.crash.task, /comm = "init/);
    }
  });
}
