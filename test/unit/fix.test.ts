/**
 * `vmcore fix` on kdump files: the makedumpfile sample (memory digest from libkdumpfile, see
 * below), --in-place (only the 8 phys_base bytes change), and a synthetic QEMU-like dump
 * (flattened, no VMCOREINFO, header phys_base 0, a firmware page above the kernel's memory)
 * whose expected contents come from the synthetic kernel memory it was built from.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { copyFileSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { fixDump } from '../../src/node/fix.js';
import { openDumpFiles } from '../../src/node/open.js';
import { hashMemory } from '../../src/core/hash.js';
import { nodeSha256 } from '../../src/node/hash.js';
import { isVmcoreError } from '../../src/core/errors.js';
import { describeDump } from '../../src/core/info.js';
import { analyzeKernel } from '../../src/core/kernel/kernel.js';
import type { KdumpDump } from '../../src/core/format/kdump/reader.js';
import { encodeKdumpHeader, encodeKdumpSubHeader, KdumpLayout, KdumpPagePlacer, PfnBitmap } from '../../src/core/format/kdump/writer.js';
import { PAGE_RAW, PAGE_ZERO } from '../../src/core/format/batch.js';
import type { SparseMemory } from '../../src/core/memory.js';
import { synthKernel, prstatusDesc } from './kernel-synth.js';

const repo = resolve(fileURLToPath(new URL('../../../', import.meta.url)));
const sample = join(repo, 'samples', 'seabios-128M.md-c-d31.kdump');
// libkdumpfile's digest of this very file (the corpus md/md-c-d31.kdump: truth JSON
// expected.pages_sha256, 15374 present pages)
const SAMPLE_SHA256 = '03c2b8685986e5ee4bcfee31fc94ef61c42dfed7ec5029f6194829dc174feacb';

const dir = mkdtempSync(join(tmpdir(), 'vmcore-fix-unit-'));
test.after(() => rmSync(dir, { recursive: true, force: true }));

async function code(p: Promise<unknown>): Promise<string> {
  try {
    await p;
  } catch (e) {
    if (isVmcoreError(e)) return e.code;
    throw e;
  }
  return 'no error';
}

test('makedumpfile sample: fixed copy holds the same memory (libkdumpfile digest), header kept', async () => {
  const out = join(dir, 'sample.fixed');
  const before = readFileSync(sample);
  const r = await fixDump(sample, { out, threads: 0 });
  assert.equal(r.physBase.after, '0x0');
  assert.equal(r.physBase.source, 'proved');
  assert.equal(r.vmcoreinfo.added, false);
  assert.ok(readFileSync(sample).equals(before), 'input unchanged');
  const d = (await openDumpFiles([out])) as KdumpDump;
  try {
    const h = d.parts[0]!.h;
    assert.equal(h.physBase, 0n);
    assert.equal(h.maxMapnr, 0x8000);
    assert.equal(h.utsname.release, '6.1.0-56-cloud-amd64');
    assert.ok(d.vmcoreinfoText?.startsWith('OSRELEASE=6.1.0-56-cloud-amd64\n'));
    const dig = await hashMemory(d, { hasher: nodeSha256 });
    assert.equal(dig.pages, 15374);
    assert.equal(dig.sha256, SAMPLE_SHA256);
  } finally {
    await d.close();
  }
  // never over an existing file without --force; never over the input
  assert.equal(await code(fixDump(sample, { out, threads: 0 })), 'EXISTS');
  assert.equal(await code(fixDump(sample, { out: sample, force: true })), 'USAGE');
  assert.equal(await code(fixDump(sample, {})), 'USAGE');
  assert.equal(await code(fixDump(sample, { out, inPlace: true })), 'USAGE');
});

test('--in-place changes exactly the 8 phys_base bytes; auto restores the proved value', async () => {
  const f = join(dir, 'inplace.kdump');
  copyFileSync(sample, f);
  const orig = readFileSync(sample);
  const r = await fixDump(f, { inPlace: true, physBase: 0x1000000n });
  assert.equal(r.physBase.source, 'given');
  assert.ok(r.warnings.some((w) => w.code === 'PHYS_BASE_GIVEN_DIFFERS' && /differs from the proved value 0x0/.test(w.text)));
  // fix and info say the same about who reads which value (makedumpfile 1.7.2 fails to
  // re-filter or --dump-dmesg such a file: test/interop/peers-analyse.test.ts)
  const w = r.warnings.find((x) => x.code === 'PHYS_BASE_GIVEN_DIFFERS' && /NUMBER\(phys_base\)/.test(x.text))?.text ?? '';
  assert.match(w, /libkdumpfile, drgn and crash will use that/);
  assert.match(w, /makedumpfile \(re-filtering, --dump-dmesg\) uses the header's 0x1000000/);
  const d = await openDumpFiles([f]);
  try {
    const rep = await describeDump(d, await analyzeKernel(d));
    assert.ok(rep.warnings.some((x) => x.code === 'PHYS_BASE_HEADER_WRONG' && /makedumpfile \(re-filtering, --dump-dmesg\) trusts it/.test(x.text) && /libkdumpfile, drgn and crash take NUMBER\(phys_base\)/.test(x.text)), rep.warnings.map((x) => x.text).join('\n'));
  } finally {
    await d.close();
  }
  const now = readFileSync(f);
  assert.equal(now.length, orig.length);
  const diff: number[] = [];
  for (let i = 0; i < now.length; i++) if (now[i] !== orig[i]) diff.push(i);
  assert.ok(diff.length > 0 && diff.every((i) => i >= 4096 && i < 4104), `changed bytes ${diff.slice(0, 10)}`);
  assert.equal(now.readBigUInt64LE(4096), 0x1000000n);
  const r2 = await fixDump(f, { inPlace: true });
  assert.deepEqual(r2.changes, ['phys_base 0x1000000 -> 0x0']);
  assert.ok(readFileSync(f).equals(orig));
  const r3 = await fixDump(f, { inPlace: true });
  assert.deepEqual(r3.changes, []);
});

// ---------------------------------------------------------------------------------------------
// Synthetic QEMU-like dump

const MIB = 1 << 20;
const ROM_PFN = 0xfffc0;
const ZERO_PFN = 0x7000;

/** Little-endian ELF note bytes, by the gABI layout. */
function note(name: string, type: number, desc: Uint8Array): Uint8Array {
  const nsz = (name.length + 1 + 3) & ~3;
  const b = new Uint8Array(12 + nsz + ((desc.length + 3) & ~3));
  const dv = new DataView(b.buffer);
  dv.setUint32(0, name.length + 1, true);
  dv.setUint32(4, desc.length, true);
  dv.setUint32(8, type, true);
  b.set(new TextEncoder().encode(name), 12);
  b.set(desc, 12 + nsz);
  return b;
}

