// The optional addon's install step (native/build.mjs) must never leave an installation without
// the addon it had: a build that fails or is stopped half-way (a killed npx, an install timeout)
// keeps build/Release/vmcore_native.node as it was. `node-gyp rebuild` deleted build/ first.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { chmodSync, copyFileSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = fileURLToPath(new URL('../../../', import.meta.url));

test('a failed addon build keeps the addon that was there, and the install step still succeeds', () => {
  const dir = mkdtempSync(join(tmpdir(), 'vmcore-native-build-'));
  try {
    mkdirSync(join(dir, 'native'));
    for (const f of ['binding.gyp', 'native/build.mjs', 'native/config.mjs', 'package.json']) copyFileSync(join(ROOT, f), join(dir, f));
    mkdirSync(join(dir, 'build', 'Release'), { recursive: true });
    const addon = join(dir, 'build', 'Release', 'vmcore_native.node');
    writeFileSync(addon, 'the addon built before');
    // make that fails at once: the compile step of any build
    const bin = join(dir, 'bin');
    mkdirSync(bin);
    writeFileSync(join(bin, 'make'), '#!/bin/sh\necho "make: interrupted" >&2\nexit 2\n');
    chmodSync(join(bin, 'make'), 0o755);
    const r = spawnSync(process.execPath, [join(dir, 'native', 'build.mjs')], {
      cwd: dir,
      encoding: 'utf8',
      env: { ...process.env, PATH: `${bin}:${process.env.PATH ?? ''}`, VMCORE_NO_NATIVE: '', VMCORE_NATIVE_VERBOSE: '1' },
      timeout: 120_000,
    });
    assert.equal(r.status, 0, r.stderr);
    assert.match(r.stderr, /make: interrupted/, 'the build ran and failed in make');
    assert.match(r.stderr, /native addon .* is not built/);
    assert.equal(readFileSync(addon, 'utf8'), 'the addon built before');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
