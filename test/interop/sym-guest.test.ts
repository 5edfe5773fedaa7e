/**
 * `vmcore sym` and the symbol-based part of `info` on the analysis guests (6.1 and 6.12, 2 CPUs,
 * KASLR, modules loaded; test/interop/analysis-guest.ts): kallsyms read from the dump (no vmlinux)
 * must give every kernel symbol of the guest's own /proc/kallsyms sample (printed on its console)
 * at the same address, and the task each CPU ran must be the one drgn (with the -dbg vmlinux)
 * read from `pcpu_hot.current_task` (its pid and comm too); `info`'s task count is drgn's, its
 * module count the guest's /proc/modules'. Both QEMU dump formats (ELF and flattened kdump) are read.
 * `vmcore mod` must list the modules of the guest's /proc/modules with the same names, bases,
 * sizes and states, as drgn reads them (and crash's `mod` on 6.1, with the struct module
 * address), and the module symbols of the console's /proc/kallsyms sample must resolve both ways
 * (`module:name` -> address, address -> `name [module]`).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { ANALYSIS_KERNELS, analysisGuest } from './analysis-guest.js';

const CLI = join(fileURLToPath(new URL('../../../', import.meta.url)), 'dist/src/cli/vmcore.js');

function vmcore(args: string[]): { status: number | null; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, [CLI, ...args], { encoding: 'utf8', maxBuffer: 64 << 20, timeout: 300_000 });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

for (const abi of ANALYSIS_KERNELS) {
  const g = analysisGuest(abi);
  const skip = 'skip' in g ? g.skip : false;
  for (const kind of ['elf', 'kdump'] as const) {
    test(`sym ${abi} (${kind}): the guest's /proc/kallsyms sample, by name and by address`, { skip }, () => {
      if ('skip' in g) return;
      const file = kind === 'elf' ? g.elf : g.kdump;
      // kernel symbols only (module space starts at 0xffffffffc0000000, MODULES_VADDR)
      const sample = [...g.console.kallsyms].filter(([, a]) => (BigInt(a) >= 0xffffffff80000000n && BigInt(a) < 0xffffffffc0000000n) || BigInt(a) < 0x200000n);
      assert.ok(sample.length > 20, `${sample.length} sampled symbols`);
      const r = vmcore(['sym', file, ...sample.map(([n]) => n), '--json']);
      assert.equal(r.status, 0, r.stderr);
      const answers = JSON.parse(r.stdout) as { query: string; name: string; address: string; offset: string; type: string }[];
      for (const [name, addr] of sample) {
        const mine = answers.filter((a) => a.query === name).map((a) => a.address);
        assert.ok(mine.includes(addr), `${name}: guest ${addr}, vmcore ${mine.join(',')}`);
      }
      // addresses resolve back: text symbols at +1 give the same name at offset 1 (or an alias)
      const text = sample.filter(([, a]) => BigInt(a) >= 0xffffffff80000000n).slice(0, 40);
      const r2 = vmcore(['sym', file, ...text.map(([, a]) => '0x' + (BigInt(a) + 1n).toString(16)), '--json']);
      assert.equal(r2.status, 0, r2.stderr);
      const back = JSON.parse(r2.stdout) as { query: string; name: string; address: string; offset: string }[];
      text.forEach(([, a], i) => {
        assert.equal(back[i]!.address, a, `symbolize ${a}+1: ${back[i]!.name}`);
        assert.equal(back[i]!.offset, '0x1');
      });
    });
    test(`mod ${abi} (${kind}): the guest's /proc/modules, drgn's module list and crash's mod`, { skip }, () => {
      if ('skip' in g) return;
      const file = kind === 'elf' ? g.elf : g.kdump;
      const r = vmcore(['mod', file, '--json']);
      assert.equal(r.status, 0, r.stderr);
      const mods = JSON.parse(r.stdout) as { name: string; base: string; size: number; state: string; taint: string; module: string; symbols: number | null; btf: boolean }[];
      // the guest loaded qemu_fw_cfg, loop and dummy: /proc/modules lists them newest first
      assert.ok(g.console.modules.length >= 3, `${g.console.modules.length} modules on the console`);
      assert.deepEqual(mods.map((m) => [m.name, m.base, m.size]), g.console.modules.map((m) => [m.name, m.base, m.size]));
      const states = [...g.console.text.matchAll(/^(\S+) \d+ \d+ \S+ (Live|Loading|Unloading) 0x/gm)].map((m) => [m[1], m[2]]);
      assert.deepEqual(mods.map((m) => [m.name, m.state]), states);
      assert.deepEqual(mods.map((m) => [m.name, m.base, m.size]), g.drgn.modules.map((m) => [m.name, m.base, m.size]));
      for (const m of mods) {
        assert.ok(m.symbols !== null && m.symbols > 10, `${m.name}: ${m.symbols} symbols`);
        assert.equal(m.btf, true, `${m.name}: BTF`);
        assert.equal(m.taint, '', `${m.name}: Debian's signed in-tree modules are not tainted`);
      }
      if (g.crash) {
        // crash: MODULE NAME BASE SIZE OBJECT FILE, in its own order
        const rows = [...g.crash.mod.matchAll(/^([0-9a-f]{16})\s+(\S+)\s+([0-9a-f]{16})\s+(\d+)/gm)].map((m) => [m[2]!, `0x${m[1]}`, `0x${m[3]}`, Number(m[4])]);
        assert.ok(rows.length >= 3, g.crash.mod);
        const byName = (a: (string | number)[], b: (string | number)[]) => String(a[0]).localeCompare(String(b[0]));
        assert.deepEqual(mods.map((m) => [m.name, m.module, m.base, m.size]).sort(byName), rows.sort(byName));
      }
    });
    test(`sym ${abi} (${kind}): the module symbols of the guest's /proc/kallsyms sample, both ways`, { skip }, () => {
      if ('skip' in g) return;
      const file = kind === 'elf' ? g.elf : g.kdump;
      const lines = g.console.text.slice(g.console.text.indexOf('GUEST: kallsyms sample:'));
      const sample = [...lines.matchAll(/^([0-9a-f]{16}) (\S) (\S+)\t\[(\S+)\]/gm)].map((m) => ({ addr: `0x${BigInt(`0x${m[1]}`).toString(16)}`, type: m[2]!, name: m[3]!, module: m[4]! }));
      assert.ok(sample.length >= 3, `${sample.length} module symbols in the sample`);
      assert.ok(new Set(sample.map((s) => s.module)).size >= 2, 'symbols of several modules');
      const r = vmcore(['sym', file, ...sample.map((s) => `${s.module}:${s.name}`), '--json']);
      assert.equal(r.status, 0, r.stderr);
      const byName = JSON.parse(r.stdout) as { query: string; name: string; address: string; type: string; module: string }[];
      for (const s of sample) {
        const a = byName.filter((x) => x.query === `${s.module}:${s.name}`);
        assert.ok(a.some((x) => x.address === s.addr && x.module === s.module && x.type === s.type), `${s.module}:${s.name}: guest ${s.addr} ${s.type}, vmcore ${JSON.stringify(a)}`);
      }
      // address -> symbol: text symbols at +1 (offset 0x1), others at their address
      const q = sample.map((s) => (/[tT]/.test(s.type) ? BigInt(s.addr) + 1n : BigInt(s.addr)));
      const r2 = vmcore(['sym', file, ...q.map((v) => '0x' + v.toString(16)), '--json']);
      assert.equal(r2.status, 0, r2.stderr);
      const back = JSON.parse(r2.stdout) as { query: string; name: string; address: string; offset: string; module: string }[];
      sample.forEach((s, i) => {
        assert.equal(back[i]!.address, s.addr, `${s.addr} (${s.name} [${s.module}]): vmcore ${back[i]!.name}`);
        assert.equal(back[i]!.module, s.module);
        assert.equal(back[i]!.offset, /[tT]/.test(s.type) ? '0x1' : '0x0');
      });
      // the text form: name+0xoff/0xsize [module]
      const t = vmcore(['sym', file, '0x' + q[0]!.toString(16)]);
      assert.match(t.stdout, new RegExp(`\\+0x[01]/0x[0-9a-f]+ \\[${sample[0]!.module}\\]$`, 'm'));
    });
    test(`info ${abi} (${kind}): symbol source, per-CPU current tasks equal drgn's, taint, uptime`, { skip }, () => {
      if ('skip' in g) return;
      const file = kind === 'elf' ? g.elf : g.kdump;
      const r = vmcore(['info', file, '--json']);
      assert.equal(r.status, 0, r.stderr);
      const info = JSON.parse(r.stdout) as {
        kernelState: {
          symbols: { source: string; count: number };
          taint: { mask: string; letters: string } | null;
          uptime: number | null;
          currentTasks: (string | null)[];
          running: ({ task: string; pid: number; comm: string } | null)[];
          btf: { present: boolean; source: string | null; size: number | null };
          tasks: number | null;
          modules: number | null;
        };
        panic: { uptime: string | null } | null;
      };
      const ks = info.kernelState;
      assert.equal(ks.symbols.source, 'VMCOREINFO');
      assert.ok(ks.symbols.count > 80_000);
      assert.deepEqual(ks.currentTasks, g.drgn.cpus.map((c) => c.current));
      // the running tasks by pid and comm, as drgn reads the same task_structs
      assert.deepEqual(
        ks.running,
        g.drgn.cpus.map((c) => {
          const t = g.drgn.tasks.find((x) => x.task === c.current)!;
          return { task: c.current, pid: t.pid, comm: t.comm };
        }),
      );
      // BTF from __start_BTF/__stop_BTF; tasks as drgn's task walk counts them (idle tasks apart); modules as /proc/modules
      assert.equal(ks.btf.present, true);
      assert.equal(ks.btf.source, 'symbols');
      assert.equal(ks.tasks, g.drgn.tasks.filter((t) => t.idle_cpu === undefined).length);
      assert.equal(ks.modules, g.console.modules.length);
      const text = vmcore(['info', file]);
      assert.equal(text.status, 0, text.stderr);
      const running = g.drgn.cpus.map((c, i) => {
        const t = g.drgn.tasks.find((x) => x.task === c.current)!;
        return `CPU ${i}: pid ${t.pid} (${t.comm})`;
      });
      assert.match(text.stdout, new RegExp(`^Running +${running.join('  ').replace(/[()/]/g, '\\$&')}  \\[per-CPU current task\\]$`, 'm'));
      assert.match(text.stdout, new RegExp(`^Modules +${g.console.modules.length} loaded$`, 'm'));
      assert.ok(ks.taint, 'tainted_mask read');
      // the console's panic header says "Not tainted" or "Tainted: <letters>"
      const tline = /CPU: \d+ PID: \d+ Comm: \S+ (Not tainted|Tainted: ([A-Z ]+?)) /.exec(g.console.text) ?? /CPU: \d+ UID: \d+ PID: \d+ Comm: \S+ (Not tainted|Tainted: ([A-Z ]+?)) /.exec(g.console.text);
      assert.ok(tline, 'console shows the taint of the panicking CPU');
      const want = tline[2] ? tline[2].replace(/[ G]/g, '') : '';
      assert.equal(ks.taint.letters, want);
      // uptime at the last timekeeping update: before the panic line, within the guest's life
      const panicAt = Number(info.panic?.uptime);
      assert.ok(ks.uptime !== null && ks.uptime > 0 && ks.uptime <= panicAt, `uptime ${ks.uptime}, panic at ${panicAt}`);
    });
  }
}
