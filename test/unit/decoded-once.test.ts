// A kdump page that a large read has already decoded whole is not decoded a second time when a
// conversion passes it on in its stored form (page filtering reads every struct page before the
// pages are written): KdumpDump notes the pages (StoredPages.checked), passStoredBatch copies them.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { BufferSource } from '../../src/core/io/source.js';
import { openDump } from '../../src/core/format/open.js';
import type { KdumpDump } from '../../src/core/format/kdump/reader.js';
import { nodeCodecs } from '../../src/node/codecs.js';
import { passStoredBatch } from '../../src/node/workers/page-codec.js';
import { buildKdump, patternPage, PAGE } from '../helpers/build.js';

async function sample(): Promise<KdumpDump> {
  // 24 pages: data, one all-zero page (5), data
  const pages = new Map<number, Uint8Array>();
  for (let p = 0; p < 24; p++) pages.set(p, p === 5 ? new Uint8Array(PAGE) : patternPage(p + 1));
  return (await openDump([new BufferSource(buildKdump({ maxMapnr: 32, pages, codec: 'zlib' }), 'k.kdump')], nodeCodecs())) as KdumpDump;
}

test('a large read notes the pages it decoded that are not all zeros; storedPages marks them and only them', async () => {
  const dump = await sample();
  assert.equal((await dump.storedPages(0, 16))!.checked, undefined, 'nothing read yet: nothing marked');
  await dump.readPhys(0, 16 * PAGE);
  const st = (await dump.storedPages(0, 16))!;
  assert.deepEqual([...st.checked!], [...Array(16).keys()].map((p) => (p === 5 ? 0 : 1)), 'pages 0-15 but the zero page');
  assert.deepEqual([...(await dump.storedPages(12, 8))!.checked!], [1, 1, 1, 1, 0, 0, 0, 0], 'pages 16-19 were not read');
  assert.equal((await dump.storedPages(16, 8))!.checked, undefined);
  // a small read goes page by page through the page cache: it notes nothing
  await dump.readPhys(20 * PAGE, 2 * PAGE);
  assert.equal((await dump.storedPages(16, 8))!.checked, undefined);
});

test('passStoredBatch copies a checked page as it is stored and still decodes every other page', async () => {
  const dump = await sample();
  await dump.readPhys(0, 8 * PAGE);
  const cfg = { codec: 'zlib' as const, pageSize: PAGE, detectZero: true, passStored: true };
  const codec = (n: Parameters<ReturnType<typeof nodeCodecs>['get']>[0]) => nodeCodecs().get(n);
  const noCompress = () => assert.fail('nothing is compressed again');
  // page 3's stored bytes damaged after the read: a copy passes them on, a decode finds the damage
  const damaged = async (pfn: number, count: number) => {
    const st = (await dump.storedPages(pfn, count))!;
    st.blob = st.blob.slice();
    st.blob.fill(0xff, st.offsets[3 - pfn]!, st.offsets[3 - pfn]! + st.sizes[3 - pfn]!);
    return st;
  };
  const st = await damaged(0, 8);
  assert.equal(st.checked![3], 1);
  const out = new Uint8Array(8 * PAGE);
  const b = passStoredBatch(st, out, cfg, noCompress, new Uint8Array(PAGE), codec);
  assert.ok(!('bad' in b), 'the checked page is not decoded again');
  assert.deepEqual([...b.kinds], [2, 2, 2, 2, 2, 0, 2, 2], 'the zero page found, the others passed compressed');
  let at = 0;
  for (let i = 0; i < 3; i++) at += b.sizes[i]!;
  assert.ok(out.subarray(at, at + b.sizes[3]!).every((x) => x === 0xff), 'page 3 passed on as it is stored');
  // without the mark, the same batch is decoded page by page and the damage is found
  delete st.checked;
  assert.deepEqual(passStoredBatch(st, new Uint8Array(8 * PAGE), cfg, noCompress, new Uint8Array(PAGE), codec), { bad: 3 });
  // another output codec decodes every page: the damage is found
  const again = await damaged(0, 8);
  assert.deepEqual(passStoredBatch(again, new Uint8Array(8 * PAGE), { ...cfg, codec: 'lzo' }, () => -1, new Uint8Array(PAGE), codec), { bad: 3 });
});
