/**
 * Compressed ELF ("celf") reader: implements Dump over a ByteSource. Opening reads the ELF
 * header, the program and section header tables and the index; reading a page decompresses
 * the one chunk holding it (a small LRU keeps recently used chunks). Every size read from the
 * file is checked against the file size and the format's limits before it is used.
 * Format: docs/compressed-elf.md.
 */
import { warning, type Warning } from '../../warnings.js';
import { VmcoreError } from '../../errors.js';
import { readExact, type ByteSource } from '../../io/source.js';
import type { CodecName, CodecRegistry } from '../../codec/types.js';
import type { Dump, FormatDetails, PageRun, PageState, ReadPhysOptions } from '../../dump.js';
import { notPresent, readPhysGeneric } from '../../memory.js';
import { findVmcoreinfoNote, parseNotes, type ElfNote } from '../elf/notes.js';
import { checkNoteTotal, isElf, parseElfHeader, parseProgramHeaders, programHeaderCount, programHeaderTable } from '../elf/header.js';
import {
  ELFCLASS64,
  ELFDATA2LSB,
  ELFDATA2MSB,
  ET_CORE,
  Elf64_Chdr,
  Elf64_Ehdr,
  Elf64_Phdr,
  Elf64_Shdr,
  MACHINES,
  PT_LOAD,
  PT_NOTE,
  SHF_ALLOC,
  SHF_COMPRESSED,
  SHN_XINDEX,
  SHT_PROGBITS,
  SHT_STRTAB,
} from '../elf/structs.js';
import {
  CELF_FLAG_INCOMPLETE,
  CELF_INDEX_NAME,
  CELF_MAGIC,
  CELF_MAX_CHUNK,
  CELF_VERSION,
  CelfIndexEntry,
  CelfIndexHeader,
  ENTRY_DATA,
  ENTRY_EXCLUDED,
  ENTRY_MISSING,
  ENTRY_ZERO,
  codecOfChType,
} from './structs.js';
import { latin1 } from '../../text.js';

const KIND_STATE: Record<number, PageState> = {
  [ENTRY_DATA]: 'data',
  [ENTRY_ZERO]: 'zero',
  [ENTRY_EXCLUDED]: 'excluded',
  [ENTRY_MISSING]: 'missing',
};

export interface CelfOpenOptions {
  /** Bytes of decompressed chunks kept in the LRU cache (default 16 MiB, at least 2 chunks). */
  cacheBytes?: number;
}

/** Parsed section header table, columnar (a dump can have millions of chunk sections). */
interface Sections {
  count: number;
  type: Uint32Array;
  name: Uint32Array;
  flags: Float64Array; // low 32 bits are enough for the flags we test
  offset: Float64Array;
  size: Float64Array;
}

/**
 * Cheap test on the first bytes of a file: ELF64 core with section headers. `openCelf` then
 * decides (the index section is what makes a celf file); use `isCelf` for the full answer.
 */
export function mayBeCelf(head: Uint8Array): boolean {
  if (head.length < Elf64_Ehdr.size) return false;
  if (!isElf(head) || head[4] !== ELFCLASS64) return false;
  const le = head[5] === ELFDATA2LSB;
  if (!le && head[5] !== ELFDATA2MSB) return false;
  try {
    const h = Elf64_Ehdr.read(head, 0, le);
    return h.e_type === ET_CORE && h.e_shoff !== 0;
  } catch (e) {
    // e.g. e_shoff beyond 2^53: not a celf file this reader can open; the ELF reader reports it
    if (e instanceof VmcoreError) return false;
    throw e;
  }
}

