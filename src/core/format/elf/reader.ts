/**
 * ELF vmcore reader: ELF32/ELF64, both byte orders, ET_CORE. PT_LOAD segments give physical
 * ranges (p_paddr); the p_memsz > p_filesz tail reads as zeros; overlapping segments (the
 * kernel-text PT_LOAD of /proc/vmcore lies inside a RAM one) are merged; PN_XNUM is honoured;
 * section headers are tolerated (QEMU writes them, with a bogus e_ehsize).
 */
import { warning, prefixed, type Warning } from '../../warnings.js';
import { VmcoreError } from '../../errors.js';
import { readExact, type ByteSource } from '../../io/source.js';
import type { Dump, FormatDetails, PageRun, PageState, ProducerHint, ProducerHintCode, ReadPhysOptions } from '../../dump.js';
import { notPresent, readPhysGeneric } from '../../memory.js';
import { cpuCountOfNotes, findVmcoreinfoNote, parseNotes, producerNoteText, type ElfNote } from './notes.js';
import { checkNoteTotal, elfHeaderSize, isElf, parseElfHeader, parseElfIdent, parseProgramHeaders, parseSectionHeader, programHeaderCount, programHeaderTable } from './header.js';
import {
  DUMP_ELF_INCOMPLETE,
  Elf32_Shdr,
  Elf64_Shdr,
  MACHINES,
  PN_XNUM,
  PT_LOAD,
  PT_NOTE,
  type ElfHeader,
  type ProgramHeader,
  type SectionHeader,
} from './structs.js';
import { latin1 } from '../../text.js';

const PAGE = 4096;

/**
 * The kernel's page size, which is the unit of page frames in an ELF vmcore: VMCOREINFO
 * `PAGESIZE` (kernel/crash_core.c VMCOREINFO_PAGESIZE), as makedumpfile and crash take it.
 * 4096 when the dump has no VMCOREINFO; a PAGESIZE that is not a power of two between 4 KiB
 * and 1 MiB is ignored with a warning.
 */
export function kernelPageSize(vmcoreinfoText: string | undefined): { pageSize: number; warning?: Warning } {
  const m = vmcoreinfoText ? /(?:^|\n)PAGESIZE=(\d+)/.exec(vmcoreinfoText) : null;
  if (!m) return { pageSize: PAGE };
  const v = Number(m[1]);
  if (!Number.isSafeInteger(v) || v < 4096 || v > 1 << 20 || (v & (v - 1)) !== 0) return { pageSize: PAGE, warning: warning('PAGESIZE_INVALID', `VMCOREINFO PAGESIZE=${m[1]} is not a page size; using 4096`) };
  return { pageSize: v };
}

export { isElf };

export interface ElfLayout {
  header: ElfHeader;
  phdrs: ProgramHeader[];
  shdrs: SectionHeader[];
  warnings: Warning[];
}

