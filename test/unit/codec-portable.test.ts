/**
 * The portable zlib page codec (fflate, used in browsers) must refuse what node:zlib refuses: a
 * stream holding more than the page, and a stream whose Adler-32 does not match its bytes.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { deflateSync, inflateSync } from 'node:zlib';
import { portableCodecs } from '../../src/core/codec/portable.js';
import { nodeCodecs } from '../../src/node/codecs.js';
import { patternPage, PAGE } from '../helpers/build.js';

test('portable zlib: the page back when intact; too long or a wrong Adler-32 is an error, as with node:zlib', () => {
  const js = portableCodecs().get('zlib')!;
  const native = nodeCodecs().get('zlib')!;
  const page = patternPage(7);
  const z = new Uint8Array(deflateSync(page, { level: 1 }));
  assert.deepEqual(js.decompress(z, PAGE), page);
  const cases: [string, Uint8Array][] = [
    ['two pages in one stream', new Uint8Array(deflateSync(Buffer.concat([page, page]), { level: 1 }))],
    ['Adler-32 changed', Uint8Array.from(z, (b, i) => (i === z.length - 1 ? b ^ 1 : b))],
    ['stored block with one byte changed', (() => {
      const s = new Uint8Array(deflateSync(page, { level: 0 }));
      s[100]! ^= 0x40; // inside the stored bytes: inflates, but to other bytes
      return s;
    })()],
  ];
  for (const [what, src] of cases) {
    assert.throws(() => inflateSync(src, { maxOutputLength: PAGE }), Error, `node:zlib refuses: ${what}`);
    assert.throws(() => native.decompress(src, PAGE), Error, `node codec: ${what}`);
    assert.throws(() => js.decompress(src, PAGE), /zlib/, `portable codec: ${what}`);
  }
});
