/**
 * Symbols from the kernel -dbg package's System.map shifted by the dump's KASLR offset: the
 * independent symbol truth the backtrace interop tests use.
 */
import { readFileSync } from 'node:fs';
import { parseSystemMap } from '../../src/core/kernel/system-map.js';
import type { KernelSymbolSource } from '../../src/core/kernel/backtrace.js';

export function systemMapSymbols(path: string, kaslrOffset: bigint): KernelSymbolSource {
  return parseSystemMap(readFileSync(path, 'latin1'), kaslrOffset);
}
