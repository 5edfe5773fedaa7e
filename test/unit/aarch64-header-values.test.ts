/**
 * arm64: what convert and fix write about the kernel's layout comes from the proven location,
 * not from VMCOREINFO as written. The excerpt of a real arm64 QEMU dump
 * (test/fixtures/excerpts-arm64) with NUMBER(kimage_voffset) and NUMBER(VA_BITS) altered in its
 * VMCOREINFO note is converted to ELF and fixed to kdump: the ELF program headers (linear map
 * and kernel-image alias) and the written VMCOREINFO hold the values the guest printed on its
 * console (truth.json), and equal those written from the intact excerpt.
 */
import type { Warning } from '../../src/core/warnings.js';
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { openDumpFiles } from '../../src/node/open.js';
import { analyzeKernel } from '../../src/core/kernel/kernel.js';
import { kernelHeaderValues } from '../../src/core/kernel/header-values.js';
import { kernelMappings } from '../../src/core/kernel/kernel-map.js';
import { Vmcoreinfo } from '../../src/core/kernel/vmcoreinfo.js';
import { convertDump } from '../../src/node/convert/index.js';
import { fixDump } from '../../src/node/fix.js';

const DIR = join(resolve(dirname(fileURLToPath(import.meta.url)), '../../..'), 'test/fixtures/excerpts-arm64');
const SRC = join(DIR, 'direct-max-kaslr-1cpu-256M-vmci-panic.kdump');
const P = (JSON.parse(readFileSync(join(DIR, 'truth.json'), 'utf8')) as { placement: Record<string, string> }).placement;
const tmp = mkdtempSync(join(tmpdir(), 'vmcore-a64hv-'));
after(() => rmSync(tmp, { recursive: true, force: true }));

const KV = BigInt(P['kimage_voffset']!);
const BAD_KV = KV + 0x200000n; // one hex digit changed: same length
const PHYS_OFFSET = BigInt(P['phys_offset']!);
const PAGE_OFFSET_48 = 0xffff000000000000n;

/** The excerpt with its VMCOREINFO lines replaced in place (same lengths, so the file stays valid). */
function altered(): string {
  const b = Buffer.from(readFileSync(SRC));
  const swap = (from: string, to: string) => {
    assert.equal(from.length, to.length);
    const i = b.indexOf(from, 0, 'latin1');
    assert.ok(i > 0, from);
    assert.equal(b.indexOf(from, i + 1, 'latin1'), -1, `${from} once`);
    b.write(to, i, 'latin1');
  };
  swap(`NUMBER(kimage_voffset)=0x${KV.toString(16)}`, `NUMBER(kimage_voffset)=0x${BAD_KV.toString(16)}`);
  swap('NUMBER(VA_BITS)=48', 'NUMBER(VA_BITS)=52');
  const p = join(tmp, 'altered.kdump');
  writeFileSync(p, b);
  return p;
}

/** Convert to ELF with the kernel analysed (as `vmcore convert -E` does); its PT_LOADs and VMCOREINFO. */
async function toElf(src: string, name: string) {
  const d = await openDumpFiles([src]);
  const out = join(tmp, name);
  let warnings: Warning[];
  try {
    const k = await analyzeKernel(d);
    warnings = (await convertDump(d, out, { format: 'elf', kernel: k, threads: 0 })).warnings;
  } finally {
    await d.close();
  }
  const e = await openDumpFiles([out]);
  try {
    return { segments: (await e.details()).segments!, vmci: new Vmcoreinfo(e.vmcoreinfoText!), warnings };
  } finally {
    await e.close();
  }
}

test('arm64 header values: a VMCOREINFO with a wrong kimage_voffset and VA_BITS is written with the proven ones', async () => {
  const d = await openDumpFiles([altered()]);
  try {
    const k = await analyzeKernel(d);
    const hv = await kernelHeaderValues(d, k);
    assert.ok(hv.vmcoreinfoText, JSON.stringify(k.warnings));
    const v = new Vmcoreinfo(hv.vmcoreinfoText);
    assert.equal(v.number('kimage_voffset'), KV);
    assert.equal(v.number('VA_BITS'), 48n);
    assert.equal(v.number('PHYS_OFFSET'), PHYS_OFFSET); // right as written: kept
    assert.equal(hv.vmcoreinfoChanges.length, 2, hv.vmcoreinfoChanges.join('\n'));
    // every other line as the file has it
    const strip = (t: string) => t.split('\n').filter((l) => !/^NUMBER\((kimage_voffset|VA_BITS)\)=/.test(l));
    assert.deepEqual(strip(hv.vmcoreinfoText), strip(d.vmcoreinfoText!));
    // the program headers derived from it: linear map at PAGE_OFFSET(48) − PHYS_OFFSET, the image at _stext − kimage_voffset
    const km = await kernelMappings(d, v, k.physBase.value!);
    assert.equal(km.directMapBase, BigInt.asUintN(64, PAGE_OFFSET_48 - PHYS_OFFSET));
    assert.equal(km.kernelImage?.vaddr, BigInt(P['stext_vaddr']!));
    assert.equal(km.kernelImage?.paddr, Number(P['stext_phys']!));
  } finally {
    await d.close();
  }
});