/** True when the source is an ELF core file with a celf index section. */
export async function isCelf(src: ByteSource): Promise<boolean> {
  if (src.size < Elf64_Ehdr.size) return false;
  const head = await readExact(src, 0, Elf64_Ehdr.size, 'Elf64_Ehdr');
  if (!mayBeCelf(head)) return false;
  try {
    const le = head[5] === ELFDATA2LSB;
    const ehdr = Elf64_Ehdr.read(head, 0, le, { file: src.name });
    const secs = await readSections(src, ehdr, le);
    const idx = await findIndexSection(src, ehdr, secs, false);
    if (idx < 0 || secs.size[idx]! < 8) return false;
    const magic = await readExact(src, secs.offset[idx]!, 8, 'celf index magic');
    return String.fromCharCode(...magic.subarray(0, CELF_MAGIC.length)) === CELF_MAGIC && magic[CELF_MAGIC.length] === 0;
  } catch (e) {
    // a malformed section table means "not celf": the plain ELF reader judges the file
    if (e instanceof VmcoreError) return false;
    throw e;
  }
}

async function readSections(
  src: ByteSource,
  ehdr: ReturnType<typeof Elf64_Ehdr.read>,
  le: boolean,
): Promise<Sections & { sh0: ReturnType<typeof Elf64_Shdr.read> }> {
  const file = src.name;
  if (ehdr.e_shentsize !== Elf64_Shdr.size) {
    throw new VmcoreError('BAD_FIELD', `e_shentsize is ${ehdr.e_shentsize}, expected ${Elf64_Shdr.size}`, { file, offset: 58, field: 'Elf64_Ehdr.e_shentsize' });
  }
  const shoff = ehdr.e_shoff;
  if (shoff % 8 !== 0 || shoff + Elf64_Shdr.size > src.size) {
    throw new VmcoreError('OUT_OF_BOUNDS', `section header table at 0x${shoff.toString(16)} is misaligned or outside the file`, { file, offset: 40, field: 'Elf64_Ehdr.e_shoff' });
  }
  const sh0 = Elf64_Shdr.read(await readExact(src, shoff, Elf64_Shdr.size, 'section header 0'), 0, le, { file, base: shoff });
  const count = ehdr.e_shnum === 0 ? sh0.sh_size : ehdr.e_shnum;
  if (count < 1 || shoff + count * Elf64_Shdr.size > src.size) {
    throw new VmcoreError('OUT_OF_BOUNDS', `${count} section headers at 0x${shoff.toString(16)} do not fit in the file`, {
      file,
      offset: ehdr.e_shnum === 0 ? shoff + 32 : 60,
      field: ehdr.e_shnum === 0 ? 'section 0 sh_size (section count)' : 'Elf64_Ehdr.e_shnum',
    });
  }
  const secs = {
    count,
    sh0,
    type: new Uint32Array(count),
    name: new Uint32Array(count),
    flags: new Float64Array(count),
    offset: new Float64Array(count),
    size: new Float64Array(count),
  };
  const BATCH = 16384;
  for (let first = 0; first < count; first += BATCH) {
    const n = Math.min(BATCH, count - first);
    const base = shoff + first * Elf64_Shdr.size;
    const buf = await readExact(src, base, n * Elf64_Shdr.size, 'section headers');
    const dv = new DataView(buf.buffer, buf.byteOffset, buf.length);
    for (let i = 0; i < n; i++) {
      const o = i * Elf64_Shdr.size;
      const k = first + i;
      secs.name[k] = dv.getUint32(o, le);
      secs.type[k] = dv.getUint32(o + 4, le);
      secs.flags[k] = Number(dv.getBigUint64(o + 8, le) & 0xffffffffn);
      const off = dv.getBigUint64(o + 24, le);
      const size = dv.getBigUint64(o + 32, le);
      if (off + size > BigInt(src.size)) {
        if (secs.type[k] === 8 /* SHT_NOBITS */) continue;
        throw new VmcoreError('OUT_OF_BOUNDS', `section ${k} (offset 0x${off.toString(16)}, size 0x${size.toString(16)}) runs past the end of the file`, {
          file,
          offset: base + o + 24,
          field: `section ${k} sh_offset/sh_size`,
        });
      }
      secs.offset[k] = Number(off);
      secs.size[k] = Number(size);
    }
  }
  return secs;
}

const MAX_SHSTRTAB = 16 << 20;
const INDEX_NAME = Uint8Array.from(CELF_INDEX_NAME + '\0', (c) => c.charCodeAt(0));

/**
 * The index section: the one SHT_PROGBITS section named ".celf.index". Returns -1 when there
 * is none; with `strict`, two of them or a broken string table are errors.
 */
