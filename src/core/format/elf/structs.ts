/** ELF structures (gABI), declared once for 64- and 32-bit. Readers and writers derive from these. */
import { defineStruct } from '../../struct.js';

export const ELFMAG = [0x7f, 0x45, 0x4c, 0x46];
export const ELFCLASS32 = 1;
export const ELFCLASS64 = 2;
export const ELFDATA2LSB = 1;
export const ELFDATA2MSB = 2;
export const ET_CORE = 4;
export const PT_NULL = 0;
export const PT_LOAD = 1;
export const PT_NOTE = 4;
export const PN_XNUM = 0xffff;
export const SHN_UNDEF = 0;
export const SHN_XINDEX = 0xffff;
export const SHT_NULL = 0;
export const SHT_PROGBITS = 1;
export const SHT_STRTAB = 3;
export const SHT_NOTE = 7;
export const SHF_ALLOC = 0x2;
export const SHF_COMPRESSED = 0x800;
export const ELFCOMPRESS_ZLIB = 1;
export const ELFCOMPRESS_ZSTD = 2;
export const EM_386 = 3;
export const EM_PPC64 = 21;
export const EM_S390 = 22;
export const EM_ARM = 40;
export const EM_X86_64 = 62;
export const EM_AARCH64 = 183;
export const EM_RISCV = 243;
/** ELF equivalent of the kdump incomplete flag (makedumpfile). */
export const DUMP_ELF_INCOMPLETE = 0x1;

export const MACHINES: Record<number, string> = {
  [EM_386]: 'i386',
  [EM_PPC64]: 'ppc64',
  [EM_S390]: 's390x',
  [EM_ARM]: 'arm',
  [EM_X86_64]: 'x86_64',
  [EM_AARCH64]: 'aarch64',
  [EM_RISCV]: 'riscv64',
};

/** e_ident is shared by both classes. */
export const Ident = defineStruct('e_ident', 16, {
  magic: { off: 0, type: 'bytes', size: 4 },
  ei_class: { off: 4, type: 'u8' },
  ei_data: { off: 5, type: 'u8' },
  ei_version: { off: 6, type: 'u8' },
  ei_osabi: { off: 7, type: 'u8' },
});

export const Elf64_Ehdr = defineStruct('Elf64_Ehdr', 64, {
  e_ident: { off: 0, type: 'bytes', size: 16 },
  e_type: { off: 16, type: 'u16' },
  e_machine: { off: 18, type: 'u16' },
  e_version: { off: 20, type: 'u32' },
  e_entry: { off: 24, type: 'u64' },
  e_phoff: { off: 32, type: 'u64n' },
  e_shoff: { off: 40, type: 'u64n' },
  e_flags: { off: 48, type: 'u32' },
  e_ehsize: { off: 52, type: 'u16' },
  e_phentsize: { off: 54, type: 'u16' },
  e_phnum: { off: 56, type: 'u16' },
  e_shentsize: { off: 58, type: 'u16' },
  e_shnum: { off: 60, type: 'u16' },
  e_shstrndx: { off: 62, type: 'u16' },
});

export const Elf32_Ehdr = defineStruct('Elf32_Ehdr', 52, {
  e_ident: { off: 0, type: 'bytes', size: 16 },
  e_type: { off: 16, type: 'u16' },
  e_machine: { off: 18, type: 'u16' },
  e_version: { off: 20, type: 'u32' },
  e_entry: { off: 24, type: 'u32' },
  e_phoff: { off: 28, type: 'u32' },
  e_shoff: { off: 32, type: 'u32' },
  e_flags: { off: 36, type: 'u32' },
  e_ehsize: { off: 40, type: 'u16' },
  e_phentsize: { off: 42, type: 'u16' },
  e_phnum: { off: 44, type: 'u16' },
  e_shentsize: { off: 46, type: 'u16' },
  e_shnum: { off: 48, type: 'u16' },
  e_shstrndx: { off: 50, type: 'u16' },
});

