/**
 * ELF note streams (PT_NOTE of an ELF dump, the note blob of a kdump file): parsing and
 * building. Name and descriptor are padded to 4 bytes (Linux core notes use 4-byte alignment
 * in ELF64 too).
 */
import { warning, type Warning } from '../../warnings.js';
import { VmcoreError } from '../../errors.js';
import { defineStruct } from '../../struct.js';
import { latin1 } from '../../text.js';

export const Nhdr = defineStruct('Elf_Nhdr', 12, {
  n_namesz: { off: 0, type: 'u32' },
  n_descsz: { off: 4, type: 'u32' },
  n_type: { off: 8, type: 'u32' },
});

export const NT_PRSTATUS = 1;
export const NT_PRFPREG = 2;
export const NT_TASKSTRUCT = 4;
export const NT_VMCOREDD = 0x700;
export const XEN_ELFNOTE_CRASH_INFO = 0x1000001;
export const XEN_ELFNOTE_CRASH_REGS = 0x1000002;

/**
 * The note vmcore adds to every file it writes: name "VMCORE", type 0x564d ("VM"; no reader
 * gives this type a meaning: crash, drgn, libkdumpfile and makedumpfile look at CORE/NT_PRSTATUS,
 * VMCOREINFO, QEMU and Xen notes), text "vmcore VERSION COMMAND". `info` names the producer from it.
 */
export const VMCORE_NOTE_NAME = 'VMCORE';
export const VMCORE_NOTE_TYPE = 0x564d;

/** The producer note for `text` (e.g. "vmcore 0.1.0 convert"). */
export function producerNote(text: string): ElfNote {
  return { name: VMCORE_NOTE_NAME, type: VMCORE_NOTE_TYPE, desc: new TextEncoder().encode(text) };
}

/** The text of the producer note, if the notes have one. */
export function producerNoteText(notes: readonly Pick<ElfNote, 'name' | 'desc'>[]): string | undefined {
  const n = notes.find((x) => x.name === VMCORE_NOTE_NAME);
  return n ? latin1(n.desc).replace(/\0+$/, '') : undefined;
}

/** The notes without any producer note (a file rewritten by vmcore gets a new one). */
export function withoutProducerNote<T extends Pick<ElfNote, 'name'>>(notes: readonly T[]): T[] {
  return notes.filter((n) => n.name !== VMCORE_NOTE_NAME);
}

export interface ElfNote {
  name: string;
  type: number;
  desc: Uint8Array;
  /** File offset of the note header, when known. */
  offset?: number;
  /** File offset of the descriptor, when known. */
  descOffset?: number;
}
const align4 = (n: number) => (n + 3) & ~3;

/**
 * Why the name of the note at `p` (namesz bytes after its 12-byte header) is malformed, or
 * undefined when it is sound: the ELF gABI counts the terminating NUL in n_namesz, so the name
 * must end with a NUL within namesz bytes and anything after that NUL must be padding (zeros);
 * a name of printable text without the NUL is taken too.
 */
function badName(buf: Uint8Array, p: number, namesz: number): string | undefined {
  if (namesz === 0) return undefined;
  const end = Math.min(p + 12 + namesz, buf.length);
  let nul = -1;
  for (let i = p + 12; i < end; i++) {
    if (nul < 0) {
      if (buf[i] === 0) nul = i;
    } else if (buf[i] !== 0) {
      return `runs past its name "${latin1(buf.subarray(p + 12, nul))}" into other bytes`;
    }
  }
  if (nul < 0 && p + 12 + namesz > buf.length) return 'runs past the end of the note area';
  // a name without its NUL is taken when it is text (a writer that left the NUL out)
  if (nul < 0 && !buf.subarray(p + 12, end).every((b) => b >= 0x20 && b < 0x7f)) return 'holds no terminating NUL and is not text';
  return undefined;
}

/** Does a sound note header, a terminator or the end of the area start at `q`? */
function noteStartsAt(buf: Uint8Array, q: number, le: boolean, ctx: { file?: string; base?: number }): boolean {
  if (q === buf.length) return true;
  if (q + 12 > buf.length) return buf.subarray(q).every((b) => b === 0);
  const h = Nhdr.read(buf, q, le, ctx);
  if (h.n_namesz === 0 && h.n_descsz === 0 && h.n_type === 0) return true;
  return h.n_namesz <= 4096 && badName(buf, q, h.n_namesz) === undefined && q + 12 + align4(h.n_namesz) + h.n_descsz <= buf.length;
}

/**
 * Parse a note stream. Stops at a zero header (n_namesz = n_descsz = n_type = 0, the kernel's
 * terminator) or at the end; a note running past the end raises TRUNCATED.
 * A note whose n_namesz does not fit its name (hostile or damaged: no NUL in it, or bytes after
 * the NUL) is left out with a warning in `ctx.warnings` naming its offset and field. The notes
 * after it are read on from where the note ends with the name's true length, when a sound note
 * (or the end) starts there; else the warning says they are lost.
 */
