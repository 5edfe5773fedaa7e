/**
 * Finding the vmlinux BTF blob in a dump. The kernel links it into its read-only data between
 * the symbols `__start_BTF` and `__stop_BTF` (include/asm-generic/vmlinux.lds.h, section .BTF),
 * so with symbols (kallsyms) it is one read. Without them, the kernel image is scanned from
 * `_stext` (VMCOREINFO `SYMBOL(_stext)`) for the BTF magic followed by a plausible header, and
 * the first blob that parses and describes `struct task_struct` is taken.
 */
import { warning, type Warning } from '../../warnings.js';
import { VmcoreError, isVmcoreError } from '../../errors.js';
import { Btf, BtfKind } from './btf.js';
import { BtfHeader } from './format.js';
import { KERNEL_LIMITS } from '../../limits.js';
import type { ReadVirt } from './reader.js';
import { readWithLosses } from '../../loss.js';

const MAX_BTF_BYTES = KERNEL_LIMITS.maxBtfBytes;
const BTF_SCAN_BYTES = KERNEL_LIMITS.btfScanBytes;
const CHUNK = 1 << 20;

export type BtfSource = 'symbols' | 'scan';

export interface LoadedBtf {
  btf: Btf;
  /** Kernel virtual address of the blob, and its size in bytes. */
  address: bigint;
  size: number;
  /** How the blob was found: `__start_BTF`/`__stop_BTF` symbols, or a scan of the kernel image. */
  source: BtfSource;
  warnings: Warning[];
}

export interface LocateBtfInput {
  readVirt: ReadVirt;
  /** Symbol resolver (kallsyms, or VMCOREINFO); undefined when a symbol is unknown. */
  symbol?: (name: string) => bigint | undefined;
  /** Start of the scan: the kernel's `_stext` (VMCOREINFO SYMBOL(_stext)). */
  stext?: bigint;
  /** Bytes scanned after `stext` (default BTF_SCAN_BYTES). */
  scanBytes?: number;
  file?: string;
}

/**
 * Load the vmlinux BTF: from `__start_BTF`..`__stop_BTF` when the resolver knows them, else by
 * scanning the kernel image. Throws VmcoreError NO_BTF-like BAD_FIELD when neither finds a blob
 * (the message says what was tried), or the parser's error for a corrupt blob at the symbols.
 */
export async function loadVmlinuxBtf(input: LocateBtfInput): Promise<LoadedBtf> {
  const warnings: Warning[] = [];
  const start = input.symbol?.('__start_BTF');
  const stop = input.symbol?.('__stop_BTF');
  const file = input.file;
  const tried: string[] = [];
  if (start !== undefined && stop !== undefined) {
    const size = stop - start;
    if (size <= 0n || size > BigInt(MAX_BTF_BYTES)) {
      warnings.push(warning('BTF_NOT_FOUND_HERE', `__start_BTF 0x${start.toString(16)} .. __stop_BTF 0x${stop.toString(16)} is not a plausible BTF size`));
    } else {
      try {
        // a page that cannot be read costs the types and names in it (see Btf's `lost`)
        const { bytes: blob, lost } = await readWithLosses(input.readVirt, start, Number(size));
        const btf = new Btf(blob, {
          label: `vmlinux BTF at 0x${start.toString(16)}`,
          ...(file ? { file } : {}),
          ...(lost.length ? { lost: lost.map((l) => ({ start: l.start, end: l.end, reason: `0x${(start + BigInt(l.start)).toString(16)}..0x${(start + BigInt(l.end)).toString(16)}: ${l.error.message}` })) } : {}),
        });
        if (lost.length === 1 && lost[0]!.start === 0 && lost[0]!.end === Number(size)) throw lost[0]!.error;
        warnings.push(...btf.warnings);
        return { btf, address: start, size: Number(size), source: 'symbols', warnings };
      } catch (e) {
        if (!isVmcoreError(e)) throw e;
        warnings.push(warning('BTF_NOT_FOUND_HERE', `BTF at __start_BTF: ${e.message}`));
      }
    }
    tried.push('__start_BTF/__stop_BTF');
  } else {
    tried.push('no __start_BTF/__stop_BTF symbols');
  }
  if (input.stext !== undefined) {
    const found = await scanForBtf(input.readVirt, input.stext, input.scanBytes ?? BTF_SCAN_BYTES, file);
    warnings.push(...found.warnings);
    if (found.loaded) return { ...found.loaded, warnings: [...warnings, ...found.loaded.warnings] };
    tried.push(`scan of ${(input.scanBytes ?? BTF_SCAN_BYTES) >> 20} MiB after _stext 0x${input.stext.toString(16)}`);
  } else {
    tried.push('no _stext to scan from');
  }
  throw new VmcoreError('NO_BTF', `no vmlinux BTF found (${tried.join('; ')})${warnings.length ? ': ' + warnings.map((w) => w.text).join('; ') : ''}`, {
    ...(file ? { file } : {}),
    field: '__start_BTF',
  });
}

