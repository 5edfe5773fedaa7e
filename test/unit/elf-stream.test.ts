import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { gunzipSync } from 'node:zlib';
import { createHash } from 'node:crypto';
import { ElfStream, type PageBatch } from '../../src/node/stream/elf-stream.js';
import { VmcoreError } from '../../src/core/errors.js';

const fixture = (n: string) => new URL(`../../../test/fixtures/${n}`, import.meta.url);

/** Feed a buffer in chunks of varying, awkward sizes. */
async function* chunks(buf: Uint8Array, sizes = [7, 4096, 1, 65536, 333]): AsyncGenerator<Uint8Array> {
  let i = 0;
  for (let p = 0; p < buf.length; i++) {
    const n = sizes[i % sizes.length]!;
    yield buf.subarray(p, Math.min(buf.length, p + n));
    p += n;
  }
}

async function collect(s: ElfStream): Promise<PageBatch[]> {
  const out: PageBatch[] = [];
  for await (const b of s.pages()) out.push(b);
  return out;
}

/** Segments as readelf printed them (independent of the reader under test). */
function readelfLoads(text: string): { offset: number; paddr: number; filesz: number }[] {
  const out = [];
  for (const line of text.split('\n')) {
    const m = /^\s+LOAD\s+0x([0-9a-f]+)\s+0x[0-9a-f]+\s+0x([0-9a-f]+)\s+0x([0-9a-f]+)/.exec(line);
    if (m) out.push({ offset: parseInt(m[1]!, 16), paddr: parseInt(m[2]!, 16), filesz: parseInt(m[3]!, 16) });
  }
  return out;
}

test('streams a real QEMU 7.2 ELF dump: notes first, then every page of every PT_LOAD', async () => {
  const elf = gunzipSync(readFileSync(fixture('qemu-prelaunch-2m.elf.gz')));
  const loads = readelfLoads(readFileSync(fixture('qemu-prelaunch-2m.readelf.txt'), 'utf8'));
  assert.equal(loads.length, 5);
  const s = await ElfStream.open(chunks(elf), { name: 'qemu.elf', batchPages: 16 });
  // a guest still in real mode: QEMU writes EM_386 into an ELF64 core (readelf: "Intel 80386")
  assert.match(readFileSync(fixture('qemu-prelaunch-2m.readelf.txt'), 'utf8'), /Machine:\s+Intel 80386/);
  assert.equal(s.info.arch, 'i386');
  assert.deepEqual(s.info.notes.map((n) => n.name), ['CORE', 'QEMU']);
  assert.deepEqual(s.info.segments.map((x) => [x.offset, x.paddr, x.filesz]), loads.map((l) => [l.offset, l.paddr, l.filesz]));
  assert.equal(s.info.maxPfn, 0x100000); // up to the BIOS ROM below 4 GiB

  // Expected: digest over (pfn, page) computed from the file at readelf's offsets.
  const want = createHash('sha256');
  let wantPages = 0;
  for (const l of loads) {
    for (let o = 0; o < l.filesz; o += 4096) {
      const pfn = Buffer.alloc(8);
      pfn.writeBigUInt64LE(BigInt((l.paddr + o) / 4096));
      want.update(pfn).update(elf.subarray(l.offset + o, l.offset + o + 4096));
      wantPages++;
    }
  }
  const got = createHash('sha256');
  let gotPages = 0;
  let lastPfn = -1;
  for (const b of await collect(s)) {
    assert.ok(b.data, 'QEMU dumps have no zero tails');
    assert.equal(b.data.length, b.count * 4096);
    assert.ok(b.pfn > lastPfn, 'pages come in ascending order');
    for (let i = 0; i < b.count; i++) {
      const pfn = Buffer.alloc(8);
      pfn.writeBigUInt64LE(BigInt(b.pfn + i));
      got.update(pfn).update(b.data.subarray(i * 4096, (i + 1) * 4096));
      gotPages++;
    }
    lastPfn = b.pfn + b.count - 1;
  }
  assert.equal(gotPages, wantPages);
  assert.equal(got.digest('hex'), want.digest('hex'));
  assert.equal(s.bytesRead, elf.length, 'the section data after memory is consumed too');
});

async function openErr(buf: Uint8Array): Promise<VmcoreError> {
  try {
    const s = await ElfStream.open(chunks(buf), { name: 'bad' });
    await collect(s);
  } catch (e) {
    assert.ok(e instanceof VmcoreError, `typed error, got ${String(e)}`);
    return e;
  }
  assert.fail('expected an error');
}

