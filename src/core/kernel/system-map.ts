/**
 * Symbols from a System.map text (`nm -n` format: "ADDRESS TYPE NAME" per line), shifted by the
 * dump's KASLR offset (VMCOREINFO KERNELOFFSET). A symbol source for kernels whose dump gives
 * no kallsyms (or, as Debian's arm64 kernels without CONFIG_KALLSYMS_ALL, kallsyms without data
 * symbols), and an independent truth in tests. Addresses in the kernel half (bit 63 set: x86_64's
 * 0xffffffff8..., arm64's 0xffff8000...) are shifted; x86_64's per-CPU symbols (zero-based section
 * offsets) and other absolute values are not, as the kernel does not relocate them.
 */
import type { KernelSymbolSource } from './backtrace.js';

/** The kernel half of the address space: bit 63 set. */
const KERNEL_HALF = 1n << 63n;

/** Bounded: at most 8 million lines are read. */
export function parseSystemMap(text: string, kaslrOffset: bigint): KernelSymbolSource {
  const byName = new Map<string, bigint>();
  const textSyms: { addr: bigint; name: string }[] = [];
  const re = /^([0-9a-fA-F]{8,16}) (\S) (\S+)$/;
  let n = 0;
  for (const line of text.split('\n')) {
    if (++n > 8_000_000) break;
    const m = re.exec(line.trimEnd());
    if (!m) continue;
    const raw = BigInt(`0x${m[1]!}`);
    const addr = raw < KERNEL_HALF ? raw : BigInt.asUintN(64, raw + kaslrOffset);
    if (!byName.has(m[3]!)) byName.set(m[3]!, addr);
    if (/[TtWw]/.test(m[2]!) && raw >= KERNEL_HALF) textSyms.push({ addr, name: m[3]! });
  }
  textSyms.sort((a, b) => (a.addr < b.addr ? -1 : a.addr > b.addr ? 1 : 0));
  return {
    addressOf: (name) => byName.get(name),
    symbolize(addr) {
      let lo = 0;
      let hi = textSyms.length - 1;
      let f = -1;
      while (lo <= hi) {
        const mid = (lo + hi) >> 1;
        if (textSyms[mid]!.addr <= addr) {
          f = mid;
          lo = mid + 1;
        } else hi = mid - 1;
      }
      if (f < 0) return undefined;
      const s = textSyms[f]!;
      let next = f + 1;
      while (next < textSyms.length && textSyms[next]!.addr === s.addr) next++;
      const size = next < textSyms.length ? textSyms[next]!.addr - s.addr : undefined;
      if (size === undefined) return undefined;
      return { name: s.name, offset: addr - s.addr, size };
    },
  };
}
