/**
 * `vmcore sym` and the symbol-based part of `info` on the analysis guests (6.1 and 6.12, 2 CPUs,
 * KASLR, modules loaded; test/interop/analysis-guest.ts): kallsyms read from the dump (no vmlinux)
 * must give every kernel symbol of the guest's own /proc/kallsyms sample (printed on its console)
 * at the same address, and the task each CPU ran must be the one drgn (with the -dbg vmlinux)
 * read from `pcpu_hot.current_task`. Both QEMU dump formats (ELF and flattened kdump) are read.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { ANALYSIS_KERNELS, analysisGuest } from './analysis-guest.js';

const CLI = join(fileURLToPath(new URL('../../../', import.meta.url)), 'dist/src/cli/main.js');

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
    test(`info ${abi} (${kind}): symbol source, per-CPU current tasks equal drgn's, taint, uptime`, { skip }, () => {
      if ('skip' in g) return;
      const file = kind === 'elf' ? g.elf : g.kdump;
      const r = vmcore(['info', file, '--json']);
      assert.equal(r.status, 0, r.stderr);
      const info = JSON.parse(r.stdout) as { kernelState: { symbols: { source: string; count: number }; taint: { mask: string; letters: string } | null; uptime: number | null; currentTasks: (string | null)[] }; panic: { uptime: string | null } | null };
      const ks = info.kernelState;
      assert.equal(ks.symbols.source, 'VMCOREINFO');
      assert.ok(ks.symbols.count > 80_000);
      assert.deepEqual(ks.currentTasks, g.drgn.cpus.map((c) => c.current));
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