export function parseNotes(buf: Uint8Array, le: boolean, ctx: { file?: string; base?: number; warnings?: Warning[] } = {}): ElfNote[] {
  const out: ElfNote[] = [];
  let p = 0;
  const base = ctx.base ?? 0;
  const at = (o: number) => `0x${(base + o).toString(16)}`;
  while (p + 12 <= buf.length) {
    const h = Nhdr.read(buf, p, le, ctx);
    if (h.n_namesz === 0 && h.n_descsz === 0 && h.n_type === 0) break;
    const bad = badName(buf, p, Math.min(h.n_namesz, 4096 + 1));
    if (bad !== undefined) {
      // the name as far as its first NUL; the note re-measured with that length
      let nul = -1;
      for (let i = p + 12, e = Math.min(p + 12 + h.n_namesz, buf.length); i < e; i++) {
        if (buf[i] === 0) {
          nul = i;
          break;
        }
      }
      const resume = nul < 0 ? undefined : align4(nul + 1) + h.n_descsz;
      const next = resume !== undefined && resume - h.n_descsz <= buf.length ? align4(resume) : undefined;
      const ok = next !== undefined && next <= buf.length && noteStartsAt(buf, next, le, ctx);
      ctx.warnings?.push(warning('NOTE_DAMAGED', 
        `${ctx.file ? `${ctx.file}: ` : ''}note at offset ${at(p)}: field Elf_Nhdr.n_namesz ${h.n_namesz} ${bad}: note (type ${h.n_type}) left out` +
          (ok ? `; the notes after it read on from offset ${at(next!)}` : `; the ${buf.length - p} bytes of notes from there are lost`)),);
      if (!ok) break;
      p = next!;
      continue;
    }
    const nameEnd = p + 12 + h.n_namesz;
    const descStart = p + 12 + align4(h.n_namesz);
    const descEnd = descStart + h.n_descsz;
    if (h.n_namesz > 4096 || descEnd > buf.length || nameEnd > buf.length) {
      throw new VmcoreError('TRUNCATED', `note runs past the end of the note area (namesz ${h.n_namesz}, descsz ${h.n_descsz})`, {
        file: ctx.file,
        offset: base + p,
        field: 'Elf_Nhdr.n_descsz',
      });
    }
    let name = latin1(buf.subarray(p + 12, nameEnd));
    const nul = name.indexOf('\0');
    if (nul >= 0) name = name.slice(0, nul);
    out.push({ name, type: h.n_type, desc: buf.slice(descStart, descEnd), offset: base + p, descOffset: base + descStart });
    p = descStart + align4(h.n_descsz);
  }
  return out;
}

/** Serialise notes into a stream (no terminator). */
export function buildNotes(notes: readonly Pick<ElfNote, 'name' | 'type' | 'desc'>[], le: boolean): Uint8Array {
  let size = 0;
  for (const n of notes) size += 12 + align4(n.name.length + 1) + align4(n.desc.length);
  const out = new Uint8Array(size);
  let p = 0;
  for (const n of notes) {
    Nhdr.write({ n_namesz: n.name.length + 1, n_descsz: n.desc.length, n_type: n.type }, out, p, le);
    for (let i = 0; i < n.name.length; i++) out[p + 12 + i] = n.name.charCodeAt(i) & 0xff;
    const d = p + 12 + align4(n.name.length + 1);
    out.set(n.desc, d);
    p = d + align4(n.desc.length);
  }
  return out;
}

/** Offset, inside a stream built by buildNotes, of note `index`'s descriptor. */
export function noteDescOffset(notes: readonly Pick<ElfNote, 'name' | 'desc'>[], index: number): number {
  let p = 0;
  for (let i = 0; i < index; i++) p += 12 + align4(notes[i]!.name.length + 1) + align4(notes[i]!.desc.length);
  return p + 12 + align4(notes[index]!.name.length + 1);
}

export function findVmcoreinfoNote(notes: readonly ElfNote[]): ElfNote | undefined {
  return notes.find((n) => n.name === 'VMCOREINFO');
}

export function noteTypeName(n: Pick<ElfNote, 'name' | 'type'>): string {
  if (n.name === 'CORE') {
    if (n.type === NT_PRSTATUS) return 'NT_PRSTATUS';
    if (n.type === NT_PRFPREG) return 'NT_PRFPREG';
    if (n.type === NT_TASKSTRUCT) return 'NT_TASKSTRUCT';
  }
  if (n.name === 'QEMU' && n.type === 0) return 'QEMU CPU state';
  if (n.name === 'VMCOREINFO') return 'VMCOREINFO';
  if (n.name === 'VMCOREINFO_XEN') return 'VMCOREINFO_XEN';
  if (n.name === 'Xen') {
    if (n.type === XEN_ELFNOTE_CRASH_INFO) return 'XEN_ELFNOTE_CRASH_INFO';
    if (n.type === XEN_ELFNOTE_CRASH_REGS) return 'XEN_ELFNOTE_CRASH_REGS';
  }
  if (n.name === 'ERASEINFO') return 'ERASEINFO';
  if (n.type === NT_VMCOREDD) return 'NT_VMCOREDD';
  return `type 0x${n.type.toString(16)}`;
}

/**
 * Number of CPUs the notes describe: the larger of the NT_PRSTATUS and QEMU CPU-state note
 * counts (QEMU writes both kinds for each vCPU, so their sum would count each vCPU twice). A
 * lower bound for kernel-written notes: a CPU that saved no registers has no note.
 */
export function cpuCountOfNotes(notes: readonly ElfNote[]): number {
  let pr = 0;
  let qemu = 0;
  for (const n of notes) {
    if (n.name === 'CORE' && n.type === NT_PRSTATUS) pr++;
    else if (n.name === 'QEMU' && n.type === 0) qemu++;
  }
  return Math.max(pr, qemu);
}
