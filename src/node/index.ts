/**
 * The public API for Node (`import … from 'vmcore'`): the portable core's API plus files,
 * native codecs, worker threads, conversion, `fix` and dumps of a running QEMU guest. Every
 * name is listed on purpose (`test/unit/api.test.ts` pins the list); the modules behind it are
 * internal.
 */
export * from '../core/index.js';
export { FileSource } from './file-source.js';
export { openDumpFiles, type OpenDumpFilesOptions } from './open.js';
export { nodeCodecs } from './codecs.js';
export { nodeSha256 } from './hash.js';
export { hashDumpParallel, type ParallelHashOptions } from './parallel-read.js';
export { convertDump, type ConvertInput, type ConvertOptions, type ConvertProgress, type ConvertSummary } from './convert/index.js';
export { fixDump, type FixOptions, type FixResult } from './fix.js';
export { dumpViaQmp, type QmpDumpOptions, type QmpDumpProgress, type QmpDumpSummary } from './dump-qmp.js';
