/** `vmcore diff` / diffMemory: which page frames two dumps hold differently. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, open, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { SparseMemory } from '../../src/core/memory.js';
import { diffMemory, firstDifference } from '../../src/core/diff.js';
import { openDumpFiles } from '../../src/node/open.js';
import { ElfDump } from '../../src/core/format/elf/reader.js';
import { vmcore } from '../helpers/cli.js';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '../../..');
const SAMPLE = join(ROOT, 'samples/seabios-128M.md-c-d31.kdump');


test('firstDifference: aligned words and odd tails', () => {
  const a = new Uint8Array(4096);
  const b = new Uint8Array(4096);
  assert.equal(firstDifference(a, b), -1);
  b[4095] = 1;
  assert.equal(firstDifference(a, b), 4095);
  b[6] = 2;
  assert.equal(firstDifference(a, b), 6);
  assert.equal(firstDifference(a.subarray(1, 8), b.subarray(1, 8)), 5);
});

test('diffMemory: only-in-A, only-in-B, different content (first byte), zero pages against zero data, missing pages', async () => {
  const A = new SparseMemory(64, 4096);
  const B = new SparseMemory(80, 4096);
  for (let p = 0; p < 40; p++) {
    A.set(p, `page ${p}`);
    B.set(p, `page ${p}`);
  }
  B.set(7, 'page 7 but other'); // differs from byte 6
  A.set(41, 'only in A');
  B.set(70, 'only in B (beyond A max_mapnr)');
  A.setState(50, 'zero');
  B.set(50, new Uint8Array(4096)); // zero bytes stored as data: the same memory
  A.setState(60, 'missing');
  const r = await diffMemory(A, B);
  assert.equal(r.both, 41);
  assert.equal(r.same, 40);
  assert.equal(r.differ, 1);
  assert.equal(r.onlyA, 1);
  assert.equal(r.onlyB, 1);
  assert.equal(r.missingA, 1);
  assert.equal(r.identical, false);
  assert.deepEqual(
    r.differences.map((d) => [d.pfn, d.kind, d.offset]),
    [
      [7, 'content', 6],
      [41, 'onlyA', undefined],
      [70, 'onlyB', undefined],
    ],
  );
  assert.equal(r.differences[0]!.phys, 7n * 4096n);
  // the list is capped, the counts are not
  const few = await diffMemory(A, B, { maxDifferences: 1 });
  assert.equal(few.differences.length, 1);
  assert.equal(few.truncated, true);
  assert.equal(few.onlyA + few.onlyB + few.differ, 3);
  const same = await diffMemory(A, A);
  assert.equal(same.differ + same.onlyA + same.onlyB, 0);
  await assert.rejects(diffMemory(A, new SparseMemory(4, 65536)), (e: Error & { code?: string }) => e.code === 'USAGE');
});

test('vmcore diff on real files: a converted copy is identical; one changed byte is found at its pfn and offset; JSON keys', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'vmcore-diff-'));
  try {
    const elf = join(dir, 'copy.elf');
    assert.equal(vmcore('convert', '--quiet', '-E', SAMPLE, elf).rc, 0);
    const same = vmcore('diff', '--json', SAMPLE, elf);
    assert.equal(same.rc, 0, same.err);
    const j = JSON.parse(same.out);
    assert.deepEqual(Object.keys(j), ['a', 'b', 'pageSize', 'identical', 'both', 'same', 'differ', 'onlyA', 'onlyB', 'differences', 'truncated']);
    assert.deepEqual(Object.keys(j.a), ['file', 'pages', 'missing']);
    assert.equal(j.identical, true);
    assert.equal(j.both, 15374);
    // change one byte of one page in the ELF file: where it lands is known from the ELF reader
    const d = await openDumpFiles([elf]);
    assert.ok(d instanceof ElfDump);
    const seg = (await d.details()).segments!.find((s) => s.filesz >= 0x3000)!;
    await d.close();
    const pfn = seg.paddr / 4096 + 2;
    const fh = await open(elf, 'r+');
    const b = Buffer.alloc(1);
    await fh.read(b, 0, 1, seg.offset + 2 * 4096 + 0x123);
    b[0] = b[0]! ^ 0xff;
    await fh.write(b, 0, 1, seg.offset + 2 * 4096 + 0x123);
    await fh.close();
    const r = vmcore('diff', '--json', SAMPLE, elf);
    assert.equal(r.rc, 0, r.err);
    const k = JSON.parse(r.out);
    assert.equal(k.identical, false);
    assert.equal(k.differ, 1);
    assert.deepEqual(k.differences, [{ pfn, phys: '0x' + (pfn * 4096).toString(16), kind: 'content', offset: 0x123 }]);
    const t = vmcore('diff', SAMPLE, elf);
    assert.match(t.out, new RegExp(`pfn 0x${pfn.toString(16)}  phys 0x${(pfn * 4096).toString(16)}  content differs at offset 0x123`));
    assert.equal(vmcore('diff', SAMPLE).rc, 2);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});
