/**
 * Per-page compression with the fastest implementation available in this process, writing the
 * result into a caller-provided buffer. Used by the worker threads (and inline when
 * threads = 0). Codec settings follow makedumpfile and QEMU: zlib level 1 (Z_BEST_SPEED,
 * zlib stream), lzo1x-1, raw snappy, zstd level 1 (one frame per page).
 */
import { isZeroPage } from '../../core/memory.js';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { lzoBinding, nodeCodecs } from '../codecs.js';
import { nativeAddon } from '../native.js';
import { VmcoreError } from '../../core/errors.js';
import { PAGE_COMPRESSED, PAGE_RAW, type OutputCodec } from '../../core/format/batch.js';
import { decodeStoredPage, STORED_CODES, STORED_RAW, STORED_ZERO, type StoredPages } from '../../core/format/kdump/reader.js';
import type { Codec, CodecName } from '../../core/codec/types.js';

export interface WorkerConfig {
  codec: OutputCodec;
  level?: number;
  pageSize: number;
  detectZero: boolean;
  /**
   * Pages that come in their stored (kdump) form in the output's codec are written as they are
   * stored, not compressed again (see passStoredBatch); the others are compressed.
   */
  passStored?: boolean;
  /** Use the npm codec packages (node:zlib, lzo) even when the native addon is built. */
  noNative?: boolean;
}

const require = createRequire(import.meta.url);

interface ZstdBinding {
  CCtx: new () => { compress(dst: Uint8Array, src: Uint8Array, level: number): number };
  compressBound(n: number): number;
}
let zstdB: ZstdBinding | null | undefined;
/** zstd-napi's native binding, without the wrapper's per-call result copy. */
function zstdBinding(): ZstdBinding | null {
  if (zstdB !== undefined) return zstdB;
  try {
    const main = require.resolve('zstd-napi');
    let dir = dirname(main);
    if (dir.endsWith('dist')) dir = dirname(dir);
    zstdB = require(join(dir, 'binding.js')) as ZstdBinding;
    if (typeof zstdB.CCtx !== 'function' || typeof zstdB.compressBound !== 'function') zstdB = null;
  } catch {
    zstdB = null;
  }
  return zstdB;
}

/**
 * The highest `--level` the implementation that compresses `codec` takes: zstd 22, zlib 12 with
 * libdeflate (the native addon) and 9 with zlib itself (node:zlib, without the addon or with
 * `noNative`: Z_BEST_COMPRESSION); 0 for the others, which have no level.
 */
export function maxLevel(codec: OutputCodec, noNative = false): number {
  if (codec === 'zstd') return 22;
  if (codec !== 'zlib') return 0;
  const a = noNative ? null : nativeAddon();
  return a?.zlibCompress && a.zlibImpl?.startsWith('libdeflate') ? 12 : 9;
}

/** Name of the implementation used for `codec` (for summaries). */
export function compressorImpl(codec: OutputCodec, noNative = false): string {
  if (codec === 'none') return 'none';
  const a = noNative ? null : nativeAddon();
  if (codec === 'zlib' && a?.zlibCompress) return `${a.zlibImpl ?? 'zlib'} (native addon)`;
  if (codec === 'lzo' && a?.lzoCompress) return `${a.lzoImpl ?? 'minilzo'} lzo1x-1 (native addon)`;
  if (codec === 'lzo' && lzoBinding()) return 'lzo (native lzo1x-1)';
  if (codec === 'zstd' && zstdBinding()) return 'zstd-napi';
  // what pageCompressor falls back to: the registry's codec, when it compresses
  const c = nodeCodecs().get(codec);
  return c?.compress ? c.impl : 'unavailable';
}

/** The optional npm package that writes `codec` where nothing else in the installation does. */
const WRITER_PACKAGE: Partial<Record<OutputCodec, string>> = { zstd: 'zstd-napi', lzo: 'lzo' };

/**
 * The error for a codec this installation can read but not write (compressorImpl says
 * "unavailable"): it names the optional package that writes it and the codecs that can be
 * written instead.
 */
