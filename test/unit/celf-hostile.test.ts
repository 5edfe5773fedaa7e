/**
 * Hostile compressed-ELF files: every corruption must give a typed VmcoreError naming the file,
 * the offset and the field (never a bare Error, a hang or a huge allocation).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { deflateSync } from 'node:zlib';
import { SparseMemory } from '../../src/core/memory.js';
import { BufferSource } from '../../src/core/io/source.js';
import { VmcoreError } from '../../src/core/errors.js';
import { nodeCodecs } from '../../src/node/codecs.js';
import { Elf64_Ehdr, Elf64_Shdr, Elf64_Chdr } from '../../src/core/format/elf/structs.js';
import { CelfBufferSink, CelfIndexEntry, CelfIndexHeader, openCelf, writeCelf } from '../../src/core/format/celf/index.js';
import type { CodecName } from '../../src/core/codec/types.js';

const PS = 4096;
const CHUNK = 16384;

/** A page of pseudo-random letters: compresses, but not to nothing. */
function letters(seed: number): Uint8Array {
  const b = new Uint8Array(PS);
  let x = seed + 1;
  for (let i = 0; i < PS; i++) b[i] = 97 + ((x = (x * 1103515245 + 12345) >>> 0) >>> 16) % 16;
  return b;
}

async function sample(codec: CodecName | 'none' = 'zstd'): Promise<Uint8Array> {
  const m = new SparseMemory(0x200);
  for (let p = 0; p < 64; p++) m.set(p, letters(p));
  for (let p = 64; p < 96; p++) m.setState(p, 'zero');
  for (let p = 128; p < 140; p++) m.set(p, new TextEncoder().encode(`high ${p} `.repeat(500)));
  const sink = new CelfBufferSink();
  await writeCelf(m, sink, { codec, codecs: nodeCodecs(), machine: 62, notes: new Uint8Array(0), chunkSize: CHUNK });
  return sink.bytes();
}

interface Layout {
  shoff: number;
  shnum: number;
  sec(i: number): ReturnType<typeof Elf64_Shdr.read>;
  secOff(i: number): number;
  indexOff: number;
  entryOff(i: number): number;
}

function layout(f: Uint8Array): Layout {
  const eh = Elf64_Ehdr.read(f, 0, true);
  const shoff = eh.e_shoff;
  const l: Layout = {
    shoff,
    shnum: eh.e_shnum,
    sec: (i) => Elf64_Shdr.read(f, shoff + i * 64, true),
    secOff: (i) => shoff + i * 64,
    indexOff: 0,
    entryOff: (i) => l.indexOff + CelfIndexHeader.size + i * CelfIndexEntry.size,
  };
  l.indexOff = l.sec(3).sh_offset;
  return l;
}

function check(code: string, field?: RegExp) {
  return (e: unknown) => {
    assert.ok(e instanceof VmcoreError, `expected a VmcoreError, got ${String(e)}`);
    assert.equal(e.code, code, e.message);
    assert.equal(e.file, 'bad.celf');
    assert.notEqual(e.offset, undefined, `offset missing: ${e.message}`);
    if (field) assert.match(e.field ?? '', field, e.message);
    return true;
  };
}

const open = (f: Uint8Array) => openCelf(new BufferSource(f, 'bad.celf'), nodeCodecs());

async function readAll(f: Uint8Array): Promise<void> {
  const d = await open(f);
  for await (const r of d.pageRuns()) {
    if (r.state !== 'data' && r.state !== 'zero') continue;
    for (let p = r.startPfn; p < r.endPfn; p++) await d.readPage(p);
  }
}

test('sane file reads', async () => {
  await readAll(await sample());
});