test('hostile or broken input raises typed errors', async () => {
  const elf = new Uint8Array(gunzipSync(readFileSync(fixture('qemu-prelaunch-2m.elf.gz'))));
  const dv = new DataView(elf.buffer, elf.byteOffset);
  const phoff = Number(dv.getBigUint64(32, true));

  assert.equal((await openErr(new TextEncoder().encode('hello world, not an elf file'))).code, 'BAD_MAGIC');
  assert.equal((await openErr(elf.subarray(0, 100))).code, 'TRUNCATED');
  // cut inside guest memory
  const cut = await openErr(elf.subarray(0, 0x150000));
  assert.equal(cut.code, 'TRUNCATED');
  assert.equal(cut.offset, 0x150000);

  const e32 = elf.slice();
  e32[4] = 1;
  assert.equal((await openErr(e32)).code, 'UNSUPPORTED');

  const manyPh = elf.slice();
  new DataView(manyPh.buffer).setUint16(56, 0xfffe, true); // e_phnum: runs into memory, not headers
  const e = await openErr(manyPh);
  assert.ok(['TRUNCATED', 'OUT_OF_BOUNDS', 'UNSUPPORTED', 'BAD_FIELD'].includes(e.code), e.code);

  const hugeNote = elf.slice();
  new DataView(hugeNote.buffer).setBigUint64(phoff + 32, 1n << 40n, true); // PT_NOTE p_filesz
  assert.equal((await openErr(hugeNote)).code, 'OUT_OF_BOUNDS');

  const farPaddr = elf.slice();
  new DataView(farPaddr.buffer).setBigUint64(phoff + 56 + 24, 1n << 62n, true); // 1st PT_LOAD p_paddr
  assert.equal((await openErr(farPaddr)).code, 'OUT_OF_BOUNDS');

  const overlap = elf.slice();
  // 2nd PT_LOAD starts inside the 1st one's file range at a different paddr delta
  new DataView(overlap.buffer).setBigUint64(phoff + 2 * 56 + 8, BigInt(0x480 + 0x1000), true);
  assert.equal((await openErr(overlap)).code, 'UNSUPPORTED');

  const backwards = elf.slice();
  // 1st PT_LOAD points back into the headers
  new DataView(backwards.buffer).setBigUint64(phoff + 56 + 8, 0x100n, true);
  assert.equal((await openErr(backwards)).code, 'UNSUPPORTED');
});

test('zero tails (p_memsz > p_filesz) come as data-less batches', async () => {
  const elf = new Uint8Array(gunzipSync(readFileSync(fixture('qemu-prelaunch-2m.elf.gz'))));
  const dv = new DataView(elf.buffer);
  const phoff = Number(dv.getBigUint64(32, true));
  // last PT_LOAD (ROM at 0xfffc0000, 64 pages): keep 16 pages in the file, 48 as zero tail
  const last = phoff + 5 * 56;
  dv.setBigUint64(last + 32, BigInt(16 * 4096), true);
  const s = await ElfStream.open(chunks(elf), { name: 'tail' });
  const batches = await collect(s);
  const tail = batches.filter((b) => !b.data);
  assert.deepEqual(tail, [{ pfn: 0xfffc0 + 16, count: 48 }]);
  const dataPages = batches.filter((b) => b.data).reduce((n, b) => n + b.count, 0);
  assert.equal(dataPages, (0xc0000 + 0x20000 + 0x20000 + 0x100000) / 4096 + 16);
});

test('e_phnum = PN_XNUM: the real count comes from section header 0 (QEMU writes section headers first)', async () => {
  const elf = new Uint8Array(gunzipSync(readFileSync(fixture('qemu-prelaunch-2m.elf.gz'))));
  const dv = new DataView(elf.buffer);
  const phnum = dv.getUint16(56, true);
  const shoff = Number(dv.getBigUint64(40, true));
  assert.equal(shoff, 64, 'QEMU 7.2 puts the section headers right after the ELF header');
  dv.setUint16(56, 0xffff, true);
  dv.setUint32(shoff + 44, phnum, true); // sh_info of section header 0
  const s = await ElfStream.open(chunks(elf), { name: 'xnum' });
  assert.equal(s.info.segments.length, phnum - 1);
  assert.deepEqual(s.info.notes.map((n) => n.name), ['CORE', 'QEMU']);
});

test('one ELF header parser: the stream and the file reader refuse the same hostile headers with the same code', async () => {
  const { openDump } = await import('../../src/core/format/open.js');
  const { BufferSource } = await import('../../src/core/io/source.js');
  const { portableCodecs } = await import('../../src/core/codec/portable.js');
  const { ELF_LIMITS } = await import('../../src/core/limits.js');
  const elf = new Uint8Array(gunzipSync(readFileSync(fixture('qemu-prelaunch-2m.elf.gz'))));
  const dv0 = new DataView(elf.buffer, elf.byteOffset);
  const phoff = Number(dv0.getBigUint64(32, true));
  const phnum = dv0.getUint16(56, true);
  const types = Array.from({ length: phnum }, (_, i) => dv0.getUint32(phoff + i * 56, true));
  const load = types.indexOf(1);
  const notePh = types.indexOf(4);
  assert.ok(load >= 0 && notePh >= 0, 'the fixture has a PT_NOTE and a PT_LOAD');
  const cases: [string, (d: DataView) => void, string][] = [
    ['e_type', (d) => d.setUint16(16, 2, true), 'UNSUPPORTED'],
    ['e_phentsize', (d) => d.setUint16(54, 40, true), 'BAD_FIELD'],
    ['p_filesz > p_memsz', (d) => d.setBigUint64(phoff + load * 56 + 40, 1n, true), 'BAD_FIELD'],
    ['PT_LOAD beyond 2^52', (d) => d.setBigUint64(phoff + load * 56 + 24, 1n << 52n, true), 'OUT_OF_BOUNDS'],
    ['PT_NOTE over the limit', (d) => d.setBigUint64(phoff + notePh * 56 + 32, BigInt(ELF_LIMITS.maxNoteBytes + 1), true), 'OUT_OF_BOUNDS'],
  ];
  for (const [name, mut, code] of cases) {
    const b = elf.slice();
    mut(new DataView(b.buffer, b.byteOffset));
    assert.equal((await openErr(b)).code, code, `stream: ${name}`);
    await assert.rejects(openDump([new BufferSource(b, 'bad.elf')], portableCodecs()), (e: unknown) => e instanceof VmcoreError && e.code === code, `file reader: ${name}`);
  }
});