test('arm64 header values: the intact VMCOREINFO is kept as it is', async () => {
  const d = await openDumpFiles([SRC]);
  try {
    const hv = await kernelHeaderValues(d, await analyzeKernel(d));
    assert.equal(hv.vmcoreinfoText, undefined);
    assert.deepEqual(hv.vmcoreinfoChanges, []);
  } finally {
    await d.close();
  }
});

test('arm64 convert to ELF: program headers and VMCOREINFO from the proven layout, equal to the intact dump\'s', async () => {
  const bad = await toElf(altered(), 'altered.elf');
  const good = await toElf(SRC, 'intact.elf');
  // the excerpt keeps few pages: each PT_LOAD covers present pages of the linear map or of the image alias
  const image = bad.segments.filter((s) => s.vaddr >= BigInt(P['stext_vaddr']!) && s.vaddr < BigInt(P['stext_vaddr']!) + (1n << 30n));
  const linear = bad.segments.filter((s) => s.vaddr >= PAGE_OFFSET_48 && s.vaddr < PAGE_OFFSET_48 + (1n << 47n));
  assert.ok(image.length > 0 && linear.length > 0, 'PT_LOADs of the image alias and of the linear map');
  assert.equal(image.length + linear.length, bad.segments.length);
  for (const s of image) assert.equal(s.vaddr - BigInt(s.paddr), KV, `image PT_LOAD at ${s.vaddr.toString(16)}`);
  for (const s of linear) assert.equal(s.vaddr - BigInt(s.paddr), PAGE_OFFSET_48 - PHYS_OFFSET, `linear PT_LOAD at ${s.vaddr.toString(16)}`);
  assert.deepEqual(
    bad.segments.map((s) => [s.paddr, s.vaddr, s.memsz]),
    good.segments.map((s) => [s.paddr, s.vaddr, s.memsz]),
  );
  assert.equal(bad.vmci.number('kimage_voffset'), KV);
  assert.equal(bad.vmci.number('VA_BITS'), 48n);
  assert.equal(bad.vmci.text, good.vmci.text);
  assert.ok(bad.warnings.some((w) => w.code === 'VMCOREINFO_DISAGREES' && w.text.includes('NUMBER(kimage_voffset)') && w.text.includes('written')), JSON.stringify(bad.warnings));
  assert.ok(!good.warnings.some((w) => w.code === 'VMCOREINFO_DISAGREES' && w.text.includes('written with the proven value')), JSON.stringify(good.warnings));
});

test('arm64 fix: the fixed kdump carries the proven kimage_voffset and VA_BITS and says so', async () => {
  const out = join(tmp, 'fixed.kdump');
  const r = await fixDump(altered(), { out, threads: 0 });
  assert.ok(r.changes.some((c) => c.startsWith('VMCOREINFO NUMBER(kimage_voffset) 0x' + BAD_KV.toString(16) + ' -> 0x' + KV.toString(16))), r.changes.join('\n'));
  assert.ok(r.changes.some((c) => c.startsWith('VMCOREINFO NUMBER(VA_BITS) 52 -> 48')), r.changes.join('\n'));
  const d = await openDumpFiles([out]);
  try {
    const v = new Vmcoreinfo(d.vmcoreinfoText!);
    assert.equal(v.number('kimage_voffset'), KV);
    assert.equal(v.number('VA_BITS'), 48n);
    const k = await analyzeKernel(d);
    assert.ok(!k.warnings.some((w) => w.code === 'VMCOREINFO_DISAGREES' && w.text.includes('fails its check')), JSON.stringify(k.warnings));
  } finally {
    await d.close();
  }
});
