/**
 * Builders for small synthetic dumps, written independently of the project's writers (so that
 * reader tests do not check the readers against themselves).
 */
import { deflateSync } from 'node:zlib';
import { nodeCodecs } from '../../src/node/codecs.js';
import type { CodecName } from '../../src/core/codec/types.js';

export const PAGE = 4096;

function w(dv: DataView, off: number, size: 1 | 2 | 4 | 8, v: number | bigint, le: boolean): void {
  if (size === 1) dv.setUint8(off, Number(v));
  else if (size === 2) dv.setUint16(off, Number(v), le);
  else if (size === 4) dv.setUint32(off, Number(v) >>> 0, le);
  else dv.setBigUint64(off, BigInt.asUintN(64, BigInt(v)), le);
}

function concat(parts: Uint8Array[]): Uint8Array {
  const n = parts.reduce((a, p) => a + p.length, 0);
  const out = new Uint8Array(n);
  let o = 0;
  for (const p of parts) {
    out.set(p, o);
    o += p.length;
  }
  return out;
}

export function note(name: string, type: number, desc: Uint8Array, le = true): Uint8Array {
  const nl = name.length + 1;
  const a4 = (n: number) => (n + 3) & ~3;
  const b = new Uint8Array(12 + a4(nl) + a4(desc.length));
  const dv = new DataView(b.buffer);
  w(dv, 0, 4, nl, le);
  w(dv, 4, 4, desc.length, le);
  w(dv, 8, 4, type, le);
  for (let i = 0; i < name.length; i++) b[12 + i] = name.charCodeAt(i);
  b.set(desc, 12 + a4(nl));
  return b;
}

/** A page whose bytes identify it: pfn and a pattern (compressible, non-zero). */
export function patternPage(pfn: number, salt = 0): Uint8Array {
  const p = new Uint8Array(PAGE);
  const dv = new DataView(p.buffer);
  for (let i = 0; i < PAGE; i += 8) dv.setUint32(i, (pfn * 2654435761 + i * 7 + salt) >>> 0, true);
  for (let i = 4; i < PAGE; i += 8) dv.setUint32(i, i < 64 ? pfn : 0x41424344, true);
  return p;
}

export interface ElfSegment {
  paddr: number | bigint;
  vaddr?: bigint;
  data: Uint8Array; // file-backed bytes (p_filesz)
  memsz?: number; // default data.length
  offset?: number; // default: packed after the headers
}

export interface ElfSpec {
  is64?: boolean;
  le?: boolean;
  segments: ElfSegment[];
  notes?: Uint8Array;
  type?: number;
  /** Force PN_XNUM with the count in section header 0. */
  xnum?: boolean;
  /** QEMU layout: section headers at 64, program headers after them, e_ehsize 8. */
  qemuLayout?: boolean;
  flags?: number;
}

