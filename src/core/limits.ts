/**
 * Every cap vmcore puts on a size or count read from an untrusted file, in one place, so that
 * the readers, writers, streams and kernel walks agree. A value over its cap is a typed error
 * naming the field (OUT_OF_BOUNDS, BAD_FIELD) or, in a kernel walk, a warning with a partial
 * answer; never an allocation of that size or a walk without end.
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

/**
 * The one-pass readers of a kdump-compressed file or flattened stream from a pipe (`convert -`,
 * `-R`): what they hold back while the file's order does not match the page order.
 */
export const KDUMP_STREAM_LIMITS = {
  /** Header, bitmaps and descriptors held before the first page (256 MiB covers 2^33 pages' bitmaps). */
  maxMetaBytes: 256 << 20,
  /** Page data that arrives before its descriptor, held until the descriptor is read. */
  maxPendingDataBytes: 256 << 20,
  /** Descriptors that arrive before the bitmaps that place them. */
  maxPendingDescBytes: 256 << 20,
  /** A flattened record larger than this is refused (makedumpfile writes at most its cache size). */
  maxFlatRecordBytes: 1 << 30,
} as const;

/**
 * The kernel's own tables and lists, read from a dump's memory: a corrupt pointer or count must
 * cost a warning or a typed error, never a walk without end or an allocation of its size. Each
 * cap is far above what the kernel sources allow or real kernels hold (figures: Debian 6.1 and
 * 6.12 distribution kernels).
 */
export const KERNEL_LIMITS = {
  /** Tasks visited in one walk (also bounded by nr_threads × 2 + 1024; PID_MAX_LIMIT is 4M). */
  maxTasks: 1 << 20,
  /** CPUs read (NR_CPUS is 8192 on distribution kernels; include/linux/threads.h). */
  maxCpus: 8192,
  /** Modules on the `modules` list (a distribution kernel loads a few hundred). */
  maxModules: 8192,
  /** One module's symbols (num_symtab; the largest Debian modules have a few tens of thousands). */
  maxModuleSymbols: 1 << 18,
  /** Bytes of one module's string table read. */
  maxModuleStrtabBytes: 16 << 20,
  /** One module's BTF (tens of KiB; the largest Debian module's is under 2 MiB). */
  maxModuleBtfBytes: 16 << 20,
  /** vmlinux BTF (6.1: 4 MiB; 6.12: 6 MiB); a larger claimed size is refused. */
  maxBtfBytes: 64 << 20,
  /** How far past `_stext` the BTF scan looks (Debian's 6.1 image puts .BTF 20 MiB in). */
  btfScanBytes: 128 << 20,
  /** BTF typedef/modifier chains, array nesting and nested anonymous members (real kernels: < 10). */
  maxBtfChain: 64,
  /** One structure read through BTF (a task_struct is about 10 KiB). */
  maxObjectBytes: 1 << 20,
  /** kallsyms (kernel/kallsyms.c, scripts/kallsyms.c). */
  kallsyms: {
    /** 6.12 distribution kernels have about 200k symbols with KALLSYMS_ALL. */
    maxSymbols: 4_000_000,
    /** KSYM_NAME_LEN is 512 since 6.1 (128 before); a decoded name longer than this is corruption. */
    maxNameLength: 1024,
    /** The names table (about 2 MiB on a distribution kernel). */
    maxNamesBytes: 64 << 20,
    maxTokenTableBytes: 64 << 10,
  },
  /** ORC unwind entries (lookup_num_blocks × entries per block; a 6.12 kernel has about 500k). */
  maxOrcEntries: 4 << 20,
  /** Frames of one backtrace (a kernel stack is 16 KiB: THREAD_SIZE on x86_64 and arm64). */
  maxFrames: 256,
  /** The printk ring (kernel/printk/printk_ringbuffer.h): 2^26 descriptors is what a 2 GiB text ring gets (PRB_AVGBITS 5). */
  maxDmesgCountBits: 26,
  /** Bytes of the descriptor or info array of the ring. */
  maxDmesgArrayBytes: 1 << 30,
  /**
   * LENGTH(mem_section) (include/linux/mmzone.h). With SPARSEMEM_EXTREME it is NR_SECTION_ROOTS:
   * 2^11 for 128 MiB sections, 4 KiB roots and 46 physical address bits, 2^17 when 5-level paging
   * gives 52 (MAX_PHYSMEM_BITS, arch/x86/include/asm/sparsemem.h). Without it, NR_MEM_SECTIONS
   * (2^19 for 46 bits). The bytes read for the array are capped by maxMemSectionArrayBytes.
   */
  maxMemSectionRoots: 1 << 21,
  /** Bytes of the mem_section array read at once (its root pointers, or its sections without SPARSEMEM_EXTREME). */
  maxMemSectionArrayBytes: 16 << 20,
  /** A VMCOREINFO note found by the memory scan (VMCOREINFO_BYTES is one page: kernel/vmcore_info.c). */
  maxVmcoreinfoBytes: 4096,
} as const;