interface SynthDump {
  mem: SparseMemory;
  text: string;
  release: string;
  pages: Map<number, Uint8Array>;
}

/** Kernel memory (phys_base 0x600000) with the VMCOREINFO note and mem_section in memory only. */
function synthMemory(): SynthDump {
  const s = synthKernel({ physBase: 0x600000n, ramBytes: 128 * MIB });
  const dm = (pa: number) => (s.directBase + BigInt(pa)).toString(16);
  // mem_section (SPARSEMEM_EXTREME): 2048 root pointers at 0x2100000, root 0 at 0x2200000 with
  // section 0 (pfns 0-0x7fff, 128 MiB sections) present and with a mem_map
  for (let p = 0; p < 4; p++) s.mem.set(0x2100 + p, new Uint8Array(4096));
  const root = new Uint8Array(8);
  new DataView(root.buffer).setBigUint64(0, s.directBase + 0x2200000n, true);
  s.mem.write(0x2100000, root);
  const sec = new Uint8Array(4096);
  new DataView(sec.buffer).setBigUint64(0, 0xffffea0000000000n | 3n, true);
  s.mem.set(0x2200, sec);
  const text =
    s.vmcoreinfoText +
    [`SYMBOL(mem_section)=${dm(0x2100000)}`, 'LENGTH(mem_section)=2048', 'SIZE(mem_section)=16', 'OFFSET(mem_section.section_mem_map)=0', 'NUMBER(SECTION_SIZE_BITS)=27', 'NUMBER(MAX_PHYSMEM_BITS)=46'].join('\n') +
    '\n';
  // the kernel's own VMCOREINFO note, page aligned, as the recovery scan finds it
  s.mem.write(0x2300000, note('VMCOREINFO', 0, new TextEncoder().encode(text)));
  const pages = new Map<number, Uint8Array>();
  for (const [pfn, p] of s.mem.pages) pages.set(pfn, p);
  pages.set(ZERO_PFN, new Uint8Array(4096));
  const rom = new Uint8Array(4096).fill(0xea);
  pages.set(ROM_PFN, rom);
  return { mem: s.mem, text, release: s.release, pages };
}

