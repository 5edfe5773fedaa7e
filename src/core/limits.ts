/**
 * Every cap vmcore puts on a size or count read from an untrusted file, in one place, so that
 * the readers, writers and the stream agree. A value over its cap is a typed error
 * (OUT_OF_BOUNDS) naming the field, never an allocation of that size.
 */

/** ELF core files (System V gABI), for every ELF reader (random-access, celf, stream, patch). */
export const ELF_LIMITS = {
  /** Program headers (PN_XNUM allows 2^32; QEMU writes one per RAM block plus a note). */
  maxPhnum: 1 << 20,
  /** Bytes of PT_NOTE data, one segment or all together (a CPU's notes are a few KiB). */
  maxNoteBytes: 64 << 20,
  /** Physical address bits: no architecture has more than 52 (x86_64 MAXPHYADDR, arm64 LPA). */
  maxPhysBits: 52,
  /** Bytes before the first memory byte a one-pass stream reads (headers and notes). */
  maxStreamHeaderBytes: 64 << 20,
} as const;

/** Pages of physical address space: 2^52 bytes (ELF_LIMITS.maxPhysBits) of 4 KiB pages. */
const MAX_PFNS = 2 ** (ELF_LIMITS.maxPhysBits - 12);

/** kdump-compressed files (makedumpfile diskdump_mod.h), for the reader, the writer and fix. */
export const KDUMP_LIMITS = {
  /** max_mapnr: one past the highest page frame, as many as 52 physical address bits hold. */
  maxMapnr: MAX_PFNS,
  /** block_size (the page size): a power of two from 512 bytes. */
  minBlockSize: 512,
  maxBlockSize: 1 << 20,
  /** size_note and size_vmcoreinfo: the same cap as ELF notes. */
  maxNoteBytes: ELF_LIMITS.maxNoteBytes,
  /** Header, bitmaps and descriptors `fix` rewrites in one plan. */
  maxFixMetaBytes: 256 << 20,
} as const;
