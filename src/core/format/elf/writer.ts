/**
 * ELF vmcore writer: pure layout and header builders (portable, no I/O).
 *
 * Layout: Elf_Ehdr | Elf_Phdr[] (right after the ELF header: makedumpfile 1.7.2 ignores
 * e_phoff) | [one null section header when e_phnum overflows] | note blob | page data.
 * Program headers: PT_NOTE first, then one PT_LOAD per contiguous physical range in ascending
 * order, then optional alias PT_LOADs (e.g. the kernel-image mapping, for readers that
 * translate kernel virtual addresses through p_vaddr) that point at file bytes already written.
 *
 * Zero pages: when `elideZero` is set, zero pages are never stored. A zero run at the end of a
 * segment becomes p_memsz > p_filesz; a zero run inside a segment is either a split point (the
 * caller plans segments so that long zero runs separate them) or, when short, a gap that the
 * output sink may leave sparse. Segment file offsets are assigned while streaming, and the
 * header is encoded at the end, so a single pass over the pages is enough.
 */
import { VmcoreError } from '../../errors.js';
import { buildNotes, type ElfNote } from './notes.js';
import {
  DUMP_ELF_INCOMPLETE,
  ELFCLASS32,
  ELFCLASS64,
  ELFDATA2LSB,
  ELFDATA2MSB,
  ELFMAG,
  ET_CORE,
  Elf32_Ehdr,
  Elf32_Phdr,
  Elf32_Shdr,
  Elf64_Ehdr,
  Elf64_Phdr,
  Elf64_Shdr,
  MACHINES,
  PN_XNUM,
  PT_LOAD,
  PT_NOTE,
} from './structs.js';
import { PAGE_ZERO, type CompressedBatch } from '../batch.js';

export interface ElfSegmentSpec {
  /** First page frame of the segment. */
  startPfn: number;
  /** Number of pages (p_memsz = pages * pageSize). */
  pages: number;
  /** p_vaddr of the first byte (defaults to the physical address). */
  vaddr?: bigint;
}

/** A PT_LOAD that aliases file bytes of already-placed physical pages (same paddr). */
export interface ElfAliasSpec {
  vaddr: bigint;
  paddr: number;
  size: number;
}

export interface ElfLayoutParams {
  is64: boolean;
  littleEndian: boolean;
  /** Architecture name ('x86_64', 'i386', ...) or an e_machine number. */
  machine: string | number;
  pageSize: number;
  notes: readonly Pick<ElfNote, 'name' | 'type' | 'desc'>[];
  segments: readonly ElfSegmentSpec[];
  aliases?: readonly ElfAliasSpec[];
  /** Do not store zero pages (see the file comment). */
  elideZero: boolean;
  /**
   * Extra program-header slots written as PT_NULL, for entries that are only known after the
   * data is written (a one-pass stream's kernel-text alias, filled in once phys_base is proven).
   */
  sparePhdrs?: number;
}

/** One write at `offset`: bytes, or `zeros` zero bytes (which a file sink may leave sparse). */
export interface ElfPlacement {
  offset: number;
  bytes?: Uint8Array;
  zeros?: number;
}

export function elfMachine(m: string | number): number {
  if (typeof m === 'number') return m;
  for (const [k, v] of Object.entries(MACHINES)) if (v === m) return Number(k);
  if (m === 'x86' || m === 'i686') return 3;
  if (m === 'arm64') return 183;
  return 0;
}

interface SegState {
  spec: ElfSegmentSpec;
  paddr: number;
  offset: number; // file offset (assigned when the first page is stored or the segment ends)
  filesz: number;
  pendingZero: number; // zero pages seen since the last stored page
  started: boolean;
}

export class ElfWriter {
  readonly phnum: number;
  readonly headerSize: number;
  readonly noteOffset: number;
  readonly noteBlob: Uint8Array;
  readonly dataOffset: number;
  private readonly segs: SegState[];
  private readonly aliasParts: { seg: number; delta: number; len: number; vaddr: bigint }[] = [];
  private cur = 0;
  private pos: number;
  readonly counts = { stored: 0, zero: 0 };

