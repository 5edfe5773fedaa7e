// A page's digest in one call (node:crypto's crypto.hash, used by the filter's triage guard for
// every page triage read) is the digest the Hasher object gives, and pageDigests gives the same
// digests with it as with the portable SHA-256.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { fileURLToPath } from 'node:url';
import { digestOne, portableSha256 } from '../../src/core/hash.js';
import { pageDigests } from '../../src/core/triage.js';
import { nodeSha256 } from '../../src/node/hash.js';
import { openDumpFiles } from '../../src/node/open.js';

const SAMPLE = fileURLToPath(new URL('../../../samples/seabios-128M.md-c-d31.kdump', import.meta.url));

test('digestOne: node:crypto in one call, the Hasher object and the portable SHA-256 agree', () => {
  assert.equal(typeof nodeSha256.digestOf, 'function');
  for (const n of [0, 1, 4096, 65536 + 3]) {
    const b = Uint8Array.from({ length: n }, (_, i) => (i * 131 + 7) & 0xff);
    const want = createHash('sha256').update(b).digest('hex');
    assert.equal(digestOne(nodeSha256, b), want);
    assert.equal(digestOne(portableSha256, b), want);
    const h = nodeSha256();
    h.update(b);
    assert.equal(h.digestHex(), want);
  }
});

test("pageDigests of the sample: the same with node:crypto one-call digests as with the portable SHA-256; a present page's digest is the SHA-256 of its bytes", async () => {
  const dump = await openDumpFiles([SAMPLE]);
  try {
    // present pages, a run and single frames, and frames that are not present
    const pfns = [0, 1, 2, 3, 0x1000, 0x1001, 0x2345, 0x7000, dump.maxPfn + 5];
    const a = await pageDigests(dump, pfns, nodeSha256);
    const b = await pageDigests(dump, pfns, portableSha256);
    assert.deepEqual(a, b);
    assert.equal(a.length, pfns.length);
    assert.equal(a[a.length - 1], '', 'beyond max_mapnr: no digest');
    let k = 0;
    while ((await dump.pageState(pfns[k]!)) !== 'data') k++;
    assert.equal(a[k], createHash('sha256').update(await dump.readPage(pfns[k]!)).digest('hex'));
  } finally {
    await dump.close();
  }
});
