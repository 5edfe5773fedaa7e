import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parseCpuNotes } from '../../src/core/kernel/x86_64/cpu.js';
import { Vmcoreinfo } from '../../src/core/kernel/vmcoreinfo.js';
import { qemuCpuDesc, prstatusDesc } from './kernel-synth.js';

test('NT_PRSTATUS (x86_64) and QEMU CPU state (432 and 440 bytes)', () => {
  const { cpus, skipped } = parseCpuNotes([
    { name: 'CORE', type: 1, desc: prstatusDesc({ pid: 1, rip: 0xffffffff819c3643n, rsp: 0xffffc90000013d20n, rax: 7n, r15: 15n }) },
    { name: 'CORE', type: 1, desc: prstatusDesc({ pid: 2, rip: 0xffffffff81000000n, rsp: 0x10n }) },
    { name: 'QEMU', type: 0, desc: qemuCpuDesc({ rip: 0xffffffff819c3643n, cr3: 0xe188000n, cr4: 0x6b0n, idtBase: 0xfffffe0000000000n }) },
    { name: 'QEMU', type: 0, desc: qemuCpuDesc({ cr3: 0x1000n, size: 440 }) },
    { name: 'VMCOREINFO', type: 0, desc: new Uint8Array(4) },
  ]);
  assert.deepEqual(skipped, []);
  assert.equal(cpus.length, 4);
  const [a, b, q, q2] = cpus;
  assert.equal(a!.source, 'NT_PRSTATUS');
  assert.equal(a!.pid, 1);
  assert.equal(a!.rip, 0xffffffff819c3643n);
  assert.equal(a!.rsp, 0xffffc90000013d20n);
  assert.equal(a!.rax, 7n);
  assert.equal(a!.r15, 15n);
  assert.equal(b!.cpu, 1);
  assert.equal(q!.source, 'QEMU');
  assert.equal(q!.cpu, 0);
  assert.equal(q!.cr3, 0xe188000n);
  assert.equal(q!.cr4, 0x6b0n);
  assert.equal(q!.cr0, 0x80050033n);
  assert.equal(q!.idtBase, 0xfffffe0000000000n);
  assert.equal(q2!.cpu, 1);
  assert.equal(q2!.cr3, 0x1000n);
});

test('i386 prstatus; unknown sizes are skipped, not fatal', () => {
  const d = new Uint8Array(144);
  const dv = new DataView(d.buffer);
  dv.setInt32(24, 42, true);
  dv.setUint32(72 + 12 * 4, 0xc1000000, true); // eip
  dv.setUint32(72 + 15 * 4, 0xc2000000, true); // esp
  const { cpus, skipped } = parseCpuNotes([
    { name: 'CORE', type: 1, desc: d },
    { name: 'CORE', type: 1, desc: new Uint8Array(100) },
    { name: 'QEMU', type: 0, desc: new Uint8Array(100) },
  ]);
  assert.equal(cpus.length, 1);
  assert.equal(cpus[0]!.arch, 'i386');
  assert.equal(cpus[0]!.pid, 42);
  assert.equal(cpus[0]!.rip, 0xc1000000n);
  assert.equal(cpus[0]!.rsp, 0xc2000000n);
  assert.equal(skipped.length, 2);
});

test('VMCOREINFO number formats used by the kernel analysis', () => {
  const v = new Vmcoreinfo(
    'OSRELEASE=6.1.0\nSYMBOL(init_top_pgt)=ffffffff82a10000\nNUMBER(phys_base)=-452984832\nKERNELOFFSET=1ba00000\n' +
      'NUMBER(VMALLOC_START)=0xffffc90000000000\nOFFSET(uts_namespace.name)=4\nNUMBER(sme_mask)=0\nCRASHTIME=1700000000',
  );
  assert.equal(v.symbol('init_top_pgt'), 0xffffffff82a10000n);
  assert.equal(v.number('phys_base'), 0xffffffffe5000000n);
  assert.equal(v.kernelOffset, 0x1ba00000n);
  assert.equal(v.number('VMALLOC_START'), 0xffffc90000000000n);
  assert.equal(v.offset('uts_namespace.name'), 4);
  assert.equal(v.number('sme_mask'), 0n);
  assert.equal(v.crashTime, 1700000000);
});

test('x86_64 arch: the unwinder starts from the note RIP, RSP and RBP; no RSP, no start', async () => {
  const { x86_64Arch } = await import('../../src/core/kernel/x86_64/arch.js');
  const { cpus } = x86_64Arch.parseCpuNotes(
    [
      { name: 'CORE', type: 1, desc: prstatusDesc({ pid: 1, rip: 0xffffffff819c3643n, rsp: 0xffffc90000013d20n, rbp: 0xffffc90000013d48n }) },
      { name: 'QEMU', type: 0, desc: qemuCpuDesc({ rip: 0xffffffff81000000n, rsp: 0n, cr3: 0x1000n }) },
    ],
    true,
  );
  const s = x86_64Arch.unwindStart(cpus[0]!);
  assert.equal(s?.pc, 0xffffffff819c3643n);
  assert.equal(s?.sp, 0xffffc90000013d20n);
  assert.equal(s?.fp, 0xffffc90000013d48n);
  assert.equal(s?.regs['rip'], 0xffffffff819c3643n);
  assert.equal(x86_64Arch.unwindStart({ index: 3, cpu: 3, cpuEvidence: null, pidIsTask: false, source: 'QEMU', arch: 'x86_64', rip: 1n }), undefined);
  assert.equal(x86_64Arch.unwindStart(cpus[1]!)?.regs['cr3'], 0x1000n);
});