/** Parse ELF header, program headers and (tolerantly) section headers (see ./header.ts). */
export async function readElfLayout(src: ByteSource): Promise<ElfLayout> {
  const file = src.name;
  const ident = await readExact(src, 0, 16, 'e_ident');
  const { is64 } = parseElfIdent(ident, file);
  const header = parseElfHeader(await readExact(src, 0, elfHeaderSize(is64), is64 ? 'Elf64_Ehdr' : 'Elf32_Ehdr'), file);
  const warnings: Warning[] = [];
  if (header.ehsize !== elfHeaderSize(is64)) warnings.push(warning('HEADER_FIELD_IGNORED', `e_ehsize is ${header.ehsize}, not ${elfHeaderSize(is64)} (ignored; QEMU writes a bogus value)`));
  const S = is64 ? Elf64_Shdr : Elf32_Shdr;
  // Section headers: needed for PN_XNUM and by the compressed-ELF reader; tolerated otherwise.
  const shdrs: SectionHeader[] = [];
  if (header.shoff) {
    if (header.shentsize !== S.size) warnings.push(warning('SECTION_HEADERS_IGNORED', `e_shentsize ${header.shentsize} is not ${S.size}; section headers ignored`));
    else {
      try {
        const first = parseSectionHeader(await readExact(src, header.shoff, S.size, 'section header 0'), 0, header, file, header.shoff);
        let shnum = header.shnum;
        if (shnum === 0) shnum = first.size;
        if (header.shoff + shnum * S.size > src.size) throw new VmcoreError('TRUNCATED', `${shnum} section headers run past the end of the file`, { file, offset: header.shoff, field: 'e_shnum' });
        const sb = await readExact(src, header.shoff, shnum * S.size, 'section headers');
        for (let i = 0; i < shnum; i++) shdrs.push(parseSectionHeader(sb, i * S.size, header, file, header.shoff));
      } catch (err) {
        if (header.phnum === PN_XNUM) throw err;
        warnings.push(warning('SECTION_HEADERS_IGNORED', `section headers unreadable: ${(err as Error).message}`));
      }
    }
  }
  const phnum = programHeaderCount(header, shdrs[0]?.info, file);
  const table = programHeaderTable(header, phnum, src.size, file);
  const pb = phnum ? await readExact(src, table.offset, table.bytes, 'program headers') : new Uint8Array(0);
  const phdrs = parseProgramHeaders(pb, header, phnum, file);
  checkNoteTotal(phdrs, file);
  header.phnum = phnum;
  return { header, phdrs, shdrs, warnings };
}

/** A byte range of physical memory with one source. */
interface Piece {
  start: number; // physical
  end: number;
  kind: 'data' | 'zero' | 'missing';
  fileOffset: number; // for data: file offset of `start`
}

export class ElfDump implements Dump {
  readonly format = 'elf' as const;
  readonly variant: string;
  readonly files: { name: string; size: number }[];
  readonly arch: string;
  readonly littleEndian: boolean;
  readonly is64: boolean;
  /** The kernel's page size: VMCOREINFO PAGESIZE, else 4096 (see kernelPageSize). */
  readonly pageSize: number;
  readonly maxPfn: number;
  readonly warnings: Warning[];
  readonly notes: ElfNote[];
  readonly vmcoreinfoText: string | undefined;
  /** Page runs (sorted, disjoint, holes omitted). */
  private readonly runsArr: PageRun[];
  private readonly pieces: Piece[];

  private constructor(
    readonly src: ByteSource,
    readonly layout: ElfLayout,
    notes: ElfNote[],
  ) {
    const { header, phdrs } = layout;
    this.files = [{ name: src.name, size: src.size }];
    this.littleEndian = header.littleEndian;
    this.is64 = header.is64;
    this.arch = MACHINES[header.machine] ?? `e_machine ${header.machine}`;
    this.warnings = [...layout.warnings];
    this.notes = notes;
    const vn = findVmcoreinfoNote(notes);
    this.vmcoreinfoText = vn ? latin1(vn.desc).replace(/\0+$/, '') : undefined;
    this.variant = `ELF${header.is64 ? 64 : 32} ${header.littleEndian ? 'little' : 'big'}-endian`;
    const ps = kernelPageSize(this.vmcoreinfoText);
    this.pageSize = ps.pageSize;
    if (ps.warning) this.warnings.push(prefixed(`${src.name}: `, ps.warning));
    this.pieces = buildPieces(phdrs, src.size, this.warnings, src.name);
    this.runsArr = piecesToRuns(this.pieces, this.pageSize);
    const last = this.runsArr[this.runsArr.length - 1];
    this.maxPfn = last ? last.endPfn : 0;
    if (header.flags & DUMP_ELF_INCOMPLETE) this.warnings.push(warning('MARKED_INCOMPLETE', 'the dump is marked incomplete (e_flags bit 0): its writer stopped early, or left out pages its input lacked'));
  }

