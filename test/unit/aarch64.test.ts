/**
 * aarch64 kernel awareness: the translation-table walk for every granule and VA size (synthetic
 * tables built here), and the proof of PHYS_OFFSET / kimage_voffset, translation, utsname, the
 * registers and the kernel log on an excerpt of a real arm64 QEMU dump (Debian 6.1 arm64 cloud
 * kernel, KASLR), checked against the guest's own console (test/fixtures/excerpts-arm64).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { openDumpFiles } from '../../src/node/open.js';
import { analyzeKernel, type KernelInput } from '../../src/core/kernel/kernel.js';
import { readDmesg } from '../../src/core/kernel/dmesg.js';
import { describeDump } from '../../src/core/info.js';
import { SparseMemory } from '../../src/core/memory.js';
import { Aarch64PageTables, walkShape, stripPac, type Granule } from '../../src/core/kernel/aarch64/pagetables.js';
import { isVmcoreError } from '../../src/core/errors.js';
import type { Dump } from '../../src/core/dump.js';

const DIR = join(resolve(dirname(fileURLToPath(import.meta.url)), '../../..'), 'test/fixtures/excerpts-arm64');
const CASE = 'direct-max-kaslr-1cpu-256M-vmci-panic';
const truth = JSON.parse(readFileSync(join(DIR, 'truth.json'), 'utf8')) as {
  kernel: string;
  placement: Record<string, string>;
  panic_task: { cpu: number; pid: number; comm: string };
  vmcoreinfo_note_phys: string;
};
const P = truth.placement;

const open = () => openDumpFiles([join(DIR, `${CASE}.kdump`)]);

/** The dump with some of its parts replaced (header phys_base, VMCOREINFO). */
function variant(d: Dump, o: { headerPhysBase?: bigint; vmcoreinfoText?: string | undefined; dropNote?: boolean }): KernelInput {
  const k: Partial<KernelInput> & Pick<Dump, 'pageRuns'> = {
    pageSize: d.pageSize,
    maxPfn: d.maxPfn,
    pageState: (p: number) => d.pageState(p),
    readPage: (p: number) => d.readPage(p),
    readPhys: (a: number, n: number, x?: { fillMissing?: boolean }) => d.readPhys(a, n, x),
    pageRuns: (a?: number, b?: number) => d.pageRuns(a, b),
    notes: o.dropNote ? d.notes.filter((n) => n.name !== 'VMCOREINFO') : d.notes,
    vmcoreinfoText: 'vmcoreinfoText' in o ? o.vmcoreinfoText : d.vmcoreinfoText,
    littleEndian: d.littleEndian,
    arch: d.arch,
    files: d.files,
    details: async () => ({ ...(await d.details()), ...(o.headerPhysBase !== undefined ? { headerPhysBase: o.headerPhysBase } : {}) }),
  };
  return k as KernelInput;
}

test('walk shape: levels per granule and VA size (Arm ARM D8.2)', () => {
  const cases: [Granule, number, number][] = [
    [4096, 39, 3], [4096, 48, 4], [4096, 52, 5],
    [16384, 36, 2], [16384, 47, 3], [16384, 48, 4], [16384, 52, 4],
    [65536, 42, 2], [65536, 48, 3], [65536, 52, 3],
  ];
  for (const [g, va, levels] of cases) assert.equal(walkShape(g, va).levels, levels, `${g} ${va}`);
  assert.throws(() => walkShape(4096, 64), (e) => isVmcoreError(e) && e.code === 'BAD_FIELD');
});

/** Encode an output address into a descriptor the way the architecture does for this format. */
function oa(pa: bigint, granule: Granule, lpa2: boolean): bigint {
  const g = BigInt(Math.log2(granule));
  if (granule === 65536 && !lpa2) return (pa & 0x0000ffffffff0000n) | (((pa >> 48n) & 0xfn) << 12n);
  if (lpa2) return (pa & ((1n << 50n) - (1n << g))) | (((pa >> 50n) & 3n) << 8n);
  return pa & ((1n << 48n) - (1n << g));
}