/** A kdump file as QEMU writes it: header utsname machine only, phys_base 0, CPU note only. */
function qemuLikeKdump(sd: SynthDump): Uint8Array {
  const pfns = [...sd.pages.keys()].sort((a, b) => a - b);
  const maxPfn = 0x100000;
  const notes = [{ name: 'CORE', type: 1, desc: prstatusDesc({ pid: 1, rip: 0xffffffff81000000n, rsp: 0n }) }];
  const layout = new KdumpLayout({ pageSize: 4096, maxPfn, is64: true, littleEndian: true, notes, numDumpable: pfns.length, sharedZeroPage: true });
  const placer = new KdumpPagePlacer(layout, 'none');
  const file = new Uint8Array(layout.dataOffset + 4096 + pfns.length * 4096);
  const put = (o: number, b: Uint8Array) => file.set(b, o);
  put(placer.zeroPage()!.offset, placer.zeroPage()!.bytes);
  for (const pfn of pfns) {
    const page = sd.pages.get(pfn)!;
    const zero = page.every((x) => x === 0);
    const { data, descs } = placer.place({
      startPfn: pfn,
      count: 1,
      kinds: Uint8Array.of(zero ? PAGE_ZERO : PAGE_RAW),
      sizes: Uint32Array.of(zero ? 0 : 4096),
      data: zero ? new Uint8Array(0) : page,
    });
    put(data.offset, data.bytes);
    put(descs.offset, descs.bytes);
  }
  const bm = new PfnBitmap(maxPfn, layout.bitmapLen);
  for (const pfn of pfns) bm.set(pfn);
  put(layout.bitmap1Offset, bm.bytes);
  put(layout.bitmap2Offset, bm.bytes);
  const info = {
    utsname: { sysname: '', nodename: '', release: '', version: '', machine: 'x86_64', domainname: '' },
    timestampSec: 0,
    codec: 'none' as const,
    nrCpus: 1,
    physBase: 0n,
    dumpLevel: 1,
  };
  put(layout.pageSize, encodeKdumpSubHeader(layout, info));
  put(0, encodeKdumpHeader(layout, info));
  return file.subarray(0, placer.end);
}

/** makedumpfile -F flattened stream of `file`, in records of at most `rec` bytes, by the documented layout. */
function flatten(file: Uint8Array, rec = 100_000, extra: { offset: number; bytes: Uint8Array }[] = []): Uint8Array {
  const parts: Uint8Array[] = [];
  const head = new Uint8Array(4096);
  head.set(new TextEncoder().encode('makedumpfile'), 0);
  const hv = new DataView(head.buffer);
  hv.setBigInt64(16, 1n, false);
  hv.setBigInt64(24, 1n, false);
  parts.push(head);
  // the header block last, as a writer that rewrites it at the end does
  const order: number[] = [];
  for (let o = 4096; o < file.length; o += rec) order.push(o);
  order.push(0);
  for (const o of order) {
    const n = o === 0 ? 4096 : Math.min(rec, file.length - o);
    const r = new Uint8Array(16);
    const dv = new DataView(r.buffer);
    dv.setBigInt64(0, BigInt(o), false);
    dv.setBigInt64(8, BigInt(n), false);
    parts.push(r, file.subarray(o, o + n));
  }
  for (const x of extra) {
    const r = new Uint8Array(16);
    const dv = new DataView(r.buffer);
    dv.setBigInt64(0, BigInt(x.offset), false);
    dv.setBigInt64(8, BigInt(x.bytes.length), false);
    parts.push(r, x.bytes);
  }
  parts.push(new Uint8Array(16).fill(0xff));
  const out = new Uint8Array(parts.reduce((a, p) => a + p.length, 0));
  let p = 0;
  for (const x of parts) {
    out.set(x, p);
    p += x.length;
  }
  return out;
}

