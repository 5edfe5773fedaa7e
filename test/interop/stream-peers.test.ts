/**
 * Dumps from a pipe, made by the real producers: `makedumpfile -F` (flattened kdump on stdout,
 * zlib and LZO) piped into `vmcore convert -` / `vmcore convert -R` / `vmcore hash -`, QEMU's
 * flattened kdump-zlib output and QEMU's ELF (decompressed by zstd into the pipe) from the dump
 * corpus. The truth: the digest libkdumpfile computes from the repo sample (see convert.test.ts)
 * and the corpus truth files (expected.pages_sha256); libkdumpfile also re-reads the converted
 * output. Under CI=true a missing tool or corpus fails the test instead of skipping it.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { CORPUS, HAVE, PY, need } from './prereq.js';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '../../..');
const CLI = join(ROOT, 'dist/src/cli/vmcore.js');
const SAMPLE = join(ROOT, 'samples/seabios-128M.md-c-d31.kdump');
const LKDF = join(ROOT, 'test/interop/convert-lkdf.py');
/** What libkdumpfile reads from the sample (corpus truth md__md-c-d31.kdump.json). */
const SAMPLE_SHA = '03c2b8685986e5ee4bcfee31fc94ef61c42dfed7ec5029f6194829dc174feacb';

function sh(cmd: string) {
  const r = spawnSync('bash', ['-c', `set -o pipefail; ${cmd}`], {
    encoding: 'utf8',
    maxBuffer: 64 << 20,
    timeout: 600_000,
    env: { ...process.env, V: `${process.execPath} ${CLI}` },
  });
  return { rc: r.status, out: r.stdout ?? '', err: r.stderr ?? '' };
}

const shaOf = (file: string) => {
  const r = sh(`$V hash --json --quiet "${file}"`);
  assert.equal(r.rc, 0, r.err);
  return JSON.parse(r.out).sha256 as string;
};

test('makedumpfile -F | vmcore convert - OUT: the output holds the memory libkdumpfile reads from makedumpfile\'s input', async (t) => {
  if (!need(t, ['makedumpfile', 'libkdumpfile'])) return;
  const dir = await mkdtemp(join(tmpdir(), 'vmcore-stream-'));
  try {
    const out = join(dir, 'from-pipe.kdump');
    const r = sh(`makedumpfile -F -c -d 31 "${SAMPLE}" 2>/dev/null | $V convert --json - "${out}"`);
    assert.equal(r.rc, 0, r.err);
    const j = JSON.parse(r.out);
    assert.equal(j.pages.total, 15374);
    assert.equal(shaOf(out), SAMPLE_SHA);
    // a peer reads the converted file
    const l = spawnSync(PY, [LKDF, out], { encoding: 'utf8' });
    assert.equal(l.status, 0, l.stderr);
    assert.equal(JSON.parse(l.stdout).sha256, SAMPLE_SHA);
    // LZO records, straight into hash; -R (makedumpfile's habit) into ELF
    const h = sh(`makedumpfile -F -l -d 31 "${SAMPLE}" 2>/dev/null | $V hash --json -`);
    assert.equal(h.rc, 0, h.err);
    assert.equal(JSON.parse(h.out).sha256, SAMPLE_SHA);
    const elf = join(dir, 'from-pipe.elf');
    const e = sh(`makedumpfile -F -c -d 31 "${SAMPLE}" 2>/dev/null | $V convert -R -E --quiet "${elf}"`);
    assert.equal(e.rc, 0, e.err);
    assert.equal(shaOf(elf), SAMPLE_SHA);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test('QEMU\'s flattened kdump-zlib and QEMU\'s ELF through a pipe give the corpus truth digest', async (t) => {
  if (!need(t, ['corpus', 'zstd'])) return;
  const cases = ['seabios-nokaslr-1cpu-128M-vmci-panic', 'ovmf-kaslr-1cpu-256M-vmci-panic'];
  const dir = await mkdtemp(join(tmpdir(), 'vmcore-stream-'));
  try {
    for (const c of cases) {
      const truth = JSON.parse(readFileSync(join(CORPUS!, 'truth', c, 'qemu-kdump-zlib.vmcore.json'), 'utf8')).expected.pages_sha256 as string;
      const r = sh(`cat "${join(CORPUS!, c, 'qemu-kdump-zlib.vmcore')}" | $V hash --json -`);
      assert.equal(r.rc, 0, `${c}: ${r.err}`);
      assert.equal(JSON.parse(r.out).sha256, truth, c);
      const zst = join(CORPUS!, c, 'qemu-elf.vmcore.zst');
      if (!existsSync(zst)) continue;
      const elfTruth = JSON.parse(readFileSync(join(CORPUS!, 'truth', c, 'qemu-elf.vmcore.json'), 'utf8')).expected.pages_sha256 as string;
      const out = join(dir, `${c}.kdump`);
      const e = sh(`zstd -dc "${zst}" | $V convert --quiet - "${out}"`);
      assert.equal(e.rc, 0, `${c}: ${e.err}`);
      assert.equal(shaOf(out), elfTruth, c);
    }
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});