/** Build TTBR1 tables in sparse memory mapping `maps` (leaf at `level`, 3 = page). */
function buildTables(granule: Granule, vaBits: number, lpa2: boolean, maps: { va: bigint; pa: bigint; level: number }[]) {
  const mem = new SparseMemory(2 ** 40, 4096); // 52-bit physical space, sparse
  const shape = walkShape(granule, vaBits);
  const g = Math.log2(granule);
  let next = 0x1000_0000;
  const alloc = () => {
    const a = next;
    next += Math.max(granule, 8 << (vaBits - shape.shifts[0]!));
    mem.write(a, new Uint8Array(8)); // make the page exist
    return a;
  };
  const root = alloc();
  const writeDesc = (table: number, index: number, v: bigint) => {
    const b = new Uint8Array(8);
    new DataView(b.buffer).setBigUint64(0, v, true);
    mem.write(table + index * 8, b);
  };
  const tables = new Map<string, number>();
  for (const m of maps) {
    let table = root;
    for (let i = 0; i < shape.shifts.length; i++) {
      const level = shape.startLevel + i;
      const shift = shape.shifts[i]!;
      const bits = i === 0 ? vaBits - shift : g - 3;
      const index = Number((m.va >> BigInt(shift)) & ((1n << BigInt(bits)) - 1n));
      if (level === m.level) {
        writeDesc(table, index, oa(m.pa, granule, lpa2) | (level === 3 ? 3n : 1n) | (1n << 10n));
        break;
      }
      const key = `${table}:${index}`;
      let t = tables.get(key);
      if (t === undefined) {
        t = alloc();
        tables.set(key, t);
        writeDesc(table, index, oa(BigInt(t), granule, lpa2) | 3n);
      }
      table = t;
    }
  }
  return { mem, root };
}

for (const [granule, vaBits, lpa2] of [
  [4096, 39, false], [4096, 48, false], [4096, 52, true],
  [16384, 47, false], [16384, 48, false], [16384, 52, true],
  [65536, 42, false], [65536, 48, false], [65536, 52, false],
] as [Granule, number, boolean][]) {
  test(`translation tables: ${granule / 1024} KiB granule, ${vaBits}-bit VA${lpa2 ? ', LPA2' : ''}`, async () => {
    const top = (1n << 64n) - (1n << BigInt(vaBits));
    const shape = walkShape(granule, vaBits);
    const blockLevel = 2; // every granule has level-2 blocks
    const blockSize = 1n << BigInt(shape.shifts[blockLevel - shape.startLevel]!);
    const highPa = vaBits === 52 || granule === 65536 ? 0x000f_1234_5670_0000n & ~(BigInt(granule) - 1n) : 0x0000_0012_3456_0000n;
    const maps = [
      { va: top + 0x1234n * BigInt(granule), pa: 0x4020_0000n, level: 3 },
      { va: top + 7n * blockSize, pa: 0x8000_0000n & ~(blockSize - 1n), level: blockLevel },
      { va: top + (1n << BigInt(vaBits - 1)) + 5n * BigInt(granule), pa: highPa, level: 3 },
    ];
    const { mem, root } = buildTables(granule, vaBits, lpa2, maps);
    const t = new Aarch64PageTables(mem, { root, granule, vaBits, lpa2 });
    assert.equal(t.levels, shape.levels);
    for (const m of maps) {
      assert.equal(await t.translate(m.va + 0x18n), Number(m.pa + 0x18n), `VA 0x${m.va.toString(16)}`);
    }
    // inside the block, far from its start
    const inBlock = maps[1]!;
    const far = blockSize - 0x10n;
    assert.equal(await t.translate(inBlock.va + far), Number(inBlock.pa + far));
    // unmapped, and a user (TTBR0) address: typed errors
    await assert.rejects(t.translate(top + 0x999n * BigInt(granule)), (e) => isVmcoreError(e) && e.code === 'ADDRESS_TRANSLATION');
    await assert.rejects(t.translate(0x0000_7fff_0000_0000n), (e) => isVmcoreError(e) && e.code === 'ADDRESS_TRANSLATION' && /TTBR1/.test(e.message));
  });
}

