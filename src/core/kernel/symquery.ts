/** Symbol queries as `vmcore sym` answers them: an address or a name against a symbol table. */
import type { KernelSymbols, KernelSymbol } from './kallsyms.js';
import { hex64 } from '../hex.js';
import { stripPac } from './aarch64/pagetables.js';

/** One answer; addresses, offsets and sizes as 0x-prefixed lowercase hex. */
export interface SymbolAnswer {
  query: string;
  name: string | null;
  address: string | null;
  offset: string | null;
  size: string | null;
  type: string | null;
  module: string | null;
}

function answer(query: string, s: KernelSymbol, offset: bigint): SymbolAnswer {
  return { query, name: s.name, address: hex64(s.address), offset: hex64(offset), size: hex64(s.size), type: s.type, module: s.module ?? null };
}

/**
 * Resolve `query`: a symbol name gives every symbol of that name (offset 0); otherwise a hex
 * address (`0x` optional) gives the symbol containing it. `address` in an answer is the symbol's
 * start; the queried address is `address + offset`.
 * With `pacMask` (arm64 KERNELPACMASK, kernelPacMask), an address no symbol holds is looked up
 * again with its pointer-authentication bits stripped (a saved LR); the answer's `address` and
 * `offset` are then those of the code address.
 * @returns at least one answer; a query that matches nothing gives one with name null.
 */
export function symbolQuery(syms: KernelSymbols, query: string, opts: { pacMask?: bigint } = {}): SymbolAnswer[] {
  const q = query.trim();
  const isHex0x = /^0x[0-9a-f]{1,16}$/i.test(q);
  if (!isHex0x) {
    const named = syms.lookup(q);
    if (named.length) return named.map((s) => answer(q, s, 0n));
  }
  if (isHex0x || /^[0-9a-f]{1,16}$/i.test(q)) {
    const addr = BigInt(isHex0x ? q : '0x' + q);
    // a saved arm64 return address with its pointer-authentication bits: its code address
    const s = syms.symbolize(addr) ?? (opts.pacMask !== undefined ? syms.symbolize(stripPac(addr, opts.pacMask)) : undefined);
    if (s) return [answer(q, s, s.offset)];
  }
  return [{ query: q, name: null, address: null, offset: null, size: null, type: null, module: null }];
}