async function findIndexSection(
  src: ByteSource,
  ehdr: ReturnType<typeof Elf64_Ehdr.read>,
  secs: Sections & { sh0: ReturnType<typeof Elf64_Shdr.read> },
  strict: boolean,
): Promise<number> {
  const file = src.name;
  const strndx = ehdr.e_shstrndx === SHN_XINDEX ? secs.sh0.sh_link : ehdr.e_shstrndx;
  if (strndx === 0) return -1;
  if (strndx >= secs.count || secs.type[strndx] !== SHT_STRTAB || secs.size[strndx]! > MAX_SHSTRTAB) {
    if (!strict) return -1;
    throw new VmcoreError('BAD_FIELD', `section name table ${strndx} is missing, not SHT_STRTAB or too large`, { file, offset: 62, field: 'Elf64_Ehdr.e_shstrndx' });
  }
  const strtab = await readExact(src, secs.offset[strndx]!, secs.size[strndx]!, '.shstrtab');
  let found = -1;
  for (let i = 1; i < secs.count; i++) {
    if (secs.type[i] !== SHT_PROGBITS) continue;
    const at = secs.name[i]!;
    if (at + INDEX_NAME.length > strtab.length) continue;
    let same = true;
    for (let k = 0; k < INDEX_NAME.length && same; k++) same = strtab[at + k] === INDEX_NAME[k];
    if (!same) continue;
    if (found >= 0) {
      if (!strict) return found;
      throw new VmcoreError('BAD_FIELD', `two ${CELF_INDEX_NAME} sections (${found} and ${i})`, { file, field: `section ${i} sh_name` });
    }
    found = i;
  }
  return found;
}

