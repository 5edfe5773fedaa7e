/** Node entry point: the portable core plus files, native codecs and worker threads. */
export * from '../core/index.js';
export { FileSource } from './file-source.js';
export { nodeCodecs, codecImplementations } from './codecs.js';
export { openDumpFiles } from './open.js';
export { nodeSha256 } from './hash.js';
export { convertDump, splitParts, KdumpFormat, ElfFormat, type ConvertOptions, type ConvertSummary, type ConvertInput, type PageStreamInput, type ConvertPlan, type OutputFormat, type OutputFormatFactory, type OutputSink, type ConvertProgress } from './convert/index.js';
export { CelfFormat, celfOutput, type CelfFormatOptions } from './convert/celf.js';
export { fixDump, choosePhysBase, type FixOptions, type FixResult } from './fix.js';
export { QmpClient, QmpCommandError, parseQmpTarget, type QmpEvent, type QmpGreeting, type QmpStatus, type QmpDumpStatus } from './qmp.js';
export { dumpViaQmp, type QmpDumpOptions, type QmpDumpSummary, type QmpDumpProgress } from './dump-qmp.js';
export { ElfStream, type ElfStreamInfo, type PageBatch } from './stream/elf-stream.js';
export { hashDumpParallel, type ParallelHashOptions } from './parallel-read.js';
