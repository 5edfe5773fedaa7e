import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync, writeSync, openSync, closeSync, constants as fsConstants } from 'node:fs';
import { execFileSync, spawn } from 'node:child_process';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gunzipSync } from 'node:zlib';
import { createHash } from 'node:crypto';
import { directReader, openFifoDirect, FIFO_PIPE_BYTES, type DirectByteStream } from '../../src/node/stream/direct-read.js';
import { nativeAddon } from '../../src/node/native.js';
import { ElfStream } from '../../src/node/stream/elf-stream.js';
import { streamInput } from '../../src/node/dump-qmp.js';
import { BufferPool, streamBatches, type RawBatch } from '../../src/node/convert/batches.js';
import type { PageChunk, PageStreamInput } from '../../src/node/convert/types.js';
import { VmcoreError } from '../../src/core/errors.js';

const fixture = (n: string) => new URL(`../../../test/fixtures/${n}`, import.meta.url);

/** Bytes that differ at every offset (a misplaced or repeated byte changes the digest). */
function pattern(n: number): Uint8Array {
  const b = new Uint8Array(n);
  let x = 0x12345678;
  for (let i = 0; i < n; i++) {
    x = (Math.imul(x, 1103515245) + 12345) >>> 0;
    b[i] = x >>> 24;
  }
  return b;
}

/** A FIFO written by a separate process (`dd`, in blocks of `bs` bytes), read with openFifoDirect. */
async function fifoOf(data: Uint8Array, bs: number) {
  const dir = mkdtempSync(join(tmpdir(), 'vmcore-direct-'));
  const src = join(dir, 'src');
  writeFileSync(src, data);
  const fifo = join(dir, 'fifo');
  execFileSync('mkfifo', [fifo]);
  const r = await openFifoDirect(fifo);
  const writer = spawn('dd', [`if=${src}`, `of=${fifo}`, `bs=${bs}`, 'status=none'], { stdio: 'ignore' });
  const exited = new Promise<number | null>((res) => writer.on('exit', res));
  return { r, exited, cleanup: () => rmSync(dir, { recursive: true, force: true }) };
}

test('a FIFO read straight into the caller buffers: every byte once, in order, whatever the read and write sizes; short at the end', async () => {
  const data = pattern(3 * 1024 * 1024 + 777);
  const { r, exited, cleanup } = await fifoOf(data, 4096);
  try {
    const got = new Uint8Array(data.length + 100);
    let at = 0;
    // destinations of awkward sizes, with pauses between them so that bytes arrive while no
    // destination waits (parked) and, past the parking limit, the stream pauses
    const sizes = [1, 16, 4095, 65537, 1 << 20, 3, 200000];
    for (let i = 0; ; i++) {
      const n = sizes[i % sizes.length]!;
      const k = await r.readFull(got.subarray(at, Math.min(got.length, at + n)));
      at += k;
      if (k < n) break;
      if (i % 3 === 0) await new Promise((res) => setTimeout(res, 30));
    }
    assert.equal(at, data.length, 'the stream ends where the writer stopped');
    assert.deepEqual(got.subarray(0, at), data);
    assert.equal(await r.readFull(new Uint8Array(10)), 0, 'after the end: nothing');
    assert.equal(await exited, 0);
  } finally {
    r.close();
    cleanup();
  }
});

