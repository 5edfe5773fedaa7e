/**
 * The public API of the portable core: `import … from 'vmcore/core'` (and the `browser` export
 * condition). It runs in Node and in browsers (no Node APIs). Every name is listed on purpose
 * (`test/unit/api.test.ts` pins the list); the modules behind it are internal.
 */

// Errors: every failure on untrusted input is a VmcoreError with a stable `code`.
export { VmcoreError, isVmcoreError, type ErrorCode, type ErrorDetails } from './errors.js';

// Byte sources: where a dump's bytes come from.
export { BufferSource, BlobSource, type ByteSource } from './io/source.js';
export { HttpSource, type HttpSourceOptions, type HttpStats } from './io/http.js';

// Dumps: open any supported format and read its physical memory.
export { openDump } from './format/open.js';
export type { Dump, PhysicalMemory, PageState, PageRun, DumpFormat, FormatDetails, DetailsOptions, Producer, ProducerHint, Utsname } from './dump.js';
export { portableCodecs } from './codec/portable.js';
export type { Codec, CodecName, CodecRegistry } from './codec/types.js';

// Reports over a dump's memory.
export { describeDump, type InfoReport } from './info.js';
export { hashMemory, portableSha256, type Hasher, type HashOptions, type MemoryDigest } from './hash.js';
export { diffMemory, type DiffOptions, type MemoryDiff, type PageDifference } from './diff.js';

// The kernel in the dump: VMCOREINFO, phys_base, registers, kernel virtual memory.
export { analyzeKernel, type AnalyzeOptions, type KernelInfo, type KernelInput } from './kernel/kernel.js';
export { hex64 } from './hex.js';
export type { Vmcoreinfo } from './kernel/vmcoreinfo.js';
export type { PhysBaseResult } from './kernel/x86_64/physbase.js';
export type { ProofCode, ProofStep } from './kernel/proof.js';
export type { Warning, WarningCode } from './warnings.js';
export type { CpuRegisters } from './kernel/x86_64/cpu.js';

// Symbols (kallsyms) and types (BTF) from the dump itself.
export { loadKernelSymbols, type KernelSymbols, type KernelSymbol, type Symbolized } from './kernel/kallsyms.js';
export { loadKernelBtf, type KernelBtf } from './kernel/btf/kernel-btf.js';
export type { KernelTypes, KObject, Decoded } from './kernel/btf/reader.js';

// Tasks, modules, the kernel log, the panic and backtraces.
export { listTasks, type TaskEntry, type TaskList, type TaskWalkInput } from './kernel/tasks.js';
export type { ModuleList, ModuleEntry } from './kernel/modules.js';
export { readDmesg, formatDmesg, dmesgToJson, type DmesgLog, type DmesgRecord, type DmesgOptions, type DmesgFormatOptions, type DmesgSource } from './kernel/dmesg.js';
export { panicSummary, type PanicSummary } from './kernel/panic.js';
export {
  createBacktracer,
  backtraceReport,
  formatTaskBacktrace,
  taskBacktraceToJSON,
  type Backtracer,
  type BacktraceOptions,
  type BacktraceReport,
  type TaskBacktrace,
  type SymbolizedFrame,
} from './kernel/backtrace.js';