test('translation tables: a table pointer outside the dump is a typed error naming the level', async () => {
  const { mem, root } = buildTables(4096, 48, false, [{ va: 0xffff_0000_0000_0000n, pa: 0x1000n, level: 3 }]);
  // point the level-0 entry at a table far beyond the memory
  const small = new SparseMemory(0x2000_0000 / 4096, 4096);
  for (const [pfn, p] of mem.pages) if (pfn < small.maxPfn) small.set(pfn, p);
  const b = new Uint8Array(8);
  new DataView(b.buffer).setBigUint64(0, 0x7_0000_0000n | 3n, true);
  small.write(root, b);
  const t = new Aarch64PageTables(small, { root, granule: 4096, vaBits: 48 });
  await assert.rejects(t.translate(0xffff_0000_0000_0000n), (e) => isVmcoreError(e) && e.code === 'ADDRESS_TRANSLATION' && /level 1 table/.test(e.message));
  assert.throws(() => new Aarch64PageTables(small, { root: 0x7_0000_0000, granule: 4096, vaBits: 48 }), (e) => isVmcoreError(e) && e.field === 'swapper_pg_dir');
});

test('pointer authentication bits are stripped from kernel return addresses', () => {
  assert.equal(stripPac(0xe183c94f3f370670n, 0xffff000000000000n), 0xffffc94f3f370670n);
  assert.equal(stripPac(0xffffc94f3f370670n, 0n), 0xffffc94f3f370670n);
});

test(`arm64 QEMU dump (${CASE}): PHYS_OFFSET and kimage_voffset proven, as the guest saw them`, async () => {
  const dump = await open();
  try {
    assert.equal(dump.arch, 'Unknown', 'QEMU writes machine "Unknown" into arm64 kdump headers');
    const k = await analyzeKernel(dump);
    assert.equal(k.arch, 'aarch64');
    const info = await describeDump(dump, k);
    assert.equal(info.arch, 'aarch64');
    assert.equal(info.physBase.name, 'PHYS_OFFSET');
    assert.equal(info.physBase.value, '0x' + BigInt(P.phys_offset!).toString(16).padStart(1, '0'));
    assert.equal(info.physBase.verdict, 'header correct');
    assert.deepEqual(
      info.physBase.proof.map((p) => p.code),
      ['PGD_IN_RAM', 'PGD_MAPS_ITSELF', 'STEXT_MAPS', 'UTSNAME_MATCHES', 'LINEAR_MAP_AGREES'],
    );
    const a = info.physBase.aarch64 as Record<string, unknown>;
    assert.equal(a.kimageVoffset, P.kimage_voffset);
    assert.equal(a.swapperPgDir, P.swapper_pg_dir_phys);
    assert.equal(a.pageOffset, '0xffff000000000000');
    // translation: kernel image and linear map
    assert.equal(await k.virtToPhys(BigInt(P.stext_vaddr!)), Number(P.stext_phys));
    // panic() and init_task: image addresses by kimage_voffset, walked through the tables
    const kv = BigInt(P.kimage_voffset!);
    for (const va of [P.panic_vaddr!, P.init_task_vaddr!].map(BigInt)) assert.equal(await k.virtToPhys(va), Number(va - kv));
    assert.equal(k.utsname?.release, truth.kernel);
    assert.equal(new TextDecoder().decode(await k.readVirt(BigInt(P.init_uts_ns_vaddr!), 5)), 'Linux');
    // registers: QEMU's note of vCPU 0 (pr_pid = vCPU + 1, not a task), PC in the kernel text
    const cpu = k.cpus[0]!;
    assert.equal(cpu.arch, 'aarch64');
    assert.equal(cpu.cpu, truth.panic_task.cpu);
    assert.equal(cpu.pidIsTask, false);
    assert.ok(cpu.pc! >= BigInt(P.text_vaddr!) && cpu.pc! < BigInt(P._end_vaddr!), `pc 0x${cpu.pc!.toString(16)}`);
    // the kernel log holds every kernel line of the console, the panic included
    const log = await readDmesg({ vmcoreinfo: k.vmcoreinfo!, readVirt: (va, n) => k.readVirt(va, n) });
    const dec = new TextDecoder('latin1');
    const have = new Set<string>();
    for (const r of log.records) {
      if (r.lost) continue;
      const s = (r.tsNsec / 1_000_000_000n).toString().padStart(5, ' ');
      const us = ((r.tsNsec % 1_000_000_000n) / 1000n).toString().padStart(6, '0');
      for (const line of dec.decode(r.text).split('\n')) have.add(`[${s}.${us}] ${line}`.trimEnd());
    }
    const serial = readFileSync(join(DIR, `${CASE}.serial.log`), 'latin1');
    const lines = serial.split('\n').map((l) => /\[ *\d+\.\d{6}\] .*/.exec(l.replace(/\r$/, ''))?.[0].trimEnd()).filter((l): l is string => !!l);
    assert.ok(lines.length > 200);
    const missing = lines.filter((l) => !have.has(l));
    assert.deepEqual(missing, []);
    assert.ok(lines.some((l) => l.includes('Kernel panic - not syncing: sysrq triggered crash')));
  } finally {
    await dump.close();
  }
});

