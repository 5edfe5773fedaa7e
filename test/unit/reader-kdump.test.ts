import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { BufferSource, CountingSource, readExact, type ByteSource } from '../../src/core/io/source.js';
import { CachedSource } from '../../src/core/io/cached.js';
import { openDump } from '../../src/core/format/open.js';
import { nodeCodecs } from '../../src/node/codecs.js';
import { portableCodecs } from '../../src/core/codec/portable.js';
import { VmcoreError } from '../../src/core/errors.js';
import { hashMemory } from '../../src/core/hash.js';
import { buildKdump, flatten, note, patternPage, shuffled, PAGE, type KdumpSpec } from '../helpers/build.js';
import type { Dump } from '../../src/core/dump.js';

function pages(pfns: number[], zero: number[] = []): Map<number, Uint8Array> {
  const m = new Map<number, Uint8Array>();
  for (const p of pfns) m.set(p, patternPage(p));
  for (const p of zero) m.set(p, new Uint8Array(PAGE));
  return m;
}

async function runs(d: Dump) {
  const out: string[] = [];
  for await (const r of d.pageRuns()) out.push(`${r.startPfn}-${r.endPfn}:${r.state}`);
  return out;
}

const base: KdumpSpec = { maxMapnr: 64, pages: pages([1, 2, 3, 10, 40], [4, 5]), excluded: [6, 7] };

for (const codec of ['zlib', 'lzo', 'snappy', 'zstd', 'none'] as const) {
  for (const [label, registry] of [
    ['native', nodeCodecs()],
    ['portable', portableCodecs()],
  ] as const) {
    test(`kdump v6 ${codec} (${label} codecs): states, pages, zero page, excluded`, async () => {
      const d = await openDump([new BufferSource(buildKdump({ ...base, codec }), 'k.kdump')], registry);
      assert.deepEqual(await runs(d), ['0-1:hole', '1-4:data', '4-6:zero', '6-8:excluded', '8-10:hole', '10-11:data', '11-40:hole', '40-41:data', '41-64:hole']);
      for (const p of [1, 2, 3, 10, 40]) assert.deepEqual(await d.readPage(p), patternPage(p), `pfn ${p}`);
      assert.deepEqual(await d.readPage(5), new Uint8Array(PAGE));
      await assert.rejects(d.readPage(6), (e: VmcoreError) => e.code === 'PAGE_NOT_PRESENT' && /excluded/.test(e.message));
      const det = await d.details();
      if (codec !== 'none') assert.ok((det.codecs?.[codec] ?? 0) >= 4, JSON.stringify(det.codecs));
      assert.equal(det.codecs?.['zero (shared)'], 2);
      const h = await hashMemory(d);
      assert.equal(h.pages, 7);
    });
  }
}

test('header versions 1-6, 32-bit (i386) layout, big-endian', async () => {
  const expected = await hashMemory(await openDump([new BufferSource(buildKdump(base))], nodeCodecs()));
  for (const spec of [
    { headerVersion: 1 },
    { headerVersion: 2 },
    { headerVersion: 3 },
    { headerVersion: 4 },
    { headerVersion: 5 },
    { layout32: true },
    { le: false },
    { layout32: true, le: false, headerVersion: 4 },
    // i386 header whose max_mapnr (512) sits where a 64-bit header keeps block_size
    { layout32: true, maxMapnr: 512 },
  ]) {
    const d = await openDump([new BufferSource(buildKdump({ ...base, ...spec }))], nodeCodecs());
    assert.equal((await hashMemory(d)).sha256, expected.sha256, JSON.stringify(spec));
    assert.equal(d.littleEndian, spec.le ?? true);
    assert.equal(d.is64, !spec.layout32);
  }
});

test('notes blob: VMCOREINFO, PRSTATUS and QEMU notes; phys_base from the sub-header', async () => {
  const vmci = new TextEncoder().encode('OSRELEASE=6.1.0-test\nNUMBER(phys_base)=6291456\n');
  const notes = new Uint8Array([...note('CORE', 1, new Uint8Array(336)), ...note('QEMU', 0, new Uint8Array(432)), ...note('VMCOREINFO', 0, vmci)]);
  const d = await openDump([new BufferSource(buildKdump({ ...base, notes, physBase: 0x6291456n }))], nodeCodecs());
  assert.equal(d.vmcoreinfoText, 'OSRELEASE=6.1.0-test\nNUMBER(phys_base)=6291456\n');
  assert.deepEqual(d.notes.map((n) => `${n.name}/${n.type}/${n.desc.length}`), ['CORE/1/336', 'QEMU/0/432', 'VMCOREINFO/0/' + vmci.length]);
  assert.equal((await d.details()).headerPhysBase, 0x6291456n);
});