/** Returns the file bytes (data packed) or, with `layoutOnly`, the headers plus offsets. */
export function buildElf(spec: ElfSpec): Uint8Array {
  const is64 = spec.is64 ?? true;
  const le = spec.le ?? true;
  const ehsize = is64 ? 64 : 52;
  const phsize = is64 ? 56 : 32;
  const shsize = is64 ? 64 : 40;
  const notes = spec.notes ?? new Uint8Array(0);
  const nph = spec.segments.length + (notes.length ? 1 : 0);
  const xnum = spec.xnum || nph >= 0xffff;
  const nsh = spec.qemuLayout || xnum ? 1 : 0;
  const shoff = nsh ? ehsize : 0;
  const phoff = ehsize + nsh * shsize;
  let off = phoff + nph * phsize;
  const noteOff = off;
  off += notes.length;
  const placed = spec.segments.map((s) => {
    const o = s.offset ?? off;
    if (s.offset === undefined) off += s.data.length;
    return o;
  });
  const size = Math.max(off, ...spec.segments.map((s, i) => placed[i]! + s.data.length));
  const b = new Uint8Array(size);
  const dv = new DataView(b.buffer);
  b.set([0x7f, 0x45, 0x4c, 0x46, is64 ? 2 : 1, le ? 1 : 2, 1], 0);
  w(dv, 16, 2, spec.type ?? 4, le);
  w(dv, 18, 2, is64 ? 62 : 3, le);
  w(dv, 20, 4, 1, le);
  if (is64) {
    w(dv, 32, 8, phoff, le);
    w(dv, 40, 8, shoff, le);
    w(dv, 48, 4, spec.flags ?? 0, le);
    w(dv, 52, 2, spec.qemuLayout ? 8 : ehsize, le);
    w(dv, 54, 2, phsize, le);
    w(dv, 56, 2, xnum ? 0xffff : nph, le);
    w(dv, 58, 2, shsize, le);
    w(dv, 60, 2, nsh, le);
  } else {
    w(dv, 28, 4, phoff, le);
    w(dv, 32, 4, shoff, le);
    w(dv, 36, 4, spec.flags ?? 0, le);
    w(dv, 40, 2, ehsize, le);
    w(dv, 42, 2, phsize, le);
    w(dv, 44, 2, xnum ? 0xffff : nph, le);
    w(dv, 46, 2, shsize, le);
    w(dv, 48, 2, nsh, le);
  }
  if (nsh) {
    // section header 0: sh_info = real phnum
    w(dv, shoff + (is64 ? 44 : 28), 4, nph, le);
  }
  let p = phoff;
  const ph = (type: number, offset: number, vaddr: bigint, paddr: bigint, filesz: number, memsz: number) => {
    if (is64) {
      w(dv, p, 4, type, le);
      w(dv, p + 8, 8, offset, le);
      w(dv, p + 16, 8, vaddr, le);
      w(dv, p + 24, 8, paddr, le);
      w(dv, p + 32, 8, filesz, le);
      w(dv, p + 40, 8, memsz, le);
    } else {
      w(dv, p, 4, type, le);
      w(dv, p + 4, 4, offset, le);
      w(dv, p + 8, 4, vaddr, le);
      w(dv, p + 12, 4, paddr, le);
      w(dv, p + 16, 4, filesz, le);
      w(dv, p + 20, 4, memsz, le);
    }
    p += phsize;
  };
  if (notes.length) {
    ph(4, noteOff, 0n, 0n, notes.length, notes.length);
    b.set(notes, noteOff);
  }
  spec.segments.forEach((s, i) => {
    ph(1, placed[i]!, s.vaddr ?? 0n, BigInt(s.paddr), s.data.length, s.memsz ?? s.data.length);
    b.set(s.data, placed[i]!);
  });
  return b;
}

export interface KdumpSpec {
  maxMapnr: number;
  /** Page contents by pfn (dumped pages); zero pages share the zero page unless noZeroPage. */
  pages: Map<number, Uint8Array>;
  /** RAM pfns not dumped (excluded). */
  excluded?: number[];
  codec?: CodecName | 'none';
  le?: boolean;
  headerVersion?: number;
  layout32?: boolean;
  /** 32-bit ABI of the headers (with layout32): i386 (default, 64-bit members 4-aligned) or ilp32 (ARM EABI etc., 8-aligned) */
  abi32?: 'i386' | 'ilp32';
  /** 32-bit program built with a 64-bit time_t: the main header's timeval has 64-bit members */
  time64?: boolean;
  /** timestamp seconds written into the main header */
  timestampSec?: number;
  notes?: Uint8Array;
  physBase?: bigint;
  split?: { start: number; end: number };
  status?: number;
  /** pfns whose descriptor is left zero (incomplete dump). */
  zeroDescs?: number[];
  machine?: string;
  release?: string;
  dumpLevel?: number;
  /** VMCOREINFO text: appended to the notes as a VMCOREINFO note, offset/size_vmcoreinfo set. */
  vmcoreinfo?: string;
}

export const FLAG: Record<string, number> = { zlib: 1, lzo: 2, snappy: 4, zstd: 0x20, none: 0 };

export function compressPage(codec: CodecName | 'none', page: Uint8Array): { data: Uint8Array; flags: number } {
  if (codec === 'none') return { data: page, flags: 0 };
  let c: Uint8Array;
  if (codec === 'zlib') c = deflateSync(page, { level: 1 });
  else {
    const impl = nodeCodecs().get(codec);
    if (!impl?.compress) throw new Error(`no ${codec} compressor`);
    c = impl.compress(page, 1);
  }
  return c.length < page.length ? { data: c, flags: FLAG[codec]! } : { data: page, flags: 0 };
}