test('arm64: a wrong header PHYS_OFFSET is found out and the true one proven', async () => {
  const dump = await open();
  try {
    const k = await analyzeKernel(variant(dump, { headerPhysBase: 0x48000000n }));
    assert.equal(k.physBase.verdict, 'header wrong');
    assert.equal(k.physBase.value, BigInt(P.phys_offset!));
    assert.ok(k.warnings.some((w) => w.code === 'PHYS_BASE_HEADER_WRONG' && w.text.includes('PHYS_OFFSET') && w.text.includes('0x48000000')));
  } finally {
    await dump.close();
  }
});

test('arm64 without the VMCOREINFO note: recovered from memory, then proven', async () => {
  const dump = await open();
  try {
    const k = await analyzeKernel(variant(dump, { vmcoreinfoText: undefined, dropNote: true, headerPhysBase: 0x40000000n }));
    assert.equal(k.arch, 'aarch64');
    assert.match(k.vmcoreinfoSource, /^memory scan at 0x/);
    assert.equal(k.physBase.value, BigInt(P.phys_offset!));
    assert.equal(k.physBase.verdict, 'header correct');
    assert.equal(k.utsname?.release, truth.kernel);
  } finally {
    await dump.close();
  }
});

/** The fixture's VMCOREINFO with one line replaced (`key=value`, key as the line spells it). */
async function withLine(dump: Dump, key: string, value: string): Promise<KernelInput> {
  const re = new RegExp(`^${key.replace(/[()]/g, '\\$&')}=.*$`, 'm');
  assert.match(dump.vmcoreinfoText!, re, key);
  return variant(dump, { vmcoreinfoText: dump.vmcoreinfoText!.replace(re, `${key}=${value}`) });
}

/** A location proven despite a wrong VMCOREINFO value: the guest's own values (truth.json), from memory. */
async function assertProvenFromMemory(k: Awaited<ReturnType<typeof analyzeKernel>>) {
  assert.equal(k.physBase.verdict, 'header correct', JSON.stringify(k.warnings));
  assert.equal(k.physBase.value, BigInt(P.phys_offset!));
  assert.equal(k.utsname?.release, truth.kernel);
  assert.equal(await k.virtToPhys(BigInt(P.stext_vaddr!)), Number(P.stext_phys));
  assert.equal(new TextDecoder().decode(await k.readVirt(BigInt(P.init_uts_ns_vaddr!), 5)), 'Linux');
}

test('arm64: a wrong NUMBER(kimage_voffset) fails its check, is reported, and the true one is proven from memory', async () => {
  const dump = await open();
  try {
    const bad = BigInt(P.kimage_voffset!) + 0x200000n; // one hex digit changed
    const k = await analyzeKernel(await withLine(dump, 'NUMBER(kimage_voffset)', '0x' + bad.toString(16)));
    await assertProvenFromMemory(k);
    assert.equal((k.physBase as { layout?: { kimageVoffset: bigint } }).layout?.kimageVoffset, BigInt(P.kimage_voffset!));
    const w = k.warnings.find((x) => x.code === 'VMCOREINFO_DISAGREES' && x.text.includes('NUMBER(kimage_voffset)'));
    assert.ok(w, k.warnings.map((x) => x.text).join('\n'));
    assert.ok(w.text.includes('0x' + bad.toString(16)) && w.text.includes(P.kimage_voffset!), w.text);
    assert.ok(k.physBase.sources.some((s) => s.startsWith('memory: init_uts_ns')), k.physBase.sources.join('; '));
    assert.deepEqual(k.physBase.proof.map((p) => p.code), ['PGD_IN_RAM', 'PGD_MAPS_ITSELF', 'STEXT_MAPS', 'UTSNAME_MATCHES', 'LINEAR_MAP_AGREES']);
  } finally {
    await dump.close();
  }
});

