/**
 * Pure-JS codecs: run in any JavaScript environment (browsers included).
 * zlib: fflate; snappy: snappyjs; zstd: fzstd (decompression only); LZO: our own lzo1x
 * decompressor (no maintained pure-JS package exists).
 */
import { unzlibSync, zlibSync } from 'fflate';
import * as snappyjs from 'snappyjs';
import { decompress as zstdDecompress } from 'fzstd';
import { lzo1xDecompress } from './lzo1x.js';
import { MapCodecRegistry, type Codec } from './types.js';

function exact(out: Uint8Array, expected: number, what: string): Uint8Array {
  if (out.length !== expected) throw new Error(`${what} produced ${out.length} bytes, expected ${expected}`);
  return out;
}

/** Adler-32 of `d` (RFC 1950 section 8.2). */
function adler32(d: Uint8Array): number {
  let a = 1;
  let b = 0;
  for (let i = 0; i < d.length; ) {
    const end = Math.min(i + 3800, d.length); // no overflow before the modulo
    for (; i < end; i++) {
      a += d[i]!;
      b += a;
    }
    a %= 65521;
    b %= 65521;
  }
  return ((b << 16) | a) >>> 0;
}

/**
 * fflate's unzlibSync neither checks the stream's Adler-32 nor says when the stream holds more
 * than the `out` buffer it was given (it returns the first n bytes): the checksum of the n bytes
 * against the stream's trailer catches both, as zlib's own inflate does.
 */
function unzlibPage(src: Uint8Array, n: number): Uint8Array {
  const out = exact(unzlibSync(src, { out: new Uint8Array(n) }), n, 'zlib');
  const t = src.length;
  const want = t >= 6 ? ((src[t - 4]! << 24) | (src[t - 3]! << 16) | (src[t - 2]! << 8) | src[t - 1]!) >>> 0 : -1;
  if (adler32(out) !== want) throw new Error(`zlib: the Adler-32 of the ${n} bytes does not match the stream's (damaged, or more than ${n} bytes)`);
  return out;
}

export const fflateZlib: Codec = {
  name: 'zlib',
  impl: 'fflate',
  decompress: unzlibPage,
  compress: (src, level = 1) => zlibSync(src, { level: level as 1 }),
};

export const snappyJs: Codec = {
  name: 'snappy',
  impl: 'snappyjs',
  decompress: (src, n) => exact(new Uint8Array(snappyjs.uncompress(src, n)), n, 'snappy'),
  compress: (src) => new Uint8Array(snappyjs.compress(src)),
};

export const fzstdCodec: Codec = {
  name: 'zstd',
  impl: 'fzstd',
  decompress: (src, n) => exact(zstdDecompress(src, new Uint8Array(n)), n, 'zstd'),
};

export const lzoJs: Codec = {
  name: 'lzo',
  impl: 'lzo1x (js)',
  decompress: (src, n) => lzo1xDecompress(src, n),
};

/** The page decompressors in pure JS (fflate, snappyjs, fzstd, our LZO1X), for browsers. */
export function portableCodecs(): MapCodecRegistry {
  return new MapCodecRegistry([fflateZlib, lzoJs, snappyJs, fzstdCodec]);
}
