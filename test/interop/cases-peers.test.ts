/**
 * Issue-9 cases against a peer: libkdumpfile (python3-libkdumpfile, /usr/bin/python3) reads the
 * kdump file vmcore converts from the ELF vmcore of a 64 KiB-page arm64 kernel
 * (test/fixtures/cases/arm64-64k.elf.zst) and must find 64 KiB pages, max_pfn 0x8001 and the
 * digest of test/fixtures/cases/arm64-64k.expected.json. With 4 KiB blocks, libkdumpfile
 * rejected the file ("Wrong uncompressed size").
 * In CI (CI=true) a missing libkdumpfile fails the test instead of skipping it.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { decompress } from 'fzstd';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '../../..');
const CLI = join(ROOT, 'dist/src/cli/vmcore.js');
const LKDF = join(ROOT, 'test/interop/convert-lkdf.py');
const PY = '/usr/bin/python3';
const CASES = join(ROOT, 'test/fixtures/cases');
const exp = JSON.parse(readFileSync(join(CASES, 'arm64-64k.expected.json'), 'utf8'));
const HAVE_LKDF = existsSync(PY) && spawnSync(PY, ['-c', 'import kdumpfile']).status === 0;
const skip = HAVE_LKDF ? false : process.env.CI === 'true' ? false : 'python3-libkdumpfile is not installed';

for (const codec of ['-c', '-l', '--compress=none'] as const) {
  test(`libkdumpfile reads the 64 KiB-page arm64 ELF converted with ${codec}: 64 KiB blocks, the same digest`, { skip }, () => {
    assert.ok(HAVE_LKDF, 'python3-libkdumpfile is required in CI');
    const dir = mkdtempSync(join(tmpdir(), 'vmcore-cases-'));
    try {
      const elf = join(dir, 'a.elf');
      writeFileSync(elf, decompress(new Uint8Array(readFileSync(join(CASES, 'arm64-64k.elf.zst')))));
      const out = join(dir, 'a.kdump');
      const args = codec === '--compress=none' ? ['--compress', 'none'] : [codec];
      const c = spawnSync(process.execPath, [CLI, 'convert', elf, out, ...args, '--quiet'], { encoding: 'utf8' });
      assert.equal(c.status, 0, c.stderr);
      const r = spawnSync(PY, [LKDF, out], { encoding: 'utf8', timeout: 120_000 });
      assert.equal(r.status, 0, r.stderr);
      const j = JSON.parse(r.stdout);
      assert.equal(j.format, 'diskdump');
      assert.equal(j.max_pfn, 0x8001);
      assert.equal(j.pages, exp.pages_64k);
      assert.equal(j.sha256, exp.sha256_64k_pages);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
}
