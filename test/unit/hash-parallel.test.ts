import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { openDumpFiles } from '../../src/node/open.js';
import { hashDumpParallel } from '../../src/node/parallel-read.js';
import { hashMemory } from '../../src/core/hash.js';
import { nodeSha256 } from '../../src/node/hash.js';
import { buildKdump, patternPage, PAGE } from '../helpers/build.js';
import type { KdumpDump } from '../../src/core/format/kdump/reader.js';
import { VmcoreError } from '../../src/core/errors.js';

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

test('parallel hash: a page whose stored bytes do not decode is named as the serial hash names it (lzo, zlib)', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'vmcore-ph-'));
  try {
    const pages = new Map<number, Uint8Array>();
    for (let p = 0; p < 700; p++) pages.set(p, p % 9 === 0 ? new Uint8Array(PAGE) : patternPage(p));
    for (const codec of ['lzo', 'zlib'] as const) {
      const good = join(dir, `${codec}.kdump`);
      await writeFile(good, buildKdump({ maxMapnr: 1024, pages, codec }));
      // the victim: a compressed page in the middle of a 256-page read piece
      const k = (await openDumpFiles([good])) as KdumpDump;
      const victimPfn = 301;
      const d0 = await k.parts[0]!.desc(victimPfn);
      await k.close();
      assert.ok(d0 && d0.flags !== 0 && d0.size > 16, `pfn ${victimPfn} is ${codec}-compressed`);
      const bytes = await readFile(good);
      bytes.fill(0xff, d0.offset, d0.offset + d0.size);
      const bad = join(dir, `bad-${codec}.kdump`);
      await writeFile(bad, bytes);
      const d = await openDumpFiles([bad]);
      try {
        const serial = await hashMemory(d, { hasher: nodeSha256 }).then(() => undefined, (e: unknown) => e);
        assert.ok(serial instanceof VmcoreError, `serial hash fails on the damaged ${codec} page`);
        await assert.rejects(hashDumpParallel(d, [bad], { hasher: nodeSha256, threads: 2, jobPages: 100 }), (e: unknown) => {
          assert.ok(e instanceof VmcoreError, String(e));
          assert.equal(e.code, serial.code);
          assert.equal(e.message, serial.message);
          assert.match(e.message, /pfn 0x12d\b/);
          return true;
        });
      } finally {
        await d.close();
      }
    }
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});