test('synthetic QEMU flattened kdump: seekable, proved phys_base, recovered VMCOREINFO, utsname, firmware page dropped', async () => {
  const sd = synthMemory();
  const raw = qemuLikeKdump(sd);
  const flat = join(dir, 'synth.flat');
  writeFileSync(flat, flatten(raw));
  const out = join(dir, 'synth.fixed');
  assert.equal(await code(fixDump(flat, { inPlace: true })), 'USAGE'); // flattened: never in place
  const r = await fixDump(flat, { out });
  assert.equal(r.physBase.before, '0x0');
  assert.equal(r.physBase.after, '0x600000');
  assert.equal(r.vmcoreinfo.added, true);
  assert.equal(r.vmcoreinfo.source, 'memory scan at 0x2300000');

  const bytes = readFileSync(out);
  assert.equal(bytes.subarray(0, 8).toString('latin1'), 'KDUMP   ', 'seekable kdump, not flattened');
  const d = (await openDumpFiles([out])) as KdumpDump;
  try {
    assert.equal(d.flattened, false);
    const h = d.parts[0]!.h;
    assert.equal(h.physBase, 0x600000n);
    assert.equal(h.maxMapnr, 0x8000, 'max_mapnr cut at the end of section 0');
    assert.equal(h.bitmapBlocks, 2);
    assert.equal(h.utsname.sysname, 'Linux');
    assert.equal(h.utsname.release, sd.release);
    assert.equal(h.utsname.machine, 'x86_64');
    assert.equal(h.nrCpus, 1);
    // VMCOREINFO: a note, and offset/size_vmcoreinfo pointing at exactly its text
    assert.equal(d.vmcoreinfoText, sd.text);
    assert.deepEqual(d.notes.map((n) => n.name), ['CORE', 'VMCOREINFO', 'VMCORE']); // VMCORE: the producer note
    assert.equal(bytes.subarray(h.offsetVmcoreinfo, h.offsetVmcoreinfo + h.sizeVmcoreinfo).toString('latin1'), sd.text);
    // every page of the source below the cut, byte for byte; the firmware page is gone
    for (const [pfn, page] of sd.pages) {
      if (pfn >= 0x8000) {
        assert.equal(await d.pageState(pfn), 'hole');
        continue;
      }
      assert.equal(await d.pageState(pfn), page.every((x) => x === 0) ? 'zero' : 'data', `pfn ${pfn}`);
      assert.ok(Buffer.from(await d.readPage(pfn)).equals(Buffer.from(page)), `pfn 0x${pfn.toString(16)}`);
    }
    let present = 0;
    for await (const run of d.pageRuns()) if (run.state === 'data' || run.state === 'zero') present += run.endPfn - run.startPfn;
    assert.equal(present, [...sd.pages.keys()].filter((p) => p < 0x8000).length);
  } finally {
    await d.close();
  }

  // --keep-all-pages: same fix, max_mapnr and the firmware page kept
  const out2 = join(dir, 'synth.keep');
  writeFileSync(join(dir, 'synth.raw'), raw);
  await fixDump(join(dir, 'synth.raw'), { out: out2, keepAllPages: true });
  const d2 = (await openDumpFiles([out2])) as KdumpDump;
  try {
    assert.equal(d2.parts[0]!.h.maxMapnr, 0x100000);
    assert.ok(Buffer.from(await d2.readPage(ROM_PFN)).equals(Buffer.from(sd.pages.get(ROM_PFN)!)));
    assert.equal(d2.parts[0]!.h.physBase, 0x600000n);
  } finally {
    await d2.close();
  }
});