  constructor(readonly params: ElfLayoutParams) {
    const { is64, pageSize, segments } = params;
    const ehsize = is64 ? Elf64_Ehdr.size : Elf32_Ehdr.size;
    const phent = is64 ? Elf64_Phdr.size : Elf32_Phdr.size;
    const shent = is64 ? Elf64_Shdr.size : Elf32_Shdr.size;
    // Each alias becomes one PT_LOAD per planned segment it overlaps.
    for (const a of params.aliases ?? []) {
      const aEnd = a.paddr + a.size;
      segments.forEach((s, idx) => {
        const sS = s.startPfn * pageSize;
        const sE = sS + s.pages * pageSize;
        const lo = Math.max(sS, a.paddr);
        const hi = Math.min(sE, aEnd);
        if (hi > lo) this.aliasParts.push({ seg: idx, delta: lo - sS, len: hi - lo, vaddr: a.vaddr + BigInt(lo - a.paddr) });
      });
    }
    this.phnum = 1 + segments.length + this.aliasParts.length + (params.sparePhdrs ?? 0);
    if (this.phnum > 0xffffffff) throw new VmcoreError('OUT_OF_BOUNDS', `too many program headers (${this.phnum})`, { field: 'e_phnum' });
    const xnum = this.phnum >= PN_XNUM;
    this.headerSize = ehsize + this.phnum * phent + (xnum ? shent : 0);
    this.noteBlob = buildNotes(params.notes, params.littleEndian);
    this.noteOffset = this.headerSize;
    this.dataOffset = Math.ceil((this.noteOffset + this.noteBlob.length) / pageSize) * pageSize;
    this.pos = this.dataOffset;
    let prevEnd = -1;
    this.segs = segments.map((s) => {
      if (!Number.isSafeInteger(s.startPfn) || s.startPfn < prevEnd || s.pages <= 0) {
        throw new VmcoreError('BAD_FIELD', `ELF segments must be ascending, non-overlapping and non-empty (pfn 0x${s.startPfn.toString(16)})`, {
          field: 'p_paddr',
        });
      }
      prevEnd = s.startPfn + s.pages;
      return { spec: s, paddr: s.startPfn * pageSize, offset: -1, filesz: 0, pendingZero: 0, started: false };
    });
    if (!is64) {
      const top = prevEnd * pageSize;
      if (top > 2 ** 32) throw new VmcoreError('OUT_OF_BOUNDS', 'physical memory above 4 GiB needs ELF64', { field: 'p_paddr' });
    }
  }

  /** End of the data written so far. */
  get end(): number {
    return this.pos;
  }

  /** Advance to the segment containing pfn (segments before it are closed). */
  private segFor(pfn: number): SegState | undefined {
    while (this.cur < this.segs.length) {
      const s = this.segs[this.cur]!;
      if (pfn < s.spec.startPfn) return undefined;
      if (pfn < s.spec.startPfn + s.spec.pages) return s;
      this.close(s);
      this.cur++;
    }
    return undefined;
  }

  private close(s: SegState): void {
    if (s.offset < 0) s.offset = this.pos; // nothing stored: an empty-file segment
    s.pendingZero = 0; // trailing zeros: p_memsz > p_filesz
  }

  /**
   * Place a batch of pages (raw, uncompressed data; kinds say which pages are zero). Pages
   * outside every segment must be zero pages (split-off zero runs) and are dropped.
   */
  place(b: CompressedBatch): ElfPlacement[] {
    const ps = this.params.pageSize;
    const out: ElfPlacement[] = [];
    let dataPos = 0;
    let run: ElfPlacement | undefined;
    for (let i = 0; i < b.count; i++) {
      const pfn = b.startPfn + i;
      const kind = b.kinds[i]!;
      const size = kind === PAGE_ZERO ? 0 : b.sizes[i]!;
      if (kind !== PAGE_ZERO && size !== ps) {
        throw new VmcoreError('BAD_FIELD', `ELF output needs uncompressed pages (pfn 0x${pfn.toString(16)} has ${size} bytes)`, { field: 'p_filesz' });
      }
      const s = this.segFor(pfn);
      if (!s) {
        if (kind !== PAGE_ZERO) {
          throw new VmcoreError('BAD_FIELD', `page 0x${pfn.toString(16)} holds data but is outside every planned segment`, { field: 'p_paddr' });
        }
        this.counts.zero++;
        continue;
      }
      if (s.offset < 0) s.offset = this.pos;
      if (kind === PAGE_ZERO && this.params.elideZero) {
        s.pendingZero++;
        this.counts.zero++;
        continue;
      }
      if (s.pendingZero) {
        const z = s.pendingZero * ps;
        out.push({ offset: this.pos, zeros: z });
        run = undefined;
        this.pos += z;
        s.filesz += z;
        s.pendingZero = 0;
      }
      const bytes = kind === PAGE_ZERO ? undefined : b.data.subarray(dataPos, dataPos + ps);
      if (bytes) dataPos += ps;
      // coalesce consecutive stored pages into one placement
      if (bytes && run && run.bytes && run.offset + run.bytes.length === this.pos && run.bytes.buffer === bytes.buffer && run.bytes.byteOffset + run.bytes.length === bytes.byteOffset) {
        run.bytes = new Uint8Array(bytes.buffer, run.bytes.byteOffset, run.bytes.length + ps);
      } else if (bytes) {
        run = { offset: this.pos, bytes };
        out.push(run);
      } else {
        run = undefined;
        out.push({ offset: this.pos, zeros: ps });
      }
      if (kind === PAGE_ZERO) this.counts.zero++;
      else this.counts.stored++;
      this.pos += ps;
      s.filesz += ps;
    }
    return out;
  }