test('split set: parts in any order read as one dump; a lone part warns', async () => {
  const all = pages([1, 2, 3, 30, 33, 60], [31]);
  const a = buildKdump({ maxMapnr: 64, pages: all, split: { start: 0, end: 32 } });
  const b = buildKdump({ maxMapnr: 64, pages: all, split: { start: 32, end: 64 } });
  const whole = await hashMemory(await openDump([new BufferSource(buildKdump({ maxMapnr: 64, pages: all }))], nodeCodecs()));
  const set = await openDump([new BufferSource(b, 'b'), new BufferSource(a, 'a')], nodeCodecs());
  assert.match(set.variant, /split ×2/);
  assert.equal((await hashMemory(set)).sha256, whole.sha256);
  assert.deepEqual(await set.readPage(33), patternPage(33));
  const lone = await openDump([new BufferSource(a, 'a')], nodeCodecs());
  assert.ok(lone.warnings.some((w) => w.code === 'SPLIT_SET_INCOMPLETE' && /split set/.test(w.text)));
  await assert.rejects(openDump([new BufferSource(a, 'a'), new BufferSource(a, 'a2')], nodeCodecs()), (e: VmcoreError) => e.code === 'BAD_FIELD');
});

test('flattened: records in any order, a rewritten header record, read in place', async () => {
  const file = buildKdump(base);
  const expected = await hashMemory(await openDump([new BufferSource(file)], nodeCodecs()));
  const bogus = file.slice(0, 4096);
  bogus.fill(0xee, 600, 700); // an early, wrong copy of the header block: the later record wins
  const flat = flatten(file, 1000, (n) => shuffled(n, 7), []);
  const hdr = flatten(bogus, 4096);
  // stream: bogus header first, then the real records (which overwrite it)
  const stream = new Uint8Array([...hdr.subarray(0, hdr.length - 16), ...flat.subarray(4096)]);
  for (const f of [flat, stream]) {
    const src = new BufferSource(f, 'k.flat');
    const d = await openDump([src], nodeCodecs());
    assert.match(d.variant, /flattened/);
    assert.equal((await hashMemory(d)).sha256, expected.sha256);
  }
});

test('incomplete dump: zero descriptors and a file cut short are missing pages, the rest reads', async () => {
  const file = buildKdump({ ...base, zeroDescs: [2], status: 0x8 });
  const d = await openDump([new BufferSource(file, 'inc')], nodeCodecs());
  assert.equal(await d.pageState(2), 'missing');
  assert.ok(d.warnings.some((w) => w.code === 'MARKED_INCOMPLETE' && /incomplete/.test(w.text)));
  assert.deepEqual(await d.readPage(3), patternPage(3));
  const cut = buildKdump(base);
  const d2 = await openDump([new BufferSource(cut.subarray(0, cut.length - 100), 'cut')], nodeCodecs());
  assert.equal(await d2.pageState(40), 'missing');
  const h = await hashMemory(d2);
  assert.equal(h.missingPages, 1);
  assert.equal(h.damagedPages, 0);
  assert.equal(h.pages, 6);
});

test('hostile kdump headers and descriptors give typed errors', async () => {
  const good = buildKdump(base);
  const mutate = (f: (dv: DataView, b: Uint8Array) => void) => {
    const b = good.slice();
    f(new DataView(b.buffer), b);
    return openDump([new BufferSource(b, 'bad.kdump')], nodeCodecs());
  };
  await assert.rejects(mutate((dv) => dv.setInt32(428, 12345, true)), (e: VmcoreError) => e.code === 'BAD_FIELD' && /block_size/.test(e.message));
  await assert.rejects(mutate((dv) => dv.setUint32(436, 1 << 30, true)), (e: VmcoreError) => e.code === 'TRUNCATED' && /bitmap/.test(e.message));
  await assert.rejects(mutate((dv) => dv.setBigUint64(4096 + 96, 1n << 50n, true)), (e: VmcoreError) => e.code === 'OUT_OF_BOUNDS' || e.code === 'BAD_FIELD');
  // a descriptor whose compressed data is garbage: DECOMPRESS naming the pfn
  const descOff = (1 + 1 + 2) * 4096;
  const d = await mutate((dv, b) => {
    const off = Number(dv.getBigUint64(descOff, true));
    b.fill(0x55, off, off + 16);
  });
  await assert.rejects(d.readPage(1), (e: VmcoreError) => e.code === 'DECOMPRESS' && /pfn 0x1/.test(e.message));
  // a raw descriptor whose size is not a page
  const d2 = await mutate((dv) => {
    dv.setUint32(descOff + 8, 100, true);
    dv.setUint32(descOff + 12, 0, true);
  });
  await assert.rejects(d2.readPage(1), (e: VmcoreError) => e.code === 'DECOMPRESS' && /page_desc.size/.test(e.message));
});