test('--phys-base auto refuses when nothing proves a value; a given value is written', async () => {
  const sd = synthMemory();
  // no kernel: only the firmware page and a few data pages
  const pages = new Map<number, Uint8Array>([
    [0x10, new Uint8Array(4096).fill(1)],
    [0x11, new Uint8Array(4096).fill(2)],
  ]);
  const f = join(dir, 'nokernel.kdump');
  writeFileSync(f, qemuLikeKdump({ ...sd, pages }));
  assert.equal(await code(fixDump(f, { out: join(dir, 'nokernel.fixed') })), 'ADDRESS_TRANSLATION');
  const r = await fixDump(f, { out: join(dir, 'nokernel.fixed'), physBase: 0x200000n });
  assert.equal(r.physBase.after, '0x200000');
  assert.ok(r.warnings.some((w) => w.code === 'NO_VMCOREINFO' && /no VMCOREINFO/.test(w.text)));
  const d = (await openDumpFiles([join(dir, 'nokernel.fixed')])) as KdumpDump;
  try {
    assert.equal(d.parts[0]!.h.physBase, 0x200000n);
    assert.equal(d.parts[0]!.h.maxMapnr, 0x100000, 'nothing is cut without the kernel memory model');
    assert.ok(Buffer.from(await d.readPage(0x11)).equals(Buffer.from(pages.get(0x11)!)));
  } finally {
    await d.close();
  }
});

// ---------------------------------------------------------------------------------------------
// ELF

/** A QEMU paging=false style ELF64 core (p_vaddr = p_paddr, no VMCOREINFO), by the gABI layout. */
function qemuLikeElf(pages: Map<number, Uint8Array>, notes: Uint8Array): Uint8Array {
  const pfns = [...pages.keys()].sort((a, b) => a - b);
  const runs: { s: number; e: number }[] = [];
  for (const p of pfns) {
    const last = runs[runs.length - 1];
    if (last && last.e === p) last.e++;
    else runs.push({ s: p, e: p + 1 });
  }
  const phnum = 1 + runs.length;
  const notesOff = 64 + 56 * phnum;
  const dataOff = Math.ceil((notesOff + notes.length) / 4096) * 4096;
  const out = new Uint8Array(dataOff + pfns.length * 4096);
  const dv = new DataView(out.buffer);
  out.set([0x7f, 0x45, 0x4c, 0x46, 2, 1, 1], 0);
  dv.setUint16(16, 4, true); // ET_CORE
  dv.setUint16(18, 62, true); // EM_X86_64
  dv.setUint32(20, 1, true);
  dv.setBigUint64(32, 64n, true);
  dv.setUint16(52, 64, true);
  dv.setUint16(54, 56, true);
  dv.setUint16(56, phnum, true);
  dv.setUint16(58, 64, true);
  const ph = (i: number, type: number, off: number, vaddr: bigint, paddr: number, size: number) => {
    const o = 64 + 56 * i;
    dv.setUint32(o, type, true);
    dv.setBigUint64(o + 8, BigInt(off), true);
    dv.setBigUint64(o + 16, vaddr, true);
    dv.setBigUint64(o + 24, BigInt(paddr), true);
    dv.setBigUint64(o + 32, BigInt(size), true);
    dv.setBigUint64(o + 40, BigInt(size), true);
  };
  ph(0, 4, notesOff, 0n, 0, notes.length);
  out.set(notes, notesOff);
  let off = dataOff;
  runs.forEach((r, i) => {
    ph(1 + i, 1, off, BigInt(r.s * 4096), r.s * 4096, (r.e - r.s) * 4096);
    for (let p = r.s; p < r.e; p++, off += 4096) out.set(pages.get(p)!, off);
  });
  return out;
}

