// The optional native addon (native/pages.c): its whole-batch path gives the JavaScript path's
// kinds, sizes and page contents (compressBatchInPlace with the npm codec packages), for every
// codec it was built with; bad arguments throw instead of touching memory out of bounds.
// Skipped when the addon was not built on this machine (npm test then has nothing native to check).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { inflateSync } from 'node:zlib';
import { nativeAddon } from '../../src/node/native.js';
import { compressBatchInPlace, nativeBatchCompressor, pageCompressor, type WorkerConfig } from '../../src/node/workers/page-codec.js';
import { nodeCodecs } from '../../src/node/codecs.js';
import type { OutputCodec } from '../../src/core/format/batch.js';

const addon = nativeAddon();
const skip = addon ? false : 'the native addon is not built on this machine';
const PS = 4096;

/** zero, text, random, zero but the last byte, a zero first half, random again, zero. */
function batch(): Uint8Array {
  const pages = 7;
  const b = new Uint8Array(pages * PS);
  const text = new TextEncoder().encode('struct task_struct *next = list_entry(p->tasks.next); '.repeat(80));
  b.set(text.subarray(0, PS), 1 * PS);
  let x = 0x12345678;
  for (const p of [2, 5])
    for (let i = 0; i < PS; i++) {
      x = (Math.imul(x, 1103515245) + 12345) >>> 0;
      b[p * PS + i] = x >>> 24;
    }
  b[4 * PS - 1] = 1;
  b.set(text.subarray(0, PS / 2), 4 * PS + PS / 2);
  return b;
}

function contents(buf: Uint8Array, r: { kinds: Uint8Array; sizes: Uint32Array }, codec: OutputCodec): Uint8Array[] {
  const out: Uint8Array[] = [];
  let off = 0;
  for (let i = 0; i < r.kinds.length; i++) {
    const n = r.sizes[i]!;
    const d = buf.subarray(off, off + n);
    off += n;
    if (r.kinds[i] === 0) out.push(new Uint8Array(PS));
    else if (r.kinds[i] === 1) out.push(d.slice());
    else out.push(codec === 'zlib' ? new Uint8Array(inflateSync(d)) : nodeCodecs().get(codec as 'lzo')!.decompress(d, PS));
  }
  return out;
}

for (const codec of ['none', 'zlib', 'lzo'] as const)
  for (const detectZero of [true, false])
    test(`compressPages ${codec} detectZero=${detectZero}: the JavaScript path's kinds and pages`, { skip: skip || (codec !== 'none' && !addon!.codecs.includes(codec) && `the addon has no ${codec}`) }, () => {
      const cfg: WorkerConfig = { codec, level: 1, pageSize: PS, detectZero };
      const src = batch();
      const nat = nativeBatchCompressor(cfg);
      assert.ok(nat);
      const a = src.slice();
      const rn = nat(a, 7);
      const b = src.slice();
      const rj = compressBatchInPlace(b, 7, cfg, pageCompressor({ ...cfg, noNative: true }));
      assert.deepEqual([...rn.kinds], [...rj.kinds]);
      // zero pages only with detectZero (a last non-zero byte is not zero); random pages stay raw
      const C = codec === 'none' ? 1 : 2;
      const Z = detectZero ? 0 : C;
      assert.deepEqual([...rn.kinds], [Z, C, 1, C, C, 1, Z]);
      // lzo1x-1 is one algorithm: minilzo and the lzo package write the same bytes
      if (codec !== 'zlib') {
        assert.deepEqual([...rn.sizes], [...rj.sizes]);
        assert.equal(rn.dataLen, rj.dataLen);
        assert.deepEqual(a.subarray(0, rn.dataLen), b.subarray(0, rj.dataLen));
      }
      const pages = contents(a, rn, codec);
      for (let i = 0; i < 7; i++) assert.deepEqual(pages[i], src.subarray(i * PS, (i + 1) * PS), `page ${i}`);
    });

