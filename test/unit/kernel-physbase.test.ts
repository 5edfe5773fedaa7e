import { test } from 'node:test';
import assert from 'node:assert/strict';
import { findPhysBase, qemuMisparseInverse } from '../../src/core/kernel/x86_64/physbase.js';
import { hasStep } from '../../src/core/kernel/proof.js';
import { Vmcoreinfo } from '../../src/core/kernel/vmcoreinfo.js';
import { parseCpuNotes } from '../../src/core/kernel/x86_64/cpu.js';
import { synthKernel, utsname, qemuCpuDesc } from './kernel-synth.js';

const u = (v: bigint) => BigInt.asUintN(64, v);

test('QEMU hex misparse of the decimal NUMBER(phys_base) is undone', () => {
  // values from the corpus: QEMU wrote 0x6291456 for 6291456 (0x600000), and 0xfffffffbad67b7ce
  // for -452984832 (kernel text 0xffffffff9ca00000 at physical 0x1a00000)
  assert.equal(qemuMisparseInverse(0x6291456n), 0x600000n);
  assert.equal(qemuMisparseInverse(0xfffffffbad67b7cen), u(0x1a00000n - (0xffffffff9ca00000n - 0xffffffff80000000n)));
  assert.equal(qemuMisparseInverse(0x16777216n), 0x1000000n);
  assert.equal(qemuMisparseInverse(0n), undefined);
  assert.equal(qemuMisparseInverse(0xabcn), undefined);
});

test('header 0 but NUMBER(phys_base) true: verdict "header wrong", all strong checks pass', async () => {
  const s = synthKernel({ physBase: 0x600000n });
  const r = await findPhysBase({ mem: s.mem, vmcoreinfo: new Vmcoreinfo(s.vmcoreinfoText), headerPhysBase: 0n });
  assert.equal(r.value, 0x600000n);
  assert.equal(r.verdict, 'header wrong');
  for (const c of ['PGD_MAPS_ITSELF', 'STEXT_MAPS', 'UTSNAME_MATCHES'] as const) assert.ok(hasStep(r.proof, c), c);
  // each step keeps its words for people
  assert.deepEqual(r.proof.find((p) => p.code === 'STEXT_MAPS'), { code: 'STEXT_MAPS', text: '_stext maps to T(_stext)' });
  const hdr = r.candidates.find((c) => c.value === 0n)!;
  assert.equal(hdr.accepted, false);
  assert.ok(hdr.failed.length > 0);
  assert.equal(r.pgd, s.pgdPa);
});

test('header correct; header absent', async () => {
  const s = synthKernel({ physBase: 0n });
  const vi = new Vmcoreinfo(s.vmcoreinfoText);
  assert.equal((await findPhysBase({ mem: s.mem, vmcoreinfo: vi, headerPhysBase: 0n })).verdict, 'header correct');
  const r = await findPhysBase({ mem: s.mem, vmcoreinfo: vi });
  assert.equal(r.verdict, 'header absent');
  assert.equal(r.value, 0n);
});

test('negative phys_base (KASLR), QEMU-misparsed header, no NUMBER(phys_base): found from the header read back', async () => {
  const pb = -0x1b000000n;
  const s = synthKernel({ physBase: pb, kernelOffset: 0x1ba00000n - 0xa00000n, numberPhysBase: false });
  const header = u(-BigInt('0x' + (-pb).toString(10))); // QEMU: strtou64("-452984832", 16)
  const r = await findPhysBase({ mem: s.mem, vmcoreinfo: new Vmcoreinfo(s.vmcoreinfoText), headerPhysBase: header, bruteForce: false });
  assert.equal(r.value, u(pb));
  assert.equal(r.verdict, 'header wrong');
  assert.ok(r.sources.some((x) => /decimal/.test(x)));
});

test('wrong NUMBER(phys_base) and no header: brute force finds the true value past a utsname decoy', async () => {
  const pb = -0x1b000000n + 0x1800000n;
  // kernel at 40 MiB: not one of the common load addresses
  const s = synthKernel({ physBase: pb, kernelOffset: 0x1b000000n, numberPhysBase: false });
  const text = s.vmcoreinfoText + 'NUMBER(phys_base)=4194304\n';
  // decoy: a copy of the utsname 2 MiB below the real one (passes the cheap probe only)
  s.mem.write(s.utsPa - 2 * 1024 * 1024, utsname('Linux', 'synth', s.release, '#1 SMP', 'x86_64', '(none)'));
  const r = await findPhysBase({ mem: s.mem, vmcoreinfo: new Vmcoreinfo(text) });
  assert.equal(r.value, u(pb));
  assert.equal(r.verdict, 'header absent');
  assert.deepEqual(r.sources, ['brute force (2 MiB steps)']);
  const decoy = r.candidates.find((c) => c.value === u(pb - 0x200000n));
  assert.ok(decoy && !decoy.accepted && decoy.failed.length > 0, 'decoy tried and rejected');
  assert.ok(!r.candidates.find((c) => c.value === 0x400000n)!.accepted);
});

