/**
 * A damaged page costs that page, not the answer. Input: the real sample with the page
 * descriptors of pfn 0x1000, 0x1001 (kernel text) and 0x32f7 (a page of the printk text ring)
 * set to size 0 and flags 0. Truth for the log: makedumpfile's own --dump-dmesg of the intact
 * sample (test/fixtures/dmesg/seabios-128M.makedumpfile-dump-dmesg.txt).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { BufferSource } from '../../src/core/io/source.js';
import { openDump } from '../../src/core/format/open.js';
import { nodeCodecs } from '../../src/node/codecs.js';
import { analyzeKernel } from '../../src/core/kernel/kernel.js';
import { readDmesg, formatDmesg } from '../../src/core/kernel/dmesg.js';
import { describeDump } from '../../src/core/info.js';
import { hashMemory } from '../../src/core/hash.js';
import { nodeSha256 } from '../../src/node/hash.js';
import { recoverVmcoreinfo } from '../../src/core/kernel/recover.js';
import { LossLog, isPageLoss } from '../../src/core/loss.js';
import { VmcoreError } from '../../src/core/errors.js';
import type { PhysicalMemory } from '../../src/core/dump.js';
import { sampleBytes, sampleWithDamagedDescs } from '../helpers/sample-variants.js';
import { vmcore } from '../helpers/cli.js';
import { openDumpFiles } from '../../src/node/open.js';
import { hashDumpParallel } from '../../src/node/parallel-read.js';

const root = fileURLToPath(new URL('../../../', import.meta.url));
const EXPECTED = readFileSync(root + 'test/fixtures/dmesg/seabios-128M.makedumpfile-dump-dmesg.txt', 'latin1');
const DAMAGED = [0x1000, 0x1001, 0x32f7];

test('dmesg: the records of the damaged ring page are lost, the other 308 are printed', async () => {
  const d = await openDump([new BufferSource(sampleWithDamagedDescs(DAMAGED), 'damaged.kdump')], nodeCodecs());
  const k = await analyzeKernel(d);
  const log = await readDmesg({ vmcoreinfo: k.vmcoreinfo!, readVirt: k.readVirt });
  const lost = log.records.filter((r) => r.lost);
  assert.equal(lost.length, 60);
  assert.ok(lost.every((r) => r.lost === 'unreadable'));
  assert.ok(log.warnings.some((w) => w.code === 'PRINTK_DAMAGED' && /4096 bytes of the printk text ring are not in the dump/.test(w.text)), log.warnings.map((x) => x.text).join('\n'));
  assert.ok(log.warnings.some((w) => w.code === 'PRINTK_RECORDS_LOST' && /60 records lost their text/.test(w.text)));
  const text = Buffer.from(formatDmesg(log)).toString('latin1');
  const lines = text.split('\n').filter(Boolean);
  assert.equal(lines.length, 308);
  const full = new Set(EXPECTED.split('\n'));
  for (const l of lines) assert.ok(full.has(l), `not in makedumpfile's log: ${l}`);
  // phys_base is still proven: the damaged kernel-text pages cost those pages only
  assert.equal(k.physBase.verdict, 'header correct');
});

test('info counts damaged descriptors apart and warns; hash counts them damaged too; readPage names the damage', async () => {
  const d = await openDump([new BufferSource(sampleWithDamagedDescs(DAMAGED), 'damaged.kdump')], nodeCodecs());
  const r = await describeDump(d, await analyzeKernel(d));
  assert.equal(r.pages.damaged, 3);
  assert.equal(r.pages.missing, 0);
  assert.equal(r.pages.dumped, 15374 - 3);
  assert.equal(r.codecs['damaged'], 3);
  assert.equal(r.codecs['raw'], 22);
  assert.ok(r.warnings.some((w) => w.code === 'PAGES_DAMAGED' && /3 pages have damaged page descriptors/.test(w.text)), r.warnings.map((x) => x.text).join('\n'));
  const h = await hashMemory(d, { hasher: nodeSha256 });
  assert.equal(h.pages, 15374 - 3);
  assert.equal(h.damagedPages, 3);
  assert.equal(h.missingPages, 0);
  await assert.rejects(d.readPage(0x32f7), (e: VmcoreError) => e.code === 'PAGE_DAMAGED' && /pfn 0x32f7 is damaged: size 0/.test(e.message) && e.field === 'page_desc.size');
  assert.deepEqual((await d.readPage(0x32f6)).length, 4096);
  // a physical read across the damaged page names the damage, not "missing from the file"
  await assert.rejects(d.readPhys(0x1000000, 16), (e: VmcoreError) => e.code === 'PAGE_DAMAGED' && /pfn 0x1000 is damaged/.test(e.message));
  assert.equal((await d.readPhys(0x1000000, 16, { fillMissing: true })).length, 16);
});

test('hash and info call the same pages damaged (not missing), with the same counts and the same warning, serial and on worker threads', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'vmcore-damaged-'));
  try {
    const f = join(dir, 'damaged.kdump');
    writeFileSync(f, sampleWithDamagedDescs(DAMAGED));
    const info = vmcore('info', '--json', '--no-kernel', f);
    assert.equal(info.rc, 0, info.err);
    const pages = JSON.parse(info.out).pages as { missing: number; damaged: number };
    assert.deepEqual([pages.missing, pages.damaged], [0, 3]);
    const infoWarning = (JSON.parse(info.out).warnings as { code: string; text: string }[]).find((w) => w.code === 'PAGES_DAMAGED');
    assert.ok(infoWarning, info.out);
    const h = vmcore('hash', '--json', '--quiet', f);
    assert.equal(h.rc, 0, h.err);
    const j = JSON.parse(h.out);
    assert.deepEqual([j.missingPages, j.damagedPages], [pages.missing, pages.damaged]);
    assert.equal(j.pages, 15374 - 3);
    // the same words on stderr: damaged page descriptors, nothing called missing
    assert.match(h.err, /warning: 3 pages have damaged page descriptors \(size or compression flags impossible\): unreadable, not hashed/);
    assert.ok(infoWarning.text.startsWith('3 pages have damaged page descriptors (size or compression flags impossible): unreadable'));
    assert.doesNotMatch(h.err, /missing/);
    // the worker-thread digest (dumps of 65536 pages and more) counts them alike
    const d = await openDumpFiles([f]);
    try {
      const p = await hashDumpParallel(d, [f], { hasher: nodeSha256, threads: 1 });
      assert.deepEqual([p.sha256, p.pages, p.missingPages, p.damagedPages], [j.sha256, j.pages, 0, 3]);
    } finally {
      await d.close();
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('VMCOREINFO recovery skips a page that does not decompress and says so', async () => {
  const d = await openDump([new BufferSource(sampleBytes(), 'sample.kdump')], nodeCodecs());
  let bad = -1;
  const mem: PhysicalMemory = {
    pageSize: d.pageSize,
    maxPfn: d.maxPfn,
    pageState: (p) => d.pageState(p),
    pageRuns: (s, e) => d.pageRuns(s, e),
    readPage: async (p) => {
      if (bad < 0 && (await d.pageState(p)) === 'data') bad = p;
      if (p === bad) throw new VmcoreError('DECOMPRESS', `zlib page of pfn 0x${p.toString(16)} does not decompress`, { file: 'sample.kdump' });
      return d.readPage(p);
    },
    readPhys: (a, l, o) => d.readPhys(a, l, o),
  };
  const losses = new LossLog();
  const hits = await recoverVmcoreinfo(mem, { losses });
  assert.ok(hits.length > 0);
  assert.ok(hits[0]!.text.startsWith('OSRELEASE=6.1.0-'));
  assert.equal(losses.count, 1);
  assert.equal(losses.warnings()[0]?.code, 'MEMORY_UNREADABLE');
  assert.match(losses.warnings()[0]!.text, /^VMCOREINFO scan: 1 unreadable read skipped \(.*does not decompress\)$/);
  // anything but a page loss still propagates
  assert.equal(isPageLoss(new VmcoreError('BAD_FIELD', 'x')), false);
  await assert.rejects(new LossLog().read('x', async () => { throw new Error('bug'); }), /bug/);
});
