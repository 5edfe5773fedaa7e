// Worker-thread counts: a request above 4 per core is lowered, with a THREADS_LIMITED warning
// (hash --threads 999 once took 14 GiB of RSS on 2 cores); the CLI says so on stderr.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { availableParallelism } from 'node:os';
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { limitThreads, THREADS_PER_CORE } from '../../src/node/threads.js';
import type { Warning } from '../../src/core/warnings.js';

const ROOT = fileURLToPath(new URL('../../../', import.meta.url));

test('limitThreads: kept up to 4 per core, lowered above with a warning', () => {
  const max = THREADS_PER_CORE * availableParallelism();
  const w: Warning[] = [];
  assert.equal(limitThreads(0, w), 0);
  assert.equal(limitThreads(max, w), max);
  assert.equal(w.length, 0);
  const w2: Warning[] = [];
  assert.equal(limitThreads(999, w2), max);
  assert.deepEqual(w2.map((x) => x.code), ['THREADS_LIMITED']);
});

test('hash --threads 999: the digest, with the warning on stderr', () => {
  const r = spawnSync(process.execPath, ['dist/src/cli/vmcore.js', 'hash', '--threads', '999', 'samples/seabios-128M.md-c-d31.kdump'], { cwd: ROOT, encoding: 'utf8', timeout: 120_000 });
  assert.equal(r.status, 0, r.stderr);
  assert.match(r.stdout, /^03c2b8685986e5ee4bcfee31fc94ef61c42dfed7ec5029f6194829dc174feacb {2}15374 pages\n$/);
  assert.match(r.stderr, /--threads 999 is more than 4 per core .*: using \d+/);
});

test('--threads that is not a whole number is a usage error that says so, in every command', () => {
  for (const cmd of [['convert', '--threads', '-1', 'samples/seabios-128M.md-c-d31.kdump', 'never-written.kdump'], ['hash', '--threads', '1.5', 'samples/seabios-128M.md-c-d31.kdump']]) {
    const r = spawnSync(process.execPath, ['dist/src/cli/vmcore.js', ...cmd], { cwd: ROOT, encoding: 'utf8', timeout: 60_000 });
    assert.equal(r.status, 2, r.stderr);
    assert.match(r.stderr, /--threads wants a whole number from 0, got "(-1|1\.5)"/);
  }
});