test('compressPages: bad arguments throw, nothing is written out of bounds', { skip }, () => {
  const a = addon!;
  const k = new Uint8Array(4);
  const s = new Uint32Array(4);
  const buf = new Uint8Array(4 * PS);
  assert.throws(() => a.compressPages('none', buf, 1, 100, true, 1, k, s), /pageSize must be a power of two/);
  assert.throws(() => a.compressPages('none', buf, 5, PS, true, 1, k, s), RangeError);
  assert.throws(() => a.compressPages('none', buf, 4, PS, true, 1, k, s.subarray(0, 3)), RangeError);
  assert.throws(() => a.compressPages('zstd', buf, 1, PS, true, 1, k, s), /codec not in this build/);
  assert.throws(() => a.compressPages('none', buf, 1, PS, true, 1, k, new Uint8Array(4) as unknown as Uint32Array), /kinds .* and sizes .* expected/);
  if (a.zlibCompress) assert.throws(() => a.zlibCompress!(buf, buf, 4 * PS, 1, 1), RangeError);
  if (a.lzoCompress) assert.throws(() => a.lzoCompress!(buf, buf, 0, 4 * PS + 1), RangeError);
  assert.equal(a.compressPages('none', buf, 0, PS, true, 1, k, s), 0);
});

test('lzoDecompress: a damaged stream is a negative LZO_E_* code, and the lzo codec names it', { skip: skip || (!addon!.lzoDecompress && 'the addon has no lzo') }, () => {
  const a = addon!;
  const page = new TextEncoder().encode('pfn phys_base VMCOREINFO '.repeat(200)).subarray(0, PS);
  const c = new Uint8Array(PS * 2);
  const n = a.lzoCompress!(page, c, 0, c.length);
  assert.ok(n > 0 && n < PS);
  const out = new Uint8Array(PS);
  assert.equal(a.lzoDecompress!(c.subarray(0, n), out), PS);
  assert.deepEqual(out, page);
  assert.ok(a.lzoDecompress!(c.subarray(0, n - 3), out) < 0, 'truncated stream');
  assert.ok(a.lzoDecompress!(c.subarray(0, n), new Uint8Array(PS / 2)) < 0, 'output too small');
  assert.throws(() => nodeCodecs().get('lzo')!.decompress(c.subarray(0, n - 3), PS), /lzo/);
});

// compressFilePages: the pages read from a file (64 KiB at a time) give compressPages' result,
// across a read-chunk boundary and from an odd offset; a read past the end throws naming the offset
for (const codec of ['none', 'zlib', 'lzo'] as const)
  test(`compressFilePages ${codec}: compressPages' result from the file's bytes; the end of the file is an error with its offset`, { skip: skip || (codec !== 'none' && !addon!.codecs.includes(codec) && `the addon has no ${codec}`) }, async () => {
    const { mkdtemp, rm, writeFile, open } = await import('node:fs/promises');
    const { tmpdir } = await import('node:os');
    const { join } = await import('node:path');
    const { nativeFileCompressor } = await import('../../src/node/workers/page-codec.js');
    const dir = await mkdtemp(join(tmpdir(), 'vmcore-native-'));
    try {
      // 5 copies of the 7-page batch (35 pages: more than one 64 KiB read) after 1000 bytes
      const pages = new Uint8Array(35 * PS);
      for (let k = 0; k < 5; k++) pages.set(batch(), k * 7 * PS);
      const f = join(dir, 'pages.bin');
      await writeFile(f, Buffer.concat([Buffer.alloc(1000, 0xee), pages]));
      const fh = await open(f, 'r');
      try {
        const cfg: WorkerConfig = { codec, level: 1, pageSize: PS, detectZero: true };
        const fromFile = nativeFileCompressor(cfg)!;
        assert.ok(fromFile);
        const out = new Uint8Array(35 * PS);
        const rf = fromFile({ fd: fh.fd, offset: 1000 }, 35, out);
        const inPlace = pages.slice();
        const rp = nativeBatchCompressor(cfg)!(inPlace, 35);
        assert.deepEqual([...rf.kinds], [...rp.kinds]);
        assert.deepEqual([...rf.sizes], [...rp.sizes]);
        assert.equal(rf.dataLen, rp.dataLen);
        assert.deepEqual(out.subarray(0, rf.dataLen), inPlace.subarray(0, rp.dataLen));
        assert.deepEqual(contents(out, rf, codec), Array.from({ length: 35 }, (_, i) => pages.slice(i * PS, (i + 1) * PS)));
        // one page more than the file holds: the last read comes up short
        assert.throws(() => fromFile({ fd: fh.fd, offset: 1000 }, 36, new Uint8Array(36 * PS)), /compressFilePages: read at 144360: end of file/);
        assert.throws(() => fromFile({ fd: fh.fd, offset: 1000 }, 36, new Uint8Array(35 * PS)), RangeError);
      } finally {
        await fh.close();
      }
      // a closed descriptor: the errno
      assert.throws(() => nativeFileCompressor({ codec, level: 1, pageSize: PS, detectZero: true })!({ fd: 987654, offset: 0 }, 1, new Uint8Array(PS)), /read at 0: Bad file descriptor/);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
