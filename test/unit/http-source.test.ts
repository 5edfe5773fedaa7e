/** The HTTP range source against a local server that counts bytes and misbehaves on demand. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { HttpSource, redactUrl } from '../../src/core/io/http.js';
import { isVmcoreError } from '../../src/core/errors.js';
import { openDumpFiles, fetchStats } from '../../src/node/open.js';
import { analyzeKernel } from '../../src/core/kernel/kernel.js';
import { describeDump } from '../../src/core/info.js';
import type { ByteSource } from '../../src/core/io/source.js';
import { startRangeServer } from '../helpers/range-server.js';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '../../..');
const SAMPLE = join(ROOT, 'samples/seabios-128M.md-c-d31.kdump');

function pattern(n: number, seed = 1): Uint8Array {
  const b = new Uint8Array(n);
  let x = seed;
  for (let i = 0; i < n; i++) {
    x = (x * 1103515245 + 12345) >>> 0;
    b[i] = x >>> 24;
  }
  return b;
}
const fast = { backoffMs: 1, blockSize: 4096 };

test('reads any range exactly; coalesces neighbouring blocks; shares in-flight blocks; caches', async () => {
  const data = pattern(1 << 20);
  const srv = await startRangeServer(data);
  try {
    const src = await HttpSource.open(srv.url + '/d', fast);
    assert.equal(src.size, data.length);
    assert.equal(srv.requests, 1, 'open is one request');
    for (const [o, n] of [[0, 10], [4090, 20], [100000, 50000], [data.length - 5, 100], [8192, 4096], [12345, 1]] as const) {
      assert.deepEqual(await src.read(o, n), data.subarray(o, Math.min(data.length, o + n)), `read ${o}+${n}`);
    }
    // 40 missing neighbouring blocks: one request
    const before = srv.requests;
    await src.read(100 * 4096, 40 * 4096);
    assert.equal(srv.requests, before + 1);
    assert.equal(srv.ranges.at(-1), `bytes=${100 * 4096}-${140 * 4096 - 1}`);
    // read again: all from the cache
    await src.read(100 * 4096 + 7, 39 * 4096);
    assert.equal(srv.requests, before + 1);
    // ten concurrent reads of the same uncached block: one request
    const r = await Promise.all(Array.from({ length: 10 }, (_, i) => src.read(200 * 4096 + i * 100, 50)));
    assert.equal(srv.requests, before + 2);
    r.forEach((b, i) => assert.deepEqual(b, data.subarray(200 * 4096 + i * 100, 200 * 4096 + i * 100 + 50)));
    assert.equal(src.stats.bytesFetched, srv.bytesSent);
    assert.ok(src.stats.cacheHits > 0);
    // every request after the first carries the ETag as If-Range
    assert.ok(srv.ifRanges.slice(1).every((v) => v === '"v1-1048576"'), String(srv.ifRanges));
  } finally {
    await srv.close();
  }
});

test('sequential reading fetches ahead: a page-by-page walk costs few requests', async () => {
  const data = pattern(2 << 20, 9);
  const srv = await startRangeServer(data);
  try {
    const src = await HttpSource.open(srv.url, { ...fast, maxCoalesce: 64 });
    for (let o = 0; o < data.length; o += 4096) assert.deepEqual(await src.read(o, 4096), data.subarray(o, o + 4096));
    // 512 blocks of 4 KiB; read-ahead doubles up to 64 blocks per request
    assert.ok(srv.requests <= 16, `${srv.requests} requests`);
    assert.equal(srv.bytesSent, data.length, 'nothing fetched twice');
  } finally {
    await srv.close();
  }
});

test('no more requests in flight than the parallel limit', async () => {
  const data = pattern(1 << 20, 2);
  const srv = await startRangeServer(data);
  srv.delayMs = 100;
  try {
    const src = await HttpSource.open(srv.url, { ...fast, maxParallel: 3, maxCoalesce: 1 });
    const reads = Array.from({ length: 12 }, (_, i) => src.read(i * 3 * 4096 + 10000, 100));
    const got = await Promise.all(reads);
    got.forEach((b, i) => assert.deepEqual(b, data.subarray(i * 3 * 4096 + 10000, i * 3 * 4096 + 10100)));
    // at most the limit (exactly 3 on an idle machine; a loaded one may overlap fewer)
    assert.ok(srv.maxConcurrent <= 3 && srv.maxConcurrent >= 2, `${srv.maxConcurrent} in flight`);
  } finally {
    await srv.close();
  }
});

test('dropped connections and 503s are retried with backoff; the data is right', async () => {
  const data = pattern(300000, 3);
  const srv = await startRangeServer(data);
  try {
    srv.fail503Next = 2;
    const src = await HttpSource.open(srv.url, fast);
    assert.equal(src.stats.retries, 2);
    srv.dropNext = 3;
    assert.deepEqual(await src.read(50000, 100000), data.subarray(50000, 150000));
    assert.equal(src.stats.retries, 5);
    // a server that keeps dropping: IO error after the retries, naming the URL and offset
    srv.dropNext = 100;
    await assert.rejects(src.read(200000, 10), (e: unknown) => isVmcoreError(e) && e.code === 'IO' && /gave up after 5 attempts/.test(e.message) && e.offset === 48 * 4096);
  } finally {
    await srv.close();
  }
});

test('the timeout is for silence, not for the whole answer: a slow steady body is read; a stalled server is given up, and later reads fail at once', async () => {
  const data = pattern(300000, 5);
  const srv = await startRangeServer(data);
  try {
    // 8 pieces 300 ms apart: 2.1 s in all, more than the 1.5 s timeout, never silent for more
    // than a fifth of it (wide margins: the server shares this process, which a loaded machine
    // may not schedule for a few hundred ms)
    const src = await HttpSource.open(srv.url, { ...fast, timeoutMs: 1500, retries: 1 });
    srv.trickle = 8;
    srv.trickleMs = 300;
    assert.deepEqual(await src.read(100000, 20000), data.subarray(100000, 120000));
    assert.equal(src.stats.retries, 0);
    srv.trickle = 0;
    srv.stall = true;
    await assert.rejects(src.read(200000, 10), (e: unknown) => isVmcoreError(e) && e.code === 'IO' && /no data from the server for 1500 ms/.test(e.message) && /gave up after 2 attempts/.test(e.message));
    const sent = srv.requests;
    await assert.rejects(src.read(250000, 10), (e: unknown) => isVmcoreError(e) && e.code === 'IO' && /no further requests are sent/.test(e.message));
    assert.equal(srv.requests, sent, 'no request after the server was given up');
  } finally {
    await srv.close();
  }
});

test('a server that ignores Range is an HTTP error, and the file is not downloaded', async () => {
  const data = pattern(4 << 20, 4);
  const srv = await startRangeServer(data);
  srv.ignoreRange = true;
  try {
    await assert.rejects(HttpSource.open(srv.url, fast), (e: unknown) => isVmcoreError(e) && e.code === 'HTTP' && /ignored the Range request/.test(e.message) && /4194304 bytes/.test(e.message));
    assert.equal(srv.requests, 1, 'not retried');
  } finally {
    await srv.close();
  }
});

test('a file that changes mid-read is an error, not mixed data (If-Range, and ETag/size checks)', async () => {
  const data = pattern(1 << 20, 5);
  const srv = await startRangeServer(data);
  try {
    const src = await HttpSource.open(srv.url, fast);
    assert.deepEqual(await src.read(10000, 10), data.subarray(10000, 10010));
    srv.change(pattern(1 << 20, 6));
    await assert.rejects(src.read(500000, 10), (e: unknown) => isVmcoreError(e) && e.code === 'HTTP' && /changed on the server/.test(e.message));
    // cached blocks are still the old file's
    assert.deepEqual(await src.read(10000, 10), data.subarray(10000, 10010));
  } finally {
    await srv.close();
  }
  // without ETag nor Last-Modified there is no If-Range, but a new size is still caught
  const srv2 = await startRangeServer(data);
  srv2.noValidator = true;
  try {
    const src = await HttpSource.open(srv2.url, fast);
    srv2.change(pattern(2 << 20, 7));
    await assert.rejects(src.read(500000, 10), (e: unknown) => isVmcoreError(e) && e.code === 'HTTP' && /size 2097152 was 1048576/.test(e.message));
    assert.equal(srv2.ifRanges.at(-1), undefined);
  } finally {
    await srv2.close();
  }
});

test('404 fails at once with the status; URL names never show the query (presigned credentials)', async () => {
  const srv = await startRangeServer(pattern(100));
  try {
    await assert.rejects(HttpSource.open(srv.url + '/missing?X-Amz-Signature=secret', fast), (e: unknown) => isVmcoreError(e) && e.code === 'HTTP' && /HTTP 404/.test(e.message) && !/secret/.test(e.message));
    assert.equal(srv.requests, 1);
    assert.equal(redactUrl('https://b.s3.example/k/vmcore?X-Amz-Signature=abc#f'), 'https://b.s3.example/k/vmcore?…');
    const small = await HttpSource.open(srv.url + '/x?sig=1', fast);
    assert.equal(small.size, 100);
    assert.equal(small.name, srv.url + '/x?…');
    assert.deepEqual(await small.read(90, 100), pattern(100).subarray(90));
  } finally {
    await srv.close();
  }
  const empty = await startRangeServer(new Uint8Array(0));
  try {
    await assert.rejects(openDumpFiles([empty.url]), (e: unknown) => isVmcoreError(e) && e.code === 'TRUNCATED' && /empty/.test(e.message));
  } finally {
    await empty.close();
  }
  // a port fetch refuses to use and a name that does not exist: said at once, not retried
  await assert.rejects(HttpSource.open('http://127.0.0.1:1/none', { ...fast, retries: 3 }), (e: unknown) => isVmcoreError(e) && e.code === 'IO' && /bad port/.test(e.message) && !/gave up/.test(e.message));
  let calls = 0;
  const noName: typeof fetch = async () => {
    calls++;
    throw Object.assign(new TypeError('fetch failed'), { cause: Object.assign(new Error('getaddrinfo ENOTFOUND dumps.invalid'), { code: 'ENOTFOUND' }) });
  };
  await assert.rejects(HttpSource.open('http://dumps.invalid/x.kdump', { ...fast, retries: 3, fetch: noName }), (e: unknown) => isVmcoreError(e) && e.code === 'IO' && /ENOTFOUND/.test(e.message) && !/gave up/.test(e.message));
  assert.equal(calls, 1);
  // a refused connection may be a server restarting: retried
  const gone = await startRangeServer(new Uint8Array(10));
  const url = gone.url;
  await gone.close();
  await assert.rejects(HttpSource.open(url, { ...fast, retries: 1 }), (e: unknown) => isVmcoreError(e) && e.code === 'IO' && /gave up after 2 attempts/.test(e.message));
});

test('the real sample over HTTP: the same report as from the file, reading a fraction of it', async () => {
  const file = await readFile(SAMPLE);
  const srv = await startRangeServer(file);
  try {
    const sources: ByteSource[] = [];
    const remote = await openDumpFiles([srv.url + '/sample.kdump'], { sources });
    const local = await openDumpFiles([SAMPLE]);
    const rr = await describeDump(remote, await analyzeKernel(remote));
    const lr = await describeDump(local, await analyzeKernel(local));
    await local.close();
    await remote.close();
    const url = srv.url + '/sample.kdump';
    assert.equal(JSON.stringify(rr).replaceAll(url, 'DUMP'), JSON.stringify(lr).replaceAll(SAMPLE, 'DUMP'));
    assert.equal(rr.physBase.verdict, 'header correct');
    const st = fetchStats(sources)!;
    assert.equal(st.remoteBytes, file.length);
    assert.equal(st.bytesFetched, srv.bytesSent);
    assert.ok(st.bytesFetched < file.length * 0.1, `fetched ${st.bytesFetched} of ${file.length}`);
  } finally {
    await srv.close();
  }
});