test('arm64: NUMBER(VA_BITS)=52 against TCR_EL1_T1SZ 0x10 is reported and the linear map proven with 48 bits', async () => {
  const dump = await open();
  try {
    const k = await analyzeKernel(await withLine(dump, 'NUMBER(VA_BITS)', '52'));
    await assertProvenFromMemory(k);
    const a = (k.physBase as { layout?: { vaBits: number; pageOffset: bigint; kimageVoffset: bigint } }).layout!;
    assert.equal(a.vaBits, 48);
    assert.equal(a.pageOffset, 0xffff000000000000n);
    assert.equal(a.kimageVoffset, BigInt(P.kimage_voffset!));
    const w = k.warnings.find((x) => x.code === 'VMCOREINFO_DISAGREES' && x.text.includes('NUMBER(VA_BITS)'));
    assert.ok(w && /=52\b/.test(w.text) && /VA_BITS 48/.test(w.text) && w.text.includes('TCR_EL1_T1SZ 0x10'), k.warnings.map((x) => x.text).join('\n'));
  } finally {
    await dump.close();
  }
});

test('arm64: an OSRELEASE that init_uts_ns does not hold is reported, and the proof uses the release in memory', async () => {
  const dump = await open();
  try {
    const k = await analyzeKernel(await withLine(dump, 'OSRELEASE', '7.1.0'));
    await assertProvenFromMemory(k);
    assert.ok(k.physBase.proof.some((p) => p.code === 'UTSNAME_IN_IMAGE' && p.text.includes(truth.kernel)));
    const w = k.warnings.find((x) => x.code === 'VMCOREINFO_DISAGREES' && x.text.includes('OSRELEASE'));
    assert.ok(w && w.text.includes('7.1.0') && w.text.includes(truth.kernel), k.warnings.map((x) => x.text).join('\n'));
  } finally {
    await dump.close();
  }
});

test('arm64: a wrong KERNELOFFSET is reported against the proven image; the right one is not', async () => {
  const dump = await open();
  try {
    const right = await analyzeKernel(dump);
    assert.ok(!right.warnings.some((x) => x.code === 'VMCOREINFO_DISAGREES' && x.text.includes('KERNELOFFSET')), right.warnings.map((x) => x.text).join('\n'));
    const good = BigInt(P.kaslr_offset!);
    const bad = good + 0x1000000n; // one hex digit changed
    const k = await analyzeKernel(await withLine(dump, 'KERNELOFFSET', bad.toString(16)));
    await assertProvenFromMemory(k);
    const w = k.warnings.find((x) => x.code === 'VMCOREINFO_DISAGREES' && x.text.includes('KERNELOFFSET'));
    assert.ok(w, k.warnings.map((x) => x.text).join('\n'));
    // both values: the one written, and _stext − KIMAGE_VADDR of the proven image (KERNELOFFSET + _stext − _text)
    const stextMinusText = BigInt(P.stext_vaddr!) - BigInt(P.text_vaddr!);
    assert.ok(w.text.includes('0x' + bad.toString(16)) && w.text.includes('0x' + (good + stextMinusText).toString(16)), w.text);
  } finally {
    await dump.close();
  }
});

test('withPageSize: 64 KiB blocks seen as the kernel\'s 4 KiB pages', async () => {
  const { withPageSize } = await import('../../src/core/reblock.js');
  const dump = await open();
  try {
    const v = withPageSize(dump, 4096);
    assert.equal(v.maxPfn, dump.maxPfn * 16);
    let present = 0;
    for await (const r of v.pageRuns()) {
      assert.equal(await v.pageState(r.startPfn), await dump.pageState(Math.floor(r.startPfn / 16)));
      if (r.state === 'data' && present++ < 3) {
        const block = await dump.readPage(Math.floor(r.startPfn / 16));
        const off = (r.startPfn % 16) * 4096;
        assert.deepEqual(await v.readPage(r.startPfn), block.subarray(off, off + 4096));
      }
    }
    assert.ok(present > 0);
    assert.equal(withPageSize(dump, dump.pageSize), dump);
    assert.throws(() => withPageSize(dump, 3000), (e) => isVmcoreError(e) && e.code === 'BAD_FIELD');
  } finally {
    await dump.close();
  }
});
