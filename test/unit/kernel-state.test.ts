/**
 * Kernel state through kallsyms: taint letters (kernel/panic.c taint_flags), per-CPU offsets and
 * current tasks (pcpu_hot 6.2+, current_task before), `sym` queries; on synthetic memory and a
 * symbol table built here.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { VmcoreError } from '../../src/core/errors.js';
import { KernelSymbols, type ReadVirt } from '../../src/core/kernel/kallsyms.js';
import { readTaint, taintLetters, kernelStateReport } from '../../src/core/kernel/state.js';
import { readPerCpu } from '../../src/core/kernel/percpu.js';
import { symbolQuery } from '../../src/core/kernel/symquery.js';

const T = 0xffffffff81000000n;
function table(list: [string, string, bigint][]): KernelSymbols {
  return new KernelSymbols({ addresses: BigUint64Array.from(list.map((s) => s[2])), names: list.map((s) => s[0]), types: list.map((s) => s[1]).join('') }, 'VMCOREINFO', 'absolute-percpu');
}
function memory(words: Map<bigint, bigint>, u32s: Map<bigint, number> = new Map()): ReadVirt {
  return async (va, n) => {
    const out = new Uint8Array(n);
    const dv = new DataView(out.buffer);
    for (let o = 0; o < n; ) {
      const a = va + BigInt(o);
      const w = words.get(a);
      const h = u32s.get(a);
      if (w !== undefined && o + 8 <= n) {
        dv.setBigUint64(o, w, true);
        o += 8;
      } else if (h !== undefined && o + 4 <= n) {
        dv.setUint32(o, h, true);
        o += 4;
      } else throw new VmcoreError('PAGE_NOT_PRESENT', `0x${a.toString(16)} not present`);
    }
    return out;
  };
}

test('taint letters in the kernel order', () => {
  assert.equal(taintLetters(0n), '');
  assert.equal(taintLetters(1n), 'P');
  assert.equal(taintLetters((1n << 7n) | (1n << 9n)), 'DW');
  assert.equal(taintLetters((1n << 12n) | (1n << 13n)), 'OE');
  assert.equal(taintLetters(1n << 18n), 'N');
  assert.equal(taintLetters(1n << 40n), '?');
});

const PERCPU_OFF = [0xffff88800f000000n, 0xffff88800f100000n];
for (const variant of ['pcpu_hot', 'current_task'] as const) {
  test(`per-CPU offsets and current tasks through ${variant}`, async () => {
    const syms = table([
      [variant, 'A', 0x1fb80n],
      ['_stext', 'T', T],
      ['__per_cpu_offset', 'D', T + 0x1000n],
      ['nr_cpu_ids', 'D', T + 0x2000n],
      ['tainted_mask', 'b', T + 0x3000n],
      ['_end', 'B', T + 0x4000n],
    ]);
    const words = new Map<bigint, bigint>([
      [T + 0x1000n, PERCPU_OFF[0]!],
      [T + 0x1008n, PERCPU_OFF[1]!],
      [PERCPU_OFF[0]! + 0x1fb80n, 0xffff888001234000n],
      [PERCPU_OFF[1]! + 0x1fb80n, 0xffff888005678000n],
      [T + 0x3000n, (1n << 7n) | 1n],
    ]);
    const k = { readVirt: memory(words, new Map([[T + 0x2000n, 2]])) };
    const pc = await readPerCpu(k, syms);
    assert.equal(pc.nrCpuIds, 2);
    assert.deepEqual(pc.offsets, PERCPU_OFF);
    assert.deepEqual(pc.currentTasks, [0xffff888001234000n, 0xffff888005678000n]);
    assert.equal(pc.currentSource, variant);
    assert.deepEqual(pc.warnings, []);
    assert.deepEqual(await readTaint(k, syms), { mask: 0x81n, letters: 'PD' });
    const rep = await kernelStateReport({ ...k, symbols: async () => syms });
    assert.deepEqual(rep.currentTasks, ['0xffff888001234000', '0xffff888005678000']);
    assert.deepEqual(rep.taint, { mask: '0x81', letters: 'PD' });
    assert.equal(rep.uptime, null);
  });
}

test('per-CPU: an implausible nr_cpu_ids and an unreadable CPU give warnings, not errors', async () => {
  const syms = table([
    ['pcpu_hot', 'A', 0x100n],
    ['__per_cpu_offset', 'D', T + 0x1000n],
    ['nr_cpu_ids', 'D', T + 0x2000n],
  ]);
  const words = new Map<bigint, bigint>([
    [T + 0x1000n, 0x1000000n],
    [0x1000100n, 0xffff888001234000n],
  ]);
  const pc = await readPerCpu({ readVirt: memory(words, new Map([[T + 0x2000n, 0xffffffff]])) }, syms, { cpus: 1 });
  assert.equal(pc.nrCpuIds, 1);
  assert.deepEqual(pc.currentTasks, [0xffff888001234000n]);
  assert.ok(pc.warnings.some((w) => w.code === 'PERCPU_UNAVAILABLE' && /nr_cpu_ids = 4294967295 is implausible/.test(w.text)), JSON.stringify(pc.warnings));
  const none = await kernelStateReport({ readVirt: memory(new Map()), symbols: async () => { throw new VmcoreError('NO_SYMBOLS', 'no kallsyms'); } });
  assert.deepEqual(none.symbols, { source: 'none', count: 0, lost: 0, reason: 'no kallsyms' });
});

test('sym queries: names, addresses with and without 0x, misses', () => {
  const syms = table([
    ['_stext', 'T', T],
    ['add', 't', T + 0x10n],
    ['helper', 't', T + 0x20n],
    ['helper', 't', T + 0x40n],
    ['_end', 'B', T + 0x100n],
  ]);
  assert.deepEqual(symbolQuery(syms, 'add'), [{ query: 'add', name: 'add', address: '0xffffffff81000010', offset: '0x0', size: '0x10', type: 't', module: null }]);
  assert.deepEqual(symbolQuery(syms, 'helper').map((a) => a.address), ['0xffffffff81000020', '0xffffffff81000040']);
  assert.deepEqual(symbolQuery(syms, '0xffffffff81000045').map((a) => [a.name, a.address, a.offset, a.size]), [['helper', '0xffffffff81000040', '0x5', '0xc0']]);
  assert.equal(symbolQuery(syms, 'ffffffff81000011')[0]!.name, 'add');
  assert.equal(symbolQuery(syms, 'nosuch')[0]!.name, null);
  assert.equal(symbolQuery(syms, '0x10')[0]!.name, null);
});
