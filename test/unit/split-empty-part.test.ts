/**
 * A split part with an empty pfn range is normal, not a misread header. Input: the second of four
 * parts that makedumpfile 1.7.2 wrote with `makedumpfile --split -c -d 31
 * samples/seabios-128M.md-c-d31.kdump p1 p2 p3 p4` (test/fixtures/makedumpfile-split-empty-part.kdump.gz):
 * the first part holds every pfn up to max_mapnr 0x8000; this one's sub-header says
 * start_pfn == end_pfn == 0x8000 (read with a separate struct unpacking of the sub-header).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gunzipSync } from 'node:zlib';
import { fileURLToPath } from 'node:url';
import { BufferSource } from '../../src/core/io/source.js';
import { openDump } from '../../src/core/format/open.js';
import { nodeCodecs } from '../../src/node/codecs.js';
import { describeDump } from '../../src/core/info.js';
import { buildKdump, patternPage } from '../helpers/build.js';
import { vmcore } from '../helpers/cli.js';

const root = fileURLToPath(new URL('../../../', import.meta.url));
const part = gunzipSync(readFileSync(root + 'test/fixtures/makedumpfile-split-empty-part.kdump.gz'));

test("info on makedumpfile's empty split part says the part is empty and why, not that the header layout is wrong", () => {
  const dir = mkdtempSync(join(tmpdir(), 'vmcore-split-empty-'));
  try {
    const f = join(dir, 'p2');
    writeFileSync(f, part);
    const r = vmcore('info', '--json', '--no-kernel', f);
    assert.equal(r.rc, 0, r.err);
    const j = JSON.parse(r.out);
    assert.equal(j.pages.ram, 0);
    assert.deepEqual([j.header.split, j.header.start_pfn, j.header.end_pfn], [1, 0x8000, 0x8000]);
    const w = (j.warnings as { code: string; text: string }[]).find((x) => x.code === 'NO_MEMORY');
    assert.ok(w, r.out);
    assert.match(w.text, /the split part holds no page frames: its pfn range is empty \(.*p2: start_pfn == end_pfn == 0x8000\)/);
    assert.match(w.text, /normal: the parts before it already hold every pfn up to max_mapnr 0x8000/);
    assert.doesNotMatch(w.text, /layout|damaged/);
    // the text report says the same (on stderr: a message, not data)
    const t = vmcore('info', '--no-kernel', f);
    assert.equal(t.rc, 0, t.err);
    assert.match(t.out + t.err, /the split part holds no page frames/);
    assert.doesNotMatch(t.out + t.err, /a layout that does not fit/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('an empty split range below max_mapnr is explained too; a dump of no memory that is not an empty part still names the header', async () => {
  const pages = new Map([[3, patternPage(3)]]);
  const mid = buildKdump({ maxMapnr: 1024, pages, split: { start: 500, end: 500 } });
  const d = await openDump([new BufferSource(mid, 'mid')], nodeCodecs());
  const r = await describeDump(d);
  assert.equal(r.pages.ram, 0);
  const w = r.warnings.find((x) => x.code === 'NO_MEMORY');
  assert.match(w?.text ?? '', /its pfn range is empty \(mid: start_pfn == end_pfn == 0x1f4\)/);
  assert.match(w?.text ?? '', /a part can get an empty range while the other parts hold the pages/);
  // a part that is not empty: no such explanation
  const first = buildKdump({ maxMapnr: 1024, pages, split: { start: 0, end: 500 } });
  const d1 = await openDump([new BufferSource(first, 'first')], nodeCodecs());
  const r1 = await describeDump(d1);
  assert.ok(r1.pages.ram > 0);
  assert.equal(r1.warnings.find((x) => x.code === 'NO_MEMORY'), undefined);
});
