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

export const fflateZlib: Codec = {
  name: 'zlib',
  impl: 'fflate',
  decompress: (src, n) => exact(unzlibSync(src, { out: new Uint8Array(n) }), n, 'zlib'),
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
