/**
 * The ELF file header and program header table of a core file, as pure functions over bytes:
 * the random-access readers (ELF, celf), the one-pass stream reader and the in-place patcher
 * all decode and check them here, with one set of limits. Source: the System V gABI
 * ("ELF Header", "Program Header"; PN_XNUM extended numbering).
 */
import { VmcoreError } from '../../errors.js';
import { ELF_LIMITS } from '../../limits.js';
import {
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
  PN_XNUM,
  PT_LOAD,
  PT_NOTE,
  type ElfHeader,
  type ProgramHeader,
  type SectionHeader,
} from './structs.js';

export { ELF_LIMITS };

/** True when `head` starts with the ELF magic (\x7fELF). */
export function isElf(head: Uint8Array): boolean {
  return head.length >= 4 && ELFMAG.every((b, i) => head[i] === b);
}

/**
 * Class and byte order from e_ident (the first 16 bytes). Throws BAD_MAGIC without the ELF
 * magic, BAD_FIELD for an EI_CLASS or EI_DATA that is neither of the two defined values.
 */
export function parseElfIdent(ident: Uint8Array, file?: string): { is64: boolean; littleEndian: boolean } {
  if (!isElf(ident)) throw new VmcoreError('BAD_MAGIC', 'not an ELF file (no \\x7fELF magic)', { file, offset: 0, field: 'e_ident' });
  const cls = ident[4];
  const data = ident[5];
  if (cls !== ELFCLASS32 && cls !== ELFCLASS64) throw new VmcoreError('BAD_FIELD', `bad ELF class ${cls}`, { file, offset: 4, field: 'e_ident[EI_CLASS]' });
  if (data !== ELFDATA2LSB && data !== ELFDATA2MSB) throw new VmcoreError('BAD_FIELD', `bad ELF data encoding ${data}`, { file, offset: 5, field: 'e_ident[EI_DATA]' });
  return { is64: cls === ELFCLASS64, littleEndian: data === ELFDATA2LSB };
}

/** Bytes of the ELF header of this class (64 or 52). */
export function elfHeaderSize(is64: boolean): number {
  return is64 ? Elf64_Ehdr.size : Elf32_Ehdr.size;
}

/** Bytes of one program header of this class (56 or 32). */
export function programHeaderSize(is64: boolean): number {
  return is64 ? Elf64_Phdr.size : Elf32_Phdr.size;
}

/**
 * Decode the ELF header of a core file from its first `elfHeaderSize` bytes (more is fine).
 * e_phnum is returned as written (it may be PN_XNUM: see `programHeaderCount`).
 * Throws what `parseElfIdent` throws, TRUNCATED when `bytes` is too short, UNSUPPORTED when
 * e_type is not ET_CORE.
 */
export function parseElfHeader(bytes: Uint8Array, file?: string): ElfHeader {
  const { is64, littleEndian } = parseElfIdent(bytes, file);
  const E = is64 ? Elf64_Ehdr : Elf32_Ehdr;
  if (bytes.length < E.size) throw new VmcoreError('TRUNCATED', `the ELF header needs ${E.size} bytes, ${bytes.length} present`, { file, offset: 0, field: E.name });
  const e = E.read(bytes, 0, littleEndian, { file });
  if (e.e_type !== ET_CORE) throw new VmcoreError('UNSUPPORTED', `ELF type ${e.e_type} is not ET_CORE (4): not a core dump`, { file, offset: 16, field: 'e_type' });
  return {
    is64,
    littleEndian,
    type: e.e_type,
    machine: e.e_machine,
    phoff: Number(e.e_phoff),
    shoff: Number(e.e_shoff),
    flags: e.e_flags,
    ehsize: e.e_ehsize,
    phentsize: e.e_phentsize,
    phnum: e.e_phnum,
    shentsize: e.e_shentsize,
    shnum: e.e_shnum,
    shstrndx: e.e_shstrndx,
  };
}

/** Decode the section header at `at` in `bytes` (`base` is the file offset of `bytes`, for errors). */
export function parseSectionHeader(bytes: Uint8Array, at: number, header: Pick<ElfHeader, 'is64' | 'littleEndian'>, file?: string, base = 0): SectionHeader {
  const S = header.is64 ? Elf64_Shdr : Elf32_Shdr;
  const s = S.read(bytes, at, header.littleEndian, { file, base });
  return {
    name: s.sh_name,
    type: s.sh_type,
    flags: BigInt(s.sh_flags),
    addr: BigInt(s.sh_addr),
    offset: Number(s.sh_offset),
    size: Number(s.sh_size),
    link: s.sh_link,
    info: s.sh_info,
    addralign: BigInt(s.sh_addralign),
    entsize: BigInt(s.sh_entsize),
  };
}

/**
 * The number of program headers: e_phnum, or with PN_XNUM the sh_info of section header 0
 * (`sh0Info`, undefined when the file has none). Also checks e_phentsize against the class.
 * Throws BAD_FIELD (PN_XNUM without section header 0, wrong e_phentsize) or OUT_OF_BOUNDS
 * (more than ELF_LIMITS.maxPhnum).
 */
