/**
 * Compressed ELF (celf): round trips of synthetic memory through the writer and the reader,
 * checked page by page against the source memory (the independent truth), plus the ELF-level
 * invariants of the specification (docs/compressed-elf.md).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { SparseMemory } from '../../src/core/memory.js';
import { buildNotes } from '../../src/core/format/elf/notes.js';
import { BufferSource, CountingSource } from '../../src/core/io/source.js';
import { isPresent, type PageRun, type PageState, type PhysicalMemory } from '../../src/core/dump.js';
import { nodeCodecs } from '../../src/node/codecs.js';
import { portableCodecs } from '../../src/core/codec/portable.js';
import { MapCodecRegistry, type CodecName } from '../../src/core/codec/types.js';
import { Elf64_Ehdr, Elf64_Shdr, Elf64_Phdr, PT_LOAD, PT_NOTE, SHF_COMPRESSED, SHF_ALLOC } from '../../src/core/format/elf/structs.js';
import { CelfBufferSink, CelfLayout, checkChunkSize, compressChunk, isCelf, openCelf, parseChunkSize, writeCelf, type WriteCelfOptions } from '../../src/core/format/celf/index.js';
import { openDump } from '../../src/core/format/open.js';
import { CachedSource } from '../../src/core/io/cached.js';

const PS = 4096;
const enc = new TextEncoder();

/** Deterministic page content that compresses like real text. */
function pageText(pfn: number): Uint8Array {
  return enc.encode(`pfn ${pfn.toString(16)} `.repeat(1000).slice(0, PS));
}

/** Memory with data, zero-state pages, data pages that are all zero, excluded, missing, holes, and RAM above 4 GiB. */
function sampleMemory(): SparseMemory {
  const m = new SparseMemory(0x140000); // 5 GiB
  for (let p = 0; p < 37; p++) m.set(p, pageText(p));
  for (let p = 37; p < 60; p++) m.set(p, new Uint8Array(PS)); // data pages that happen to be zero
  m.set(45, pageText(45)); // one non-zero page inside the zero run
  for (let p = 60; p < 200; p++) m.setState(p, 'zero');
  for (let p = 200; p < 210; p++) m.setState(p, 'excluded');
  for (let p = 210; p < 212; p++) m.setState(p, 'missing');
  for (let p = 0x100000 - 5; p < 0x100000 + 40; p++) m.set(p, pageText(p)); // crosses 4 GiB
  const rnd = new Uint8Array(PS);
  let x = 12345;
  for (let i = 0; i < PS; i++) rnd[i] = (x = (x * 1103515245 + 12345) >>> 0) >>> 24; // incompressible
  m.set(0x120000, rnd);
  m.set(0x13ffff, pageText(0x13ffff)); // last page
  return m;
}

function notes(le = true): Uint8Array {
  return buildNotes(
    [
      { name: 'CORE', type: 1, desc: new Uint8Array(336).fill(7) },
      { name: 'VMCOREINFO', type: 0, desc: enc.encode('OSRELEASE=6.1.0\nPAGESIZE=4096\n') },
    ],
    le,
  );
}

async function toCelf(mem: PhysicalMemory, o: Partial<WriteCelfOptions> = {}): Promise<Uint8Array> {
  const sink = new CelfBufferSink();
  await writeCelf(mem, sink, { codec: 'zstd', codecs: nodeCodecs(), machine: 62, notes: notes(o.littleEndian ?? true), chunkSize: 16384, ...o });
  return sink.bytes();
}

/** The corpus digest: SHA-256 over (pfn u64 LE || page) of present pages in pfn order. */
async function pagesSha256(mem: PhysicalMemory): Promise<string> {
  const h = createHash('sha256');
  const pfnBuf = Buffer.alloc(8);
  for await (const r of mem.pageRuns()) {
    if (!isPresent(r.state)) continue;
    for (let p = r.startPfn; p < r.endPfn; p++) {
      pfnBuf.writeBigUInt64LE(BigInt(p));
      h.update(pfnBuf);
      h.update(await mem.readPage(p));
    }
  }
  return h.digest('hex');
}

async function runs(mem: PhysicalMemory): Promise<PageRun[]> {
  const out: PageRun[] = [];
  for await (const r of mem.pageRuns()) out.push(r);
  return out;
}

