/** Node entry point: the portable core plus files, native codecs and worker threads. */
export * from '../core/index.js';
export { FileSource } from './file-source.js';
export { nodeCodecs, codecImplementations } from './codecs.js';
export { openDumpFiles } from './open.js';
export { nodeSha256 } from './hash.js';