test('5-level paging with SME bit set in every entry', async () => {
  const s = synthKernel({ physBase: 0x1000000n, levels: 5, smeMask: 1n << 47n });
  const r = await findPhysBase({ mem: s.mem, vmcoreinfo: new Vmcoreinfo(s.vmcoreinfoText), headerPhysBase: 0x16777216n });
  assert.equal(r.levels, 5);
  assert.equal(r.value, 0x1000000n);
  assert.ok(hasStep(r.proof, 'PGD_MAPS_ITSELF'));
});

test('no VMCOREINFO: CR3 walk + utsname inside the kernel image', async () => {
  const s = synthKernel({ physBase: 0x600000n });
  const { cpus } = parseCpuNotes([{ name: 'QEMU', type: 0, desc: qemuCpuDesc({ cr3: BigInt(s.pgdPa) | 0x1n, cr4: 0x6b0n }) }]);
  const r = await findPhysBase({ mem: s.mem, cpus, headerPhysBase: 0n });
  assert.equal(r.value, 0x600000n);
  assert.equal(r.verdict, 'header wrong');
  assert.deepEqual(r.proof.map((p) => p.code), ['CR3_TEXT_LINEAR', 'UTSNAME_IN_IMAGE']);
});

test('nothing to go on: cannot prove, no value', async () => {
  const s = synthKernel({ physBase: 0x600000n });
  const r = await findPhysBase({ mem: s.mem, headerPhysBase: 0n });
  assert.equal(r.verdict, 'cannot prove');
  assert.equal(r.value, undefined);
});

test('CR3 of a CPU is cross-checked against init_top_pgt', async () => {
  const s = synthKernel({ physBase: 0n });
  const { cpus } = parseCpuNotes([{ name: 'QEMU', type: 0, desc: qemuCpuDesc({ cr3: BigInt(s.pgdPa) }) }]);
  const r = await findPhysBase({ mem: s.mem, vmcoreinfo: new Vmcoreinfo(s.vmcoreinfoText), cpus });
  assert.ok(hasStep(r.proof, 'CR3_SHARES_KERNEL_PGD'));
});

test('info: when nothing is proven, the closest candidate and what contradicts it (a VMCOREINFO whose OSRELEASE is not the release in memory)', async () => {
  const { readFileSync, writeFileSync, mkdtempSync, rmSync } = await import('node:fs');
  const { tmpdir } = await import('node:os');
  const { join } = await import('node:path');
  const { vmcore } = await import('../helpers/cli.js');
  const sample = new URL('../../../samples/seabios-128M.md-c-d31.kdump', import.meta.url).pathname;
  const dir = mkdtempSync(join(tmpdir(), 'vmcore-pb-'));
  try {
    const b = readFileSync(sample);
    const at = b.indexOf('OSRELEASE=6.1.0-56-cloud-amd64');
    assert.ok(at > 0);
    b.write('9.9.9', at + 10, 'latin1'); // same length: the note stays whole
    const f = join(dir, 'osrelease.kdump');
    writeFileSync(f, b);
    const r = vmcore('info', '--json', f);
    assert.equal(r.rc, 0, r.err);
    const pb = JSON.parse(r.out).physBase;
    assert.equal(pb.verdict, 'cannot prove');
    assert.equal(pb.value, null);
    assert.equal(pb.closest.value, '0x0');
    assert.ok(pb.closest.sources.includes('VMCOREINFO NUMBER(phys_base)'), JSON.stringify(pb.closest));
    assert.deepEqual(pb.closest.failed, [{ code: 'UTSNAME_MATCHES', text: 'init_uts_ns holds "Linux 6.1.0-56-cloud-amd64", VMCOREINFO says OSRELEASE=9.9.9-56-cloud-amd64' }]);
    assert.match(vmcore('info', f).out, /failed +init_uts_ns holds "Linux 6\.1\.0-56-cloud-amd64", VMCOREINFO says OSRELEASE=9\.9\.9-56-cloud-amd64/);
    // a proven dump has no closest candidate
    assert.equal(JSON.parse(vmcore('info', '--json', sample).out).physBase.closest, undefined);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
