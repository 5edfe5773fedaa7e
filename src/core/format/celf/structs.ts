/**
 * Compressed ELF ("celf") dump format: constants and on-disk structures. The specification is
 * docs/compressed-elf.md; the ELF structures themselves (Ehdr, Phdr, Shdr, Chdr) come from
 * ../elf/structs.ts.
 */
import { defineStruct } from '../../struct.js';
import { ELFCOMPRESS_ZLIB, ELFCOMPRESS_ZSTD } from '../elf/structs.js';
import type { CodecName } from '../../codec/types.js';

export const CELF_INDEX_NAME = '.celf.index';
export const CELF_MEM_NAME = '.celf.mem';
export const CELF_NOTE_NAME = '.note';

/** ch_type values: gABI for zlib and zstd, OS-specific (ELFCOMPRESS_LOOS + ASCII) for the others. */
export const ELFCOMPRESS_LOOS = 0x60000000;
export const ELFCOMPRESS_HIOS = 0x6fffffff;
export const ELFCOMPRESS_CELF_LZO = 0x60004c5a; // LOOS + "LZ": LZO1X (lzo1x_1 stream, no header)
export const ELFCOMPRESS_CELF_SNAPPY = 0x6000534e; // LOOS + "SN": raw snappy block (not the framing format)

export const CH_TYPES: Record<CodecName, number> = {
  zlib: ELFCOMPRESS_ZLIB,
  zstd: ELFCOMPRESS_ZSTD,
  lzo: ELFCOMPRESS_CELF_LZO,
  snappy: ELFCOMPRESS_CELF_SNAPPY,
};

export function codecOfChType(t: number): CodecName | undefined {
  for (const [k, v] of Object.entries(CH_TYPES)) if (v === t) return k as CodecName;
  return undefined;
}

/** Magic at the start of the index section. */
export const CELF_MAGIC = 'CELFIDX';
export const CELF_VERSION = 1;

/** Index header flags. */
export const CELF_FLAG_INCOMPLETE = 0x1;

/** Index entry kinds: what a physical range holds. Ranges not in the index are holes. */
export const ENTRY_DATA = 1; // stored in the chunk section sh_index
export const ENTRY_ZERO = 2; // present, all zero, nothing stored
export const ENTRY_EXCLUDED = 3; // RAM filtered out by the producer
export const ENTRY_MISSING = 4; // should be present but is not (incomplete dump)

export const CelfIndexHeader = defineStruct('celf_index_header', 64, {
  magic: { off: 0, type: 'char', size: 8 },
  version: { off: 8, type: 'u32' },
  header_size: { off: 12, type: 'u32' },
  entry_size: { off: 16, type: 'u32' },
  page_size: { off: 20, type: 'u32' },
  nr_entries: { off: 24, type: 'u64n' },
  max_pfn: { off: 32, type: 'u64n' },
  chunk_size: { off: 40, type: 'u64n' },
  ch_type: { off: 48, type: 'u32' },
  flags: { off: 52, type: 'u32' },
  reserved: { off: 56, type: 'u64' },
});

/**
 * One physical range. DATA ranges are bytes [offset, offset + size) of the uncompressed
 * contents of chunk section `shndx`; other kinds have shndx = offset = 0.
 */
export const CelfIndexEntry = defineStruct('celf_index_entry', 40, {
  paddr: { off: 0, type: 'u64n' },
  size: { off: 8, type: 'u64n' },
  kind: { off: 16, type: 'u32' },
  reserved: { off: 20, type: 'u32' },
  shndx: { off: 24, type: 'u64n' },
  offset: { off: 32, type: 'u64n' },
});

/** Limits a reader enforces (a writer never exceeds them). */
export const CELF_MAX_CHUNK = 64 << 20;
export const CELF_MIN_CHUNK = 4096;
export const CELF_DEFAULT_CHUNK = 64 << 10;