export function codecUnavailable(codec: OutputCodec, noNative = false): VmcoreError {
  const pkg = WRITER_PACKAGE[codec];
  const others = (['zlib', 'lzo', 'snappy', 'zstd'] as const).filter((c) => c !== codec && compressorImpl(c, noNative) !== 'unavailable');
  const how = pkg ? `it needs the optional package ${pkg}${codec === 'lzo' ? ' (or the native addon, built with its sources)' : ''}, which this installation lacks (npm install ${pkg})` : 'this installation has nothing that compresses it';
  const instead = others.length ? `; it can write ${others.join(', ')} (${others.map((c) => CODEC_FLAG[c]).join(', ')})` : '';
  return new VmcoreError('CODEC_UNAVAILABLE', `no ${codec} compressor in this installation: ${how}${instead}`, { field: codec });
}
const CODEC_FLAG: Record<'zlib' | 'lzo' | 'snappy' | 'zstd', string> = { zlib: '-c', lzo: '-l', snappy: '-p', zstd: '-z' };

/**
 * Returns compress(page, out, outOff) → stored size, or -1 to store the page raw. The output
 * may overlap the input page only at or before its start (in-place batch compaction).
 */
export function pageCompressor(cfg: WorkerConfig): ((page: Uint8Array, out: Uint8Array, outOff: number) => number) | undefined {
  const { codec, pageSize } = cfg;
  if (codec === 'none') return undefined;
  const level = cfg.level ?? 1;
  const a = cfg.noNative ? null : nativeAddon();
  if (codec === 'zlib' && a?.zlibCompress) {
    const zc = a.zlibCompress;
    const tmp = new Uint8Array(pageSize);
    return (page, out, outOff) => {
      const n = zc(page, tmp, 0, pageSize - 1, level);
      if (n <= 0) return -1;
      out.set(tmp.subarray(0, n), outOff);
      return n;
    };
  }
  if (codec === 'lzo' && a?.lzoCompress) {
    // the addon compresses into its own scratch and copies: out may overlap page
    const lc = a.lzoCompress;
    return (page, out, outOff) => {
      const n = lc(page, out, outOff, Math.min(pageSize - 1, out.length - outOff));
      return n > 0 ? n : -1;
    };
  }
  if (codec === 'lzo') {
    const b = lzoBinding();
    if (b) {
      // Call the binding directly with one reused output buffer: the package's wrapper
      // allocates and zero-fills a fresh buffer for every page.
      const scratch = Buffer.alloc(pageSize + (pageSize >> 4) + 67);
      return (page, out, outOff) => {
        const r = b.compress(Buffer.from(page.buffer, page.byteOffset, page.length), scratch);
        if (r.err !== 0 || r.len >= pageSize) return -1;
        out.set(scratch.subarray(0, r.len), outOff);
        return r.len;
      };
    }
  }
  if (codec === 'zstd') {
    const b = zstdBinding();
    if (b) {
      // One context and one output buffer per worker; ZSTD_compressCCtx at `level` (one frame
      // per page, as makedumpfile and QEMU write it).
      const cctx = new b.CCtx();
      const bound = b.compressBound(pageSize);
      const scratch = Buffer.allocUnsafe(bound);
      return (page, out, outOff) => {
        // Straight into the batch when the bytes zstd may write end before the page it reads
        // (in-place compaction: once earlier pages have shrunk by a bound's worth).
        if (page.buffer === out.buffer && out.byteOffset + outOff + bound <= page.byteOffset) {
          const n = cctx.compress(out.subarray(outOff, outOff + bound), page, level);
          return n <= 0 || n >= pageSize ? -1 : n;
        }
        const n = cctx.compress(scratch, page, level);
        if (n <= 0 || n >= pageSize) return -1;
        out.set(scratch.subarray(0, n), outOff);
        return n;
      };
    }
  }
  const c = nodeCodecs().get(codec);
  if (!c?.compress) throw codecUnavailable(codec, cfg.noNative);
  const fn = c.compress;
  const lvl = codec === 'zlib' || codec === 'zstd' ? level : undefined;
  return (page, out, outOff) => {
    const r = fn(page, lvl);
    if (r.length >= pageSize) return -1;
    out.set(r, outOff);
    return r.length;
  };
}