/** Collapse 'zero' into 'data' (a writer may store zero pages either way). */
function presence(rs: PageRun[]): string {
  const m: PageRun[] = [];
  for (const r of rs) {
    const s: PageState = r.state === 'zero' ? 'data' : r.state;
    const last = m[m.length - 1];
    if (last && last.state === s && last.endPfn === r.startPfn) last.endPfn = r.endPfn;
    else m.push({ ...r, state: s });
  }
  return m.map((r) => `${r.startPfn.toString(16)}-${r.endPfn.toString(16)}:${r.state}`).join(' ');
}

for (const codec of ['zstd', 'zlib', 'lzo', 'snappy', 'none'] as const) {
  test(`celf round trip (${codec}): same pages, states and digest as the source memory`, async () => {
    const src = sampleMemory();
    const file = await toCelf(src, { codec });
    const d = await openCelf(new BufferSource(file, 'rt.celf'), nodeCodecs());
    assert.equal(d.format, 'celf');
    assert.equal(d.maxPfn, src.maxPfn);
    assert.equal(d.arch, 'x86_64');
    assert.equal(presence(await runs(d)), presence(await runs(src)));
    assert.equal(await pagesSha256(d), await pagesSha256(src));
    for (const pfn of [0, 36, 45, 59, 60, 199, 0xfffff, 0x100000, 0x120000, 0x13ffff]) {
      assert.deepEqual(await d.readPage(pfn), await src.readPage(pfn), `pfn 0x${pfn.toString(16)}`);
    }
    assert.equal(await d.pageState(205), 'excluded');
    assert.equal(await d.pageState(211), 'missing');
    assert.equal(await d.pageState(300), 'hole');
    await assert.rejects(d.readPage(205), (e: { code?: string }) => e.code === 'PAGE_NOT_PRESENT');
    // readPhys across 4 GiB and across a hole with fillMissing
    const cross = await d.readPhys(0x100000000 - 100, 200);
    assert.deepEqual(cross, await src.readPhys(0x100000000 - 100, 200));
    const filled = await d.readPhys(212 * PS - 10, 20, { fillMissing: true });
    assert.equal(filled.filter((b) => b !== 0).length, 0);
    assert.equal(d.vmcoreinfoText, 'OSRELEASE=6.1.0\nPAGESIZE=4096\n');
    assert.equal(d.notes.length, 2);
  });
}

test('celf is what a standard ELF reader sees: ET_CORE, one PT_NOTE, no PT_LOAD, memory only in non-alloc sections', async () => {
  const file = await toCelf(sampleMemory());
  const dv = new DataView(file.buffer, file.byteOffset, file.length);
  const eh = Elf64_Ehdr.read(file, 0, true);
  assert.equal(eh.e_type, 4);
  assert.equal(eh.e_phnum, 1);
  const ph = Elf64_Phdr.read(file, eh.e_phoff, true);
  assert.equal(ph.p_type, PT_NOTE);
  assert.notEqual(ph.p_type, PT_LOAD);
  let compressed = 0;
  for (let i = 0; i < eh.e_shnum; i++) {
    const sh = Elf64_Shdr.read(file, eh.e_shoff + i * 64, true);
    assert.equal(sh.sh_flags & BigInt(SHF_ALLOC), 0n, `section ${i} must not be SHF_ALLOC`);
    if (sh.sh_flags & BigInt(SHF_COMPRESSED)) {
      compressed++;
      assert.equal(sh.sh_offset % 8, 0, 'Chdr aligned');
      assert.equal(dv.getUint32(sh.sh_offset, true), 2, 'ELFCOMPRESS_ZSTD');
    }
  }
  assert.ok(compressed > 3);
  assert.equal(eh.e_shoff + eh.e_shnum * 64, file.length);
});

test('zero memory costs no file space; data compresses', async () => {
  const big = new SparseMemory(0x40000);
  for (let p = 0; p < 0x1000; p++) big.setState(p, 'zero');
  for (let p = 0x1000; p < 0x2000; p++) big.set(p, new Uint8Array(PS)); // zero content, 'data' state
  big.set(0x3000, pageText(1));
  const file = await toCelf(big);
  assert.ok(file.length < 4096, `32 MiB of zero memory + 1 page stored in ${file.length} bytes`);
  const d = await openCelf(new BufferSource(file), nodeCodecs());
  assert.equal(await d.pageState(0x1800), 'zero');
  assert.deepEqual(await d.readPage(0x3000), pageText(1));
});

