/**
 * The optional native addon (native/pages.c, built by node-gyp at install when a C compiler is
 * there): page compression without a JavaScript call per page. zlib with libdeflate, compiled
 * from the sources the package carries (native/libdeflate: no system library); lzo1x-1 with the
 * minilzo sources of the `lzo` npm package. Loaded once per thread; null when it was not built.
 */
import { createRequire } from 'node:module';

export interface NativeAddon {
  /** Codecs this build compresses: "zlib" (libdeflate), "lzo" (minilzo, when the lzo package is installed). */
  readonly codecs: readonly string[];
  /** What compresses zlib: "libdeflate 1.23" (native/libdeflate/libdeflate.h). */
  readonly zlibImpl?: string;
  /** What compresses lzo: "minilzo 2.09". */
  readonly lzoImpl?: string;
  /** zlib stream (RFC 1950) of src at `level` into dst[dstOffset..]; bytes written, or 0 when it needs more than dstLimit. */
  zlibCompress?(src: Uint8Array, dst: Uint8Array, dstOffset: number, dstLimit: number, level: number): number;
  /** lzo1x-1 of src into dst[dstOffset..]; bytes written, or 0 when it needs more than dstLimit. */
  lzoCompress?(src: Uint8Array, dst: Uint8Array, dstOffset: number, dstLimit: number): number;
  /** lzo1x_decompress_safe of src into dst: bytes written, or a negative LZO_E_* code. */
  lzoDecompress?(src: Uint8Array, dst: Uint8Array): number;
  /**
   * `count` pages of `pageSize` bytes at the start of buf classified (kinds[i]: 0 zero, only with
   * detectZero; 1 raw; 2 compressed) and compressed in place with `codec` ("none", or one of
   * `codecs`): page i's stored bytes end at or before (i + 1) × pageSize. Returns the data
   * length; sizes[i] is page i's stored length. Throws Error/RangeError on bad arguments.
   */
  compressPages(codec: string, buf: Uint8Array, count: number, pageSize: number, detectZero: boolean, level: number, kinds: Uint8Array, sizes: Uint32Array): number;
  /**
   * The same for `count` pages read from the open file `fd` at byte `fileOffset` (pread, 64 KiB
   * at a time into the calling thread's own buffer) and stored into `out` (count × pageSize
   * bytes at least). Throws an Error naming the offset and errno when a read fails or the file
   * ends first. pageSize at most 64 KiB. Absent from addons built before it.
   */
  compressFilePages?(codec: string, fd: number, fileOffset: number, count: number, pageSize: number, detectZero: boolean, level: number, kinds: Uint8Array, sizes: Uint32Array, out: Uint8Array): number;
  /** fcntl(fd, F_SETPIPE_SZ, bytes): the pipe's new capacity, -errno when refused, 0 where the system has no such call. Absent from addons built before it. */
  pipeSize?(fd: number, bytes: number): number;
}

const require = createRequire(import.meta.url);
let addon: NativeAddon | null | undefined;

/** The addon of this installation (build/Release/vmcore_native.node), or null when it was not built. */
export function nativeAddon(): NativeAddon | null {
  if (addon !== undefined) return addon;
  // dist/src/node/native.js and src/node/native.ts (tests run from dist/)
  for (const p of ['../../../build/Release/vmcore_native.node', '../../build/Release/vmcore_native.node']) {
    try {
      const a = require(p) as NativeAddon;
      if (Array.isArray(a.codecs) && typeof a.compressPages === 'function') return (addon = a);
    } catch {
      /* try the next */
    }
  }
  return (addon = null);
}