/**
 * The native addon's whole-batch path for cfg (one call per batch, no JavaScript per page), when
 * the addon is built with cfg.codec (or cfg.codec is "none") and cfg.noNative is not set; else
 * undefined and compressBatchInPlace does the work page by page. Same contract and results as
 * compressBatchInPlace.
 */
export function nativeBatchCompressor(cfg: WorkerConfig): ((buf: Uint8Array, count: number) => { kinds: Uint8Array<ArrayBuffer>; sizes: Uint32Array<ArrayBuffer>; dataLen: number }) | undefined {
  const a = cfg.noNative ? null : nativeAddon();
  if (!a || (cfg.codec !== 'none' && !a.codecs.includes(cfg.codec))) return undefined;
  const { codec, pageSize, detectZero } = cfg;
  const level = cfg.level ?? 1;
  return (buf, count) => {
    const kinds = new Uint8Array(count);
    const sizes = new Uint32Array(count);
    const dataLen = a.compressPages(codec, buf, count, pageSize, detectZero, level, kinds, sizes);
    return { kinds, sizes, dataLen };
  };
}

/** Where a batch's pages are in a file: a worker reads them itself (nativeFileCompressor). */
export interface FilePages {
  /** A descriptor of this process (valid on every thread), kept open until the batch is done. */
  fd: number;
  /** Byte offset of the batch's first page; its count × pageSize bytes are all in the file. */
  offset: number;
}

/**
 * The native addon's read-and-compress path for cfg: the batch's pages read from their file on
 * the calling thread (a worker) straight into its cache and compressed into `out`, when the
 * addon has it and compresses cfg.codec (or cfg.codec is "none") and cfg.noNative is not set;
 * else undefined and the batch must come with its pages. Throws the addon's Error (offset and
 * errno) when the file cannot be read.
 */
export function nativeFileCompressor(cfg: WorkerConfig): ((file: FilePages, count: number, out: Uint8Array) => { kinds: Uint8Array<ArrayBuffer>; sizes: Uint32Array<ArrayBuffer>; dataLen: number }) | undefined {
  const a = cfg.noNative ? null : nativeAddon();
  const f = a?.compressFilePages;
  if (!a || !f || cfg.pageSize > 65536 || (cfg.codec !== 'none' && !a.codecs.includes(cfg.codec))) return undefined;
  const { codec, pageSize, detectZero } = cfg;
  const level = cfg.level ?? 1;
  return (file, count, out) => {
    const kinds = new Uint8Array(count);
    const sizes = new Uint32Array(count);
    const dataLen = f(codec, file.fd, file.offset, count, pageSize, detectZero, level, kinds, sizes, out);
    return { kinds, sizes, dataLen };
  };
}

/**
 * Classify and compress a batch of pages in place: page i's stored bytes end up at or before
 * offset i * pageSize of `buf`, so no second buffer is needed. kinds: 0 zero, 1 raw,
 * 2 compressed. Shared by the workers and the pool's no-worker path.
 */
export function compressBatchInPlace(
  buf: Uint8Array,
  count: number,
  cfg: WorkerConfig,
  compress: ((page: Uint8Array, out: Uint8Array, outOff: number) => number) | undefined,
): { kinds: Uint8Array<ArrayBuffer>; sizes: Uint32Array<ArrayBuffer>; dataLen: number } {
  const ps = cfg.pageSize;
  const kinds = new Uint8Array(count);
  const sizes = new Uint32Array(count);
  let out = 0;
  for (let i = 0; i < count; i++) {
    const page = buf.subarray(i * ps, (i + 1) * ps);
    if (cfg.detectZero && isZeroPage(page)) continue; // kinds[i] = PAGE_ZERO (0)
    const n = compress ? compress(page, buf, out) : -1;
    if (n > 0 && n < ps) {
      kinds[i] = PAGE_COMPRESSED;
      sizes[i] = n;
      out += n;
    } else {
      if (out !== i * ps) buf.copyWithin(out, i * ps, (i + 1) * ps);
      kinds[i] = PAGE_RAW;
      sizes[i] = ps;
      out += ps;
    }
  }
  return { kinds, sizes, dataLen: out };
}