/** Does `b` at `i` hold a BTF header (either byte order) that could describe a vmlinux blob? Returns its total size, or 0. */
export function plausibleBtfHeader(b: Uint8Array, i: number): number {
  if (i + BtfHeader.size > b.length) return 0;
  const le = b[i] === 0x9f && b[i + 1] === 0xeb;
  const be = b[i] === 0xeb && b[i + 1] === 0x9f;
  if (!le && !be) return 0;
  const h = BtfHeader.read(b, i, le);
  if (h.version !== 1 || h.hdr_len !== 24 || h.flags !== 0) return 0;
  const end = Math.max(h.type_off + h.type_len, h.str_off + h.str_len);
  if (h.type_len < 12 || h.str_len < 2 || end > MAX_BTF_BYTES) return 0;
  return h.hdr_len + end;
}

async function scanForBtf(
  readVirt: ReadVirt,
  stext: bigint,
  scanBytes: number,
  file: string | undefined,
): Promise<{ loaded?: LoadedBtf; warnings: Warning[] }> {
  const warnings: Warning[] = [];
  let unreadable = 0;
  for (let off = 0; off < scanBytes; off += CHUNK) {
    let chunk: Uint8Array;
    const va = stext + BigInt(off);
    try {
      // 32 extra bytes so a header straddling the chunk end is seen whole
      chunk = await readVirt(va, CHUNK + 32);
    } catch (e) {
      if (!isVmcoreError(e)) throw e;
      try {
        chunk = await readVirt(va, CHUNK);
      } catch (e2) {
        if (!isVmcoreError(e2)) throw e2;
        unreadable++;
        continue;
      }
    }
    for (let i = chunk.indexOf(0x9f); i >= 0 && i < CHUNK; i = chunk.indexOf(0x9f, i + 1)) {
      for (const j of [i, i - 1]) {
        if (j < 0) continue;
        const size = plausibleBtfHeader(chunk, j);
        if (size === 0) continue;
        const at = va + BigInt(j);
        try {
          const blob = await readVirt(at, size);
          const btf = new Btf(blob, { label: `vmlinux BTF at 0x${at.toString(16)}`, ...(file ? { file } : {}) });
          const ts = btf.find('task_struct', [BtfKind.STRUCT]);
          if (ts === undefined) continue; // BTF of something else (e.g. an embedded BPF object)
          return { loaded: { btf, address: at, size, source: 'scan', warnings }, warnings };
        } catch (e) {
          if (!isVmcoreError(e)) throw e;
          warnings.push(warning('BTF_NOT_FOUND_HERE', `BTF-like header at 0x${at.toString(16)}: ${e.message}`));
        }
      }
    }
  }
  if (unreadable > 0) warnings.push(warning('MEMORY_UNREADABLE', `BTF scan: ${unreadable} MiB of the kernel image could not be read`));
  return { warnings };
}