test('bad Chdr ch_size: not a page multiple, too large, or not what the stream holds', async () => {
  const cases: [number | ((n: number) => number), string, RegExp][] = [
    [(n) => n + 1, 'BAD_FIELD', /ch_size/],
    [() => 2 ** 40, 'BAD_FIELD', /ch_size/],
    [() => 0, 'BAD_FIELD', /ch_size/],
    [(n) => n + PS, 'DECOMPRESS', /section 4/], // the zstd frame declares the true size
    [(n) => n - PS, 'DECOMPRESS', /section 4/],
  ];
  for (const [f0, code, field] of cases) {
    const f = await sample();
    const l = layout(f);
    const s4 = l.sec(4);
    const ch = Elf64_Chdr.read(f, s4.sh_offset, true);
    Elf64_Chdr.write({ ch_size: typeof f0 === 'number' ? f0 : f0(ch.ch_size) }, f, s4.sh_offset, true);
    await assert.rejects(readAll(f), check(code, field));
  }
  // zlib has no declared size: a smaller ch_size makes the index entries reach past the chunk
  const f = await sample('zlib');
  const l = layout(f);
  const s4 = l.sec(4);
  const ch = Elf64_Chdr.read(f, s4.sh_offset, true);
  Elf64_Chdr.write({ ch_size: ch.ch_size - PS }, f, s4.sh_offset, true);
  await assert.rejects(readAll(f), check('DECOMPRESS', /section 4/));
});

test('a chunk that inflates beyond its ch_size is DECOMPRESS (zlib)', async () => {
  const f = await sample('zlib');
  const l = layout(f);
  const s4 = l.sec(4);
  const bomb = deflateSync(new Uint8Array(CHUNK * 64)); // 1 MiB of zeros, a few hundred bytes
  assert.ok(bomb.length + 24 <= s4.sh_size);
  f.set(bomb, s4.sh_offset + 24);
  Elf64_Shdr.write({ sh_size: 24 + bomb.length }, f, l.secOff(4), true);
  await assert.rejects(readAll(f), check('DECOMPRESS', /section 4/));
});

test('a zstd frame declaring more than ch_size is DECOMPRESS before any allocation', async () => {
  const f = await sample('zstd');
  const l = layout(f);
  const s4 = l.sec(4);
  const codec = nodeCodecs().get('zstd')!;
  const bomb = codec.compress!(new Uint8Array(CHUNK * 1024)); // declares 16 MiB
  assert.ok(bomb.length + 24 <= s4.sh_size);
  f.set(bomb, s4.sh_offset + 24);
  Elf64_Shdr.write({ sh_size: 24 + bomb.length }, f, l.secOff(4), true);
  await assert.rejects(readAll(f), check('DECOMPRESS', /zstd/));
});

test('a snappy block declaring more than ch_size is DECOMPRESS', async () => {
  const f = await sample('snappy');
  const l = layout(f);
  const s4 = l.sec(4);
  f.set([0x80, 0x80, 0x80, 0x80, 0x0f], s4.sh_offset + 24); // varint 0xf0000000
  await assert.rejects(readAll(f), check('DECOMPRESS', /snappy/));
});

test('garbage compressed bytes are DECOMPRESS, an unknown ch_type is UNSUPPORTED', async () => {
  for (const codec of ['zlib', 'lzo', 'zstd'] as CodecName[]) {
    const f = await sample(codec);
    const l = layout(f);
    const s4 = l.sec(4);
    // keep a valid zstd frame header so that the stream itself is what fails
    f.fill(0xa5, s4.sh_offset + 24 + (codec === 'zstd' ? 10 : 2), s4.sh_offset + s4.sh_size);
    await assert.rejects(readAll(f), check('DECOMPRESS'), codec);
  }
  const f = await sample();
  Elf64_Chdr.write({ ch_type: 0x7fff0000 }, f, layout(f).sec(4).sh_offset, true);
  await assert.rejects(readAll(f), check('UNSUPPORTED', /ch_type/));
});

test('overlapping chunks: index entries that overlap, share a section, or sections that overlap in the file', async () => {
  // entry 1 starts inside entry 0
  let f = await sample();
  let l = layout(f);
  const e0 = CelfIndexEntry.read(f, l.entryOff(0), true);
  CelfIndexEntry.write({ paddr: e0.paddr + PS }, f, l.entryOff(1), true);
  await assert.rejects(open(f), check('BAD_FIELD', /celf_index_entry\.paddr/));
  // a data entry naming the index section or the string table as its chunk
  for (const sh of [1, 3]) {
    f = await sample();
    l = layout(f);
    CelfIndexEntry.write({ shndx: sh }, f, l.entryOff(0), true);
    await assert.rejects(open(f), (e) => e instanceof VmcoreError && ['BAD_FIELD', 'OUT_OF_BOUNDS'].includes(e.code) && /shndx/.test(e.field ?? ''));
  }
  // an entry reaching past its (uncompressed) section
  f = await sample('none');
  l = layout(f);
  CelfIndexEntry.write({ offset: l.sec(CelfIndexEntry.read(f, l.entryOff(0), true).shndx).sh_size }, f, l.entryOff(0), true);
  await assert.rejects(open(f), check('OUT_OF_BOUNDS', /offset/));
  // section 5's bytes overlap section 4's
  f = await sample();
  l = layout(f);
  Elf64_Shdr.write({ sh_offset: l.sec(4).sh_offset + 8 }, f, l.secOff(5), true);
  await assert.rejects(open(f), check('BAD_FIELD', /sh_offset/));
});

