/**
 * The one interface every dump format implements. Tools above this line (hash, info, kernel
 * awareness, writers) never look at format details.
 *
 * Units: page frame numbers, physical addresses and file offsets are JS numbers (exact up to
 * 2^53, i.e. 8 PiB); values that are genuinely 64-bit (phys_base, virtual addresses, register
 * contents) are bigint.
 */
import type { Warning } from './warnings.js';
import type { ElfNote } from './format/elf/notes.js';

/** What a page frame holds in this dump. */
export type PageState =
  | 'data' // stored in the file (possibly compressed)
  | 'zero' // present and known to be zero without reading (shared zero page, p_memsz > p_filesz tail)
  | 'excluded' // RAM, but filtered out by the producer (kdump: RAM bitmap 1, dumpable bitmap 0)
  | 'missing' // should be in the file but is not (incomplete dump, file cut short)
  | 'hole'; // not RAM according to the dump (outside every range / RAM bitmap 0)

/** `data` and `zero` pages are "present": they can be read and are hashed. */
export function isPresent(s: PageState): boolean {
  return s === 'data' || s === 'zero';
}

export interface PageRun {
  startPfn: number;
  /** Exclusive. */
  endPfn: number;
  state: PageState;
}

export type DumpFormat = 'elf' | 'kdump' | 'celf';
export type Producer = 'qemu' | 'makedumpfile' | 'kernel' | 'vmcore' | 'unknown';

export interface PhysicalMemory {
  readonly pageSize: number;
  /** One past the highest page frame the dump describes. */
  readonly maxPfn: number;
  /** State of one page frame. */
  pageState(pfn: number): Promise<PageState>;
  /**
   * Runs of equal state over [startPfn, endPfn), ascending, covering the whole interval
   * (holes included). Cheap: reads only metadata.
   */
  pageRuns(startPfn?: number, endPfn?: number): AsyncIterable<PageRun>;
  /**
   * Read one present page (`data` or `zero`). Throws PAGE_NOT_PRESENT naming the pfn and its
   * state for any other page. The returned buffer may be shared with a cache: do not modify.
   */
  readPage(pfn: number): Promise<Uint8Array>;
  /**
   * Read a physical byte range. Pages that are not present raise PAGE_NOT_PRESENT unless
   * `fillMissing` is set, in which case they read as zeros. The returned buffer is the caller's
   * (never shared with a cache); with `into`, it may be a view of `into` (see ReadPhysOptions).
   */
  readPhys(addr: number, length: number, opts?: ReadPhysOptions): Promise<Uint8Array>;
}

/** Options of PhysicalMemory.readPhys. */
export interface ReadPhysOptions {
  /** Pages that are not present read as zeros instead of raising PAGE_NOT_PRESENT. */
  fillMissing?: boolean;
  /**
   * Memory the reader may decode into and return a view of (`length` bytes from its start), so
   * that a caller reading many large ranges one after another (the struct pages of page
   * filtering) reuses one buffer instead of touching fresh memory each time. A reader may also
   * ignore it and return new memory: use the result, not `into`; and do not reuse `into` while
   * a result read into it is still needed.
   */
  into?: Uint8Array;
}

export interface Dump extends PhysicalMemory {
  readonly format: DumpFormat;
  /** Human-readable variant: "ELF64 LE", "kdump v6 flattened", ... */
  readonly variant: string;
  /** The files the dump was read from (a split set has several). */
  readonly files: readonly { name: string; size: number }[];
  readonly arch: string; // 'x86_64', 'i386', 'aarch64', ... or 'unknown'
  readonly littleEndian: boolean;
  readonly is64: boolean;
  /** ELF notes: PT_NOTE of an ELF dump, the note blob of a kdump file. */
  readonly notes: readonly ElfNote[];
  /** VMCOREINFO text as stored in the file (note or kdump offset_vmcoreinfo), if any. */
  readonly vmcoreinfoText: string | undefined;
  /** Problems found while opening that do not prevent reading. */
  readonly warnings: Warning[];
  /** Format-specific details for `info` (headers, flags, codec page counts ...). */
  details(opts?: DetailsOptions): Promise<FormatDetails>;
  /**
   * Runs over [startPfn, endPfn) from the format's page maps alone, for formats whose per-page
   * records are large (kdump: the RAM and dumpable bitmaps, 1 bit a page, instead of the page
   * descriptors, 24 bytes a page). Absent when `pageRuns` is as cheap. See `MapRun`.
   */
  mapRuns?(startPfn?: number, endPfn?: number): AsyncIterable<MapRun>;
  /**
   * With `mapRuns`: whether the file ends inside its page data (kdump: the last descriptor in
   * the file points beyond its end), from one record, for callers that read no others.
   */
  dataCutShort?(): Promise<boolean>;
  close(): Promise<void>;
}

/**
 * A run of `Dump.mapRuns`: 'stored' — the file says it holds the page (kdump: dumpable bit set
 * and its descriptor inside the file) but its record was not read, so it may still be a shared
 * zero page, or missing or damaged; 'missing' — the dumpable bit is set but the descriptor lies
 * beyond the end of the file; 'excluded' and 'hole' as in `PageState`.
 */
export interface MapRun {
  startPfn: number;
  /** Exclusive. */
  endPfn: number;
  state: 'stored' | 'missing' | 'excluded' | 'hole';
}

export interface DetailsOptions {
  /**
   * The page count per codec (`FormatDetails.codecs`): 'all' (default) or 'none' for callers
   * that need only the header (kernel analysis, convert). kdump reads every page descriptor
   * for the count (24 bytes a page: 24 MiB for 4 GiB of RAM).
   */
  codecs?: 'all' | 'none';
}