  static async open(src: ByteSource): Promise<ElfDump> {
    const layout = await readElfLayout(src);
    const notes: ElfNote[] = [];
    for (const p of layout.phdrs) {
      if (p.type !== PT_NOTE || p.filesz === 0) continue;
      const b = await readExact(src, p.offset, p.filesz, 'PT_NOTE');
      notes.push(...parseNotes(b, layout.header.littleEndian, { file: src.name, base: p.offset, warnings: layout.warnings }));
    }
    return new ElfDump(src, layout, notes);
  }

  private findRun(pfn: number): PageRun | undefined {
    const a = this.runsArr;
    let lo = 0;
    let hi = a.length - 1;
    while (lo <= hi) {
      const m = (lo + hi) >> 1;
      const r = a[m]!;
      if (pfn < r.startPfn) hi = m - 1;
      else if (pfn >= r.endPfn) lo = m + 1;
      else return r;
    }
    return undefined;
  }

  async pageState(pfn: number): Promise<PageState> {
    return this.findRun(pfn)?.state ?? 'hole';
  }

  async *pageRuns(start = 0, end = this.maxPfn): AsyncIterable<PageRun> {
    let pos = start;
    for (const r of this.runsArr) {
      if (r.endPfn <= start) continue;
      if (r.startPfn >= end) break;
      const s = Math.max(r.startPfn, start);
      if (s > pos) yield { startPfn: pos, endPfn: s, state: 'hole' };
      const e = Math.min(r.endPfn, end);
      yield { startPfn: s, endPfn: e, state: r.state };
      pos = e;
    }
    if (pos < end) yield { startPfn: pos, endPfn: end, state: 'hole' };
  }

  /** PT_LOAD bytes; chunked read-ahead comes from the CachedSource that openDump puts under every file. */
  private fileBytes(offset: number, length: number): Promise<Uint8Array> {
    return readExact(this.src, offset, length, 'PT_LOAD data');
  }

  async readPage(pfn: number): Promise<Uint8Array> {
    const st = await this.pageState(pfn);
    const PAGE = this.pageSize;
    if (st === 'zero') return new Uint8Array(PAGE);
    if (st !== 'data') throw notPresent(pfn, st, PAGE, this.src.name);
    const a = pfn * PAGE;
    const b = a + PAGE;
    // fast path: one data piece covers the page
    const i = this.pieceIndex(a);
    const p = this.pieces[i];
    if (p && p.kind === 'data' && p.start <= a && p.end >= b) return this.fileBytes(p.fileOffset + (a - p.start), PAGE);
    const out = new Uint8Array(PAGE);
    for (let k = Math.max(0, i); k < this.pieces.length; k++) {
      const q = this.pieces[k]!;
      if (q.start >= b) break;
      if (q.end <= a || q.kind !== 'data') continue;
      const s = Math.max(a, q.start);
      const e = Math.min(b, q.end);
      out.set(await this.fileBytes(q.fileOffset + (s - q.start), e - s), s - a);
    }
    return out;
  }

  /**
   * Page frames `pfn` .. `pfn + count - 1` in one read when they are all present ('data') and
   * stored contiguously in one PT_LOAD piece; undefined otherwise (read them page by page).
   * Used by whole-memory scans (PageBlockReader in kernel/recording.ts).
   */
  async readPageBlock(pfn: number, count: number): Promise<Uint8Array | undefined> {
    if (!Number.isSafeInteger(pfn) || !Number.isSafeInteger(count) || pfn < 0 || count < 1) return undefined;
    const r = this.findRun(pfn);
    if (!r || r.state !== 'data' || r.endPfn < pfn + count) return undefined;
    const PAGE = this.pageSize;
    const a = pfn * PAGE;
    const b = a + count * PAGE;
    const p = this.pieces[this.pieceIndex(a)];
    if (!p || p.kind !== 'data' || p.start > a || p.end < b) return undefined;
    return this.fileBytes(p.fileOffset + (a - p.start), b - a);
  }