test('sizes that point outside the file are OUT_OF_BOUNDS or TRUNCATED', async () => {
  // section runs past the end
  let f = await sample();
  let l = layout(f);
  Elf64_Shdr.write({ sh_size: f.length }, f, l.secOff(4), true);
  await assert.rejects(open(f), check('OUT_OF_BOUNDS', /section 4/));
  // huge nr_entries
  f = await sample();
  l = layout(f);
  CelfIndexHeader.write({ nr_entries: 2 ** 40 }, f, l.indexOff, true);
  await assert.rejects(open(f), check('OUT_OF_BOUNDS', /nr_entries/));
  // e_shnum 0 and a huge count in section 0
  f = await sample();
  l = layout(f);
  Elf64_Ehdr.write({ e_shnum: 0 }, f, 0, true);
  Elf64_Shdr.write({ sh_size: 2 ** 40 }, f, l.shoff, true);
  await assert.rejects(open(f), check('OUT_OF_BOUNDS', /section count/));
  // file cut short
  f = (await sample()).slice(0, 20000);
  await assert.rejects(open(f), (e) => e instanceof VmcoreError && ['OUT_OF_BOUNDS', 'TRUNCATED'].includes(e.code));
  // an entry beyond max_pfn
  f = await sample();
  l = layout(f);
  CelfIndexHeader.write({ max_pfn: 4 }, f, l.indexOff, true);
  await assert.rejects(open(f), check('OUT_OF_BOUNDS', /size/));
});

test('uncompressed section of the wrong size, unaligned entry, unknown kind, bad magic are typed errors', async () => {
  let f = await sample();
  let l = layout(f);
  Elf64_Shdr.write({ sh_flags: 0n }, f, l.secOff(4), true); // compressed bytes presented as raw memory
  await assert.rejects(open(f), check('OUT_OF_BOUNDS', /offset/));
  f = await sample();
  l = layout(f);
  CelfIndexEntry.write({ paddr: 100 }, f, l.entryOff(0), true);
  await assert.rejects(open(f), check('BAD_FIELD'));
  f = await sample();
  l = layout(f);
  CelfIndexEntry.write({ kind: 9 }, f, l.entryOff(0), true);
  await assert.rejects(open(f), check('BAD_FIELD', /kind/));
  f = await sample();
  l = layout(f);
  f[l.indexOff] = 0x41;
  await assert.rejects(open(f), check('BAD_MAGIC', /magic/));
});

test('random corruption of headers, index and chunks never gives a bare Error', async () => {
  const base = await sample();
  const l = layout(base);
  const regions: [number, number][] = [
    [0, 64],
    [l.indexOff, l.indexOff + 64 + 8 * 32],
    [l.shoff, base.length],
    [l.sec(4).sh_offset, l.sec(4).sh_offset + 64],
  ];
  let seed = 99;
  const rnd = (n: number) => ((seed = (seed * 1103515245 + 12345) >>> 0) >>> 8) % n;
  let typed = 0;
  for (let i = 0; i < 300; i++) {
    const f = base.slice();
    const [a, b] = regions[i % regions.length]!;
    for (let k = 0; k < 1 + rnd(4); k++) f[a + rnd(b - a)] = rnd(256);
    try {
      await readAll(f);
    } catch (e) {
      assert.ok(e instanceof VmcoreError, `mutation ${i}: ${e instanceof Error ? e.stack : String(e)}`);
      typed++;
    }
  }
  assert.ok(typed > 50, `${typed} corruptions detected`);
});