test('a regular file as the direct reader (standard input redirected from a file)', async () => {
  const data = pattern(200000);
  const dir = mkdtempSync(join(tmpdir(), 'vmcore-direct-'));
  try {
    writeFileSync(join(dir, 'f'), data);
    const fd = openSync(join(dir, 'f'), 'r');
    const r = await directReader(fd, false);
    const a = new Uint8Array(150000);
    const b = new Uint8Array(100000);
    assert.equal(await r.readFull(a), 150000);
    assert.equal(await r.readFull(b), 50000);
    assert.deepEqual(Buffer.concat([a, b.subarray(0, 50000)]), Buffer.from(data));
    r.close();
    closeSync(fd);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test("QEMU's ELF from a FIFO: the pages arrive in the converter's own buffers (owned, no copy) with the file's bytes", async () => {
  const elf = gunzipSync(readFileSync(fixture('qemu-prelaunch-2m.elf.gz')));
  const { r, exited, cleanup } = await fifoOf(elf, 4096);
  try {
    const s = await ElfStream.open(r, { name: 'fifo', batchPages: 16 });
    const pool = new BufferPool(16 * 4096);
    const given = new Set<ArrayBuffer>();
    s.useBuffers((n) => {
      const b = pool.get(n);
      given.add(b);
      return b;
    });
    const input = streamInput(s.info, s.pages(), 'fifo');
    const want = createHash('sha256');
    for (const sg of s.info.segments) want.update(elf.subarray(sg.offset, sg.offset + sg.filesz));
    const got = createHash('sha256');
    let batches = 0;
    for await (const b of streamBatches(input, [], 16, pool)) {
      assert.ok(given.has(b.buf), 'the batch is a buffer the stream read into, not a copy');
      got.update(new Uint8Array(b.buf, 0, b.count * 4096));
      pool.put(b.buf);
      batches++;
    }
    assert.ok(batches > 10);
    assert.equal(got.digest('hex'), want.digest('hex'));
    assert.ok(given.size < batches, 'buffers are recycled');
    assert.equal(await exited, 0);
  } finally {
    r.close();
    cleanup();
  }
});

function input(ranges: { startPfn: number; endPfn: number }[], chunks: PageChunk[]): PageStreamInput {
  return {
    kind: 'stream',
    name: 't',
    pageSize: 4096,
    arch: 'x86_64',
    is64: true,
    littleEndian: true,
    notes: [],
    ranges,
    pages: (async function* () {
      yield* chunks;
    })(),
  };
}

async function batchesOf(i: PageStreamInput, cuts: number[], max: number, pool: BufferPool): Promise<RawBatch[]> {
  const out: RawBatch[] = [];
  for await (const b of streamBatches(i, cuts, max, pool)) out.push({ ...b, buf: b.buf.slice(0) });
  return out;
}

test('streamBatches: owned chunks within bounds pass as they are; others are copied and cut at ranges, cuts and max', async () => {
  const pool = new BufferPool(4 * 4096);
  const page = (pfn: number) => new Uint8Array(4096).fill(pfn & 0xff);
  const pages = (start: number, n: number, owned: boolean): PageChunk => {
    const buf = owned ? pool.get(4 * 4096) : new ArrayBuffer(n * 4096);
    const d = new Uint8Array(buf, 0, n * 4096);
    for (let i = 0; i < n; i++) d.set(page(start + i), i * 4096);
    return owned ? { startPfn: start, data: d, owned } : { startPfn: start, data: d };
  };
  const ranges = [
    { startPfn: 10, endPfn: 20 },
    { startPfn: 30, endPfn: 33 },
  ];
  const owned1 = pages(10, 4, true);
  const got = await batchesOf(input(ranges, [owned1, pages(14, 2, false), pages(16, 4, true), pages(30, 3, true)]), [17], 4, pool);
  assert.deepEqual(
    got.map((b) => [b.startPfn, b.count]),
    [
      [10, 4], // owned, passed through
      [14, 3], // copied, cut at 17
      [17, 3], // the owned chunk 16-19 crosses the cut: copied
      [30, 3], // owned, ends its range
    ],
  );
  for (const b of got) {
    const d = new Uint8Array(b.buf);
    for (let i = 0; i < b.count; i++) assert.equal(d[i * 4096 + 100], (b.startPfn + i) & 0xff);
  }

  const err = async (chunks: PageChunk[]) => {
    try {
      await batchesOf(input(ranges, chunks), [], 4, pool);
    } catch (e) {
      return e as VmcoreError;
    }
    assert.fail('no error');
  };
  assert.equal((await err([pages(11, 1, false)])).code, 'BAD_FIELD'); // out of order
  assert.equal((await err([pages(10, 4, true), pages(14, 4, true), pages(18, 4, true)])).code, 'BAD_FIELD'); // beyond its range
  assert.equal((await err([pages(10, 10, false)])).code, 'TRUNCATED'); // the second range never comes
});

const noPipeSize = nativeAddon()?.pipeSize ? false : 'the native addon is not built on this machine';

/**
 * A FIFO opened for reading by `open` (its path), then written without blocking: 512 KiB go in
 * whole only when the reader grew the pipe (64 KiB is a pipe's default), and arrive intact.
 */
async function writesWholeIntoGrownPipe(open: (fifo: string) => Promise<DirectByteStream>): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'vmcore-pipe-'));
  const fifo = join(dir, 'fifo');
  execFileSync('mkfifo', [fifo]);
  const r = await open(fifo);
  try {
    const w = openSync(fifo, fsConstants.O_WRONLY | fsConstants.O_NONBLOCK);
    try {
      const data = pattern(512 << 10);
      assert.equal(writeSync(w, data), data.length);
      const got = new Uint8Array(data.length);
      assert.equal(await r.readFull(got), data.length);
      assert.deepEqual(got, data);
    } finally {
      closeSync(w);
    }
  } finally {
    r.close();
    rmSync(dir, { recursive: true, force: true });
  }
}

test("a FIFO opened for reading is grown to 1 MiB (F_SETPIPE_SZ) when the addon can: a writer's non-blocking write of 512 KiB goes in whole, not 64 KiB of it", { skip: noPipeSize }, async () => {
  assert.equal(FIFO_PIPE_BYTES, 1 << 20);
  await writesWholeIntoGrownPipe(openFifoDirect);
});

test('a pipe given as a descriptor (standard input from a shell pipe) is grown the same way', { skip: noPipeSize }, async () => {
  await writesWholeIntoGrownPipe((fifo) => directReader(openSync(fifo, fsConstants.O_RDONLY | fsConstants.O_NONBLOCK)));
});