test('reading one page reads one chunk, not the file', async () => {
  const m = new SparseMemory(0x1000);
  for (let p = 0; p < 0x1000; p++) m.set(p, pageText(p * 7919));
  const file = await toCelf(m, { chunkSize: 65536 });
  const cs = new CountingSource(new BufferSource(file));
  const d = await openCelf(cs, nodeCodecs());
  const before = cs.bytes;
  assert.deepEqual(await d.readPage(0x7a3), pageText(0x7a3 * 7919));
  const used = cs.bytes - before;
  assert.ok(used > 0 && used < 65536, `one chunk read: ${used} bytes`);
  const again = cs.bytes;
  await d.readPage(0x7a4); // same chunk: cached
  assert.equal(cs.bytes, again);
});

test('more than 65535 sections: e_shnum 0 and the count in section 0 sh_size', async () => {
  // 70000 one-page chunks (every other page present), placed with the layout API directly
  const n = 70000;
  const layout = new CelfLayout({ machine: 62, pageSize: PS, maxPfn: 2 * n, notes: notes(), chunkSize: PS, codec: 'lzo' });
  const lzo = nodeCodecs().get('lzo')!;
  const sink = new CelfBufferSink();
  await sink.write(layout.head());
  const page = new Uint8Array(PS).fill(0x5a);
  for (let i = 0; i < n; i++) {
    new DataView(page.buffer).setUint32(0, 2 * i, true);
    const placed = layout.addWindow(2 * i * PS, compressChunk(lzo, page), [{ paddr: 2 * i * PS, size: PS, kind: 'data' }]);
    for (const piece of placed.pieces) await sink.write(piece);
  }
  const fin = layout.finish();
  await sink.write(fin.tail);
  await sink.writeAt(0, fin.header);
  const file = sink.bytes();
  assert.equal(file.length, fin.size);
  const eh = Elf64_Ehdr.read(file, 0, true);
  assert.equal(eh.e_shnum, 0);
  const sh0 = Elf64_Shdr.read(file, eh.e_shoff, true);
  assert.equal(sh0.sh_size, n + 4);
  const d = await openCelf(new BufferSource(file), nodeCodecs());
  for (const i of [0, 65535, 65536, n - 1]) {
    const p = await d.readPage(2 * i);
    assert.equal(new DataView(p.buffer, p.byteOffset).getUint32(0, true), 2 * i);
    assert.equal(await d.pageState(2 * i + 1), 'hole');
  }
  assert.equal((await d.details()).header.chunkSections, n);
});

test('portable codecs read what native codecs wrote (zlib, zstd, lzo, snappy)', async () => {
  for (const codec of ['zlib', 'zstd', 'lzo', 'snappy'] as CodecName[]) {
    const src = sampleMemory();
    const file = await toCelf(src, { codec });
    const d = await openCelf(new BufferSource(file), portableCodecs());
    assert.equal(await pagesSha256(d), await pagesSha256(src), codec);
  }
});

test('a missing codec is CODEC_UNAVAILABLE when a page is read, not at open', async () => {
  const file = await toCelf(sampleMemory(), { codec: 'snappy' });
  const d = await openCelf(new BufferSource(file, 'x.celf'), new MapCodecRegistry([]));
  await assert.rejects(d.readPage(0), (e: { code?: string; file?: string }) => e.code === 'CODEC_UNAVAILABLE' && e.file === 'x.celf');
});

test('openDump routes celf to the celf reader and plain ELF away from it', async () => {
  const file = await toCelf(sampleMemory());
  const src = new BufferSource(file, 'a.celf');
  assert.equal(await isCelf(src), true);
  const d = await openDump([src], nodeCodecs());
  assert.equal(d.format, 'celf');
  // a plain ELF core (no celf index section) is not celf
  const plain = file.slice(0, 120);
  Elf64_Ehdr.write({ e_shoff: 0, e_shnum: 0, e_shstrndx: 0 }, plain, 0, true);
  assert.equal(await isCelf(new BufferSource(plain)), false);
});

