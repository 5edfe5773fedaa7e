/** Portable core: runs in Node and in browsers (no Node APIs). */
export * from './errors.js';
export * from './struct.js';
export * from './io/source.js';
export * from './codec/types.js';
export { portableCodecs } from './codec/portable.js';
export { lzo1xDecompress } from './codec/lzo1x.js';
export * from './dump.js';
export * from './format/elf/notes.js';
export * from './memory.js';
export * from './kernel/vmcoreinfo.js';