export function programHeaderCount(header: ElfHeader, sh0Info: number | undefined, file?: string): number {
  let phnum = header.phnum;
  if (phnum === PN_XNUM) {
    if (sh0Info === undefined) throw new VmcoreError('BAD_FIELD', 'e_phnum is PN_XNUM but there is no section header 0 with the real count', { file, offset: header.is64 ? 56 : 44, field: 'e_phnum' });
    phnum = sh0Info;
  }
  if (phnum > ELF_LIMITS.maxPhnum) throw new VmcoreError('OUT_OF_BOUNDS', `${phnum} program headers (limit ${ELF_LIMITS.maxPhnum})`, { file, offset: header.is64 ? 56 : 44, field: 'e_phnum' });
  const size = programHeaderSize(header.is64);
  if (phnum && header.phentsize !== size) throw new VmcoreError('BAD_FIELD', `e_phentsize ${header.phentsize} is not ${size}`, { file, offset: header.is64 ? 54 : 42, field: 'e_phentsize' });
  return phnum;
}

/**
 * The file range of the program header table of `phnum` entries. With `fileSize`, a table
 * that runs past the end of the file throws TRUNCATED.
 */
export function programHeaderTable(header: ElfHeader, phnum: number, fileSize?: number, file?: string): { offset: number; bytes: number } {
  const bytes = phnum * programHeaderSize(header.is64);
  if (fileSize !== undefined && header.phoff + bytes > fileSize) {
    throw new VmcoreError('TRUNCATED', `${phnum} program headers at 0x${header.phoff.toString(16)} run past the end of the file`, { file, offset: header.phoff, field: 'e_phnum' });
  }
  return { offset: header.phoff, bytes };
}

/**
 * Decode `phnum` program headers from `bytes` (the table, read from file offset
 * header.phoff) and check what every reader relies on: a PT_NOTE is at most
 * ELF_LIMITS.maxNoteBytes, a PT_LOAD has p_filesz <= p_memsz and a physical range below
 * 2^ELF_LIMITS.maxPhysBits. Throws OUT_OF_BOUNDS or BAD_FIELD naming the header's offset.
 */
export function parseProgramHeaders(bytes: Uint8Array, header: ElfHeader, phnum: number, file?: string): ProgramHeader[] {
  const P = header.is64 ? Elf64_Phdr : Elf32_Phdr;
  const out: ProgramHeader[] = [];
  const maxPhys = 2n ** BigInt(ELF_LIMITS.maxPhysBits);
  for (let i = 0; i < phnum; i++) {
    const at = header.phoff + i * P.size;
    const p = P.read(bytes, i * P.size, header.littleEndian, { file, base: header.phoff });
    const ph: ProgramHeader = {
      type: p.p_type,
      flags: p.p_flags,
      offset: Number(p.p_offset),
      vaddr: BigInt(p.p_vaddr),
      paddr: BigInt(p.p_paddr),
      filesz: Number(p.p_filesz),
      memsz: Number(p.p_memsz),
      align: BigInt(p.p_align),
    };
    const fileszAt = at + (header.is64 ? 32 : 16);
    if (ph.type === PT_NOTE && ph.filesz > ELF_LIMITS.maxNoteBytes) {
      throw new VmcoreError('OUT_OF_BOUNDS', `PT_NOTE of ${ph.filesz} bytes (limit ${ELF_LIMITS.maxNoteBytes})`, { file, offset: fileszAt, field: 'p_filesz' });
    }
    if (ph.type === PT_LOAD) {
      if (ph.filesz > ph.memsz) throw new VmcoreError('BAD_FIELD', `p_filesz ${ph.filesz} > p_memsz ${ph.memsz}`, { file, offset: fileszAt, field: 'p_filesz' });
      // p_paddr all ones: no physical address (/proc/kcore style); the readers skip the segment
      const noPhys = ph.paddr === (header.is64 ? 0xffffffffffffffffn : 0xffffffffn);
      if (!noPhys && ph.paddr + BigInt(ph.memsz) > maxPhys) {
        throw new VmcoreError('OUT_OF_BOUNDS', `PT_LOAD physical range 0x${ph.paddr.toString(16)} + 0x${ph.memsz.toString(16)} beyond 2^${ELF_LIMITS.maxPhysBits}`, {
          file,
          offset: at + (header.is64 ? 24 : 12),
          field: 'p_paddr',
        });
      }
    }
    out.push(ph);
  }
  return out;
}

/** The PT_NOTE segments' total size, checked against ELF_LIMITS.maxNoteBytes (OUT_OF_BOUNDS). */
export function checkNoteTotal(phdrs: readonly ProgramHeader[], file?: string): number {
  let total = 0;
  for (const p of phdrs) if (p.type === PT_NOTE) total += p.filesz;
  if (total > ELF_LIMITS.maxNoteBytes) throw new VmcoreError('OUT_OF_BOUNDS', `${total} bytes of notes (limit ${ELF_LIMITS.maxNoteBytes})`, { file, field: 'p_filesz' });
  return total;
}