  private pieceIndex(addr: number): number {
    let lo = 0;
    let hi = this.pieces.length - 1;
    let ans = -1;
    while (lo <= hi) {
      const m = (lo + hi) >> 1;
      if (this.pieces[m]!.start <= addr) {
        ans = m;
        lo = m + 1;
      } else hi = m - 1;
    }
    return ans;
  }

  readPhys(addr: number, length: number, opts?: ReadPhysOptions): Promise<Uint8Array> {
    return readPhysGeneric(this, addr, length, opts, this.src.name);
  }

  async details(): Promise<FormatDetails> {
    const { header, phdrs, shdrs } = this.layout;
    const loads = phdrs.filter((p) => p.type === PT_LOAD);
    const hints: ProducerHint[] = [];
    const hint = (code: ProducerHintCode, text: string) => hints.push({ code, text });
    if (this.notes.some((n) => n.name.startsWith('QEMU'))) hint('qemu_cpu_notes', 'QEMU CPU-state notes');
    if (shdrs.length && header.shoff === (header.is64 ? 64 : 52)) hint('shdrs_after_ehdr', 'section headers right after the ELF header (QEMU layout)');
    if (header.ehsize !== (header.is64 ? 64 : 52)) hint('bogus_ehsize', `bogus e_ehsize ${header.ehsize}`);
    const ktext = loads.some((p) => p.vaddr >= 0xffffffff80000000n && p.vaddr < 0xffffffffc0000000n);
    if (ktext) hint('ktext_load', 'PT_LOAD with a kernel-text virtual address');
    if (loads.length && loads.every((p) => p.vaddr === p.paddr || p.vaddr === 0n)) hint('vaddr_is_paddr', 'PT_LOAD p_vaddr = p_paddr or 0 (no kernel virtual addresses)');
    if (loads.some((p) => p.memsz > p.filesz)) hint('memsz_gt_filesz', 'PT_LOAD with p_memsz > p_filesz (excluded or zero pages)');
    if (this.vmcoreinfoText) hint('vmcoreinfo_note', 'VMCOREINFO note');
    {
      const made = producerNoteText(this.notes);
      if (made !== undefined) hint('vmcore_note', `vmcore producer note: written by ${made}`);
    }
    if (header.phoff !== (header.is64 ? 64 : 52)) hint('phdrs_not_after_ehdr', `program headers at 0x${header.phoff.toString(16)}, not right after the ELF header`);
    const nrCpus = cpuCountOfNotes(this.notes);
    return {
      header: {
        class: header.is64 ? 'ELF64' : 'ELF32',
        endian: header.littleEndian ? 'little' : 'big',
        e_machine: header.machine,
        e_flags: header.flags,
        e_ehsize: header.ehsize,
        e_phoff: header.phoff,
        e_phnum: header.phnum,
        e_shoff: header.shoff,
        e_shnum: shdrs.length,
        pt_load: loads.length,
      },
      producerHints: hints,
      nrCpus: nrCpus || undefined,
      incomplete: (header.flags & DUMP_ELF_INCOMPLETE) !== 0,
      segments: loads.map((p) => ({ paddr: Number(p.paddr), vaddr: p.vaddr, offset: p.offset, filesz: p.filesz, memsz: p.memsz })),
    };
  }

  async close(): Promise<void> {
    await this.src.close?.();
  }
}

const RANK: Record<Piece['kind'], number> = { data: 3, missing: 2, zero: 1 };