  /**
   * Encode Ehdr + Phdrs (+ null Shdr on overflow) + notes: the bytes for offset 0.
   * `incomplete`: the writer stopped early (segments not fully written are cut to what was
   * stored, and with `writtenEnd`, the file offset up to which the placed bytes are on the
   * disk, to what was written); `lossy`: every segment is whole but pages the input lacked were
   * left out. Both set e_flags bit 0 (DUMP_ELF_INCOMPLETE, makedumpfile's marker).
   */
  header(opts: { incomplete?: boolean; lossy?: boolean; writtenEnd?: number } = {}): Uint8Array {
    const { is64, littleEndian: le, pageSize } = this.params;
    // close every remaining segment; in an incomplete file, segments not fully written claim
    // only what was stored (their unwritten tail must not read as zeros)
    const firstOpen = this.cur;
    while (this.cur < this.segs.length) this.close(this.segs[this.cur++]!);
    const truncated = new Set(opts.incomplete ? this.segs.slice(firstOpen) : []);
    // placed but not written (the write failed): not claimed either
    const end = opts.incomplete && opts.writtenEnd !== undefined ? opts.writtenEnd : Infinity;
    const fileszOf = (s: SegState) => (s.offset < 0 ? 0 : Math.max(0, Math.min(s.filesz, end - s.offset)));
    for (const s of this.segs) if (fileszOf(s) < s.filesz) truncated.add(s);
    const buf = new Uint8Array(this.noteOffset + this.noteBlob.length);
    const ident = new Uint8Array(16);
    ident.set(ELFMAG, 0);
    ident[4] = is64 ? ELFCLASS64 : ELFCLASS32;
    ident[5] = le ? ELFDATA2LSB : ELFDATA2MSB;
    ident[6] = 1; // EV_CURRENT
    const ehsize = is64 ? Elf64_Ehdr.size : Elf32_Ehdr.size;
    const phent = is64 ? Elf64_Phdr.size : Elf32_Phdr.size;
    const shent = is64 ? Elf64_Shdr.size : Elf32_Shdr.size;
    const xnum = this.phnum >= PN_XNUM;
    const shoff = xnum ? ehsize + this.phnum * phent : 0;
    const eh = {
      e_ident: ident,
      e_type: ET_CORE,
      e_machine: elfMachine(this.params.machine),
      e_version: 1,
      e_phoff: ehsize,
      e_shoff: shoff,
      e_flags: opts.incomplete || opts.lossy ? DUMP_ELF_INCOMPLETE : 0,
      e_ehsize: ehsize,
      e_phentsize: phent,
      e_phnum: xnum ? PN_XNUM : this.phnum,
      e_shentsize: xnum ? shent : 0,
      e_shnum: xnum ? 1 : 0,
      e_shstrndx: 0,
    };
    if (is64) Elf64_Ehdr.write({ ...eh, e_entry: 0n }, buf, 0, le);
    else Elf32_Ehdr.write({ ...eh, e_entry: 0 }, buf, 0, le);
    const phdrs: { type: number; flags: number; offset: number; vaddr: bigint; paddr: bigint; filesz: number; memsz: number }[] = [];
    phdrs.push({ type: PT_NOTE, flags: 0, offset: this.noteOffset, vaddr: 0n, paddr: 0n, filesz: this.noteBlob.length, memsz: this.noteBlob.length });
    for (const s of this.segs) {
      phdrs.push({
        type: PT_LOAD,
        flags: 7,
        offset: s.offset < 0 ? this.pos : s.offset,
        vaddr: s.spec.vaddr ?? BigInt(s.paddr),
        paddr: BigInt(s.paddr),
        filesz: fileszOf(s),
        memsz: truncated.has(s) ? fileszOf(s) : s.spec.pages * pageSize,
      });
    }
    for (const a of this.aliasParts) {
      const s = this.segs[a.seg]!;
      phdrs.push({
        type: PT_LOAD,
        flags: 7,
        offset: (s.offset < 0 ? this.pos : s.offset) + a.delta,
        vaddr: a.vaddr,
        paddr: BigInt(s.paddr + a.delta),
        filesz: Math.max(0, Math.min(a.len, fileszOf(s) - a.delta)),
        memsz: truncated.has(s) ? Math.max(0, Math.min(a.len, fileszOf(s) - a.delta)) : a.len,
      });
    }
    let p = ehsize;
    for (const h of phdrs) {
      if (is64) {
        Elf64_Phdr.write({ p_type: h.type, p_flags: h.flags, p_offset: h.offset, p_vaddr: h.vaddr, p_paddr: h.paddr, p_filesz: h.filesz, p_memsz: h.memsz, p_align: 0n }, buf, p, le);
      } else {
        if (h.offset > 0xffffffff || h.filesz > 0xffffffff) throw new VmcoreError('OUT_OF_BOUNDS', 'ELF32 output larger than 4 GiB', { field: 'p_offset' });
        Elf32_Phdr.write(
          { p_type: h.type, p_flags: h.flags, p_offset: h.offset, p_vaddr: Number(BigInt.asUintN(32, h.vaddr)), p_paddr: Number(BigInt.asUintN(32, h.paddr)), p_filesz: h.filesz, p_memsz: h.memsz, p_align: 0 },
          buf,
          p,
          le,
        );
      }
      p += phent;
    }
    if (xnum) {
      if (is64) Elf64_Shdr.write({ sh_info: this.phnum }, buf, shoff, le);
      else Elf32_Shdr.write({ sh_info: this.phnum }, buf, shoff, le);
    }
    buf.set(this.noteBlob, this.noteOffset);
    return buf;
  }

