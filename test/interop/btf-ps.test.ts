/**
 * `vmcore ps` and `vmcore struct` against the real tools on the analysis guests (2 vCPUs, user
 * processes, kernel threads, a module; Debian 6.1 and 6.12): every task with the same pid,
 * tgid, ppid, CPU, state letter, comm and address as drgn (with the matching -dbg vmlinux), the
 * running tasks as drgn's per-CPU current tasks; on 6.1 crash's `ps` rows and crash's `struct
 * task_struct` of the panic task, line for line. Debian's crash 8.0.2 cannot open 6.12 dumps,
 * so there drgn is the peer.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { analysisGuest, ANALYSIS_KERNELS } from './analysis-guest.js';

const root = fileURLToPath(new URL('../../../', import.meta.url));
const CLI = join(root, 'dist/src/cli/vmcore.js');

function vmcore(...args: string[]): string {
  const r = spawnSync(process.execPath, [CLI, ...args], { encoding: 'utf8', maxBuffer: 64 << 20 });
  assert.equal(r.status, 0, `vmcore ${args.join(' ')}: ${r.stderr}`);
  return r.stdout;
}

interface PsRow { pid: number; tgid: number; ppid: number; cpu: number; state: string; comm: string; task: string; active: boolean; panic: boolean }

for (const abi of ANALYSIS_KERNELS) {
  const g = analysisGuest(abi);
  if ('skip' in g) {
    test(`ps/struct vs drgn and crash (${abi})`, { skip: g.skip }, () => {});
    continue;
  }

  test(`ps (${abi}): the same tasks as drgn, in the ELF and the kdump file`, () => {
    const ours = JSON.parse(vmcore('ps', g.elf, '--json')) as PsRow[];
    const drgn = g.drgn.tasks;
    assert.ok(drgn.length > 40, `drgn listed ${drgn.length} tasks`);
    const key = (t: { pid: number; tgid: number; ppid: number; cpu: number; state: string; comm: string; task: string }) =>
      `${t.task} pid=${t.pid} tgid=${t.tgid} ppid=${t.ppid} cpu=${t.cpu} ${t.state} ${t.comm}`;
    assert.deepEqual(ours.map(key).sort(), drgn.map(key).sort());
    // running tasks: drgn's per-CPU current (online CPUs and the panicked one alike)
    assert.deepEqual(ours.filter((t) => t.active).map((t) => t.task).sort(), g.drgn.cpus.map((c) => c.current).sort());
    // idle tasks: drgn's per-CPU idle
    for (const c of g.drgn.cpus) assert.ok(ours.some((t) => t.task === c.idle && t.pid === 0 && t.cpu === c.cpu), `idle of CPU ${c.cpu}`);
    // exactly one task is the panic's, and it is running
    const panic = ours.filter((t) => t.panic);
    assert.equal(panic.length, 1);
    assert.ok(panic[0]!.active);
    // the kdump file (flattened, QEMU) gives the same answer
    assert.deepEqual(JSON.parse(vmcore('ps', g.kdump, '--json')), ours);
  });

  if (g.crash) {
    const crash = g.crash;
    test(`ps (${abi}): every row crash's ps shows, with its running-task marks`, () => {
      const ours = JSON.parse(vmcore('ps', g.elf, '--json')) as PsRow[];
      const rows = crash.ps.split('\n').slice(1).map((l) => /^(>?)\s*(\d+)\s+(-?\d+)\s+(\d+)\s+([0-9a-f]+)\s+\S+\s+\S+\s+\d+\s+\d+\s+(.*)$/.exec(l)).filter((m) => m !== null);
      assert.ok(rows.length >= 2, crash.ps);
      for (const m of rows) {
        const comm = m[6]!.replace(/^\[(.*)\]$/, '$1');
        const t = ours.find((x) => x.task === `0x${m[5]}`);
        assert.ok(t, `crash row ${m[0]}`);
        assert.deepEqual([t.pid, t.cpu, t.comm, t.active], [Number(m[2]), Number(m[4]), comm, m[1] === '>'], m[0]);
      }
    });

    test(`struct task_struct (${abi}): crash's struct of the panic task, line for line`, () => {
      const pid = Number(/\n {2}pid = (\d+),/.exec(crash.task)?.[1]);
      const task = g.drgn.tasks.find((t) => t.pid === pid)!.task;
      const ours = vmcore('struct', g.elf, 'task_struct', task).split('\n');
      const theirs = crash.task.replace(/\n+$/, '').split('\n');
      assert.ok(theirs.length > 900, `crash printed ${theirs.length} lines`);
      assert.equal(ours.length - 1, theirs.length);
      const differ = theirs.map((l, i) => [l, ours[i]!] as const).filter(([a, b]) => a !== b);
      // a flexible char array: gdb prints its address and the string it points at, past the struct
      assert.deepEqual(differ.map(([a]) => a.trim().split(' ')[0]), differ.length ? ['extended_state_area'] : []);
    });
  }

  test(`struct (${abi}): members of init_task by symbol, values as drgn reads them`, () => {
    const j = JSON.parse(vmcore('struct', g.elf, 'task_struct.pid,comm,real_parent', 'init_task', '--json')) as { address: string; value: Record<string, unknown> };
    assert.equal(j.address, g.drgn.symbols['init_task']);
    assert.deepEqual(j.value, { pid: 0, comm: 'swapper/0', real_parent: g.drgn.symbols['init_task'] });
  });
}
