/**
 * A KernelSymbolSource from the kernel package's System.map shifted by the dump's KASLR offset
 * (VMCOREINFO KERNELOFFSET): the independent symbol truth the backtrace interop tests use to
 * check what vmcore finds on its own.
 */
import { readFileSync } from 'node:fs';
import type { KernelSymbolSource } from '../../src/core/kernel/x86_64/backtrace.js';

export function systemMapSymbols(path: string, kaslrOffset: bigint): KernelSymbolSource {
  const byName = new Map<string, bigint>();
  const text: { addr: bigint; name: string }[] = [];
  for (const line of readFileSync(path, 'latin1').split('\n')) {
    const m = /^([0-9a-f]{16}) (\S) (\S+)$/.exec(line);
    if (!m) continue;
    const raw = BigInt(`0x${m[1]!}`);
    // per-CPU symbols (section offsets) are not relocated
    const addr = raw < 0xffffffff80000000n ? raw : raw + kaslrOffset;
    if (!byName.has(m[3]!)) byName.set(m[3]!, addr);
    if (/[TtWw]/.test(m[2]!) && raw >= 0xffffffff80000000n) text.push({ addr, name: m[3]! });
  }
  text.sort((a, b) => (a.addr < b.addr ? -1 : a.addr > b.addr ? 1 : 0));
  return {
    addressOf: (name) => byName.get(name),
    symbolize(addr) {
      let lo = 0;
      let hi = text.length - 1;
      let f = -1;
      while (lo <= hi) {
        const mid = (lo + hi) >> 1;
        if (text[mid]!.addr <= addr) {
          f = mid;
          lo = mid + 1;
        } else hi = mid - 1;
      }
      if (f < 0) return undefined;
      const s = text[f]!;
      let n = f + 1;
      while (n < text.length && text[n]!.addr === s.addr) n++;
      const size = n < text.length ? text[n]!.addr - s.addr : undefined;
      if (size !== undefined && addr - s.addr >= size) return undefined;
      return { name: s.name, offset: addr - s.addr, size };
    },
  };
}
