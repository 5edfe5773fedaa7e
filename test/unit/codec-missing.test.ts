// An installation without an optional codec package (npm install --omit=optional) reads what it
// can and refuses, before anything is written, to write a codec nothing in it compresses: the
// error names the package to install and the codecs it can write instead.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { CLI } from '../helpers/cli.js';

const SAMPLE = fileURLToPath(new URL('../../../samples/seabios-128M.md-c-d31.kdump', import.meta.url));

test('without zstd-napi: convert -z and --format celf refuse with CODEC_UNAVAILABLE naming zstd-napi, nothing written; -c still converts and zstd still reads', () => {
  const dir = mkdtempSync(join(tmpdir(), 'vmcore-nozstd-'));
  try {
    // a preload that makes the package missing, in every thread (as --omit=optional leaves it)
    const preload = join(dir, 'no-zstd.cjs');
    writeFileSync(preload, "const M = require('module'); const res = M._resolveFilename; M._resolveFilename = function (r, ...a) { if (/^zstd-napi(\\/|$)/.test(r)) { const e = new Error(\"Cannot find module '\" + r + \"'\"); e.code = 'MODULE_NOT_FOUND'; throw e; } return res.call(this, r, ...a); };\n");
    const run = (...args: string[]) => spawnSync(process.execPath, ['-r', preload, CLI, ...args], { encoding: 'utf8' });
    for (const [what, args] of [['-z', ['-z']], ['celf', ['--format', 'celf']]] as const) {
      const out = join(dir, `out-${what}`);
      const r = run('convert', ...args, SAMPLE, out);
      assert.equal(r.status, 1, `${what}: ${r.stderr}`);
      assert.match(r.stderr, /^vmcore: CODEC_UNAVAILABLE: .*no zstd compressor in this installation: it needs the optional package zstd-napi.*npm install zstd-napi.*it can write zlib, lzo, snappy \(-c, -l, -p\)/m, what);
      assert.ok(!existsSync(out), `${what}: nothing written`);
    }
    const c = run('convert', '-c', SAMPLE, join(dir, 'c.kdump'), '--quiet');
    assert.equal(c.status, 0, c.stderr);
    // reading zstd needs no package (fzstd): a zstd kdump made with the package is read without it
    const z = spawnSync(process.execPath, [CLI, 'convert', '-z', SAMPLE, join(dir, 'z.kdump'), '--quiet'], { encoding: 'utf8' });
    assert.equal(z.status, 0, z.stderr);
    const hz = run('hash', '--json', join(dir, 'z.kdump'));
    const hs = spawnSync(process.execPath, [CLI, 'hash', '--json', SAMPLE], { encoding: 'utf8' });
    assert.equal(hz.status, 0, hz.stderr);
    assert.equal((JSON.parse(hz.stdout) as { sha256: string }).sha256, (JSON.parse(hs.stdout) as { sha256: string }).sha256);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
