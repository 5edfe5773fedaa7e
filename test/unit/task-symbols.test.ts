/**
 * task-symbols.ts on the bundled sample (Debian 6.1 x86_64, makedumpfile -d 31): with init_task,
 * __per_cpu_offset, runqueues and __init_begin hidden from its kallsyms, the search finds the
 * init_task kallsyms names, and the per-CPU units it proves through the runqueues are the
 * kernel's own __per_cpu_offset[] (x86_64 links .data..percpu at 0, so the per-CPU symbols are the
 * BTF section offsets themselves). With every symbol present nothing is searched.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { openDumpFiles } from '../../src/node/open.js';
import { analyzeKernel } from '../../src/core/kernel/kernel.js';
import { loadKernelBtf } from '../../src/core/kernel/btf/kernel-btf.js';
import { withTaskSymbols } from '../../src/core/kernel/task-symbols.js';

const ROOT = fileURLToPath(new URL('../../../', import.meta.url));
const SAMPLE = join(ROOT, 'samples/seabios-128M.md-c-d31.kdump');

test('task symbols: init_task and the per-CPU units found in memory equal kallsyms and __per_cpu_offset[]', async () => {
  const dump = await openDumpFiles([SAMPLE]);
  try {
    const k = await analyzeKernel(dump);
    const syms = await k.symbolsWithModules();
    const btf = await loadKernelBtf(k);
    const read = (va: bigint, n: number) => k.readVirt(va, n);
    const all = await withTaskSymbols(syms, read, btf.types);
    assert.deepEqual(all.sources, { init_task: 'kallsyms', __per_cpu_offset: 'kallsyms', runqueues: 'kallsyms' });
    assert.equal(all.perCpuOffsets, undefined);

    const hidden = new Set(['init_task', '__per_cpu_offset', 'runqueues', '__init_begin']);
    const partial = { addressOf: (n: string) => (hidden.has(n) ? undefined : syms.addressOf(n)), symbolize: (a: bigint) => syms.symbolize(a) };
    const r = await withTaskSymbols(partial, read, btf.types);
    assert.deepEqual(r.warnings, []);
    assert.equal(r.sources['init_task'], 'memory search (init_task)');
    assert.equal(r.sources['__per_cpu_offset'], 'BTF .data..percpu + runqueue proof');
    assert.equal(r.addressOf('init_task'), syms.addressOf('init_task'));
    assert.equal(r.addressOf('runqueues'), syms.addressOf('runqueues'));
    const arr = await k.readVirt(syms.addressOf('__per_cpu_offset')!, 8);
    assert.deepEqual(r.perCpuOffsets, [new DataView(arr.buffer, arr.byteOffset, 8).getBigUint64(0, true)]);
  } finally {
    await dump.close();
  }
});
