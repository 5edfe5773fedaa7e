// FileSink writes with synchronous pwrite(2) (no thread-pool hops): bytes land at their offsets,
// the output appears only when finished, and a failing write is a VmcoreError IO naming the
// output file and the offset, after which nothing is left behind.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, open, readdir, readFile, rm, type FileHandle } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { FileSink } from '../../src/node/convert/sinks.js';
import { VmcoreError } from '../../src/core/errors.js';
import { FileSource } from '../../src/node/file-source.js';

test('FileSink: positional writes, rename on finish; a failed write names the file and offset', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'vmcore-sink-'));
  try {
    const out = join(dir, 'out.bin');
    const s = await FileSink.create(out);
    await s.write(8192, new Uint8Array(100).fill(7));
    await s.write(0, new Uint8Array([1, 2, 3]));
    assert.deepEqual(await readdir(dir).then((x) => x.includes('out.bin')), false, 'not there before finish');
    await s.finish(8192 + 100);
    const b = await readFile(out);
    assert.equal(b.length, 8292);
    assert.deepEqual([...b.subarray(0, 4)], [1, 2, 3, 0]);
    assert.equal(b[8192], 7);
    assert.equal(b[8191], 0);
    // the same file read back through FileSource (synchronous pread)
    const src = await FileSource.open(out);
    const dst = new Uint8Array(5);
    assert.equal(await src.readInto(8290, dst), 2, 'short at the end of the file');
    assert.deepEqual([...dst.subarray(0, 2)], [7, 7]);
    await src.close();

    const bad = join(dir, 'bad.bin');
    const t = await FileSink.create(bad);
    // its descriptor swapped for a read-only one of another file: pwrite fails with EBADF
    const inner = t as unknown as { fh: FileHandle };
    const real = inner.fh;
    inner.fh = await open(out, 'r');
    await assert.rejects(t.write(4096, new Uint8Array(4096)), (e: unknown) => e instanceof VmcoreError && e.code === 'IO' && e.file === bad && /writing 4096 bytes at offset 0x1000/.test(e.message));
    await t.abort(false);
    await real.close();
    assert.deepEqual((await readdir(dir)).sort(), ['out.bin']);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});