test('ELF: /proc/vmcore-like copy with program headers first, kernel text and direct-map p_vaddr, recovered VMCOREINFO', async () => {
  const sd = synthMemory();
  const f = join(dir, 'synth.elf');
  writeFileSync(f, qemuLikeElf(sd.pages, note('CORE', 1, prstatusDesc({ pid: 1, rip: 0xffffffff81000000n, rsp: 0n }))));
  assert.equal(await code(fixDump(f, { inPlace: true })), 'USAGE'); // only kdump headers are fixed in place
  const out = join(dir, 'synth.fixed.elf');
  const r = await fixDump(f, { out, threads: 0 });
  assert.equal(r.outputFormat, 'elf');
  assert.equal(r.physBase.after, '0x600000');
  assert.equal(r.vmcoreinfo.added, true);

  const b = readFileSync(out);
  const dv = new DataView(b.buffer, b.byteOffset, b.length);
  assert.equal(dv.getBigUint64(32, true), 64n, 'e_phoff: program headers right after the ELF header');
  const phnum = dv.getUint16(56, true);
  const START = 0xffffffff80000000n;
  const DIRECT = 0xffff888000000000n;
  let text = 0;
  let sawNote = false;
  for (let i = 0; i < phnum; i++) {
    const o = 64 + 56 * i;
    const type = dv.getUint32(o, true);
    const off = Number(dv.getBigUint64(o + 8, true));
    const vaddr = dv.getBigUint64(o + 16, true);
    const paddr = dv.getBigUint64(o + 24, true);
    const filesz = Number(dv.getBigUint64(o + 32, true));
    if (type === 4) {
      sawNote = true;
      assert.ok(b.subarray(off, off + filesz).toString('latin1').includes('VMCOREINFO\0\0' + sd.text), 'VMCOREINFO note with the kernel text');
      continue;
    }
    assert.equal(type, 1);
    if (vaddr >= START) {
      // kernel text mapping: virt - __START_KERNEL_map + phys_base = phys
      assert.equal(vaddr - START + 0x600000n, paddr);
      text++;
    } else assert.equal(vaddr, DIRECT + paddr, 'direct-map p_vaddr');
    // file bytes are the source pages
    for (let a = 0; a < filesz; a += 4096) {
      const page = sd.pages.get(Number(paddr) / 4096 + a / 4096);
      if (page) assert.ok(b.subarray(off + a, off + a + 4096).equals(Buffer.from(page)), `paddr 0x${(Number(paddr) + a).toString(16)}`);
    }
  }
  assert.ok(sawNote);
  assert.ok(text > 0, 'a PT_LOAD for the kernel text');
});

test('a flattened stream claiming a huge sparse size: only the real data is copied', async () => {
  const sd = synthMemory();
  const raw = qemuLikeKdump(sd);
  const f = join(dir, 'sparse.flat');
  writeFileSync(f, flatten(raw, 100_000, [{ offset: 2 ** 40, bytes: Uint8Array.of(1) }]));
  const out = join(dir, 'sparse.fixed');
  const r = await fixDump(f, { out });
  assert.ok(r.bytes < raw.length + 65536, `output ${r.bytes} bytes`);
  const d = (await openDumpFiles([out])) as KdumpDump;
  try {
    assert.ok(Buffer.from(await d.readPage(0x2300)).subarray(0, 4).equals(Buffer.from([11, 0, 0, 0])));
  } finally {
    await d.close();
  }
});

test('library convertDump with no options writes the header values fix writes: proved phys_base, recovered VMCOREINFO, utsname, firmware page dropped (or kept with keepAllPages)', async () => {
  const { convertDump } = await import('../../src/node/convert/index.js');
  const sd = synthMemory();
  const src = join(dir, 'synth-lib.kdump');
  writeFileSync(src, qemuLikeKdump(sd));
  for (const keepAllPages of [false, true]) {
    const out = join(dir, `synth-lib-${keepAllPages}.kdump`);
    const input = await openDumpFiles([src]);
    try {
      const s = await convertDump(input, out, { threads: 0, ...(keepAllPages ? { keepAllPages } : {}) });
      assert.equal(s.physBase, '0x600000', 'the proved value, not the header 0');
    } finally {
      await input.close();
    }
    const d = (await openDumpFiles([out])) as KdumpDump;
    try {
      const h = d.parts[0]!.h;
      assert.equal(h.physBase, 0x600000n);
      assert.equal(h.utsname.sysname, 'Linux');
      assert.equal(h.utsname.release, sd.release);
      assert.equal(d.vmcoreinfoText, sd.text);
      assert.equal(h.maxMapnr, keepAllPages ? 0x100000 : 0x8000, 'max_mapnr at the end of the memory model unless keepAllPages');
      assert.equal(await d.pageState(ROM_PFN), keepAllPages ? 'data' : 'hole');
    } finally {
      await d.close();
    }
  }
});
