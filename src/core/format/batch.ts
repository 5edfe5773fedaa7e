/**
 * What the page compressor hands to every output format (kdump, ELF, celf): a batch of
 * consecutive pages, each with the kind of storage it got. Neutral ground between the
 * compressor (node/workers) and the writers (core/format/*), so neither depends on the other.
 */
import type { CodecName } from '../codec/types.js';

/** A page codec of an output file, or 'none' (pages stored as they are). */
export type OutputCodec = CodecName | 'none';

/** Per-page kind produced by the compressor: how the page is stored. */
export const PAGE_ZERO = 0; // all zero: shares the zero page (or is dropped, for ELF)
export const PAGE_RAW = 1; // stored uncompressed (page size bytes)
export const PAGE_COMPRESSED = 2; // stored compressed with the output codec
export type PageKind = typeof PAGE_ZERO | typeof PAGE_RAW | typeof PAGE_COMPRESSED;

/** A batch of consecutive pages as it comes back from the compressor. */
export interface CompressedBatch {
  startPfn: number;
  count: number;
  /** PAGE_ZERO / PAGE_RAW / PAGE_COMPRESSED per page. */
  kinds: Uint8Array;
  /** Stored size of each page (0 for zero pages). */
  sizes: Uint32Array;
  /** The stored bytes of the non-zero pages, concatenated in page order. */
  data: Uint8Array;
}