/** struct new_utsname: six NUL-padded 65-byte fields (header, init_uts_ns). */
export interface Utsname {
  sysname: string;
  nodename: string;
  release: string;
  version: string;
  machine: string;
  domainname: string;
}

export interface FormatDetails {
  /** kdump: header fields; elf: ELF header summary; celf: its header. JSON-safe values only. */
  header: Record<string, unknown>;
  /** Page counts per codec (kdump/celf): {"zlib": n, "raw": n, "zero": n}. */
  codecs?: Record<string, number>;
  /** phys_base as written in the file's header (kdump sub-header), 64-bit. */
  headerPhysBase?: bigint | undefined;
  /** utsname as written in the file's header, if the format has one. */
  utsname?: Utsname | undefined;
  /** Crash time from the header, seconds since the epoch, when set. */
  timestamp?: number | undefined;
  nrCpus?: number | undefined;
  incomplete?: boolean | undefined;
  /** Evidence for the producer, collected by the format reader (matched by code, never by text). */
  producerHints: ProducerHint[];
  /**
   * Why the dump describes no memory when that is normal for its format (kdump: every file
   * opened is a split part with an empty pfn range); `info` says so instead of blaming the
   * header layout. Absent otherwise.
   */
  noMemoryReason?: string | undefined;
  /** ELF: PT_LOAD segments; kdump: none. */
  segments?: { paddr: number; vaddr: bigint; offset: number; filesz: number; memsz: number }[];
}

/**
 * Unreadable pages in one vocabulary for every command (`info`'s `pages`, `hash`): the page map
 * (`pageRuns`) calls every page it cannot read 'missing'; of those, the ones whose kdump page
 * descriptor is impossible (size 0 or beyond a page, unknown compression flags) are 'damaged',
 * counted by the descriptor walk of `details()` (`codecs.damaged`); the rest are 'missing'
 * (not in the file: an incomplete or truncated dump).
 * @param unreadable pages the page map calls 'missing'.
 * @param codecs `FormatDetails.codecs` (undefined or without `damaged`: none are damaged).
 * @returns the two counts, in pages; they add up to `unreadable`.
 */
export function splitUnreadable(unreadable: number, codecs: Record<string, number> | undefined): { missing: number; damaged: number } {
  const damaged = Math.min(unreadable, codecs?.['damaged'] ?? 0);
  return { missing: unreadable - damaged, damaged };
}

/** The memory half of a Dump, as a view over another dump provides it. */
export type DumpMemory = Pick<Dump, 'pageState' | 'pageRuns' | 'readPage' | 'readPhys'> & Partial<Pick<Dump, 'pageSize' | 'maxPfn'>>;

/**
 * A Dump that is `dump` in everything (format, files, notes, VMCOREINFO, warnings, details,
 * close) except the memory accessors given: the one way views (filtered, recorded,
 * re-blocked) are built, so a field added to Dump reaches every view.
 */
export function dumpView(dump: Dump, memory: DumpMemory): Dump {
  return {
    get format() { return dump.format; },
    get variant() { return dump.variant; },
    get files() { return dump.files; },
    get arch() { return dump.arch; },
    get littleEndian() { return dump.littleEndian; },
    get is64() { return dump.is64; },
    get notes() { return dump.notes; },
    get vmcoreinfoText() { return dump.vmcoreinfoText; },
    get warnings() { return dump.warnings; },
    details: (opts?: DetailsOptions) => dump.details(opts),
    close: () => dump.close(),
    pageSize: memory.pageSize ?? dump.pageSize,
    maxPfn: memory.maxPfn ?? dump.maxPfn,
    pageState: memory.pageState,
    pageRuns: memory.pageRuns,
    readPage: memory.readPage,
    readPhys: memory.readPhys,
  };
}

/**
 * Stable codes of the facts a format reader reports about a file's writer (`FormatDetails.
 * producerHints`); `describeDump` decides the producer from these codes, and `vmcore info
 * --json` prints them as `producerEvidenceCodes`.
 */
export type ProducerHintCode =
  | 'qemu_cpu_notes' // notes named QEMU (QEMU's per-CPU state)
  | 'uts_only_machine' // kdump header utsname: machine alone set (QEMU dump.c)
  | 'uts_from_kernel' // kdump header utsname: sysname Linux and a release (makedumpfile)
  | 'timestamp_zero' // kdump header timestamp 0
  | 'flattened' // makedumpfile -F / QEMU kdump-* flattened stream
  | 'vmcore_note' // vmcore's producer note
  | 'celf_index' // a celf index section (written by vmcore)
  | 'shdrs_after_ehdr' // ELF section headers right after the ELF header (QEMU layout)
  | 'bogus_ehsize' // ELF e_ehsize not the header size (QEMU)
  | 'ktext_load' // a PT_LOAD at a kernel-text virtual address (/proc/vmcore)
  | 'vaddr_is_paddr' // every PT_LOAD has p_vaddr = p_paddr or 0 (QEMU paging=false)
  | 'memsz_gt_filesz' // a PT_LOAD with p_memsz > p_filesz (makedumpfile -E)
  | 'vmcoreinfo_note' // a VMCOREINFO note
  | 'phdrs_not_after_ehdr' // program headers not right after the ELF header
  | 'kdump_not_qemu_form' // (decided) a kdump header QEMU would not write
  | 'no_qemu_notes'; // (decided) an ELF core without QEMU's notes

/** One fact about the file's writer: a stable code and its text for people. */
export interface ProducerHint {
  code: ProducerHintCode;
  text: string;
}