/** Lower bound: first entry whose end is > pfn. */
function search(ends: Float64Array, n: number, pfn: number): number {
  let lo = 0;
  let hi = n;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (ends[mid]! <= pfn) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

/** Uncompressed size a zstd frame declares (Frame_Content_Size), or undefined if absent. */
export function zstdFrameContentSize(b: Uint8Array): number | undefined {
  if (b.length < 6 || b[0] !== 0x28 || b[1] !== 0xb5 || b[2] !== 0x2f || b[3] !== 0xfd) return undefined;
  const fhd = b[4]!;
  const fcsFlag = fhd >> 6;
  const single = (fhd >> 5) & 1;
  const dictBytes = [0, 1, 2, 4][fhd & 3]!;
  const fcsBytes = fcsFlag === 0 ? single : [0, 2, 4, 8][fcsFlag]!;
  if (!fcsBytes) return undefined;
  const p = 5 + (single ? 0 : 1) + dictBytes;
  if (p + fcsBytes > b.length) return undefined;
  let v = 0;
  for (let i = fcsBytes - 1; i >= 0; i--) v = v * 256 + b[p + i]!;
  return fcsBytes === 2 ? v + 256 : v;
}

/** The uncompressed length in a raw snappy block's preamble (varint), or undefined. */
export function snappyDeclaredSize(b: Uint8Array): number | undefined {
  let v = 0;
  for (let i = 0, mul = 1; i < 5 && i < b.length; i++, mul *= 128) {
    v += (b[i]! & 0x7f) * mul;
    if (!(b[i]! & 0x80)) return v;
  }
  return undefined;
}

export interface CelfIndexInfo {
  version: number;
  pageSize: number;
  maxPfn: number;
  chunkSize: number;
  chType: number;
  codec: CodecName | 'none' | 'unknown';
  flags: number;
  entries: number;
  chunkSections: number;
}

export class CelfDump implements Dump {
  readonly format = 'celf' as const;
  readonly is64 = true;
  readonly warnings: Warning[] = [];
  readonly files: { name: string; size: number }[];
  readonly variant: string;
  readonly arch: string;
  private readonly cache = new Map<number, { bytes: Promise<Uint8Array>; size: number }>();
  private cacheUsed = 0;
  private readonly cacheLimit: number;

  private constructor(
    private readonly src: ByteSource,
    private readonly codecs: CodecRegistry,
    readonly littleEndian: boolean,
    readonly machine: number,
    readonly notes: ElfNote[],
    readonly index: CelfIndexInfo,
    private readonly secs: Sections,
    /** Entries, columnar: start/end pfn (end exclusive), kind, section index, offset in the chunk. */
    private readonly eStart: Float64Array,
    private readonly eEnd: Float64Array,
    private readonly eKind: Uint8Array,
    private readonly eShndx: Float64Array,
    private readonly eOffset: Float64Array,
    opts: CelfOpenOptions,
  ) {
    this.files = [{ name: src.name, size: src.size }];
    this.arch = MACHINES[machine] ?? 'unknown';
    this.variant = `celf v${index.version} ${littleEndian ? 'LE' : 'BE'}, ${index.codec}, ${index.chunkSize / 1024} KiB chunks`;
    this.cacheLimit = Math.max(opts.cacheBytes ?? 16 << 20, 2 * index.chunkSize);
  }

  get pageSize(): number {
    return this.index.pageSize;
  }
  get maxPfn(): number {
    return this.index.maxPfn;
  }
  get vmcoreinfoText(): string | undefined {
    const n = findVmcoreinfoNote(this.notes);
    if (!n) return undefined;
    let end = n.desc.length;
    while (end > 0 && n.desc[end - 1] === 0) end--;
    return latin1(n.desc.subarray(0, end));
  }

  static async open(src: ByteSource, codecs: CodecRegistry, opts: CelfOpenOptions = {}): Promise<CelfDump> {
    const file = src.name;
    const head = await readExact(src, 0, Elf64_Ehdr.size, 'Elf64_Ehdr');
    const header = parseElfHeader(head, file);
    if (!header.is64) throw new VmcoreError('UNSUPPORTED', 'celf files are ELFCLASS64', { file, offset: 4, field: 'e_ident[EI_CLASS]' });
    const le = header.littleEndian;
    const ehdr = Elf64_Ehdr.read(head, 0, le, { file });
    if (ehdr.e_shoff === 0) throw new VmcoreError('BAD_MAGIC', 'ELF core without section headers: not a celf file', { file, offset: 40, field: 'Elf64_Ehdr.e_shoff' });
    const secs = await readSections(src, ehdr, le);
    const idx = await findIndexSection(src, ehdr, secs, true);
    if (idx < 0) throw new VmcoreError('BAD_MAGIC', 'ELF core without a celf index section: not a celf file', { file, field: 'section headers' });
    const warnings: Warning[] = [];

    // program headers: notes (PT_LOADs are not part of celf; ignored with a warning)
    const phnum = programHeaderCount(header, secs.sh0.sh_info, file);
    const table = programHeaderTable(header, phnum, src.size, file);
    const phdrs = parseProgramHeaders(phnum ? await readExact(src, table.offset, table.bytes, 'program headers') : new Uint8Array(0), header, phnum, file);
    checkNoteTotal(phdrs, file);
    const notes: ElfNote[] = [];
    for (const [i, p] of phdrs.entries()) {
      if (p.type === PT_LOAD) {
        warnings.push(warning('SEGMENT_IGNORED', `program header ${i} is a PT_LOAD; celf memory comes from the index, the segment is ignored`));
      } else if (p.type === PT_NOTE && p.filesz > 0) {
        if (p.offset + p.filesz > src.size) {
          throw new VmcoreError('OUT_OF_BOUNDS', `PT_NOTE of ${p.filesz} bytes at 0x${p.offset.toString(16)} is outside the file`, {
            file,
            offset: header.phoff + i * Elf64_Phdr.size + 32,
            field: 'Elf64_Phdr.p_filesz',
          });
        }
        notes.push(...parseNotes(await readExact(src, p.offset, p.filesz, 'PT_NOTE'), le, { file, base: p.offset, warnings }));
      }
    }

    // index
    const ioff = secs.offset[idx]!;
    const isize = secs.size[idx]!;
    if (isize < CelfIndexHeader.size) {
      throw new VmcoreError('TRUNCATED', `celf index section of ${isize} bytes is smaller than its header`, { file, offset: ioff, field: 'celf index sh_size' });
    }
    const ih = CelfIndexHeader.read(await readExact(src, ioff, CelfIndexHeader.size, 'celf index header'), 0, le, { file, base: ioff });
    const bad = (field: string, why: string, off = 0) =>
      new VmcoreError('BAD_FIELD', why, { file, offset: ioff + off, field: `celf_index_header.${field}` });
    if (ih.magic !== CELF_MAGIC) throw new VmcoreError('BAD_MAGIC', `celf index magic is "${ih.magic}"`, { file, offset: ioff, field: 'celf_index_header.magic' });
    if (ih.version !== CELF_VERSION) throw new VmcoreError('UNSUPPORTED', `celf index version ${ih.version} (this reader knows ${CELF_VERSION})`, { file, offset: ioff + 8, field: 'celf_index_header.version' });
    if (ih.header_size < CelfIndexHeader.size || ih.header_size > isize) throw bad('header_size', `header_size ${ih.header_size}`, 12);
    if (ih.entry_size < CelfIndexEntry.size || ih.entry_size > 4096) throw bad('entry_size', `entry_size ${ih.entry_size}`, 16);
    const ps = ih.page_size;
    if (ps < 512 || ps > 1 << 20 || (ps & (ps - 1)) !== 0) throw bad('page_size', `page_size ${ps} is not a power of two in 512..1 MiB`, 20);
    if (ih.nr_entries > (isize - ih.header_size) / ih.entry_size) {
      throw new VmcoreError('OUT_OF_BOUNDS', `${ih.nr_entries} index entries do not fit in the ${isize}-byte index section`, { file, offset: ioff + 24, field: 'celf_index_header.nr_entries' });
    }
    if (ih.max_pfn * ps > Number.MAX_SAFE_INTEGER) throw bad('max_pfn', `max_pfn 0x${ih.max_pfn.toString(16)} is beyond 2^53 bytes`, 32);
    if (ih.chunk_size % ps || ih.chunk_size > CELF_MAX_CHUNK) throw bad('chunk_size', `chunk_size ${ih.chunk_size}`, 40);
    const n = ih.nr_entries;
    const eStart = new Float64Array(n);
    const eEnd = new Float64Array(n);
    const eKind = new Uint8Array(n);
    const eShndx = new Float64Array(n);
    const eOffset = new Float64Array(n);
    const used = new Uint8Array(secs.count);
    used[idx] = 1;
    let prevEnd = 0;
    const BATCH = 65536;
    let chunkSections = 0;
    for (let first = 0; first < n; first += BATCH) {
      const cnt = Math.min(BATCH, n - first);
      const base = ioff + ih.header_size + first * ih.entry_size;
      const buf = await readExact(src, base, cnt * ih.entry_size, 'celf index entries');
      for (let i = 0; i < cnt; i++) {
        const k = first + i;
        const eoff = base + i * ih.entry_size;
        const e = CelfIndexEntry.read(buf, i * ih.entry_size, le, { file, base });
        const ebad = (field: string, why: string, code: 'BAD_FIELD' | 'OUT_OF_BOUNDS' = 'BAD_FIELD') =>
          new VmcoreError(code, `index entry ${k} (0x${e.paddr.toString(16)}+0x${e.size.toString(16)}): ${why}`, { file, offset: eoff, field: `celf_index_entry.${field}` });
        if (e.paddr % ps || e.size % ps || e.size === 0) throw ebad('size', 'range is empty or not page aligned');
        const s = e.paddr / ps;
        const end = s + e.size / ps;
        if (s < prevEnd) throw ebad('paddr', `overlaps or precedes the previous entry (which ends at pfn 0x${prevEnd.toString(16)})`);
        if (end > ih.max_pfn) throw ebad('size', `ends beyond max_pfn 0x${ih.max_pfn.toString(16)}`, 'OUT_OF_BOUNDS');
        const kind = KIND_STATE[e.kind];
        if (!kind) throw ebad('kind', `unknown kind ${e.kind}`);
        if (e.kind === ENTRY_DATA) {
          const sh = e.shndx;
          if (sh < 1 || sh >= secs.count || sh === idx) throw ebad('shndx', `section index ${sh} is not a chunk section`, 'OUT_OF_BOUNDS');
          if (!used[sh]) {
            if (secs.type[sh] !== SHT_PROGBITS) throw ebad('shndx', `section ${sh} has sh_type 0x${secs.type[sh]!.toString(16)}, expected SHT_PROGBITS`);
            if (secs.flags[sh]! & SHF_ALLOC) throw ebad('shndx', `section ${sh} is SHF_ALLOC`);
            if (secs.flags[sh]! & SHF_COMPRESSED && secs.size[sh]! < Elf64_Chdr.size) throw ebad('shndx', `compressed section ${sh} is smaller than its Elf64_Chdr`);
            used[sh] = 1;
            chunkSections++;
          }
          // the range must lie inside the chunk's uncompressed bytes (ch_size is checked on read)
          const limit = secs.flags[sh]! & SHF_COMPRESSED ? CELF_MAX_CHUNK : secs.size[sh]!;
          if (e.offset + e.size > limit) throw ebad('offset', `bytes 0x${e.offset.toString(16)}+0x${e.size.toString(16)} lie outside section ${sh} (0x${limit.toString(16)} bytes)`, 'OUT_OF_BOUNDS');
        } else if (e.shndx !== 0 || e.offset !== 0) {
          throw ebad('shndx', `a ${kind} entry names section ${e.shndx}`);
        }
        eStart[k] = s;
        eEnd[k] = end;
        eKind[k] = e.kind;
        eShndx[k] = e.shndx;
        eOffset[k] = e.offset;
        prevEnd = end;
      }
    }
    // chunk sections may not overlap each other or the index in the file
    const spans: number[] = [];
    for (let i = 0; i < secs.count; i++) if (used[i] && secs.size[i]! > 0) spans.push(i);
    spans.sort((a, b) => secs.offset[a]! - secs.offset[b]!);
    for (let i = 1; i < spans.length; i++) {
      const a = spans[i - 1]!;
      const b = spans[i]!;
      if (secs.offset[a]! + secs.size[a]! > secs.offset[b]!) {
        throw new VmcoreError('BAD_FIELD', `sections ${a} and ${b} overlap in the file (0x${secs.offset[b]!.toString(16)})`, {
          file,
          offset: ehdr.e_shoff + b * Elf64_Shdr.size + 24,
          field: `section ${b} sh_offset`,
        });
      }
    }
    const codec = ih.ch_type === 0 ? 'none' : (codecOfChType(ih.ch_type) ?? 'unknown');
    const info: CelfIndexInfo = {
      version: ih.version,
      pageSize: ps,
      maxPfn: ih.max_pfn,
      chunkSize: ih.chunk_size,
      chType: ih.ch_type,
      codec,
      flags: ih.flags,
      entries: n,
      chunkSections,
    };
    const d = new CelfDump(src, codecs, le, ehdr.e_machine, notes, info, secs, eStart, eEnd, eKind, eShndx, eOffset, opts);
    d.warnings.push(...warnings);
    if (ih.flags & CELF_FLAG_INCOMPLETE) d.warnings.push(warning('MARKED_INCOMPLETE', 'the dump is marked incomplete by its producer'));
    return d;
  }

  private find(pfn: number): number {
    const i = search(this.eEnd, this.eEnd.length, pfn);
    return i < this.eEnd.length && this.eStart[i]! <= pfn ? i : -1;
  }

  async pageState(pfn: number): Promise<PageState> {
    const i = this.find(pfn);
    return i < 0 ? 'hole' : KIND_STATE[this.eKind[i]!]!;
  }

  async *pageRuns(startPfn = 0, endPfn = this.maxPfn): AsyncIterable<PageRun> {
    let p = Math.max(0, startPfn);
    const end = Math.min(endPfn, this.maxPfn);
    let cur: PageRun | undefined;
    const emit = (r: PageRun): PageRun | undefined => {
      if (cur && cur.state === r.state && cur.endPfn === r.startPfn) {
        cur.endPfn = r.endPfn;
        return undefined;
      }
      const out = cur;
      cur = r;
      return out;
    };
    for (let i = search(this.eEnd, this.eEnd.length, p); i < this.eEnd.length && p < end; i++) {
      const s = Math.max(this.eStart[i]!, p);
      const e = Math.min(this.eEnd[i]!, end);
      if (s >= end) break;
      if (s > p) {
        const r = emit({ startPfn: p, endPfn: s, state: 'hole' });
        if (r) yield r;
      }
      const r = emit({ startPfn: s, endPfn: e, state: KIND_STATE[this.eKind[i]!]! });
      if (r) yield r;
      p = e;
    }
    if (p < end) {
      const r = emit({ startPfn: p, endPfn: end, state: 'hole' });
      if (r) yield r;
    }
    if (cur) yield cur;
  }

  async readPage(pfn: number): Promise<Uint8Array> {
    const i = Number.isSafeInteger(pfn) && pfn >= 0 ? this.find(pfn) : -1;
    const kind = i < 0 ? ENTRY_EXCLUDED + 100 : this.eKind[i]!;
    if (kind === ENTRY_ZERO) return new Uint8Array(this.pageSize);
    if (kind !== ENTRY_DATA) throw notPresent(pfn, i < 0 ? 'hole' : KIND_STATE[kind]!, this.pageSize, this.src.name);
    const sh = this.eShndx[i]!;
    const chunk = await this.chunk(sh);
    const o = this.eOffset[i]! + (pfn - this.eStart[i]!) * this.pageSize;
    if (o + this.pageSize > chunk.length) {
      throw new VmcoreError('OUT_OF_BOUNDS', `index entry ${i} reaches past the ${chunk.length} bytes of section ${sh}`, {
        file: this.src.name,
        offset: this.secs.offset[sh]!,
        field: 'celf_index_entry.offset',
      });
    }
    return chunk.subarray(o, o + this.pageSize);
  }

  readPhys(addr: number, length: number, opts?: ReadPhysOptions): Promise<Uint8Array> {
    return readPhysGeneric(this, addr, length, opts, this.src.name);
  }

  /** Decompressed bytes of chunk section `sh` (cached). */
  private chunk(sh: number): Promise<Uint8Array> {
    const hit = this.cache.get(sh);
    if (hit) {
      this.cache.delete(sh);
      this.cache.set(sh, hit);
      return hit.bytes;
    }
    const entry = { bytes: this.loadChunk(sh), size: this.index.chunkSize };
    this.cache.set(sh, entry);
    entry.bytes.then(
      (b) => {
        this.cacheUsed += b.length - entry.size;
        entry.size = b.length;
      },
      () => {
        if (this.cache.get(sh) === entry) {
          this.cache.delete(sh);
          this.cacheUsed -= entry.size;
        }
      },
    );
    this.cacheUsed += entry.size;
    for (const [k, v] of this.cache) {
      if (this.cacheUsed <= this.cacheLimit || k === sh) break;
      this.cache.delete(k);
      this.cacheUsed -= v.size;
    }
    return entry.bytes;
  }

  private async loadChunk(sh: number): Promise<Uint8Array> {
    const file = this.src.name;
    const off = this.secs.offset[sh]!;
    const ssize = this.secs.size[sh]!;
    if (!(this.secs.flags[sh]! & SHF_COMPRESSED)) {
      const raw = await readExact(this.src, off, ssize, `section ${sh}`);
      return new Uint8Array(raw.buffer, raw.byteOffset, raw.length); // a plain view, whatever the source returns
    }
    const bytes = await readExact(this.src, off, ssize, `section ${sh}`);
    const ch = Elf64_Chdr.read(bytes, 0, this.littleEndian, { file, base: off });
    const size = ch.ch_size;
    if (size === 0 || size > CELF_MAX_CHUNK || size % this.pageSize !== 0) {
      throw new VmcoreError('BAD_FIELD', `section ${sh}: ch_size ${size} is not a page multiple in 1..${CELF_MAX_CHUNK}`, { file, offset: off + 8, field: 'Elf64_Chdr.ch_size' });
    }
    const name = codecOfChType(ch.ch_type);
    if (!name) throw new VmcoreError('UNSUPPORTED', `section ${sh}: unknown ch_type 0x${ch.ch_type.toString(16)}`, { file, offset: off, field: 'Elf64_Chdr.ch_type' });
    const codec = this.codecs.get(name);
    if (!codec) throw new VmcoreError('CODEC_UNAVAILABLE', `section ${sh} is ${name}-compressed and no ${name} decompressor is available`, { file, offset: off, field: 'Elf64_Chdr.ch_type' });
    const payload = bytes.subarray(Elf64_Chdr.size);
    const declared = name === 'zstd' ? zstdFrameContentSize(payload) : name === 'snappy' ? snappyDeclaredSize(payload) : size;
    if (declared !== size) {
      throw new VmcoreError('DECOMPRESS', `section ${sh}: the ${name} stream declares ${declared ?? 'no'} uncompressed size, ch_size is ${size}`, {
        file,
        offset: off + Elf64_Chdr.size,
        field: `section ${sh} ${name} stream`,
      });
    }
    let out: Uint8Array;
    try {
      out = codec.decompress(payload, size);
    } catch (e) {
      throw new VmcoreError('DECOMPRESS', `section ${sh}: ${name} stream does not decompress to ${size} bytes (${e instanceof Error ? e.message : String(e)})`, {
        file,
        offset: off + Elf64_Chdr.size,
        field: `section ${sh} ${name} stream`,
        cause: e,
      });
    }
    if (out.length !== size) {
      throw new VmcoreError('DECOMPRESS', `section ${sh}: ${name} stream gave ${out.length} bytes, ch_size is ${size}`, { file, offset: off + Elf64_Chdr.size, field: `section ${sh} ${name} stream` });
    }
    return out;
  }

  async details(): Promise<FormatDetails> {
    const ps = this.pageSize;
    const codecs: Record<string, number> = {};
    const add = (k: string, v: number) => (codecs[k] = (codecs[k] ?? 0) + v);
    const exact = this.index.chunkSections <= 100000;
    const seen = new Map<number, string>();
    for (let i = 0; i < this.eKind.length; i++) {
      const pages = this.eEnd[i]! - this.eStart[i]!;
      if (this.eKind[i] === ENTRY_ZERO) add('zero', pages);
      else if (this.eKind[i] === ENTRY_DATA) {
        const sh = this.eShndx[i]!;
        if (!(this.secs.flags[sh]! & SHF_COMPRESSED)) add('raw', pages);
        else if (!exact) add(this.index.codec, pages);
        else {
          let name = seen.get(sh);
          if (name === undefined) {
            const b = await readExact(this.src, this.secs.offset[sh]!, 4, 'Elf64_Chdr.ch_type');
            const t = new DataView(b.buffer, b.byteOffset, 4).getUint32(0, this.littleEndian);
            name = codecOfChType(t) ?? `ch_type 0x${t.toString(16)}`;
            seen.set(sh, name);
          }
          add(name, pages);
        }
      }
    }
    return {
      header: {
        format: 'celf',
        version: this.index.version,
        byteOrder: this.littleEndian ? 'LE' : 'BE',
        machine: this.machine,
        pageSize: ps,
        maxPfn: this.index.maxPfn,
        chunkSize: this.index.chunkSize,
        codec: this.index.codec,
        indexEntries: this.index.entries,
        chunkSections: this.index.chunkSections,
        sections: this.secs.count,
        flags: this.index.flags,
      },
      codecs,
      incomplete: (this.index.flags & CELF_FLAG_INCOMPLETE) !== 0,
      producerHints: [{ code: 'celf_index', text: 'celf index section (written by vmcore)' }],
    };
  }

  async close(): Promise<void> {
    this.cache.clear();
    await this.src.close?.();
  }
}

/** Open a celf dump. Throws BAD_MAGIC when the source is not celf. */
export function openCelf(src: ByteSource, codecs: CodecRegistry, opts?: CelfOpenOptions): Promise<CelfDump> {
  return CelfDump.open(src, codecs, opts);
}

