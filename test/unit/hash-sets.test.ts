/**
 * `vmcore hash` with several files: one split set only when the kdump headers say so (split
 * flag, one machine, disjoint ranges), never because of the number of arguments.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { isSplitSet } from '../../src/node/split-set.js';
import { vmcore } from '../helpers/cli.js';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '../../..');
const SAMPLE = join(ROOT, 'samples/seabios-128M.md-c-d31.kdump');


test('hash: a split set by its headers is one dump; two different dumps are hashed each, with a pointer to diff', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'vmcore-sets-'));
  try {
    const whole = JSON.parse(vmcore('hash', '--json', SAMPLE).out);
    const set = join(dir, 'set');
    const c = vmcore('convert', '--quiet', '--compress', 'none', '--split', '3', SAMPLE, set);
    assert.equal(c.rc, 0, c.err);
    const parts = [1, 2, 3].map((i) => `${set}.${i}`);
    assert.deepEqual(await isSplitSet(parts), { set: true, reason: '' });
    // any order: the headers place the parts
    const h = vmcore('hash', '--json', parts[2]!, parts[0]!, parts[1]!);
    assert.equal(h.rc, 0, h.err);
    assert.equal(JSON.parse(h.out).sha256, whole.sha256);
    // two different dumps (a filtered copy has fewer pages): each hashed, exit 0
    const other = join(dir, 'other.kdump');
    assert.equal(vmcore('convert', '--quiet', '--compress', 'none', '--exclude-zero', SAMPLE, other).rc, 0);
    const two = vmcore('hash', SAMPLE, other);
    assert.equal(two.rc, 0, two.err);
    const lines = two.out.trim().split('\n');
    assert.equal(lines.length, 2);
    assert.equal(lines[0], `${whole.sha256}  ${whole.pages} pages  ${SAMPLE}`);
    assert.match(lines[1]!, new RegExp(`^[0-9a-f]{64}  \\d+ pages  ${other.replace(/[.]/g, '\\.')}$`));
    assert.match(two.err, /not one split set .*no split flag.*vmcore diff/);
    const j = JSON.parse(vmcore('hash', '--json', '--quiet', SAMPLE, other).out);
    assert.deepEqual(Object.keys(j), ['dumps']);
    assert.deepEqual(Object.keys(j.dumps[0]), ['file', 'sha256', 'pages', 'zeroPages', 'missingPages', 'damagedPages']);
    assert.equal(j.dumps[0].sha256, whole.sha256);
    // a part of a set with a file that is not a part: not a set
    const mixed = await isSplitSet([parts[0]!, other]);
    assert.equal(mixed.set, false);
    assert.match(mixed.reason, /no split flag/);
    // parts of two different sets (other machine identity: different phys_base in the header)
    const set2 = join(dir, 'set2');
    assert.equal(vmcore('convert', '--quiet', '--compress', 'none', '--split', '2', '--phys-base', '0x1000000', SAMPLE, set2).rc, 0);
    const cross = await isSplitSet([parts[0]!, `${set2}.2`]);
    assert.equal(cross.set, false);
    assert.match(cross.reason, /phys_base/);
    // other commands name the problem when such files are opened together
    const info = vmcore('info', parts[0]!, `${set2}.2`);
    assert.equal(info.rc, 2);
    assert.match(info.err, /not a part of one split set .*phys_base.*vmcore diff/);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test('makedumpfile habits: --reassemble SET... OUT (top level and convert option), --dump-dmesg DUMP LOGFILE', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'vmcore-sets-'));
  try {
    const whole = JSON.parse(vmcore('hash', '--json', SAMPLE).out);
    const set = join(dir, 'set');
    assert.equal(vmcore('convert', '--quiet', '--compress', 'none', '--split', '2', SAMPLE, set).rc, 0);
    const out = join(dir, 'whole.kdump');
    const r = vmcore('--reassemble', `${set}.2`, `${set}.1`, out, '--quiet', '--compress', 'none');
    assert.equal(r.rc, 0, r.err);
    assert.equal(JSON.parse(vmcore('hash', '--json', out).out).sha256, whole.sha256);
    // not a set: usage errors
    assert.equal(vmcore('convert', '--reassemble', SAMPLE, join(dir, 'x')).rc, 2);
    const two = vmcore('convert', '--reassemble', SAMPLE, out, join(dir, 'y'));
    assert.equal(two.rc, 2);
    assert.match(two.err, /split set/);
    // --dump-dmesg VMCORE LOGFILE writes what `vmcore dmesg` prints
    const log = join(dir, 'dmesg.txt');
    const d = vmcore('--dump-dmesg', SAMPLE, log);
    assert.equal(d.rc, 0, d.err);
    const plain = vmcore('dmesg', SAMPLE);
    assert.ok(plain.out.length > 1000);
    assert.equal(await readFile(log, 'utf8'), plain.out);
    assert.equal(vmcore('--dump-dmesg', SAMPLE).out, plain.out);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});
