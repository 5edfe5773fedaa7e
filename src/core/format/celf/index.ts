/** Compressed ELF ("celf") dumps: reader, writer, structures. Specification: docs/compressed-elf.md. */
export * from './structs.js';
export * from './writer.js';
export * from './reader.js';
