// Large reads that reuse memory instead of touching fresh memory each time (a page fault per
// 4 KiB, which on some machines costs more than the read: bench/README.md, "Page faults"): the
// read-ahead cache's chunks and readPhys into a caller's buffer.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { BufferSource, type ByteSource } from '../../src/core/io/source.js';
import { CachedSource } from '../../src/core/io/cached.js';
import { openDump } from '../../src/core/format/open.js';
import { readPhysGeneric } from '../../src/core/memory.js';
import { nodeCodecs } from '../../src/node/codecs.js';
import { buildKdump, patternPage, PAGE } from '../helpers/build.js';

/** A source with readInto over a Node Buffer, as FileSource is (Buffer.prototype.slice is a view, not a copy). */
function nodeBufferSource(bytes: Uint8Array): ByteSource {
  const buf = Buffer.from(bytes);
  return {
    name: 'buffer',
    size: buf.length,
    read: async (o, n) => Buffer.from(buf.subarray(o, Math.min(buf.length, o + n))),
    readInto: async (o, dst) => {
      const b = buf.subarray(o, Math.min(buf.length, o + dst.length));
      dst.set(b);
      return b.length;
    },
  };
}

test('CachedSource: what a read returned stays as it was after its chunk is evicted and the chunk memory is read into again', async () => {
  const bytes = new Uint8Array(64 * 1024).map((_, i) => (i * 13 + (i >> 12)) & 0xff);
  for (const inner of [nodeBufferSource(bytes), new BufferSource(bytes)]) {
    const src = new CachedSource(inner, 4096, 2);
    const kept: { off: number; b: Uint8Array }[] = [];
    // sixteen chunks through a cache of two: every chunk is evicted, its memory reused
    for (let c = 0; c < 16; c++) kept.push({ off: c * 4096 + 100, b: await src.read(c * 4096 + 100, 300) });
    for (const { off, b } of kept) assert.deepEqual(b, bytes.subarray(off, off + 300), `read at ${off} changed after its chunk was reused`);
  }
});

test('readPhys into a caller buffer: the same bytes as without, a view of that buffer; a reused buffer holding old bytes reads zero pages as zero', async () => {
  // 16 pages: data, a shared zero page, data again (a kdump read through storedPages)
  const pages = new Map<number, Uint8Array>();
  for (let p = 0; p < 16; p++) pages.set(p, p === 5 ? new Uint8Array(PAGE) : patternPage(p + 1));
  const file = buildKdump({ maxMapnr: 32, pages, codec: 'zlib' });
  const dump = await openDump([new BufferSource(file, 'k.kdump')], nodeCodecs());
  const plain = await dump.readPhys(0, 16 * PAGE);
  const into = new Uint8Array(16 * PAGE).fill(0xa5);
  const got = await dump.readPhys(0, 16 * PAGE, { into });
  assert.equal(got.buffer, into.buffer, 'the result is the caller buffer');
  assert.deepEqual(got, plain);
  assert.ok(got.subarray(5 * PAGE, 6 * PAGE).every((b) => b === 0), 'the zero page is zero, not the old bytes');
  // the generic page-by-page path (ELF, celf readers): the same
  const into2 = new Uint8Array(16 * PAGE).fill(0x5a);
  const generic = await readPhysGeneric(dump, 0, 16 * PAGE, { into: into2 });
  assert.equal(generic.buffer, into2.buffer);
  assert.deepEqual(generic, plain);
  // fillMissing: pages 16..17 are not in the dump, read as zero over the old bytes
  const into3 = new Uint8Array(18 * PAGE).fill(0x77);
  const filled = await readPhysGeneric(dump, 0, 18 * PAGE, { into: into3, fillMissing: true });
  assert.ok(filled.subarray(16 * PAGE).every((b) => b === 0));
  // a buffer too small: new memory, the same bytes
  const small = new Uint8Array(PAGE);
  const other = await dump.readPhys(0, 16 * PAGE, { into: small });
  assert.notEqual(other.buffer, small.buffer);
  assert.deepEqual(other, plain);
});