test('page descriptor lookup does not scan the bitmap; one page of a 4 GiB-pfn dump reads little', async () => {
  // 2^20 pfns (4 GiB of RAM) with pages spread out
  const pf = [0, 1, 5000, 300000, 700000, 1048575];
  const file = buildKdump({ maxMapnr: 1 << 20, pages: pages(pf) });
  const src = new CountingSource(new BufferSource(file, 'big'));
  // a 4 KiB read-ahead chunk, so the count shows what the reader asks for
  const d = await openDump([new CachedSource(src, 4096, 8)], nodeCodecs());
  const before = src.bytes;
  assert.deepEqual(await d.readPage(700000), patternPage(700000));
  assert.ok(src.bytes - before < 16384, `read ${src.bytes - before} bytes`);
});

test('real makedumpfile sample: digest equals what libkdumpfile read', async () => {
  const b = await readFile(new URL('../../../samples/seabios-128M.md-c-d31.kdump', import.meta.url));
  const d = await openDump([new BufferSource(b, 'sample')], nodeCodecs());
  const h = await hashMemory(d);
  // truth: libkdumpfile read of the same file (corpus truth/…/md__md-c-d31.kdump.json)
  assert.equal(h.sha256, '03c2b8685986e5ee4bcfee31fc94ef61c42dfed7ec5029f6194829dc174feacb');
  assert.equal(h.pages, 15374);
  assert.equal(h.zeroPages, 2990);
  const nz = await hashMemory(d, { skipZero: true });
  assert.equal(nz.sha256, '9c170c51849794cc7dd8514ac085fd4bfc0685ca6851606e5b16664c4fd19088');
  const det = await d.details();
  assert.equal(det.utsname?.release, '6.1.0-56-cloud-amd64');
  assert.equal(det.headerPhysBase, 0n);
});

test('page_desc table view: offsets exact up to 2^53 - 1, -1 beyond or negative, both byte orders, set/get round trip', async () => {
  const { PageDescTable, PageDesc } = await import('../../src/core/format/kdump/structs.js');
  for (const le of [true, false]) {
    const t = PageDescTable.alloc(5, le);
    const big = 2 ** 53 - 1;
    t.set(0, big, 4096, 0);
    t.set(1, 0x1234_5678_9abc, 1000, 0x20);
    const dv = new DataView(t.bytes.buffer);
    dv.setBigInt64(2 * 24, 1n << 53n, le); // the first offset no double holds exactly
    dv.setBigInt64(3 * 24, -4096n, le);
    assert.equal(t.count, 5);
    assert.equal(t.offset(0), big);
    assert.equal(t.offset(1), 0x1234_5678_9abc);
    assert.equal(t.size(1), 1000);
    assert.equal(t.flags(1), 0x20);
    assert.equal(t.offset(2), -1, 'beyond 2^53: no data');
    assert.equal(t.offset(3), -1, 'negative: no data');
    assert.equal(t.offsetIsZero(4), true);
    assert.equal(t.offsetIsZero(3), false);
    assert.equal(t.has(5), false);
    // the same bytes through the declared struct
    const r = PageDesc.read(t.bytes, 24, le);
    assert.equal(r.offset, 0x1234_5678_9abc);
    assert.equal(r.size, 1000);
    assert.equal(r.flags, 0x20);
    t.setOffset(1, big);
    assert.equal(dv.getBigInt64(24, le), BigInt(big));
  }
});

test('readExact into a reused buffer: through the read-ahead cache, with and without readInto below it; short and bad reads fail as before', async () => {
  const bytes = new Uint8Array(10000).map((_, i) => (i * 7) & 0xff);
  const plain = new CountingSource(new BufferSource(bytes, 'plain')); // no readInto: read and copy
  const into: ByteSource = {
    name: 'into',
    size: bytes.length,
    read: async (o, n) => bytes.slice(o, o + n),
    readInto: async (o, dst) => {
      const b = bytes.subarray(o, Math.min(bytes.length, o + dst.length));
      dst.set(b);
      return b.length;
    },
  };
  for (const src of [new CachedSource(plain, 4096, 2), new CachedSource(into, 4096, 2)]) {
    const scratch = new Uint8Array(8192).fill(0xee);
    const b = await readExact(src, 1234, 5000, 'test field', scratch);
    assert.equal(b.buffer, scratch.buffer, `${src.name}: read into the caller's buffer`);
    assert.deepEqual(b, bytes.subarray(1234, 6234));
    // the buffer too small: an ordinary read
    const c = await readExact(src, 100, 9000, 'test field', scratch);
    assert.notEqual(c.buffer, scratch.buffer);
    assert.deepEqual(c, bytes.subarray(100, 9100));
    await assert.rejects(readExact(src, 9000, 2000, 'test field', scratch), (e: VmcoreError) => e.code === 'TRUNCATED' && e.field === 'test field');
  }
  // a source that returns fewer bytes than asked for: TRUNCATED
  const short: ByteSource = { name: 'short', size: 100, read: async () => new Uint8Array(0), readInto: async () => 10 };
  await assert.rejects(readExact(short, 0, 50, 'f', new Uint8Array(64)), (e: VmcoreError) => e.code === 'TRUNCATED' && /short read: 10 of 50/.test(e.message));
});
