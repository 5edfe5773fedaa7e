/**
 * Variants of the bundled real sample (samples/seabios-128M.md-c-d31.kdump, x86_64, 64-bit
 * kdump layout, block_size 4096) with one thing changed, built in memory by the tests. Offsets
 * are written here by hand from the format definition (reference formats.md §1), not taken from
 * the project's declarations, so the readers are checked independently.
 */
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { note } from './build.js';

export const SAMPLE_PATH = fileURLToPath(new URL('../../../samples/seabios-128M.md-c-d31.kdump', import.meta.url));

let cached: Uint8Array | undefined;
/** A fresh copy of the sample's bytes. */
export function sampleBytes(): Uint8Array {
  cached ??= new Uint8Array(readFileSync(SAMPLE_PATH));
  return cached.slice();
}

const BS = 4096;
const SUB = BS; // kdump_sub_header at block 1
const dv = (b: Uint8Array) => new DataView(b.buffer, b.byteOffset, b.byteLength);

/** The sample's ELF notes, as {name, type, desc}. */
export function sampleNotes(b: Uint8Array): { name: string; type: number; desc: Uint8Array }[] {
  const v = dv(b);
  const off = Number(v.getBigInt64(SUB + 48, true));
  const size = Number(v.getBigUint64(SUB + 56, true));
  const out: { name: string; type: number; desc: Uint8Array }[] = [];
  for (let o = off; o + 12 <= off + size; ) {
    const nl = v.getUint32(o, true);
    const dl = v.getUint32(o + 4, true);
    const type = v.getUint32(o + 8, true);
    if (nl === 0 && dl === 0) break;
    const name = new TextDecoder('latin1').decode(b.subarray(o + 12, o + 12 + nl - 1));
    const d = o + 12 + ((nl + 3) & ~3);
    out.push({ name, type, desc: b.slice(d, d + dl) });
    o = d + ((dl + 3) & ~3);
  }
  return out;
}

export interface CpuNoteSpec {
  pid: number;
  /** registers of this note; default: those of the sample's own NT_PRSTATUS */
  rip?: bigint;
  rsp?: bigint;
}

/**
 * The sample with its note area replaced by one NT_PRSTATUS note per entry of `cpus` (built
 * from the sample's own NT_PRSTATUS, pr_pid and RIP/RSP changed) followed by its VMCOREINFO
 * note, no QEMU CPU-state note, and the header's nr_cpus set to `nrCpus`.
 */
export function sampleWithCpuNotes(cpus: CpuNoteSpec[], nrCpus: number): Uint8Array {
  const b = sampleBytes();
  const notes = sampleNotes(b);
  const pr = notes.find((n) => n.name === 'CORE' && n.type === 1)!;
  const vmci = notes.find((n) => n.name === 'VMCOREINFO')!;
  const parts: Uint8Array[] = [];
  for (const c of cpus) {
    const d = pr.desc.slice();
    const v = dv(d);
    v.setInt32(32, c.pid, true); // pr_pid
    if (c.rip !== undefined) v.setBigUint64(112 + 16 * 8, c.rip, true); // pr_reg[16] rip
    if (c.rsp !== undefined) v.setBigUint64(112 + 19 * 8, c.rsp, true); // pr_reg[19] rsp
    parts.push(note('CORE', 1, d));
  }
  const pre = parts.reduce((a, p) => a + p.length, 0);
  const vn = note('VMCOREINFO', 0, vmci.desc);
  const all = new Uint8Array(pre + vn.length);
  let o = 0;
  for (const p of [...parts, vn]) {
    all.set(p, o);
    o += p.length;
  }
  const h = dv(b);
  const off = Number(h.getBigInt64(SUB + 48, true));
  const subHdrSize = h.getInt32(432, true);
  if (off + all.length > (1 + subHdrSize) * BS) throw new Error('notes do not fit the sample sub-header area');
  b.fill(0, off, (1 + subHdrSize) * BS);
  b.set(all, off);
  h.setBigUint64(SUB + 56, BigInt(all.length), true); // size_note
  h.setBigInt64(SUB + 32, BigInt(off + pre + 24), true); // offset_vmcoreinfo: desc of the VMCOREINFO note
  h.setBigUint64(SUB + 40, BigInt(vmci.desc.length), true); // size_vmcoreinfo
  h.setInt32(460, nrCpus, true); // nr_cpus
  return b;
}

/** Index of pfn's page descriptor (set bits of the dumpable bitmap below it), or -1 if not dumpable. */
export function sampleDescIndex(b: Uint8Array, pfn: number): number {
  const h = dv(b);
  const subHdrSize = h.getInt32(432, true);
  const bitmapBlocks = h.getUint32(436, true);
  const bm2 = (1 + subHdrSize) * BS + (bitmapBlocks * BS) / 2;
  const bit = (p: number) => (b[bm2 + (p >> 3)]! >> (p & 7)) & 1;
  if (!bit(pfn)) return -1;
  let n = 0;
  for (let p = 0; p < pfn; p++) n += bit(p);
  return n;
}

/** The sample with the page descriptors of `pfns` set to size 0 and flags 0 (offset kept). */
export function sampleWithDamagedDescs(pfns: number[]): Uint8Array {
  const b = sampleBytes();
  const h = dv(b);
  const descOff = (1 + h.getInt32(432, true) + h.getUint32(436, true)) * BS;
  for (const pfn of pfns) {
    const i = sampleDescIndex(b, pfn);
    if (i < 0) throw new Error(`pfn 0x${pfn.toString(16)} is not dumped in the sample`);
    h.setUint32(descOff + i * 24 + 8, 0, true); // size
    h.setUint32(descOff + i * 24 + 12, 0, true); // flags
  }
  return b;
}

/**
 * The sample with its VMCOREINFO (the sub-header copy and the ELF note) lacking the
 * SYMBOL(kallsyms_*) entries, as a kernel before 6.0 writes it: each such line's key is
 * renamed in place (`XYMBOL(kallsyms_...)`), so no offset or size in the file changes. Page
 * data is left as it is.
 */
export function sampleWithoutKallsymsVmcoreinfo(): Uint8Array {
  const b = sampleBytes();
  const h = dv(b);
  const headerEnd = (1 + h.getInt32(432, true)) * BS; // main header + sub-header area (notes, VMCOREINFO)
  const key = new TextEncoder().encode('SYMBOL(kallsyms_');
  let n = 0;
  for (let o = b.indexOf(key[0]!); o >= 0 && o < headerEnd; o = b.indexOf(key[0]!, o + 1)) {
    if (key.every((c, k) => b[o + k] === c)) {
      b[o] = 0x58; // 'X'
      n++;
    }
  }
  if (n === 0) throw new Error('no SYMBOL(kallsyms_*) entries in the sample header');
  return b;
}
