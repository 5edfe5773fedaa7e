/**
 * `info` page counts from the kdump bitmaps alone (`--pages bitmaps`, the default for URLs):
 * what a summary of a multi-GiB dump fetches over HTTP, and what the bitmaps cannot tell.
 * Truth: the synthetic dump's own construction (test/helpers/big-kdump.ts), the full
 * descriptor walk on the same files, and the damaged sample of damaged-pages.test.ts.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { BufferSource, type ByteSource } from '../../src/core/io/source.js';
import { openDump } from '../../src/core/format/open.js';
import { nodeCodecs } from '../../src/node/codecs.js';
import { openDumpFiles, fetchStats } from '../../src/node/open.js';
import { describeDump, type InfoReport } from '../../src/core/info.js';
import { analyzeKernel } from '../../src/core/kernel/kernel.js';
import type { Dump, MapRun, PageRun } from '../../src/core/dump.js';
import { startRangeServer } from '../helpers/range-server.js';
import { bigKdump, bigStateOf, storedPage } from '../helpers/big-kdump.js';
import { sampleBytes, sampleWithDamagedDescs } from '../helpers/sample-variants.js';
import { vmcoreAsync as vmcore } from '../helpers/cli.js';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '../../..');


async function collect<R>(it: AsyncIterable<R>): Promise<R[]> {
  const out: R[] = [];
  for await (const r of it) out.push(r);
  return out;
}

/** The full page map seen through the bitmaps: data and zero pages are 'stored'. */
function asMap(runs: PageRun[], stored: (r: PageRun) => MapRun['state']): MapRun[] {
  const out: MapRun[] = [];
  for (const r of runs) {
    const st = stored(r);
    const last = out[out.length - 1];
    if (last && last.state === st && last.endPfn === r.startPfn) last.endPfn = r.endPfn;
    else out.push({ startPfn: r.startPfn, endPfn: r.endPfn, state: st });
  }
  return out;
}

async function remoteInfo(url: string, pages: 'full' | 'bitmaps'): Promise<{ r: InfoReport; fetched: number; size: number; dump: Dump }> {
  const sources: ByteSource[] = [];
  const dump = await openDumpFiles([url], { sources });
  const r = await describeDump(dump, undefined, { pages });
  const st = fetchStats(sources)!;
  return { r, fetched: st.bytesFetched, size: st.remoteBytes, dump };
}

