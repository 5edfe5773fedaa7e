/**
 * Native codecs for Node: node:zlib, lzo1x-1 (the vmcore addon's minilzo, else the lzo package's
 * binding), snappy (napi-rs) and zstd-napi.
 * Each is optional; a codec whose native module is missing falls back to the portable one
 * (which may be decompress-only, e.g. zstd via fzstd).
 */
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { constants as zc, deflateSync, inflateSync } from 'node:zlib';
import { MapCodecRegistry, type Codec, type CodecName } from '../core/codec/types.js';
import { portableCodecs } from '../core/codec/portable.js';
import { nativeAddon } from './native.js';

const require = createRequire(import.meta.url);

function exact(out: Uint8Array, expected: number, what: string): Uint8Array {
  if (out.length !== expected) throw new Error(`${what} produced ${out.length} bytes, expected ${expected}`);
  return out;
}

function u8(b: Buffer): Uint8Array {
  return new Uint8Array(b.buffer, b.byteOffset, b.length);
}

export const nodeZlib: Codec = {
  name: 'zlib',
  impl: 'node:zlib',
  decompress: (src, n) => exact(u8(inflateSync(src, { maxOutputLength: Math.max(n, 1) })), n, 'zlib'),
  compress: (src, level = 1) => u8(deflateSync(src, { level, strategy: zc.Z_DEFAULT_STRATEGY })),
};

function tryLoad<T>(name: string): T | undefined {
  try {
    return require(name) as T;
  } catch {
    return undefined;
  }
}

interface LzoModule {
  compress(b: Buffer): Buffer;
  decompress(b: Buffer, size: number): Buffer;
}
interface SnappyModule {
  compressSync(b: Uint8Array): Buffer;
  uncompressSync(b: Uint8Array): Buffer | string;
}
interface ZstdModule {
  Compressor: new () => { setParameters(p: Record<string, number>): void; compress(b: Uint8Array): Buffer };
  Decompressor: new () => { decompress(b: Uint8Array): Buffer };
  compress(b: Uint8Array, p?: Record<string, number>): Buffer;
  decompress(b: Uint8Array): Buffer;
}

/** The lzo package's native calls (lzo1x-1 compress, lzo1x_decompress_safe), into the caller's buffers. */
export interface LzoBinding {
  compress(input: Buffer, output: Buffer): { err: number; len: number };
  decompress(input: Buffer, output: Buffer): { err: number; len: number };
}
let lzoB: LzoBinding | null | undefined;
/** The lzo package's native binding, without its wrapper (which allocates and zero-fills a buffer per call), or null. */
export function lzoBinding(): LzoBinding | null {
  if (lzoB !== undefined) return lzoB;
  try {
    const main = require.resolve('lzo');
    lzoB = require(join(dirname(main), 'build', 'Release', 'node_lzo.node')) as LzoBinding;
    if (typeof lzoB.compress !== 'function' || typeof lzoB.decompress !== 'function') lzoB = null;
  } catch {
    lzoB = null;
  }
  return lzoB;
}

let cached: MapCodecRegistry | undefined;

/**
 * The best codecs available in this Node process. The lzo (without the addon), snappy and zstd
 * packages are loaded when their codec is first asked for (MapCodecRegistry.registerLazy).
 */
export function nodeCodecs(): MapCodecRegistry {
  if (cached) return cached;
  const reg = portableCodecs();
  reg.register(nodeZlib);
  // the native addon's minilzo (built from the same package's sources) when present: one call
  // per page without the binding's result object
  const na = nativeAddon();
  const nd = na?.lzoDecompress;
  if (nd) {
    const decompressInto = (src: Uint8Array, dst: Uint8Array): number => {
      const r = nd(src, dst);
      if (r < 0) throw new Error(`lzo1x_decompress_safe error ${r}`);
      return r;
    };
    const lc = na.lzoCompress;
    reg.register({
      name: 'lzo',
      impl: `${na.lzoImpl ?? 'minilzo'} lzo1x-1 (native addon)`,
      decompress: (src, n) => {
        const out = new Uint8Array(n);
        return exact(out.subarray(0, decompressInto(src, out)), n, 'lzo');
      },
      decompressInto,
      ...(lc
        ? {
            compress: (src: Uint8Array) => {
              const out = new Uint8Array(src.length + (src.length >> 4) + 67);
              const n = lc(src, out, 0, out.length);
              if (n <= 0) throw new Error('lzo1x_1_compress failed');
              return out.slice(0, n);
            },
          }
        : {}),
    });
  } else {
    reg.registerLazy('lzo', () => {
      const lzo = tryLoad<LzoModule>('lzo');
      if (!lzo) return undefined;
      const b = lzoBinding();
      return {
        name: 'lzo',
        impl: 'lzo (native lzo1x-1)',
        decompress: (src, n) => exact(u8(lzo.decompress(Buffer.from(src.buffer, src.byteOffset, src.length), n)), n, 'lzo'),
        ...(b
          ? {
              decompressInto: (src: Uint8Array, dst: Uint8Array) => {
                const r = b.decompress(Buffer.from(src.buffer, src.byteOffset, src.length), Buffer.from(dst.buffer, dst.byteOffset, dst.length));
                if (r.err !== 0) throw new Error(`lzo1x_decompress_safe error ${r.err}`);
                return r.len;
              },
            }
          : {}),
        compress: (src) => u8(lzo.compress(Buffer.from(src.buffer, src.byteOffset, src.length))),
      };
    });
  }
  reg.registerLazy('snappy', () => {
    const snappy = tryLoad<SnappyModule>('snappy');
    if (!snappy) return undefined;
    return {
      name: 'snappy',
      impl: 'snappy (napi-rs)',
      decompress: (src, n) => {
        const r = snappy.uncompressSync(src);
        return exact(typeof r === 'string' ? new TextEncoder().encode(r) : u8(r), n, 'snappy');
      },
      compress: (src) => u8(snappy.compressSync(src)),
    };
  });
  reg.registerLazy('zstd', () => {
    const zstd = tryLoad<ZstdModule>('zstd-napi');
    if (!zstd) return undefined;
    const cctxByLevel = new Map<number, { compress(b: Uint8Array): Buffer }>();
    const dctx = new zstd.Decompressor();
    return {
      name: 'zstd',
      impl: 'zstd-napi',
      decompress: (src, n) => exact(u8(dctx.decompress(src)), n, 'zstd'),
      compress: (src, level = 1) => {
        let c = cctxByLevel.get(level);
        if (!c) {
          const cc = new zstd.Compressor();
          cc.setParameters({ compressionLevel: level });
          c = cc;
          cctxByLevel.set(level, c);
        }
        return u8(c.compress(src));
      },
    };
  });
  cached = reg;
  return reg;
}

export function codecImplementations(): Record<CodecName, string> {
  const r = nodeCodecs();
  return Object.fromEntries(r.list().map((c) => [c.name, c.impl])) as Record<CodecName, string>;
}