test('opening: a failing read while probing for celf is that error, not a fall-back to plain ELF', async () => {
  const file = await toCelf(sampleMemory());
  const inner = new BufferSource(file, 'flaky.celf');
  // the section headers (read only by the celf probe) sit on a failing disk block
  const shoff = Number(Elf64_Ehdr.read(file, 0, true).e_shoff);
  const flaky = {
    name: inner.name,
    size: inner.size,
    async read(offset: number, length: number) {
      if (offset + length > shoff) throw new Error('EIO: disk read failed');
      return inner.read(offset, length);
    },
  };
  // small read-ahead chunks, so that the probe's own reads reach the source
  await assert.rejects(openDump([new CachedSource(flaky, 64, 1)], nodeCodecs()), /EIO: disk read failed/);
  // the same file on a good disk opens as celf
  assert.equal((await openDump([new CachedSource(inner, 64, 1)], nodeCodecs())).format, 'celf');
});

test('big-endian celf round trip', async () => {
  const src = sampleMemory();
  const file = await toCelf(src, { littleEndian: false, codec: 'zlib', machine: 22 });
  assert.equal(file[5], 2);
  const d = await openCelf(new BufferSource(file), nodeCodecs());
  assert.equal(d.littleEndian, false);
  assert.equal(d.arch, 's390x');
  assert.equal(await pagesSha256(d), await pagesSha256(src));
});

test('a plain ELF reader (no celf support) sees notes and no memory: never zeros or compressed bytes', async () => {
  const { ElfDump } = await import('../../src/core/format/elf/reader.js');
  const file = await toCelf(sampleMemory());
  let plain;
  try {
    plain = await ElfDump.open(new BufferSource(file, 'plain-view.celf'));
  } catch (e) {
    // refusing the file is as good as seeing no memory
    assert.ok(e instanceof Error);
    return;
  }
  for await (const r of plain.pageRuns()) assert.ok(r.state === 'hole' || r.state === 'missing', `plain ELF view has ${r.state} pages`);
  await assert.rejects(plain.readPage(0));
  await assert.rejects(plain.readPhys(0x100000000, 16));
  assert.ok(plain.notes.some((n) => n.name === 'VMCOREINFO'), 'notes stay readable');
});

test('chunk size option: parsed with K/M suffixes, power of two between 4 KiB and 64 MiB', () => {
  assert.equal(parseChunkSize('65536'), 65536);
  assert.equal(parseChunkSize('64K'), 65536);
  assert.equal(parseChunkSize('64KiB'), 65536);
  assert.equal(parseChunkSize('1M'), 1 << 20);
  assert.throws(() => parseChunkSize('64Q'), (e: { code?: string }) => e.code === 'USAGE');
  assert.throws(() => checkChunkSize(3000, 4096), (e: { code?: string }) => e.code === 'USAGE');
  assert.throws(() => checkChunkSize(128 << 20, 4096), (e: { code?: string }) => e.code === 'USAGE');
  assert.equal(checkChunkSize(4096, 4096), 4096);
});

test('extended numbering: e_shstrndx = SHN_XINDEX (index in sh_link) and e_phnum = PN_XNUM (count in sh_info)', async () => {
  const file = await toCelf(sampleMemory());
  const eh = Elf64_Ehdr.read(file, 0, true);
  Elf64_Ehdr.write({ e_shstrndx: 0xffff, e_phnum: 0xffff }, file, 0, true);
  Elf64_Shdr.write({ sh_link: eh.e_shstrndx, sh_info: 1 }, file, eh.e_shoff, true);
  const d = await openCelf(new BufferSource(file), nodeCodecs());
  assert.equal(d.notes.length, 2);
  assert.deepEqual(await d.readPage(3), pageText(3));
});

test('an interrupted writer marks the file incomplete; the reader says so', async () => {
  const layout = new CelfLayout({ machine: 62, pageSize: PS, maxPfn: 64, notes: notes(), chunkSize: 16384, codec: 'zstd' });
  const sink = new CelfBufferSink();
  await sink.write(layout.head());
  const placed = layout.addWindow(0, compressChunk(nodeCodecs().get('zstd'), pageText(0)), [{ paddr: 0, size: PS, kind: 'data' }]);
  for (const p of placed.pieces) await sink.write(p);
  const fin = layout.finish({ incomplete: true });
  await sink.write(fin.tail);
  await sink.writeAt(0, fin.header);
  const d = await openCelf(new BufferSource(sink.bytes()), nodeCodecs());
  assert.equal((await d.details()).incomplete, true);
  assert.ok(d.warnings.some((w) => w.code === 'MARKED_INCOMPLETE' && /incomplete/.test(w.text)));
  assert.deepEqual(await d.readPage(0), pageText(0));
  assert.equal(await d.pageState(1), 'hole');
});
