/**
 * kallsyms from real kernel memory: the KASLR excerpt (test/fixtures/excerpts) keeps the pages
 * of the kallsyms tables. Every symbol of a sample of the -dbg vmlinux's `nm -n` output
 * (committed beside it) must be found at its nm address shifted by the KASLR offset, which the
 * guest itself printed on its console (`_text` from /proc/kallsyms), with nm's type letter
 * (per-CPU symbols are absolute, type A, and not shifted: CONFIG_KALLSYMS_ABSOLUTE_PERCPU).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { openDumpFiles } from '../../src/node/open.js';
import { analyzeKernel } from '../../src/core/kernel/kernel.js';
import type { KernelSymbol } from '../../src/core/kernel/kallsyms.js';

const DIR = join(resolve(dirname(fileURLToPath(import.meta.url)), '../../..'), 'test/fixtures/excerpts');
const CASE = 'ovmf-kaslr-1cpu-256M-vmci-panic';

test(`${CASE}: kallsyms from VMCOREINFO agree with nm of the -dbg vmlinux shifted by KASLR`, async () => {
  const serial = readFileSync(join(DIR, `${CASE}.serial.log`), 'latin1');
  const text = /^([0-9a-f]{16}) T _text\r?$/m.exec(serial);
  assert.ok(text, 'console has _text');
  const kaslr = BigInt('0x' + text[1]) - 0xffffffff81000000n;
  assert.equal(kaslr, 0x1ba00000n);
  const sample = readFileSync(join(DIR, `${CASE}.nm-sample.txt`), 'utf8')
    .split('\n')
    .filter((l) => l && !l.startsWith('#'))
    .map((l) => l.split(' ') as [string, string, string]);
  assert.ok(sample.length > 500);

  const dump = await openDumpFiles([join(DIR, `${CASE}.kdump`)]);
  try {
    const k = await analyzeKernel(dump);
    const ks = await k.symbols();
    assert.equal(ks.source, 'VMCOREINFO');
    assert.equal(ks.addressMode, 'absolute-percpu');
    assert.deepEqual(ks.warnings, []);
    assert.ok(ks.count > 80_000, `${ks.count} symbols`);
    assert.equal(await k.symbols(), ks, 'loaded once');
    let percpu = 0;
    for (const [addr, type, name] of sample) {
      const a = BigInt('0x' + addr);
      const isPercpu = a < 0xffffffff80000000n;
      const want: bigint = isPercpu ? a : a + kaslr;
      const found = ks.lookup(name);
      const m: KernelSymbol | undefined = found.find((s) => s.address === want);
      assert.ok(m, `${name}: nm ${addr}, kallsyms ${found.map((s) => s.address.toString(16)).join(',') || 'none'}`);
      assert.equal(m.type, isPercpu ? 'A' : type, `type of ${name}`);
      if (isPercpu) percpu++;
      // the address resolves back to a symbol at that address (the first of its aliases)
      const back = ks.symbolize(want);
      if (name !== '_end' && name !== '__per_cpu_end') {
        assert.ok(back, `symbolize ${name}`);
        assert.equal(back.address, want);
        assert.equal(back.offset, 0n);
      }
    }
    assert.ok(percpu > 0);
    assert.equal(ks.addressOf('_text'), 0xffffffff9ca00000n);
    const crash = ks.symbolize(ks.addressOf('sysrq_handle_crash')! + 0x13n)!;
    assert.deepEqual([crash.name, crash.offset, crash.type], ['sysrq_handle_crash', 0x13n, 't']);
  } finally {
    await dump.close();
  }
});