/**
 * A batch of pages in their stored (kdump) form made into the output's batch in `out` (at least
 * count × pageSize bytes; page i's bytes end at or before (i + 1) × pageSize), decoding every
 * page once (into `scratch`, one page) to prove that it is whole and to find the zero pages
 * (`cfg.detectZero`), as compressBatchInPlace would; a page the reader has proved so already
 * (`st.checked`: decoded whole, not all zeros) is not decoded again. A page stored in the output's codec
 * (`cfg.codec`, with `cfg.passStored`) keeps its stored bytes: no compression again, and so does
 * a raw page of a file whose header names that codec (`st.fileCodec`: its writer found the page
 * incompressible). Any other page (another codec, raw in another file, the shared zero page when
 * zero pages are data) is compressed from its decoded bytes. Returns kinds (PAGE_ZERO 0 / PAGE_RAW / PAGE_COMPRESSED), sizes and the length of
 * the data; or `{ bad: i }` for the first page i that does not decode to exactly one page (the
 * caller then reads the batch page by page, which names the damage: core/loss.ts). Stored forms:
 * KdumpFile.storedPages (makedumpfile diskdump_mod.h page_desc).
 */
export function passStoredBatch(
  st: StoredPages,
  out: Uint8Array,
  cfg: WorkerConfig,
  compress: ((page: Uint8Array, out: Uint8Array, outOff: number) => number) | undefined,
  scratch: Uint8Array,
  codec: (name: CodecName) => Pick<Codec, 'decompress' | 'decompressInto'> | undefined,
): { kinds: Uint8Array<ArrayBuffer>; sizes: Uint32Array<ArrayBuffer>; dataLen: number } | { bad: number } {
  const ps = cfg.pageSize;
  const count = st.codes.length;
  const keep = cfg.passStored && cfg.codec !== 'none' ? STORED_CODES.indexOf(cfg.codec) : -1;
  // a raw page of a file written with the output's codec is one that codec did not shrink
  const keepRaw = keep >= 0 && st.fileCodec === cfg.codec;
  const kinds = new Uint8Array(count);
  const sizes = new Uint32Array(count);
  const page = scratch.subarray(0, ps);
  let pos = 0;
  for (let i = 0; i < count; i++) {
    const c = st.codes[i]!;
    if (c === STORED_ZERO && cfg.detectZero) continue; // kinds[i] = PAGE_ZERO (0)
    const size = st.sizes[i]!;
    // a page the reader has decoded whole already and found not all zeros (st.checked), stored in
    // the output's codec: passed on without decoding it again
    if (c === keep && size > 0 && size < ps && st.checked?.[i] === 1) {
      out.set(st.blob.subarray(st.offsets[i]!, st.offsets[i]! + size), pos);
      kinds[i] = PAGE_COMPRESSED;
      sizes[i] = size;
      pos += size;
      continue;
    }
    let src: Uint8Array = page;
    if (c === STORED_RAW) {
      src = st.blob.subarray(st.offsets[i]!, st.offsets[i]! + st.sizes[i]!);
      if (src.length !== ps) return { bad: i };
    } else if (!decodeStoredPage(st, i, page, codec)) return { bad: i };
    if (cfg.detectZero && c !== STORED_ZERO && isZeroPage(src)) continue;
    if (c === keep && size > 0 && size < ps) {
      out.set(st.blob.subarray(st.offsets[i]!, st.offsets[i]! + size), pos);
      kinds[i] = PAGE_COMPRESSED;
      sizes[i] = size;
      pos += size;
      continue;
    }
    const n = compress && !(c === STORED_RAW && keepRaw) ? compress(src, out, pos) : -1;
    if (n > 0 && n < ps) {
      kinds[i] = PAGE_COMPRESSED;
      sizes[i] = n;
      pos += n;
    } else {
      out.set(src, pos);
      kinds[i] = PAGE_RAW;
      sizes[i] = ps;
      pos += ps;
    }
  }
  return { kinds, sizes, dataLen: pos };
}
