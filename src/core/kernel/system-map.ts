/**
 * Symbols from a System.map text (`nm -n` format: "ADDRESS TYPE NAME" per line), shifted by the
 * dump's KASLR offset (VMCOREINFO KERNELOFFSET). A symbol source for kernels whose dump gives
 * no kallsyms (or, as Debian's arm64 kernels without CONFIG_KALLSYMS_ALL, kallsyms without data
 * symbols), and an independent truth in tests. Addresses in the kernel half (bit 63 set: x86_64's
 * 0xffffffff8..., arm64's 0xffff8000...) are shifted; x86_64's per-CPU symbols (zero-based section
 * offsets) and other absolute values are not, as the kernel does not relocate them.
 */
import type { KernelSymbolSource } from './backtrace.js';
import { VmcoreError } from '../errors.js';
import type { Vmcoreinfo } from './vmcoreinfo.js';

/** The kernel half of the address space: bit 63 set. */
const KERNEL_HALF = 1n << 63n;

/** Bounded: at most 8 million lines are read. */
export function parseSystemMap(text: string, kaslrOffset: bigint): KernelSymbolSource & { count: number } {
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
    count: byName.size,
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

/**
 * VMCOREINFO symbols whose value is the symbol's own address in the kernel image
 * (kernel/crash_core.c VMCOREINFO_SYMBOL), so a System.map shifted by KERNELOFFSET must give the
 * same address. (`mem_section` is left out: its value is the pointer it holds.)
 */
const CHECKED_SYMBOLS = ['_stext', 'init_uts_ns', 'swapper_pg_dir', 'prb', 'node_online_map'] as const;

/**
 * A System.map for one dump: {@link parseSystemMap} shifted by the dump's VMCOREINFO KERNELOFFSET
 * (0 without it), then checked against the dump. Inputs: `text` the System.map file's text,
 * `vmcoreinfo` the dump's VMCOREINFO (undefined: only the symbol count is checked), `file` the
 * System.map's path for errors.
 * Throws VmcoreError BAD_FIELD (file = the System.map, field = the symbol) when the map holds no
 * symbol at all (Debian's linux-image packages ship a one-line placeholder; the real map is in the
 * -dbg package), when it has none of the VMCOREINFO symbols it could be compared on, or when one
 * of them differs from VMCOREINFO's `SYMBOL(name)`: another kernel's map would name wrong
 * functions and read wrong memory.
 */
export function systemMapForDump(text: string, vmcoreinfo: Vmcoreinfo | undefined, file: string): KernelSymbolSource {
  const offset = vmcoreinfo?.kernelOffset ?? 0n;
  const map = parseSystemMap(text, offset);
  if (map.count === 0) {
    throw new VmcoreError('BAD_FIELD', 'no symbol in this System.map ("ADDRESS TYPE NAME" lines); the real one is in the kernel\'s -dbg package', { file });
  }
  let compared = 0;
  let wanted: string | undefined;
  for (const name of CHECKED_SYMBOLS) {
    const want = vmcoreinfo?.symbol(name);
    if (want === undefined) continue;
    wanted ??= name;
    const got = map.addressOf(name);
    if (got === undefined) continue;
    if (got !== want) {
      throw new VmcoreError(
        'BAD_FIELD',
        `this System.map puts ${name} at 0x${got.toString(16)} (shifted by KERNELOFFSET 0x${offset.toString(16)}), the dump's VMCOREINFO at 0x${want.toString(16)}: it is not the map of the dumped kernel`,
        { file, field: name },
      );
    }
    compared++;
  }
  if (wanted !== undefined && compared === 0) {
    throw new VmcoreError('BAD_FIELD', `this System.map has none of the symbols the dump's VMCOREINFO gives (${wanted}, ...): it is not the map of the dumped kernel`, { file, field: wanted });
  }
  return map;
}
