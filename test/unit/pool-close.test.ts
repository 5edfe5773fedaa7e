/**
 * Closing the compression pool while its workers inflate zlib pages must not abort the process:
 * Node 20 aborts ("close before init", node_zlib.cc) when a worker thread is terminated inside
 * node:zlib's synchronous code. The pool waits for a busy worker's answer before terminating it.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { deflateSync, inflateSync } from 'node:zlib';
import { spawnSync } from 'node:child_process';
import { CompressPool, prestartCompressWorkers, releaseSpareWorkers } from '../../src/node/workers/pool.js';
import { STORED_CODES, type StoredPages } from '../../src/core/format/kdump/reader.js';
import { patternPage, PAGE } from '../helpers/build.js';

function zlibBatch(count: number, salt: number): StoredPages {
  const parts = Array.from({ length: count }, (_, i) => new Uint8Array(deflateSync(patternPage(salt * count + i), { level: 1 })));
  const blob = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  const offsets = new Uint32Array(count);
  const sizes = new Uint32Array(count);
  let o = 0;
  parts.forEach((p, i) => {
    blob.set(p, o);
    offsets[i] = o;
    sizes[i] = p.length;
    o += p.length;
  });
  return { codes: new Uint8Array(count).fill(STORED_CODES.indexOf('zlib')), offsets, sizes, blob };
}

test('closing the pool while workers inflate zlib pages: the process lives, the pages decoded before are right', async () => {
  const count = 256;
  const batches = Array.from({ length: 8 }, (_, k) => zlibBatch(count, k));
  for (let round = 0; round < 12; round++) {
    const pool = new CompressPool({ codec: 'none', pageSize: PAGE, detectZero: false }, 2);
    const results = batches.map((stored, k) => pool.submit({ startPfn: k * count, count, buf: new ArrayBuffer(count * PAGE), stored }));
    if (round % 3 === 0) {
      // a finished batch holds the pages as stored
      const first = await results[0]!;
      assert.deepEqual(first.data.subarray(5 * PAGE, 6 * PAGE), patternPage(5));
    }
    await pool.close(); // while the workers are inside a batch of inflates
    const settled = await Promise.allSettled(results);
    for (const s of settled) if (s.status === 'rejected') assert.match(String(s.reason), /closed/);
  }
});

test('prestarted workers: the next pool takes them and compresses with them; unused, they do not hold the process', async () => {
  assert.equal(prestartCompressWorkers(2), 2);
  assert.equal(prestartCompressWorkers(2), 2, 'no more than asked for');
  const pool = new CompressPool({ codec: 'zlib', level: 1, pageSize: PAGE, detectZero: true }, 2);
  try {
    const buf = new Uint8Array(4 * PAGE);
    buf.set(patternPage(1), PAGE);
    const r = await pool.submit({ startPfn: 0, count: 4, buf: buf.buffer });
    assert.deepEqual([...r.kinds], [0, 2, 0, 0]);
    assert.deepEqual(new Uint8Array(inflateSync(r.data.subarray(0, r.sizes[1]))), patternPage(1));
    assert.equal(prestartCompressWorkers(0), 0, 'the pool took both');
  } finally {
    await pool.close();
  }
  // spares no pool takes are ended on request
  assert.equal(prestartCompressWorkers(2), 2);
  await releaseSpareWorkers();
  assert.equal(prestartCompressWorkers(0), 0);
  // a process that starts spares and never uses them exits at once
  const src = `import('${new URL('../../src/node/workers/pool.js', import.meta.url).href}').then((m) => { m.prestartCompressWorkers(2); console.log('started'); })`;
  const t0 = Date.now();
  const r = spawnSync(process.execPath, ['-e', src], { encoding: 'utf8', timeout: 20_000 });
  assert.equal(r.status, 0, r.stderr);
  assert.equal(r.stdout.trim(), 'started');
  assert.ok(Date.now() - t0 < 20_000);
});
