import { test } from 'node:test';
import assert from 'node:assert/strict';
import { PageTables, X86_64Translator } from '../../src/core/kernel/x86_64/pagetables.js';
import { isVmcoreError } from '../../src/core/errors.js';
import { synthKernel, MiB } from './kernel-synth.js';

for (const levels of [4, 5] as const) {
  for (const physBase of [0n, 0x600000n, -0x1b000000n]) {
    const ko = physBase < 0n ? -physBase : 0n;
    test(`${levels}-level walk, phys_base ${physBase}: 2 MiB, 1 GiB and 4 KiB pages`, async () => {
      const s = synthKernel({ physBase, kernelOffset: ko, levels, smeMask: levels === 5 ? 1n << 47n : 0n });
      const pt = new PageTables(s.mem, { root: s.pgdPa, levels, smeMask: levels === 5 ? 1n << 47n : 0n });
      const t = await pt.walk(s.probeVa);
      assert.equal(t.pa, s.probePa);
      assert.equal(t.pageSize, 2 * MiB);
      assert.equal(t.steps.length, levels - 1);
      assert.equal(await pt.translate(s.pgdSym), s.pgdPa);
      const d = await pt.walk(s.directBase + 0x1234567n);
      assert.equal(d.pa, 0x1234567);
      assert.equal(d.pageSize, 1 << 30);
      const v = await pt.walk(s.vmallocVa + 0x10n);
      assert.equal(v.pa, s.vmallocPa + 0x10);
      assert.equal(v.pageSize, 4096);

      const tr = new X86_64Translator({ pageTables: pt, physBase, physLimit: s.mem.maxPfn * 4096 });
      assert.equal(await tr.directMapBase(), s.directBase);
      assert.equal(await tr.virtToPhys(s.probeVa), s.probePa);
      assert.equal(new TextDecoder().decode(await tr.readVirt(s.mem, s.probeVa, 11)), 'PROBE-BYTES');
      assert.equal(new TextDecoder().decode(await tr.readVirt(s.mem, s.vmallocVa, 7)), 'vmalloc');
      assert.equal(await tr.directToPhys(s.directBase + 0x5000n), 0x5000);
    });
  }
}

test('unmapped address: ADDRESS_TRANSLATION naming the VA and the level', async () => {
  const s = synthKernel({ physBase: 0n });
  const pt = new PageTables(s.mem, { root: s.pgdPa, levels: 4 });
  // inside the vmalloc PTE table but a different, empty PTE slot
  const va = s.vmallocVa + 0x1000n;
  await assert.rejects(pt.walk(va), (e: unknown) => {
    assert.ok(isVmcoreError(e));
    assert.equal(e.code, 'ADDRESS_TRANSLATION');
    assert.match(e.message, new RegExp(va.toString(16)));
    assert.match(e.message, /PTE\[6\]/);
    return true;
  });
  // a PGD slot that is empty
  await assert.rejects(pt.walk(0xffff900000000000n), (e: unknown) => isVmcoreError(e) && /PGD\[288\]/.test(e.message));
});

test('a table page missing from the dump is named, not read', async () => {
  const s = synthKernel({ physBase: 0n });
  const pt0 = new PageTables(s.mem, { root: s.pgdPa, levels: 4 });
  const steps = (await pt0.walk(s.probeVa)).steps;
  const pmdPage = Math.floor(steps[2]!.entryAddr / 4096);
  s.mem.setState(pmdPage, 'excluded');
  const pt = new PageTables(s.mem, { root: s.pgdPa, levels: 4 });
  await assert.rejects(pt.walk(s.probeVa), (e: unknown) => isVmcoreError(e) && e.code === 'ADDRESS_TRANSLATION' && /PMD table page .*\(excluded\)/.test(e.message));
});

test('text mapping without page tables uses phys_base; outside RAM is an error', async () => {
  const s = synthKernel({ physBase: 0x600000n });
  const tr = new X86_64Translator({ physBase: 0x600000n, physLimit: s.mem.maxPfn * 4096 });
  assert.equal(await tr.virtToPhys(s.probeVa), s.probePa);
  await assert.rejects(tr.virtToPhys(0xffffffffbfffe000n), (e: unknown) => isVmcoreError(e) && e.code === 'ADDRESS_TRANSLATION');
  await assert.rejects(tr.virtToPhys(s.directBase), (e: unknown) => isVmcoreError(e) && e.code === 'ADDRESS_TRANSLATION');
});

test('root must be page aligned', () => {
  const s = synthKernel({ physBase: 0n });
  assert.throws(() => new PageTables(s.mem, { root: 0x1008, levels: 4 }), (e: unknown) => isVmcoreError(e) && e.code === 'ADDRESS_TRANSLATION');
});
