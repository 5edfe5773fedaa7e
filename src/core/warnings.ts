/**
 * Warnings: what a reader or an analysis could not do, or did on an assumption, while the job
 * still gives an answer. Each warning has a stable code, for programs (`--json` and every
 * decision made on a warning), and a text, for people; the text is never matched. Every code is
 * declared here once, with its meaning; warnings are made only through `warning()`.
 */

/** The codes, each with what it means. */
export const WARNING_CODES = {
  // The file and its format
  FILE_TRUNCATED: 'the file ends before data it declares (a PT_LOAD, the page data, a flattened record): those pages are missing',
  MARKED_INCOMPLETE: 'the dump is marked incomplete by its producer (its writer stopped early, or left out pages its input lacked)',
  PAGES_MISSING: 'pages the dump declares are not in the file',
  PAGES_DAMAGED: 'page descriptors are damaged (impossible size or flags): those pages are unreadable, the others are not',
  NO_MEMORY: 'the dump describes no memory (0 RAM pages)',
  HEADER_FIELD_IGNORED: 'a header field holds an odd value that is ignored (e.g. QEMU\'s e_ehsize)',
  HEADER_LAYOUT_GUESSED: 'the kdump header layout was chosen among several that fit',
  SECTION_HEADERS_IGNORED: 'the ELF section headers are unreadable or of an unknown size, and ignored',
  NOTE_DAMAGED: 'an ELF note is damaged (size beyond its segment, no NUL): it is left out',
  SEGMENT_UNALIGNED: 'a PT_LOAD does not start on a page boundary: its partial pages are zero-filled',
  SEGMENT_IGNORED: 'a program header is ignored (celf memory comes from its index)',
  PAGESIZE_INVALID: 'VMCOREINFO PAGESIZE is not a page size: 4096 is used',
  SPLIT_SET_INCOMPLETE: 'a split kdump set is opened in part, or its parts leave pfns in no file',
  // VMCOREINFO and the kernel's place in memory
  NO_VMCOREINFO: 'no VMCOREINFO in the file (nor recovered from memory): readers that need it fail',
  VMCOREINFO_RECOVERED: 'the file has no VMCOREINFO: the one recovered from memory is used',
  VMCOREINFO_NOT_RECOVERED: 'VMCOREINFO recovery from memory was not attempted (it reads every page)',
  VMCOREINFO_COPIES: 'several VMCOREINFO copies were found in memory; the one named is used',
  VMCOREINFO_NOT_ADDED: 'VMCOREINFO could not be added to the output, or was added where some readers do not look',
  PHYS_BASE_HEADER_WRONG: "the file's header phys_base (PHYS_OFFSET on arm64) is wrong; the proved value is named",
  PHYS_BASE_UNPROVEN: 'phys_base (arm64: PHYS_OFFSET, kimage_voffset) could not be proven: kernel text addresses cannot be trusted',
  PHYS_BASE_UNKNOWN: 'phys_base is unknown and 0 was written',
  PHYS_BASE_GIVEN_DIFFERS: 'the phys_base given differs from the proved one; the given one is used',
  VMCOREINFO_DISAGREES: 'a VMCOREINFO value disagrees with memory (OSRELEASE, VA_BITS, KERNELOFFSET); the value memory proves is used',
  ADDRESS_TRANSLATION_UNAVAILABLE: 'kernel virtual addresses cannot be translated (or only in part)',
  UTSNAME_UNREADABLE: 'the kernel release (init_uts_ns) cannot be read',
  ARCH_UNSUPPORTED: 'the architecture has no kernel analysis: only the dump\'s own facts are given',
  KERNEL_ANALYSIS_FAILED: 'the kernel analysis failed: values come from the file\'s header',
  // Kernel memory read during an analysis
  MEMORY_UNREADABLE: 'reads of kernel memory failed (pages not in the dump, damaged, or untranslatable) and were skipped',
  SYMBOLS_DAMAGED: 'kallsyms is damaged or odd (unreadable ranges, unsorted, disagreeing with VMCOREINFO): some lookups answer unknown',
  SYMBOLS_UNAVAILABLE: 'the kernel symbols could not be read: what needs them is left out',
  BTF_DAMAGED: 'kernel BTF is damaged in part: the types or names there are lost',
  BTF_NOT_FOUND_HERE: 'a place where BTF was looked for holds none (the search goes on)',
  LIST_DAMAGED: 'a kernel list loops, breaks or exceeds its bound: it is walked in part',
  MODULE_UNREADABLE: 'a module (its struct module, layout, symbols or ORC tables) cannot be read in whole',
  TASK_UNREADABLE: 'a task_struct cannot be read in whole: it is left out or listed from what is readable',
  TASKS_MISMATCH: 'the tasks found disagree with the kernel (nr_threads, a CPU\'s running task)',
  PERCPU_UNAVAILABLE: 'per-CPU data (offsets, runqueues, current tasks) cannot be read in whole',
  CPU_NOTE_SKIPPED: 'a CPU register note (NT_PRSTATUS) of unknown layout is left out',
  CPU_NOTES_UNMATCHED: 'the CPUs\' register notes cannot be matched to CPUs',
  REGISTERS_STALE: 'a task ran on a CPU whose registers the dump lacks: its frames start at its last switch and are guesses',
  UNWIND_DATA_UNAVAILABLE: 'unwind data (ORC tables, text range) is missing: backtraces use frame pointers and stack scan',
  LAYOUT_ASSUMED: 'a kernel structure is missing from BTF: the layout of a known release is assumed',
  PRINTK_DAMAGED: 'the printk ring or log_buf is damaged or in part not in the dump: records are lost',
  PRINTK_RECORDS_LOST: 'printk records were lost (being written, out of sequence, or never stored by the kernel)',
  // Writing and filtering
  THREADS_LIMITED: 'more worker threads were asked for than 4 per core: the job runs that many (src/node/threads.ts)',
  PAGES_BEYOND_MEMORY_MODEL: "pages above the end of the kernel's memory model (firmware) are left out",
  MEMORY_MODEL_UNREAD: "the kernel's mem_section could not be read: max_mapnr is kept",
  FILTER_FORCED: 'page filtering would lose what the analysis needs; done anyway (--force)',
  STRUCT_PAGE_UNREADABLE: 'struct pages cannot be read: their pages are kept',
  IN_PLACE_LIMITED: 'an in-place fix corrects phys_base only: the rest needs a fixed copy',
  OUTPUT_LIMITED: 'the output lacks something some readers need (a kernel-text PT_LOAD, a PT_NOTE)',
  // The guest (dump via QMP)
  GUEST_STATE: 'the guest was not running, or its state changed during the dump',
  PAGING_DUMP: 'QEMU\'s paging dump holds only memory the vCPUs\' page tables map',
} as const;

export type WarningCode = keyof typeof WARNING_CODES;

/** A warning: a stable code for programs and a text for people (may name values found). */
export interface Warning {
  readonly code: WarningCode;
  readonly text: string;
}

/** The one way to make a warning. */
export function warning(code: WarningCode, text: string): Warning {
  return { code, text };
}

/** The same warning with `prefix` before its text (e.g. the file or the list it concerns). */
export function prefixed(prefix: string, w: Warning): Warning {
  return { code: w.code, text: `${prefix}${w.text}` };
}

/** Whether `code` is a declared warning code. */
export function isWarningCode(code: unknown): code is WarningCode {
  return typeof code === 'string' && Object.hasOwn(WARNING_CODES, code);
}