export function buildKdump(spec: KdumpSpec): Uint8Array {
  const le = spec.le ?? true;
  const hv = spec.headerVersion ?? 6;
  const is32 = !!spec.layout32;
  const bs = PAGE;
  const vmciText = spec.vmcoreinfo === undefined ? undefined : new TextEncoder().encode(spec.vmcoreinfo);
  const notes = vmciText ? concat([spec.notes ?? new Uint8Array(0), note('VMCOREINFO', 0, vmciText, le)]) : (spec.notes ?? new Uint8Array(0));
  const pad = is32 && spec.abi32 === 'ilp32';
  const subSize = is32 ? (pad ? 96 : 80) : 104;
  const subHdrBlocks = Math.ceil((subSize + notes.length) / bs);
  const bitmapBytes = Math.ceil(Math.ceil(spec.maxMapnr / 8) / bs) * bs;
  const bitmapBlocks = (2 * bitmapBytes) / bs;
  const bm1 = new Uint8Array(bitmapBytes);
  const bm2 = new Uint8Array(bitmapBytes);
  const set = (bm: Uint8Array, pfn: number) => (bm[pfn >> 3]! |= 1 << (pfn & 7));
  const lo = spec.split?.start ?? 0;
  const hi = spec.split?.end ?? spec.maxMapnr;
  const dumped = [...spec.pages.keys()].sort((a, b) => a - b);
  for (const pfn of dumped) {
    set(bm1, pfn);
    set(bm2, pfn);
  }
  for (const pfn of spec.excluded ?? []) set(bm1, pfn);
  const owned = dumped.filter((p) => p >= lo && p < hi);
  const descOff = (1 + subHdrBlocks + bitmapBlocks) * bs;
  let dataOff = descOff + owned.length * 24;
  const zeroPageOff = dataOff;
  const anyZero = owned.some((p) => spec.pages.get(p)!.every((x) => x === 0));
  const chunks: Uint8Array[] = [];
  if (anyZero) {
    chunks.push(new Uint8Array(bs));
    dataOff += bs;
  }
  const descs = new Uint8Array(owned.length * 24);
  const ddv = new DataView(descs.buffer);
  owned.forEach((pfn, i) => {
    if (spec.zeroDescs?.includes(pfn)) return;
    const page = spec.pages.get(pfn)!;
    let off: number;
    let size: number;
    let flags: number;
    if (page.every((x) => x === 0)) {
      off = zeroPageOff;
      size = bs;
      flags = 0;
    } else {
      const c = compressPage(spec.codec ?? 'zlib', page);
      off = dataOff;
      size = c.data.length;
      flags = c.flags;
      chunks.push(c.data);
      dataOff += size;
    }
    w(ddv, i * 24, 8, off, le);
    w(ddv, i * 24 + 8, 4, size, le);
    w(ddv, i * 24 + 12, 4, flags, le);
  });
  const head = new Uint8Array(descOff);
  const dv = new DataView(head.buffer);
  const str = (o: number, s: string) => {
    for (let i = 0; i < s.length; i++) head[o + i] = s.charCodeAt(i);
  };
  str(0, 'KDUMP   ');
  w(dv, 8, 4, hv, le);
  str(12, 'Linux');
  str(142, spec.release ?? '6.1.0-test');
  str(272, spec.machine ?? (is32 ? 'i686' : 'x86_64'));
  const codecStatus = FLAG[spec.codec ?? 'zlib']!;
  // status: after the timeval at 404 (i386: 4-aligned) or 408 (8-aligned, and 64-bit)
  const base = !is32 ? 424 : !spec.time64 ? 412 : pad ? 424 : 420;
  if (spec.timestampSec !== undefined) w(dv, is32 && !(pad && spec.time64) ? 404 : 408, is32 && !spec.time64 ? 4 : 8, spec.timestampSec, le);
  w(dv, base, 4, (spec.status ?? 0) | codecStatus, le);
  w(dv, base + 4, 4, bs, le);
  w(dv, base + 8, 4, subHdrBlocks, le);
  w(dv, base + 12, 4, bitmapBlocks, le);
  w(dv, base + 16, 4, Math.min(spec.maxMapnr, 0xffffffff), le);
  w(dv, base + 36, 4, 1, le); // nr_cpus
  // sub header
  const s = bs;
  const noteOff = bs + subSize;
  head.set(notes, noteOff);
  // the VMCOREINFO note is last: its descriptor starts 24 bytes into the note (12 + "VMCOREINFO\0" padded to 12)
  const vmciOff = vmciText ? noteOff + notes.length - ((vmciText.length + 3) & ~3) : 0;
  const vmciSize = vmciText ? vmciText.length : 0;
  // [offset, size] of each sub-header field in the i386 ("32pack") and 64-bit layouts, written
  // here by hand (not from the project's declarations) so the reader is checked independently
  const L = pad
    ? { phys_base: [0, 4], dump_level: [4, 4], split: [8, 4], start_pfn: [12, 4], end_pfn: [16, 4], off_vmci: [24, 8], size_vmci: [32, 4], off_note: [40, 8], size_note: [48, 4], start64: [72, 8], end64: [80, 8], max64: [88, 8] }
    : is32
    ? { phys_base: [0, 4], dump_level: [4, 4], split: [8, 4], start_pfn: [12, 4], end_pfn: [16, 4], off_vmci: [20, 8], size_vmci: [28, 4], off_note: [32, 8], size_note: [40, 4], start64: [56, 8], end64: [64, 8], max64: [72, 8] }
    : { phys_base: [0, 8], dump_level: [8, 4], split: [12, 4], start_pfn: [16, 8], end_pfn: [24, 8], off_vmci: [32, 8], size_vmci: [40, 8], off_note: [48, 8], size_note: [56, 8], start64: [80, 8], end64: [88, 8], max64: [96, 8] };
  const put = (f: keyof typeof L, v: number | bigint) => w(dv, s + L[f][0]!, L[f][1] as 4 | 8, v, le);
  put('phys_base', spec.physBase ?? 0n);
  put('dump_level', spec.dumpLevel ?? 1);
  if (hv >= 2) {
    put('split', spec.split ? 1 : 0);
    put('start_pfn', Math.min(lo, 0xffffffff));
    put('end_pfn', Math.min(spec.split ? hi : 0, 0xffffffff));
  }
  if (hv >= 3) {
    put('off_vmci', vmciOff);
    put('size_vmci', vmciSize);
  }
  if (hv >= 4) {
    put('off_note', notes.length ? noteOff : 0);
    put('size_note', notes.length);
  }
  if (hv >= 6) {
    put('start64', lo);
    put('end64', spec.split ? hi : 0);
    put('max64', spec.maxMapnr);
  }
  const bmOff = (1 + subHdrBlocks) * bs;
  head.set(bm1, bmOff);
  head.set(bm2, bmOff + bitmapBytes);
  return concat([head, descs, ...chunks]);
}

