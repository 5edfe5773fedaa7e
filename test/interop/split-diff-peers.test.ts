/**
 * Split sets and dump comparison against the real tools: makedumpfile --split sets are one dump
 * for `vmcore hash` (recognised by their headers) and `vmcore --reassemble` writes them back as
 * one file that libkdumpfile reads with the digest libkdumpfile gives for the source;
 * `vmcore --dump-dmesg` writes what makedumpfile --dump-dmesg writes; `vmcore diff` of QEMU's
 * ELF and makedumpfile's -d 31 file of the same stopped guest (corpus) finds no page with other
 * bytes and counts the present pages the corpus truth (libkdumpfile) counts. Under CI=true a
 * missing tool or corpus fails the test instead of skipping it.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
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

function run(cmd: string, args: string[]) {
  const r = spawnSync(cmd, args, { encoding: 'utf8', maxBuffer: 64 << 20, timeout: 600_000 });
  return { rc: r.status, out: r.stdout ?? '', err: r.stderr ?? '' };
}
const vmcore = (...args: string[]) => run(process.execPath, [CLI, ...args]);

test('makedumpfile --split sets: one dump for hash (by the headers), reassembled by vmcore --reassemble, read back by libkdumpfile; --dump-dmesg as makedumpfile', async (t) => {
  if (!need(t, ['makedumpfile', 'libkdumpfile'])) return;
  const dir = await mkdtemp(join(tmpdir(), 'vmcore-split-'));
  try {
    // re-filtering the sample at its own level (-d 31) keeps its pages; three parts
    const parts = [1, 2, 3].map((i) => join(dir, `md.${i}`));
    const m = run('makedumpfile', ['--split', '-c', '-d', '31', SAMPLE, ...parts]);
    assert.equal(m.rc, 0, m.err);
    const h = vmcore('hash', '--json', ...parts);
    assert.equal(h.rc, 0, h.err);
    assert.equal(JSON.parse(h.out).sha256, SAMPLE_SHA);
    // libkdumpfile agrees on the set
    const ls = run(PY, [LKDF, ...parts]);
    assert.equal(ls.rc, 0, ls.err);
    assert.equal(JSON.parse(ls.out).sha256, SAMPLE_SHA);
    const out = join(dir, 'reassembled.kdump');
    const r = vmcore('--reassemble', ...parts, out, '--quiet');
    assert.equal(r.rc, 0, r.err);
    const l = run(PY, [LKDF, out]);
    assert.equal(l.rc, 0, l.err);
    assert.equal(JSON.parse(l.out).sha256, SAMPLE_SHA);
    // a makedumpfile part with a file that is not one: each hashed, exit 0
    const mixed = vmcore('hash', '--json', '--quiet', parts[0]!, SAMPLE);
    assert.equal(mixed.rc, 0, mixed.err);
    assert.equal(JSON.parse(mixed.out).dumps.length, 2);
    // --dump-dmesg LOGFILE, byte for byte
    const ours = join(dir, 'ours.log');
    const theirs = join(dir, 'theirs.log');
    assert.equal(vmcore('--dump-dmesg', SAMPLE, ours).rc, 0);
    assert.equal(run('makedumpfile', ['--dump-dmesg', SAMPLE, theirs]).rc, 0);
    assert.ok((await readFile(theirs)).length > 1000);
    assert.deepEqual(await readFile(ours), await readFile(theirs));
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test('vmcore diff of QEMU\'s ELF and makedumpfile -d 31 of the same stopped guest: no page differs; present pages as the corpus truth counts them', async (t) => {
  if (!need(t, ['corpus', 'zstd'])) return;
  const c = 'seabios-nokaslr-1cpu-128M-vmci-panic';
  const dir = await mkdtemp(join(tmpdir(), 'vmcore-diff-'));
  try {
    const elf = join(dir, 'qemu.elf');
    const z = run('sh', ['-c', `zstd -dc "${join(CORPUS!, c, 'qemu-elf.vmcore.zst')}" > "${elf}"`]);
    assert.equal(z.rc, 0, z.err);
    const md = join(CORPUS!, c, 'md/md-c-d31.kdump');
    const truthElf = JSON.parse(readFileSync(join(CORPUS!, 'truth', c, 'qemu-elf.vmcore.json'), 'utf8')).expected;
    const truthMd = JSON.parse(readFileSync(join(CORPUS!, 'truth', c, 'md__md-c-d31.kdump.json'), 'utf8')).expected;
    const r = vmcore('diff', '--json', elf, md);
    assert.equal(r.rc, 0, r.err);
    const j = JSON.parse(r.out);
    assert.equal(j.a.pages, truthElf.present_pages);
    assert.equal(j.b.pages, truthMd.present_pages);
    assert.equal(j.differ, 0, 'the same memory: no page with other bytes');
    assert.equal(j.onlyB, 0, 'makedumpfile keeps a subset of the pages');
    assert.equal(j.onlyA, truthElf.present_pages - truthMd.present_pages);
    assert.equal(j.identical, false);
    assert.ok(j.differences.every((d: { kind: string }) => d.kind === 'onlyA'));
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});
