/**
 * arm64 pointer authentication: the LR saved in the crash CPU's NT_PRSTATUS carries PAC bits
 * (0xe183… on the real QEMU arm64 dump, test/fixtures/excerpts-arm64). `info` shows the code
 * address (bits stripped with NUMBER(KERNELPACMASK)) with the saved value as lr_raw, and `sym`
 * resolves the saved value. Truth: drgn 0.0.22 with the guest's -dbg vmlinux resolves
 * 0xffffc94f3f370670 to __delay+0x90 (size 0xe4); the guest's VMCOREINFO says
 * NUMBER(KERNELPACMASK)=0xffff000000000000.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { fileURLToPath } from 'node:url';
import { openDumpFiles } from '../../src/node/open.js';
import { analyzeKernel } from '../../src/core/kernel/kernel.js';
import { readDmesg } from '../../src/core/kernel/dmesg.js';
import { panicSummary } from '../../src/core/kernel/panic.js';
import { symbolQuery } from '../../src/core/kernel/symquery.js';
import { kernelPacMask } from '../../src/core/kernel/aarch64/pagetables.js';
import { KernelSymbols } from '../../src/core/kernel/kallsyms.js';

const SRC = fileURLToPath(new URL('../../../test/fixtures/excerpts-arm64/direct-max-kaslr-1cpu-256M-vmci-panic.kdump', import.meta.url));

test('arm64: the crash LR is shown without its PAC bits, lr_raw keeps the saved value', async () => {
  const d = await openDumpFiles([SRC]);
  try {
    const k = await analyzeKernel(d);
    assert.equal(kernelPacMask(k.vmcoreinfo), 0xffff000000000000n);
    const log = await readDmesg({ vmcoreinfo: k.vmcoreinfo!, readVirt: (va, n) => k.readVirt(va, n) });
    const p = await panicSummary(k, log, d.littleEndian);
    assert.equal(p?.registers?.['lr'], '0xffffc94f3f370670');
    assert.equal(p?.registers?.['lr_raw'], '0xe183c94f3f370670');
  } finally {
    await d.close();
  }
});

test('sym: a saved LR with PAC bits resolves to its code address (__delay+0x90/0xe4, as drgn says)', () => {
  // __delay and the symbol after it, at the guest's addresses (KASLR)
  const syms = new KernelSymbols({ addresses: BigUint64Array.from([0xffffc94f3f3705e0n, 0xffffc94f3f3706c4n]), names: ['__delay', '__const_udelay'], types: 'TT' }, 'VMCOREINFO', 'absolute-percpu');
  assert.equal(symbolQuery(syms, '0xe183c94f3f370670')[0]!.name, null);
  const [a] = symbolQuery(syms, '0xe183c94f3f370670', { pacMask: 0xffff000000000000n });
  assert.deepEqual([a!.name, a!.address, a!.offset, a!.size], ['__delay', '0xffffc94f3f3705e0', '0x90', '0xe4']);
  // the code address itself resolves the same
  assert.equal(symbolQuery(syms, '0xffffc94f3f370670', { pacMask: 0xffff000000000000n })[0]!.name, '__delay');
});