/** Disjoint, sorted physical pieces from (possibly overlapping) PT_LOADs. */
function buildPieces(phdrs: ProgramHeader[], fileSize: number, warnings: Warning[], file: string): Piece[] {
  const raw: Piece[] = [];
  for (const p of phdrs) {
    if (p.type !== PT_LOAD) continue;
    if (p.paddr === 0xffffffffffffffffn) continue; // /proc/kcore style: no physical address
    // p_paddr + p_memsz below 2^52 and p_filesz <= p_memsz: checked by parseProgramHeaders
    const start = Number(p.paddr);
    const inFile = Math.max(0, Math.min(p.filesz, fileSize - p.offset));
    if (inFile > 0) raw.push({ start, end: start + inFile, kind: 'data', fileOffset: p.offset });
    if (inFile < p.filesz) {
      raw.push({ start: start + inFile, end: start + p.filesz, kind: 'missing', fileOffset: 0 });
      warnings.push(warning('FILE_TRUNCATED', `PT_LOAD at 0x${start.toString(16)}: the file ends ${p.filesz - inFile} bytes early (truncated dump); those pages are missing`));
    }
    if (p.memsz > p.filesz) raw.push({ start: start + p.filesz, end: start + p.memsz, kind: 'zero', fileOffset: 0 });
  }
  if (raw.length > 1) raw.sort((a, b) => a.start - b.start);
  // Resolve overlaps: higher rank wins; equal rank keeps the earlier piece.
  const bounds = new Set<number>();
  let overlap = false;
  for (let i = 0; i < raw.length; i++) {
    if (i && raw[i]!.start < raw[i - 1]!.end) overlap = true;
  }
  if (!overlap) return raw;
  for (const r of raw) {
    bounds.add(r.start);
    bounds.add(r.end);
  }
  const pts = [...bounds].sort((a, b) => a - b);
  const out: Piece[] = [];
  for (let i = 0; i + 1 < pts.length; i++) {
    const s = pts[i]!;
    const e = pts[i + 1]!;
    let best: Piece | undefined;
    for (const r of raw) {
      if (r.start > s) break;
      if (r.end <= s) continue;
      if (!best || RANK[r.kind] > RANK[best.kind]) best = r;
    }
    if (!best) continue;
    const piece: Piece = { start: s, end: e, kind: best.kind, fileOffset: best.kind === 'data' ? best.fileOffset + (s - best.start) : 0 };
    const prev = out[out.length - 1];
    if (prev && prev.end === s && prev.kind === piece.kind && (piece.kind !== 'data' || prev.fileOffset + (prev.end - prev.start) === piece.fileOffset)) prev.end = e;
    else out.push(piece);
  }
  return out;
}

/** Page runs from byte pieces: a page's state is the strongest of the pieces it touches. */
function piecesToRuns(pieces: Piece[], ps: number): PageRun[] {
  const runs: PageRun[] = [];
  const push = (s: number, e: number, st: PageState) => {
    if (e <= s) return;
    const last = runs[runs.length - 1];
    if (last && last.endPfn > s) {
      // overlapping boundary page: combine
      if (last.endPfn - last.startPfn === 1 && e - s === 1) {
        last.state = strongest(last.state, st);
        return;
      }
      // split: the shared page is the last of `last` and the first of the new run
      const shared = s;
      if (last.endPfn - 1 === shared) {
        const combined = strongest(last.state, st);
        if (combined !== last.state) {
          last.endPfn = shared;
          if (last.endPfn <= last.startPfn) runs.pop();
          mergePush(runs, { startPfn: shared, endPfn: shared + 1, state: combined });
        }
        mergePush(runs, { startPfn: shared + 1, endPfn: e, state: st });
        return;
      }
    }
    mergePush(runs, { startPfn: s, endPfn: e, state: st });
  };
  for (const p of pieces) {
    const st: PageState = p.kind;
    push(Math.floor(p.start / ps), Math.ceil(p.end / ps), st);
  }
  return runs;
}

function mergePush(runs: PageRun[], r: PageRun): void {
  if (r.endPfn <= r.startPfn) return;
  const last = runs[runs.length - 1];
  if (last && last.state === r.state && last.endPfn === r.startPfn) last.endPfn = r.endPfn;
  else runs.push(r);
}

const STRENGTH: Record<PageState, number> = { missing: 4, data: 3, zero: 2, excluded: 1, hole: 0 };
function strongest(a: PageState, b: PageState): PageState {
  return STRENGTH[a] >= STRENGTH[b] ? a : b;
}
