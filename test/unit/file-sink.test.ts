// FileSink writes with synchronous pwrite(2) (no thread-pool hops): bytes land at their offsets,
// the output appears only when finished, and a failing write is a VmcoreError IO naming the
// output file and the offset, after which nothing is left behind.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, open, readdir, readFile, rm, writeFile, type FileHandle } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { checkOutput, FileSink } from '../../src/node/convert/sinks.js';
import { execFileSync } from 'node:child_process';
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

test('checkOutput: only a regular file is replaced (never /dev/null, a FIFO or a directory), and the directory must exist', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'vmcore-out-'));
  try {
    const fifo = join(dir, 'fifo');
    execFileSync('mkfifo', [fifo]);
    for (const [p, what] of [['/dev/null', 'a device'], [fifo, 'a FIFO'], [dir, 'a directory']] as const)
      await assert.rejects(checkOutput(p, true, []), (e: unknown) => e instanceof VmcoreError && e.code === 'USAGE' && e.file === p && e.message.includes(`output is ${what}`), p);
    await assert.rejects(checkOutput(join(dir, 'nosuch', 'x'), true, []), (e: unknown) => e instanceof VmcoreError && e.code === 'IO' && /does not exist/.test(e.message));
    const f = join(dir, 'f');
    await writeFile(f, 'x');
    await assert.rejects(checkOutput(join(f, 'x'), true, []), (e: unknown) => e instanceof VmcoreError && e.code === 'IO' && /is not a directory/.test(e.message));
    await assert.rejects(checkOutput(f, false, []), (e: unknown) => e instanceof VmcoreError && e.code === 'EXISTS');
    await checkOutput(f, true, []);
    await checkOutput(join(dir, 'new'), false, []);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});