  /** Program headers as placed (after header()): for tests and summaries. */
  segments(): { paddr: number; offset: number; filesz: number; memsz: number }[] {
    return this.segs.map((s) => ({ paddr: s.paddr, offset: s.offset, filesz: s.filesz, memsz: s.spec.pages * this.params.pageSize }));
  }


}

/**
 * Plan PT_LOAD segments from the runs of present pages: one segment per maximal run, split
 * at zero runs of at least `minZeroRun` pages when `zeroRuns` (sorted, disjoint [start, end)
 * pfn ranges of zero pages) is given. Zero runs touching a segment's start are dropped from it.
 */
export function planElfSegments(
  present: readonly { startPfn: number; endPfn: number }[],
  zeroRuns: readonly { startPfn: number; endPfn: number }[] = [],
  minZeroRun = 256,
): ElfSegmentSpec[] {
  const out: ElfSegmentSpec[] = [];
  let z = 0;
  for (const r of present) {
    let s = r.startPfn;
    while (z < zeroRuns.length && zeroRuns[z]!.endPfn <= s) z++;
    let k = z;
    while (k < zeroRuns.length && zeroRuns[k]!.startPfn < r.endPfn) {
      const zr = zeroRuns[k]!;
      const zs = Math.max(zr.startPfn, s);
      const ze = Math.min(zr.endPfn, r.endPfn);
      const long = ze - zs >= minZeroRun;
      const atStart = zs === s;
      if (ze > zs && (long || atStart)) {
        if (zs > s) out.push({ startPfn: s, pages: zs - s });
        s = ze;
      }
      if (zr.endPfn > r.endPfn) break;
      k++;
    }
    if (s < r.endPfn) out.push({ startPfn: s, pages: r.endPfn - s });
  }
  return out;
}
