import { test } from 'node:test';
import assert from 'node:assert/strict';
import { analyzeKernel, type KernelInput } from '../../src/core/kernel/kernel.js';
import { RecordingMemory } from '../../src/core/kernel/recording.js';
import { SparseMemory } from '../../src/core/memory.js';
import type { ElfNote } from '../../src/core/format/elf/notes.js';
import type { PhysicalMemory } from '../../src/core/dump.js';
import { synthKernel, qemuCpuDesc, prstatusDesc } from './kernel-synth.js';

function input(mem: PhysicalMemory, notes: ElfNote[], vmcoreinfoText: string | undefined, headerPhysBase?: bigint): KernelInput {
  return {
    pageSize: mem.pageSize,
    maxPfn: mem.maxPfn,
    pageState: (p) => mem.pageState(p),
    pageRuns: (s, e) => mem.pageRuns(s, e),
    readPage: (p) => mem.readPage(p),
    readPhys: (a, l, o) => mem.readPhys(a, l, o),
    ...('readPageUnrecorded' in mem ? { readPageUnrecorded: (mem as RecordingMemory).readPageUnrecorded.bind(mem) } : {}),
    notes,
    vmcoreinfoText,
    arch: 'x86_64',
    littleEndian: true,
    details: async () => ({ header: {}, producerHints: [], ...(headerPhysBase !== undefined ? { headerPhysBase } : {}) }),
  };
}

function vmcoreinfoNote(text: string): Uint8Array {
  const t = new TextEncoder().encode(text);
  const b = new Uint8Array(24 + ((t.length + 3) & ~3) + 12);
  const dv = new DataView(b.buffer);
  dv.setUint32(0, 11, true);
  dv.setUint32(4, t.length, true);
  b.set(new TextEncoder().encode('VMCOREINFO'), 12);
  b.set(t, 24);
  return b;
}

test('QEMU dump without the vmcoreinfo device: VMCOREINFO recovered, phys_base proven, memory readable', async () => {
  const s = synthKernel({ physBase: 0x600000n });
  s.mem.set(0x4000, vmcoreinfoNote(s.vmcoreinfoText));
  const notes: ElfNote[] = [
    { name: 'CORE', type: 1, desc: prstatusDesc({ pid: 1, rip: s.textVa + 0x10n, rsp: 0n }) },
    { name: 'QEMU', type: 0, desc: qemuCpuDesc({ rip: s.textVa + 0x10n, cr3: BigInt(s.pgdPa), cr4: 0x6b0n, size: 440 }) },
  ];
  const rec = new RecordingMemory(s.mem);
  const k = await analyzeKernel(input(rec, notes, undefined, 0n));
  assert.equal(k.vmcoreinfoSource, 'memory scan at 0x4000000');
  assert.equal(k.physBase.value, 0x600000n);
  assert.equal(k.physBase.verdict, 'header wrong');
  assert.equal(k.utsname?.release, s.release);
  assert.equal(k.cpus.length, 2);
  assert.equal(await k.virtToPhys(s.probeVa), s.probePa);
  assert.equal(new TextDecoder().decode(await k.readVirt(s.probeVa, 11)), 'PROBE-BYTES');
  assert.equal(new TextDecoder().decode(await k.readVirt(s.vmallocVa, 7)), 'vmalloc');
  const sum = k.summary() as { physBase: { value: string; verdict: string; header: string; vmcoreinfo: string; proof: string[] } };
  assert.equal(sum.physBase.value, '0x600000');
  assert.equal(sum.physBase.header, '0x0');
  assert.equal(sum.physBase.vmcoreinfo, '0x600000');
  assert.ok(sum.physBase.proof.length >= 3);
  JSON.stringify(sum);

  // excerpt: only the pages the analysis read, everything else excluded -> same answer
  const pfns = rec.pfns();
  assert.ok(pfns.length < 30, `few pages read (${pfns.length})`);
  const ex = new SparseMemory(s.mem.maxPfn);
  for (const [p] of s.mem.states) ex.setState(p, 'excluded');
  for (const p of pfns) ex.set(p, await s.mem.readPage(p));
  const k2 = await analyzeKernel(input(ex, notes, undefined, 0n));
  assert.equal(k2.vmcoreinfoSource, 'memory scan at 0x4000000');
  assert.equal(k2.physBase.value, 0x600000n);
  assert.deepEqual(k2.physBase.proof, k.physBase.proof);
});

test('VMCOREINFO in the file (note): KASLR, negative phys_base, wrong header', async () => {
  const s = synthKernel({ physBase: -0x1b000000n, kernelOffset: 0x1b000000n });
  const notes: ElfNote[] = [{ name: 'VMCOREINFO', type: 0, desc: new TextEncoder().encode(s.vmcoreinfoText) }];
  const k = await analyzeKernel(input(s.mem, notes, s.vmcoreinfoText, 0xfffffffbad67b7cen));
  assert.equal(k.vmcoreinfoSource, 'note');
  assert.equal(k.physBase.value, 0xffffffffe5000000n);
  assert.equal(k.physBase.verdict, 'header wrong');
  assert.equal(await k.virtToPhys(s.directBase + 0x42n), 0x42);
});

test('nothing usable: NO_VMCOREINFO from readVirt', async () => {
  const m = new SparseMemory(16).set(1, 'hello');
  const k = await analyzeKernel(input(m, [], undefined));
  assert.equal(k.vmcoreinfoSource, 'none');
  assert.equal(k.physBase.verdict, 'cannot prove');
  await assert.rejects(k.readVirt(0xffffffff81000000n, 4), (e: unknown) => (e as { code?: string }).code === 'NO_VMCOREINFO');
});

test('several copies in memory: the one that proves phys_base wins over a better-ranked stale one', async () => {
  const s = synthKernel({ physBase: 0x1000000n });
  // a stale copy (another kernel's: different symbols) with CRASHTIME ranks first but cannot validate
  const stale = s.vmcoreinfoText
    .replace(/SYMBOL\(init_top_pgt\)=\w+/, 'SYMBOL(init_top_pgt)=ffffffff83e0a000')
    .replace(/SYMBOL\(swapper_pg_dir\)=\w+/, 'SYMBOL(swapper_pg_dir)=ffffffff83e0a000')
    .replace(/SYMBOL\(init_uts_ns\)=\w+/, 'SYMBOL(init_uts_ns)=ffffffff83c0c040')
    .replace(/SYMBOL\(_stext\)=\w+/, 'SYMBOL(_stext)=ffffffff81200000') + 'CRASHTIME=1700000000\n';
  s.mem.set(0x3000, vmcoreinfoNote(stale));
  s.mem.set(0x5000, vmcoreinfoNote(s.vmcoreinfoText));
  const k = await analyzeKernel(input(s.mem, [], undefined, 0x16777216n));
  assert.equal(k.recovered.length, 2);
  assert.equal(k.recovered[0]!.addr, 0x3000000, 'the stale copy ranks first');
  assert.equal(k.vmcoreinfoSource, 'memory scan at 0x5000000');
  assert.equal(k.physBase.value, 0x1000000n);
  assert.equal(k.physBase.verdict, 'header wrong');
});

test('other architectures: no x86_64 guessing', async () => {
  const s = synthKernel({ physBase: 0n });
  const k = await analyzeKernel({ ...input(s.mem, [], s.vmcoreinfoText), arch: 'aarch64' });
  assert.equal(k.physBase.verdict, 'cannot prove');
  assert.equal(k.physBase.candidates.length, 0);
  assert.ok(k.warnings.some((w) => /aarch64/.test(w.text)));
});
