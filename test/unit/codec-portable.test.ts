/**
 * The portable zlib page codec (fflate, used in browsers) must refuse what node:zlib refuses: a
 * stream holding more than the page, and a stream whose Adler-32 does not match its bytes.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { deflateSync, inflateSync } from 'node:zlib';
import { execFileSync } from 'node:child_process';
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

test('MapCodecRegistry.registerLazy: loaded once, when first asked for; a load that fails or throws keeps the codec registered before', () => {
  const reg = portableCodecs();
  const before = reg.get('zstd')!;
  let loads = 0;
  reg.registerLazy('zstd', () => {
    loads++;
    return undefined;
  });
  const fake = { name: 'snappy' as const, impl: 'test', decompress: (s: Uint8Array) => s };
  reg.registerLazy('snappy', () => {
    loads++;
    return fake;
  });
  reg.registerLazy('lzo', () => {
    throw new Error('a native module that cannot start');
  });
  const lzoBefore = portableCodecs().get('lzo');
  assert.equal(reg.get('lzo')?.impl, lzoBefore!.impl, 'a load that throws: the codec registered before stays');
  assert.equal(lzoBefore!.impl, 'lzo1x (js)');
  assert.equal(loads, 0, 'nothing loaded at registration');
  assert.equal(reg.get('zstd'), before, 'the portable codec stays when the load gives none');
  assert.equal(reg.get('zstd'), before);
  assert.equal(loads, 1, 'a failed load is not tried again');
  assert.ok(reg.list().includes(fake), 'list() loads what is left');
  assert.equal(reg.get('snappy'), fake);
  assert.equal(loads, 2);
});

test('nodeCodecs: a command that reads zlib and lzo pages does not load the snappy and zstd packages (milliseconds per thread); asked for, they are there', () => {
  const code = `
    import { createRequire } from 'node:module';
    const { nodeCodecs } = await import(${JSON.stringify(new URL('../../src/node/codecs.js', import.meta.url).href)});
    const cache = () => Object.keys(createRequire(import.meta.url).cache);
    const r = nodeCodecs();
    r.get('zlib'); r.get('lzo');
    const early = cache().filter((k) => /node_modules[\\\\/](snappy|zstd-napi|@napi-rs)[\\\\/]/.test(k));
    const impl = [r.get('zstd').impl, r.get('snappy').impl];
    const late = cache().filter((k) => /node_modules[\\\\/](snappy|zstd-napi)[\\\\/]/.test(k));
    console.log(JSON.stringify({ early, impl, late: late.length }));`;
  const out = execFileSync(process.execPath, ['--input-type=module', '-e', code], { encoding: 'utf8' });
  const r = JSON.parse(out) as { early: string[]; impl: string[]; late: number };
  assert.deepEqual(r.early, []);
  assert.deepEqual(r.impl, ['zstd-napi', 'snappy (napi-rs)']);
  assert.ok(r.late >= 2);
});