export const Elf64_Phdr = defineStruct('Elf64_Phdr', 56, {
  p_type: { off: 0, type: 'u32' },
  p_flags: { off: 4, type: 'u32' },
  p_offset: { off: 8, type: 'u64n' },
  p_vaddr: { off: 16, type: 'u64' },
  p_paddr: { off: 24, type: 'u64' },
  p_filesz: { off: 32, type: 'u64n' },
  p_memsz: { off: 40, type: 'u64n' },
  p_align: { off: 48, type: 'u64' },
});

export const Elf32_Phdr = defineStruct('Elf32_Phdr', 32, {
  p_type: { off: 0, type: 'u32' },
  p_offset: { off: 4, type: 'u32' },
  p_vaddr: { off: 8, type: 'u32' },
  p_paddr: { off: 12, type: 'u32' },
  p_filesz: { off: 16, type: 'u32' },
  p_memsz: { off: 20, type: 'u32' },
  p_flags: { off: 24, type: 'u32' },
  p_align: { off: 28, type: 'u32' },
});

export const Elf64_Shdr = defineStruct('Elf64_Shdr', 64, {
  sh_name: { off: 0, type: 'u32' },
  sh_type: { off: 4, type: 'u32' },
  sh_flags: { off: 8, type: 'u64' },
  sh_addr: { off: 16, type: 'u64' },
  sh_offset: { off: 24, type: 'u64n' },
  sh_size: { off: 32, type: 'u64n' },
  sh_link: { off: 40, type: 'u32' },
  sh_info: { off: 44, type: 'u32' },
  sh_addralign: { off: 48, type: 'u64' },
  sh_entsize: { off: 56, type: 'u64' },
});

export const Elf32_Shdr = defineStruct('Elf32_Shdr', 40, {
  sh_name: { off: 0, type: 'u32' },
  sh_type: { off: 4, type: 'u32' },
  sh_flags: { off: 8, type: 'u32' },
  sh_addr: { off: 12, type: 'u32' },
  sh_offset: { off: 16, type: 'u32' },
  sh_size: { off: 20, type: 'u32' },
  sh_link: { off: 24, type: 'u32' },
  sh_info: { off: 28, type: 'u32' },
  sh_addralign: { off: 32, type: 'u32' },
  sh_entsize: { off: 36, type: 'u32' },
});

/** A symbol table entry (ELF gABI; include/uapi/linux/elf.h `Elf64_Sym`): also a module's kallsyms symtab. */
export const Elf64_Sym = defineStruct('Elf64_Sym', 24, {
  st_name: { off: 0, type: 'u32' },
  st_info: { off: 4, type: 'u8' },
  st_other: { off: 5, type: 'u8' },
  st_shndx: { off: 6, type: 'u16' },
  st_value: { off: 8, type: 'u64' },
  st_size: { off: 16, type: 'u64' },
});

export const Elf64_Chdr = defineStruct('Elf64_Chdr', 24, {
  ch_type: { off: 0, type: 'u32' },
  ch_reserved: { off: 4, type: 'u32' },
  ch_size: { off: 8, type: 'u64n' },
  ch_addralign: { off: 16, type: 'u64n' },
});

export const Elf32_Chdr = defineStruct('Elf32_Chdr', 12, {
  ch_type: { off: 0, type: 'u32' },
  ch_size: { off: 4, type: 'u32' },
  ch_addralign: { off: 8, type: 'u32' },
});

/** Normalised views (both classes) used by readers. */
export interface ElfHeader {
  is64: boolean;
  littleEndian: boolean;
  type: number;
  machine: number;
  phoff: number;
  shoff: number;
  flags: number;
  ehsize: number;
  phentsize: number;
  phnum: number;
  shentsize: number;
  shnum: number;
  shstrndx: number;
}

export interface ProgramHeader {
  type: number;
  flags: number;
  offset: number;
  vaddr: bigint;
  paddr: bigint;
  filesz: number;
  memsz: number;
  align: bigint;
}

export interface SectionHeader {
  name: number;
  type: number;
  flags: bigint;
  addr: bigint;
  offset: number;
  size: number;
  link: number;
  info: number;
  addralign: bigint;
  entsize: bigint;
}
