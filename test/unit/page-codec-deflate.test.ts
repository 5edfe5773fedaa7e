/**
 * zlib page compression without the native addon: the WebAssembly libdeflate (npm `libdeflate`)
 * must write zlib streams (RFC 1950) that node:zlib's inflate (the same zlib that makedumpfile,
 * crash and libkdumpfile link) turns back into the page, and store incompressible pages raw.
 */
import test from 'node:test';
import assert from 'node:assert/strict';
import { inflateSync } from 'node:zlib';
import { randomBytes } from 'node:crypto';
import { compressBatchInPlace, compressorImpl, pageCompressor, prepareWasmDeflate } from '../../src/node/workers/page-codec.js';

test('WebAssembly libdeflate: zlib streams that inflate to the page; incompressible pages stay raw', async () => {
  await prepareWasmDeflate();
  const impl = compressorImpl('zlib');
  assert.ok(impl === 'libdeflate (WebAssembly)' || impl === 'libdeflate (native addon)', impl);
  assert.equal(compressorImpl('zlib', true), 'node:zlib');
  const ps = 4096;
  const text = new TextEncoder().encode('struct task_struct *next_task; pid_t pid; '.repeat(200));
  const pages = [text.subarray(0, ps), new Uint8Array(randomBytes(ps)), new Uint8Array(ps), text.subarray(1000, 1000 + ps)];
  const buf = new Uint8Array(pages.length * ps);
  pages.forEach((p, i) => buf.set(p, i * ps));
  const cfg = { codec: 'zlib' as const, level: 1, pageSize: ps, detectZero: true };
  const { kinds, sizes } = compressBatchInPlace(buf, pages.length, cfg, pageCompressor(cfg));
  assert.deepEqual([...kinds], [2, 1, 0, 2]);
  let off = 0;
  for (let i = 0; i < pages.length; i++) {
    const stored = buf.subarray(off, off + sizes[i]!);
    off += sizes[i]!;
    if (kinds[i] === 2) {
      assert.equal(stored[0]! & 0x0f, 8, 'CM = deflate');
      assert.equal(((stored[0]! << 8) | stored[1]!) % 31, 0, 'FCHECK');
      assert.deepEqual(new Uint8Array(inflateSync(stored)), pages[i]);
    } else if (kinds[i] === 1) assert.deepEqual(stored, pages[i]);
  }
});