/** Flatten a file into makedumpfile -F records of `recordSize`, in the given order. */
export function flatten(file: Uint8Array, recordSize = 4096, order?: (n: number) => number[], extra: { offset: number; data: Uint8Array }[] = []): Uint8Array {
  const hdr = new Uint8Array(4096);
  const hv = new DataView(hdr.buffer);
  for (let i = 0; i < 12; i++) hdr[i] = 'makedumpfile'.charCodeAt(i);
  hv.setBigInt64(16, 1n, false);
  hv.setBigInt64(24, 1n, false);
  const recs: { offset: number; data: Uint8Array }[] = [];
  for (let o = 0; o < file.length; o += recordSize) recs.push({ offset: o, data: file.subarray(o, Math.min(file.length, o + recordSize)) });
  const idx = order ? order(recs.length) : recs.map((_, i) => i);
  const parts: Uint8Array[] = [hdr];
  for (const r of [...idx.map((i) => recs[i]!), ...extra]) {
    const h = new Uint8Array(16);
    const dv = new DataView(h.buffer);
    dv.setBigInt64(0, BigInt(r.offset), false);
    dv.setBigInt64(8, BigInt(r.data.length), false);
    parts.push(h, r.data);
  }
  parts.push(new Uint8Array(16).fill(0xff));
  return concat(parts);
}

/** Deterministic PRNG for shuffles and mutations. */
export function rng(seed: number): () => number {
  let s = seed >>> 0 || 1;
  return () => {
    s ^= s << 13;
    s >>>= 0;
    s ^= s >>> 17;
    s ^= s << 5;
    s >>>= 0;
    return s / 0x100000000;
  };
}

export function shuffled(n: number, seed: number): number[] {
  const r = rng(seed);
  const a = [...Array(n).keys()];
  for (let i = n - 1; i > 0; i--) {
    const j = Math.floor(r() * (i + 1));
    [a[i], a[j]] = [a[j]!, a[i]!];
  }
  return a;
}