test('a 4 GiB-RAM dump over HTTP: the bitmap count fetches under 1 % and agrees with the full count, which fetches the descriptors', async () => {
  const big = bigKdump();
  const srv = await startRangeServer(big.file);
  try {
    const url = `${srv.url}/big.kdump`;
    const b = await remoteInfo(url, 'bitmaps');
    const e = big.expect;
    assert.equal(b.r.pageCount, 'bitmaps');
    assert.deepEqual(b.r.pages, { ram: e.ram, dumped: e.dumped, data: null, zeroShared: null, excluded: e.excluded, missing: 0, damaged: null });
    assert.deepEqual(b.r.codecs, {});
    assert.deepEqual(
      b.r.ranges.map((x) => [x.start, x.end]),
      [
        ['0x0', '0xa0000'],
        ['0x100000', '0xc0000000'],
        ['0x100000000', '0x140000000'],
      ],
    );
    assert.ok(b.size > 1.5e9, `a 1.6 GB file: ${b.size}`);
    assert.ok(b.fetched / b.size < 0.01, `fetched ${b.fetched} of ${b.size} (${((100 * b.fetched) / b.size).toFixed(3)} %)`);
    assert.ok(b.fetched < e.descriptorBytes / 10, `fetched ${b.fetched}, the descriptors are ${e.descriptorBytes}`);
    // the file is a real dump: a stored page reads back as the page compressed into it
    const pfn = 0x123400;
    assert.equal(bigStateOf(pfn), 'data');
    assert.deepEqual(await b.dump.readPage(pfn), storedPage());
    await b.dump.close();

    const f = await remoteInfo(url, 'full');
    assert.equal(f.r.pageCount, 'full');
    assert.deepEqual(f.r.pages, { ram: e.ram, dumped: e.dumped, data: e.data, zeroShared: e.zeroShared, excluded: e.excluded, missing: 0, damaged: 0 });
    assert.equal(f.r.codecs['lzo'], e.data);
    assert.deepEqual(f.r.ranges, b.r.ranges);
    // what the bitmap count saves: the full count reads every descriptor, over 1 % of this file
    assert.ok(f.fetched >= e.descriptorBytes && f.fetched / f.size > 0.01, `full count fetched ${f.fetched}`);
    await f.dump.close();

    // the CLI counts from the bitmaps for a URL by default, says so, and reports the bytes; the
    // dump has no VMCOREINFO, whose recovery would read every page (twice): not over HTTP
    const cli = await vmcore('info', '--json', url);
    assert.equal(cli.rc, 0, cli.err);
    const j = JSON.parse(cli.out);
    assert.equal(j.pageCount, 'bitmaps');
    assert.deepEqual(j.pages, b.r.pages);
    assert.ok(j.fetch.fraction < 0.01, JSON.stringify(j.fetch));
    assert.equal(j.physBase.verdict, 'cannot prove');
    assert.ok(j.warnings.some((w: { code: string; text: string }) => w.code === 'VMCOREINFO_NOT_RECOVERED' && /no VMCOREINFO: recovering it from memory reads every page.*not done \(--recover does it/.test(w.text)), JSON.stringify(j.warnings));
    const text = await vmcore('info', '--no-kernel', '--stats', url);
    assert.ok(
      text.out.includes(`\nPages         frames ${e.ram}  dumped ${e.dumped}  excluded ${e.excluded}  missing 0  [bitmaps only: zero-shared, damaged descriptors and codecs not counted; --pages full reads every page descriptor]\n`),
      text.out,
    );
    assert.match(text.err, /^stats: fetched .* \(\d+ bytes, 0\.\d\d% of /);
  } finally {
    await srv.close();
  }
});

test('bitmap runs are the full page map with data and zero pages merged, on the sample and on copies cut short in the descriptors and in the data', async () => {
  const whole = sampleBytes();
  const cases: [string, Uint8Array][] = [
    ['sample', whole],
    ['cut in the data', whole.subarray(0, whole.length - 3 * 4096 - 100)],
    ['cut in the descriptors', whole.subarray(0, 0x5000 + 24 * 9000 + 7)],
  ];
  for (const [name, bytes] of cases) {
    const d = await openDump([new BufferSource(bytes, name)], nodeCodecs());
    const full = await collect(d.pageRuns());
    const map = await collect(d.mapRuns!());
    const h = (await d.details({ codecs: 'none' })).header as { sub_hdr_size: number; bitmap_blocks: number; block_size: number };
    const descOffset = (1 + h.sub_hdr_size + h.bitmap_blocks) * h.block_size;
    assert.equal(descOffset, 0x5000);
    const inFile = Math.floor((bytes.length - descOffset) / 24); // descriptors inside the file
    // a missing page whose descriptor is in the file is 'stored' to the bitmaps: compare states but that
    const fullAsMap = asMap(full, (r) => (r.state === 'data' || r.state === 'zero' ? 'stored' : r.state === 'missing' ? 'missing' : r.state));
    const storedOrMissing = (runs: MapRun[]) => asMap(runs as PageRun[], (r) => ((r.state as string) === 'stored' || r.state === 'missing' ? 'stored' : (r.state as MapRun['state'])));
    assert.deepEqual(storedOrMissing(map), storedOrMissing(fullAsMap), name);
    const count = (runs: MapRun[], s: string) => runs.filter((r) => r.state === s).reduce((a, r) => a + r.endPfn - r.startPfn, 0);
    const rb = await describeDump(d, undefined, { pages: 'bitmaps' });
    const rf = await describeDump(d, undefined, { pages: 'full' });
    assert.equal(rb.pages.ram, rf.pages.ram, name);
    assert.equal(rb.pages.excluded, rf.pages.excluded, name);
    assert.equal(rb.pages.dumped + rb.pages.missing, rf.pages.dumped + rf.pages.missing + rf.pages.damaged!, name);
    assert.equal(rb.pages.missing, Math.max(0, 15374 - inFile), `${name}: the pages whose descriptor is beyond the end`);
    assert.equal(count(map, 'missing'), rb.pages.missing, name);
    assert.deepEqual(rb.ranges, rf.ranges, name);
    const cut = rb.warnings.some((w) => w.code === 'FILE_TRUNCATED' && /cut short inside its page data/.test(w.text));
    assert.equal(cut, name !== 'sample', `${name}: ${JSON.stringify(rb.warnings)}`);
    // pages whose descriptor is in the file but whose data is not: only the full count sees them
    if (name !== 'sample') assert.ok(rf.pages.missing > rb.pages.missing, `${name}: full ${rf.pages.missing}, bitmaps ${rb.pages.missing}`);
    await d.close();
  }
});

test('damaged descriptors: the full count finds them; the bitmap count says it did not look (null), and the CLI keeps the full count for local files', async () => {
  const d = await openDump([new BufferSource(sampleWithDamagedDescs([0x1000, 0x32f7]), 'damaged.kdump')], nodeCodecs());
  const k = await analyzeKernel(d);
  const full = await describeDump(d, k);
  assert.equal(full.pageCount, 'full', 'the default');
  assert.equal(full.pages.damaged, 2);
  const bm = await describeDump(d, k, { pages: 'bitmaps' });
  assert.equal(bm.pages.damaged, null);
  assert.equal(bm.pages.dumped, 15374);
  assert.ok(!bm.warnings.some((w) => w.code === 'PAGES_DAMAGED' && /damaged/.test(w.text)));
  await d.close();
  const local = await vmcore('info', '--json', '--no-kernel', join(ROOT, 'samples/seabios-128M.md-c-d31.kdump'));
  assert.equal(JSON.parse(local.out).pageCount, 'full');
  const asked = await vmcore('info', '--json', '--no-kernel', '--pages', 'bitmaps', join(ROOT, 'samples/seabios-128M.md-c-d31.kdump'));
  assert.equal(JSON.parse(asked.out).pageCount, 'bitmaps');
  const bad = await vmcore('info', '--pages', 'some', join(ROOT, 'samples/seabios-128M.md-c-d31.kdump'));
  assert.equal(bad.rc, 2, bad.err);
});
