/**
 * The readers against independent ones. Files are made by the real tools (makedumpfile
 * re-filtering the repo's real sample into LZO, flattened and split variants) or built in
 * the test with the codec libraries (snappy and zstd, which Debian's makedumpfile cannot
 * write); libkdumpfile (python3-libkdumpfile) reads every page and hashes it the same way, and
 * crash must open them. Our digest must equal libkdumpfile's.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { openDumpFiles } from '../../src/node/open.js';
import { hashMemory } from '../../src/core/hash.js';
import { nodeSha256 } from '../../src/node/hash.js';
import { buildKdump, patternPage, PAGE } from '../helpers/build.js';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '../../..');
const LKDF = join(ROOT, 'test/interop/convert-lkdf.py');
const SAMPLE = join(ROOT, 'samples/seabios-128M.md-c-d31.kdump');
const SAMPLE_SHA = '03c2b8685986e5ee4bcfee31fc94ef61c42dfed7ec5029f6194829dc174feacb';
const PY = '/usr/bin/python3';

function run(cmd: string, args: string[]) {
  const r = spawnSync(cmd, args, { encoding: 'utf8', timeout: 300_000, maxBuffer: 64 << 20 });
  return { rc: r.status, out: r.stdout ?? '', err: r.stderr ?? '' };
}
const haveLkdf = existsSync(PY) && run(PY, ['-c', 'import kdumpfile']).rc === 0;
const haveCrash = run('sh', ['-c', 'command -v crash']).rc === 0;
const haveMdf = run('sh', ['-c', 'command -v makedumpfile']).rc === 0;

async function ours(files: string[], skipZero = false) {
  const d = await openDumpFiles(files);
  try {
    return await hashMemory(d, { hasher: nodeSha256, skipZero });
  } finally {
    await d.close();
  }
}
function lkdf(files: string[], skipZero = false): { sha256: string; pages: number } {
  const r = run(PY, [LKDF, ...(skipZero ? ['--skip-zero'] : []), ...files]);
  assert.equal(r.rc, 0, `libkdumpfile failed: ${r.err}`);
  return JSON.parse(r.out);
}

test('every codec: kdump files built with the codec libraries read the same in libkdumpfile and crash', { skip: !haveLkdf && 'python3-libkdumpfile not installed' }, async () => {
  const dir = await mkdtemp(join(tmpdir(), 'vmcore-codecs-'));
  try {
    const pages = new Map<number, Uint8Array>();
    for (let p = 0; p < 3000; p += 3) pages.set(p, patternPage(p, 17));
    for (let p = 1; p < 3000; p += 97) pages.set(p, new Uint8Array(PAGE));
    // an incompressible page is stored raw
    const rnd = new Uint8Array(PAGE).map((_, i) => (i * 2654435761) >>> 24);
    pages.set(2999, rnd);
    for (const codec of ['zlib', 'lzo', 'snappy', 'zstd'] as const) {
      const f = join(dir, `${codec}.kdump`);
      await writeFile(f, buildKdump({ maxMapnr: 4096, pages, excluded: [2, 5, 8], codec, release: '6.1.0-codec-test', vmcoreinfo: 'OSRELEASE=6.1.0-codec-test\nPAGESIZE=4096\n' }));
      const a = await ours([f]);
      const b = lkdf([f]);
      assert.equal(a.sha256, b.sha256, `${codec}: digest differs from libkdumpfile`);
      assert.equal(a.pages, b.pages);
      if (haveCrash) {
        const c = run('crash', ['--osrelease', f]);
        assert.equal(c.rc, 0, `crash --osrelease ${codec}: ${c.err}`);
        assert.match(c.out, /6\.1\.0-codec-test/);
      }
    }
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test('makedumpfile variants of the real sample (LZO, flattened, split) read like libkdumpfile reads them', { skip: (!haveMdf || !haveLkdf) && 'makedumpfile or python3-libkdumpfile missing' }, async () => {
  const dir = await mkdtemp(join(tmpdir(), 'vmcore-mdf-'));
  try {
    const lzo = join(dir, 'l.kdump');
    assert.equal(run('makedumpfile', ['-l', '-d', '31', SAMPLE, lzo]).rc, 0);
    const flat = join(dir, 'f.flat');
    const fr = run('sh', ['-c', `makedumpfile -F -c -d 31 '${SAMPLE}' > '${flat}'`]);
    assert.equal(fr.rc, 0, fr.err);
    const s1 = join(dir, 's1');
    const s2 = join(dir, 's2');
    assert.equal(run('makedumpfile', ['--split', '-c', '-d', '31', SAMPLE, s1, s2]).rc, 0);
    for (const [name, files] of [
      ['lzo', [lzo]],
      ['split', [s2, s1]],
    ] as const) {
      const a = await ours([...files]);
      // libkdumpfile wants the parts in order; we accept any order
      assert.equal(a.sha256, lkdf([...files].sort()).sha256, `${name} vs libkdumpfile`);
      assert.equal(a.sha256, SAMPLE_SHA, `${name} vs the sample`);
    }
    // libkdumpfile 0.5.1 cannot open flattened files: compare with the sample's digest
    assert.equal((await ours([flat])).sha256, SAMPLE_SHA, 'flattened');
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});
