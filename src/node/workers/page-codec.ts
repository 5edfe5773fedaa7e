/**
 * Per-page compression with the fastest implementation available in this process, writing the
 * result into a caller-provided buffer. Used by the worker threads (and inline when
 * threads = 0). Codec settings follow makedumpfile and QEMU: zlib level 1 (Z_BEST_SPEED,
 * zlib stream), lzo1x-1, raw snappy, zstd level 1 (one frame per page).
 */
import { createRequire } from 'node:module';
import { nodeCodecs } from '../codecs.js';
import { VmcoreError } from '../../core/errors.js';
import type { OutputCodec } from '../../core/format/kdump/writer.js';

export interface WorkerConfig {
  codec: OutputCodec;
  level?: number;
  pageSize: number;
  detectZero: boolean;
  /** Use node:zlib even when the native libdeflate addon is present. */
  noNative?: boolean;
}

const require = createRequire(import.meta.url);

interface DeflateAddon {
  /** zlib-format stream of src at `level` into dst; returns bytes written or 0 if it does not fit. */
  zlibCompress(src: Uint8Array, dst: Uint8Array, dstOffset: number, dstLimit: number, level: number): number;
}

let addon: DeflateAddon | null | undefined;
/** The optional libdeflate addon (built by node-gyp at install), or null. */
export function deflateAddon(): DeflateAddon | null {
  if (addon !== undefined) return addon;
  for (const p of ['../../../../build/Release/vmcore_deflate.node', '../../../build/Release/vmcore_deflate.node']) {
    try {
      addon = require(p) as DeflateAddon;
      return addon;
    } catch {
      /* try next */
    }
  }
  addon = null;
  return addon;
}

/** Name of the implementation used for `codec` (for summaries). */
export function compressorImpl(codec: OutputCodec, noNative = false): string {
  if (codec === 'none') return 'none';
  if (codec === 'zlib' && !noNative && deflateAddon()) return 'libdeflate (native addon)';
  return nodeCodecs().get(codec)?.impl ?? 'unavailable';
}

/**
 * Returns compress(page, out, outOff) → stored size, or -1 to store the page raw. The output
 * may overlap the input page only at or before its start (in-place batch compaction).
 */
export function pageCompressor(cfg: WorkerConfig): ((page: Uint8Array, out: Uint8Array, outOff: number) => number) | undefined {
  const { codec, pageSize } = cfg;
  if (codec === 'none') return undefined;
  const level = cfg.level ?? 1;
  if (codec === 'zlib' && !cfg.noNative) {
    const a = deflateAddon();
    if (a) {
      const tmp = new Uint8Array(pageSize);
      return (page, out, outOff) => {
        const n = a.zlibCompress(page, tmp, 0, pageSize - 1, level);
        if (n <= 0) return -1;
        out.set(tmp.subarray(0, n), outOff);
        return n;
      };
    }
  }
  const c = nodeCodecs().get(codec);
  if (!c?.compress) {
    throw new VmcoreError('CODEC_UNAVAILABLE', `no ${codec} compressor in this installation (install the optional native module)`, { field: codec });
  }
  const fn = c.compress;
  const lvl = codec === 'zlib' || codec === 'zstd' ? level : undefined;
  return (page, out, outOff) => {
    const r = fn(page, lvl);
    if (r.length >= pageSize) return -1;
    out.set(r, outOff);
    return r.length;
  };
}
