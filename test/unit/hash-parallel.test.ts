import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { openDumpFiles } from '../../src/node/open.js';
import { hashDumpParallel } from '../../src/node/parallel-read.js';
import { hashMemory } from '../../src/core/hash.js';
import { nodeSha256 } from '../../src/node/hash.js';
import { buildKdump, patternPage, PAGE } from '../helpers/build.js';

const SAMPLE = join(resolve(dirname(fileURLToPath(import.meta.url)), '../../..'), 'samples/seabios-128M.md-c-d31.kdump');

test('parallel hash equals the serial digest (real sample, and a split set with zero pages)', async () => {
  for (const skipZero of [false, true]) {
    const d = await openDumpFiles([SAMPLE]);
    const serial = await hashMemory(d, { hasher: nodeSha256, skipZero });
    const par = await hashDumpParallel(d, [SAMPLE], { hasher: nodeSha256, skipZero, threads: 2, jobPages: 100 });
    assert.deepEqual(par, serial);
    if (!skipZero) assert.equal(par.sha256, '03c2b8685986e5ee4bcfee31fc94ef61c42dfed7ec5029f6194829dc174feacb');
    await d.close();
  }
  const dir = await mkdtemp(join(tmpdir(), 'vmcore-ph-'));
  try {
    const pages = new Map<number, Uint8Array>();
    for (let p = 0; p < 900; p += 2) pages.set(p, p % 10 === 0 ? new Uint8Array(PAGE) : patternPage(p));
    const a = join(dir, 'a');
    const b = join(dir, 'b');
    await writeFile(a, buildKdump({ maxMapnr: 1024, pages, split: { start: 0, end: 500 }, codec: 'lzo' }));
    await writeFile(b, buildKdump({ maxMapnr: 1024, pages, split: { start: 500, end: 1024 }, codec: 'lzo' }));
    const d = await openDumpFiles([a, b]);
    assert.deepEqual(await hashDumpParallel(d, [a, b], { hasher: nodeSha256, threads: 2, jobPages: 33 }), await hashMemory(d, { hasher: nodeSha256 }));
    await d.close();
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});
