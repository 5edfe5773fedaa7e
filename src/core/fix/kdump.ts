/**
 * Planning for `vmcore fix` on kdump-compressed input (portable: no I/O beyond ByteSource).
 *
 * The fixed file is a seekable kdump file (even when the input was flattened) that keeps the
 * input's bitmaps, page descriptors and compressed page data byte for byte, and rewrites only
 *  - block 0 (disk_dump_header): utsname filled from the kernel's own utsname when the header
 *    lacks it (QEMU writes only `machine`), nr_cpus and the timestamp when 0, sub_hdr_size;
 *  - the sub-header area: phys_base = the proved (or user-given) value, the note blob with a
 *    VMCOREINFO note added when the file had none, offset/size_vmcoreinfo pointing at it.
 * When the sub-header area grows by k blocks everything after it moves by k blocks, and every
 * page descriptor's offset (and offset_eraseinfo) moves with it. Nothing is recompressed.
 *
 * `planPhysBaseInPlace` is the `--in-place` variant: one aligned write of the phys_base field.
 */
import { KDUMP_LIMITS } from '../limits.js';
import { VmcoreError } from '../errors.js';
import { readExact } from '../io/source.js';
import { buildNotes, findVmcoreinfoNote, noteDescOffset, producerNote, withoutProducerNote, type ElfNote } from '../format/elf/notes.js';
import type { KdumpDump, KdumpFile } from '../format/kdump/reader.js';
import {
  DISKDUMP_SIGNATURE,
  DiskDumpHeader32,
  DiskDumpHeader64,
  KdumpSubHeader32,
  KdumpSubHeader64,
  PAGE_DESC_SIZE,
  PageDescTable,
  UTS_FIELD,
} from '../format/kdump/structs.js';
import type { Utsname } from '../dump.js';
import { hex64 } from '../hex.js';
import { latin1Bytes } from '../text.js';

/** The kdump header's utsname (same shape as new_utsname). */
export type KdumpUtsname = Utsname;

/** What the fixed header should say. */
export interface KdumpFixValues {
  /** phys_base for the sub-header (64-bit two's complement). */
  physBase: bigint;
  /** VMCOREINFO text to add as a note when the file has none (recovered from memory). */
  vmcoreinfoText?: string;
  /**
   * The file's VMCOREINFO with proven layout values in place of the rejected ones
   * (`kernelHeaderValues`), written in place of the file's note, and its change lines.
   */
  vmcoreinfoCorrected?: { text: string; changes: readonly string[] };
  /** The kernel's utsname (read from memory); used when the header has no release. */
  utsname?: KdumpUtsname;
  /** Number of CPUs; used when the header says 0. */
  nrCpus?: number;
  /** Crash time (seconds); used when the header timestamp is 0. */
  timestampSec?: number;
  /**
   * New max_mapnr, below the file's: pages from here on are dropped (firmware blocks beyond the
   * kernel's memory model, see memsection.ts). Undefined: keep every page.
   */
  maxPfn?: number;
  /** Text of the producer note to add ("vmcore VERSION fix"); an older one is replaced. */
  producer?: string;
}

export interface KdumpFixPlan {
  part: KdumpFile;
  /** Blocks 0 .. new sub_hdr_size: the new header block and sub-header area. */
  head: Uint8Array;
  /** Old and new offset of the first bitmap. */
  oldBody: number;
  newBody: number;
  /** Bytes of one bitmap, old (in the input) and new. */
  oldBitmapLen: number;
  newBitmapLen: number;
  /** max_mapnr, old and new. */
  oldMaxPfn: number;
  maxPfn: number;
  /** Old offset of the page descriptor array and the number of descriptors kept. */
  descStart: number;
  keptDescs: number;
  /** Old end of the descriptor array (start of the data area), clipped to the file. */
  oldDataStart: number;
  /** New start of the data area; data moves by dataShift = newDataStart - oldDataStart. */
  newDataStart: number;
  dataShift: number;
  /** Size of the input (logical size for a flattened input) and of the output. */
  inputSize: number;
  outputSize: number;
  /** End of the input's data area: the last byte a kept descriptor (or eraseinfo) points at. */
  oldDataEnd: number;
  /** Human-readable list of what changes. */
  changes: string[];
  /** Header phys_base before the fix. */
  oldPhysBase: bigint;
  vmcoreinfoAdded: boolean;
}

/** Limit on the header, sub-header and note area of a fixed file. */
const MAX_META_BYTES = KDUMP_LIMITS.maxFixMetaBytes;


/** The one kdump file a fix works on; refuses what a header rewrite cannot fix. */
export function singleKdumpPart(dump: KdumpDump): KdumpFile {
  const file = dump.files[0]?.name;
  if (dump.parts.length !== 1 || dump.parts[0]!.h.split) {
    throw new VmcoreError('UNSUPPORTED', 'a split set (or one part of it) cannot be fixed in place of its parts: reassemble it first with `vmcore convert PART... OUT`', {
      ...(file ? { file } : {}),
      field: 'split',
    });
  }
  const p = dump.parts[0]!;
  if (p.h.signature === DISKDUMP_SIGNATURE || p.h.headerVersion < 1) {
    throw new VmcoreError('UNSUPPORTED', `a ${p.h.signature.trim()} header version ${p.h.headerVersion} file has no sub-header to hold phys_base: convert it with \`vmcore convert\``, {
      file: p.file,
      offset: 0,
      field: 'header_version',
    });
  }
  return p;
}

/** Plan the rewrite of a kdump file's headers (see the file comment). */
export async function planKdumpFix(dump: KdumpDump, v: KdumpFixValues): Promise<KdumpFixPlan> {
  const p = singleKdumpPart(dump);
  const h = p.h;
  const file = p.file;
  const src = p.src;
  const bs = h.blockSize;
  const le = h.littleEndian;
  const is64 = h.layout === '64';
  const H = is64 ? DiskDumpHeader64 : DiskDumpHeader32;
  const S = is64 ? KdumpSubHeader64 : KdumpSubHeader32;
  const changes: string[] = [];

  // ---- notes: keep every note (VMCOREINFO with the proven layout values), add VMCOREINFO when the file has none
  const fixed = v.vmcoreinfoCorrected;
  const notes: Pick<ElfNote, 'name' | 'type' | 'desc'>[] = withoutProducerNote(dump.notes).map((n) => ({
    name: n.name,
    type: n.type,
    desc: fixed && n.name === 'VMCOREINFO' ? latin1Bytes(fixed.text) : n.desc,
  }));
  if (fixed && findVmcoreinfoNote(dump.notes)) changes.push(...fixed.changes);
  let vmciAdded = false;
  if (!findVmcoreinfoNote(dump.notes)) {
    const text = (dump.vmcoreinfoText !== undefined ? fixed?.text : undefined) ?? dump.vmcoreinfoText ?? v.vmcoreinfoText;
    if (dump.vmcoreinfoText !== undefined && fixed) changes.push(...fixed.changes);
    if (text !== undefined && text.length > 0) {
      notes.push({ name: 'VMCOREINFO', type: 0, desc: latin1Bytes(text) });
      if (dump.vmcoreinfoText === undefined) {
        vmciAdded = true;
        changes.push(`VMCOREINFO note added (${text.length} bytes recovered from memory)`);
      } else changes.push('VMCOREINFO note added (from the raw offset_vmcoreinfo text)');
    }
  }
  if (v.producer !== undefined) notes.push(producerNote(v.producer));
  const blob = buildNotes(notes, le);
  const vIndex = notes.findIndex((n) => n.name === 'VMCOREINFO');

  // eraseinfo that lives inside the sub-header area travels with the blob
  const oldBody = (1 + h.subHdrSize) * bs;
  let erase: Uint8Array | undefined;
  if (h.sizeEraseinfo > 0 && h.offsetEraseinfo > 0 && h.offsetEraseinfo < oldBody) {
    if (h.offsetEraseinfo + h.sizeEraseinfo > oldBody) {
      throw new VmcoreError('BAD_FIELD', 'eraseinfo crosses the end of the sub-header area', { file, field: 'offset_eraseinfo' });
    }
    erase = await readExact(src, h.offsetEraseinfo, h.sizeEraseinfo, 'eraseinfo');
  }
  const noteOff = bs + S.size;
  const eraseOff = noteOff + blob.length;
  const need = S.size + blob.length + (erase?.length ?? 0);
  const newSub = Math.max(h.subHdrSize, Math.ceil(need / bs));
  const newBody = (1 + newSub) * bs;
  if (newSub !== h.subHdrSize) changes.push(`sub-header area grows from ${h.subHdrSize} to ${newSub} blocks`);
  if (!p.twoBitmaps) throw new VmcoreError('UNSUPPORTED', 'a kdump file with a single bitmap cannot be fixed: convert it with `vmcore convert`', { file, offset: 436, field: 'bitmap_blocks' });
  if (oldBody > src.size) throw new VmcoreError('TRUNCATED', 'the file ends inside its sub-header area', { file, offset: src.size });

  // ---- geometry: bitmaps (maybe shorter), kept descriptors, data area
  const oldMaxPfn = h.maxMapnr;
  const maxPfn = v.maxPfn !== undefined && v.maxPfn < oldMaxPfn ? Math.max(0, Math.floor(v.maxPfn)) : oldMaxPfn;
  const oldBitmapLen = p.bitmapBytes;
  const newBitmapLen = maxPfn === oldMaxPfn ? oldBitmapLen : Math.max(1, Math.ceil(Math.ceil(maxPfn / 8) / bs)) * bs;
  const descStart = p.descOffset;
  const oldDataStart = Math.min(src.size, p.descOffset + p.numDescs * PAGE_DESC_SIZE);
  let keptDescs = p.numDescs;
  if (maxPfn < oldMaxPfn) {
    keptDescs = await countBitsBelow(src, p.bitmapOffset + oldBitmapLen, Math.min(oldBitmapLen, Math.ceil(maxPfn / 8)), maxPfn);
    let dropped = 0;
    for await (const r of p.runs(maxPfn, oldMaxPfn)) if (r.state !== 'hole') dropped += r.endPfn - r.startPfn;
    changes.push(
      `max_mapnr 0x${oldMaxPfn.toString(16)} -> 0x${maxPfn.toString(16)} (the end of the kernel's memory model): ${dropped} pages above it dropped ` +
        `(firmware, not kernel memory; makedumpfile cannot re-filter a file that has them)`,
    );
  }
  const newDesc = newBody + 2 * newBitmapLen;
  const newDataStart = newDesc + keptDescs * PAGE_DESC_SIZE;
  const dataShift = newDataStart - oldDataStart;
  if (newBody > MAX_META_BYTES) {
    throw new VmcoreError('OUT_OF_BOUNDS', `sub-header area of ${newSub} blocks is beyond any real dump`, { file, offset: 432, field: 'sub_hdr_size' });
  }
  // The data area ends where the last kept descriptor's data (or eraseinfo) ends: bytes past it
  // are not copied (a flattened stream can claim a huge sparse logical size).
  let oldDataEnd = oldDataStart;
  const keptEnd = Math.min(src.size, descStart + keptDescs * PAGE_DESC_SIZE);
  const DCH = 170 * PAGE_DESC_SIZE * 64;
  for (let pos = descStart; pos < keptEnd; pos += DCH) {
    const t = new PageDescTable(await readExact(src, pos, Math.min(DCH, keptEnd - pos), 'page descriptors'), le);
    for (let i = 0; i < t.count; i++) {
      const off = t.offset(i);
      const end = off + t.size(i);
      if (off >= oldDataStart && end <= src.size && end > oldDataEnd) oldDataEnd = end;
    }
  }
  if (h.sizeEraseinfo > 0 && h.offsetEraseinfo >= oldDataStart) oldDataEnd = Math.max(oldDataEnd, Math.min(src.size, h.offsetEraseinfo + h.sizeEraseinfo));

  // ---- block 0
  const head = new Uint8Array(newBody);
  head.set(await readExact(src, 0, bs, 'disk_dump_header'), 0);
  const hdr = H.read(head, 0, le, { file });
  const upd: Record<string, unknown> = { sub_hdr_size: newSub, bitmap_blocks: (2 * newBitmapLen) / bs, max_mapnr: Math.min(maxPfn, 0xffffffff) };
  if (h.headerVersion < 6) {
    upd.header_version = 6;
    changes.push(`header_version ${h.headerVersion} -> 6`);
  }
  const uts = v.utsname;
  if (uts && !hdr.release) {
    const fit = (s: string) => (s.length < UTS_FIELD ? s : s.slice(0, UTS_FIELD - 1));
    for (const k of ['sysname', 'nodename', 'release', 'version', 'machine', 'domainname'] as const) {
      if (!uts[k] && hdr[k]) continue; // keep what the header has when memory has nothing
      upd[k] = fit(uts[k]);
    }
    changes.push(`utsname filled from the kernel: ${uts.sysname} ${uts.release} ${uts.version} ${uts.machine}`);
  }
  if (hdr.nr_cpus <= 0 && v.nrCpus !== undefined && v.nrCpus > 0) {
    upd.nr_cpus = v.nrCpus;
    changes.push(`nr_cpus ${hdr.nr_cpus} -> ${v.nrCpus}`);
  }
  if (Number(hdr.timestamp_sec) === 0 && v.timestampSec) {
    upd.timestamp_sec = is64 ? BigInt(v.timestampSec) : v.timestampSec;
    changes.push(`timestamp 0 -> ${v.timestampSec} (CRASHTIME)`);
  }
  if (is64) DiskDumpHeader64.write(upd as Parameters<typeof DiskDumpHeader64.write>[0], head, 0, le);
  else DiskDumpHeader32.write(upd as Parameters<typeof DiskDumpHeader32.write>[0], head, 0, le);

  // ---- sub-header
  const sub = head.subarray(bs, bs + newSub * bs);
  sub.set(await readExact(src, bs, S.size, 'kdump_sub_header'), 0);
  const vOff = vIndex >= 0 ? noteOff + noteDescOffset(notes, vIndex) : 0;
  const vSize = vIndex >= 0 ? notes[vIndex]!.desc.length : 0;
  const eraseNew = erase ? eraseOff : h.sizeEraseinfo > 0 && h.offsetEraseinfo >= oldDataStart ? h.offsetEraseinfo + dataShift : h.offsetEraseinfo;
  const physBase = BigInt.asUintN(64, v.physBase);
  if (physBase !== BigInt.asUintN(64, h.physBase)) changes.push(`phys_base ${hex64(h.physBase)} -> ${hex64(physBase)}`);
  const common = {
    dump_level: h.dumpLevel,
    split: 0,
    offset_vmcoreinfo: vOff,
    size_vmcoreinfo: vSize,
    offset_note: blob.length ? noteOff : 0,
    size_note: blob.length,
    offset_eraseinfo: eraseNew,
    size_eraseinfo: h.sizeEraseinfo,
    start_pfn_64: h.startPfn,
    end_pfn_64: h.endPfn,
    max_mapnr_64: maxPfn,
  };
  if (is64) {
    KdumpSubHeader64.write({ ...common, phys_base: physBase, start_pfn: h.startPfn, end_pfn: h.endPfn }, sub, 0, le);
  } else {
    if (physBase >= 1n << 32n && physBase < 0xffffffff00000000n) {
      throw new VmcoreError('USAGE', `phys_base ${hex64(physBase)} does not fit the 32-bit sub-header`, { file, offset: bs, field: 'phys_base' });
    }
    KdumpSubHeader32.write(
      { ...common, phys_base: Number(BigInt.asUintN(32, physBase)), start_pfn: Math.min(h.startPfn, 0xffffffff), end_pfn: Math.min(h.endPfn, 0xffffffff) },
      sub,
      0,
      le,
    );
  }
  sub.fill(0, S.size);
  sub.set(blob, S.size);
  if (erase) sub.set(erase, S.size + blob.length);

  return {
    part: p,
    head,
    oldBody,
    newBody,
    oldBitmapLen,
    newBitmapLen,
    oldMaxPfn,
    maxPfn,
    descStart,
    keptDescs,
    oldDataStart,
    newDataStart,
    dataShift,
    inputSize: src.size,
    outputSize: oldDataEnd + dataShift,
    oldDataEnd,
    changes,
    oldPhysBase: h.physBase,
    vmcoreinfoAdded: vmciAdded,
  };
}

/** Set bits of pfns [0, maxPfn) in the bitmap at `offset` (`bytes` long), read in chunks. */
async function countBitsBelow(src: KdumpFile['src'], offset: number, bytes: number, maxPfn: number): Promise<number> {
  let n = 0;
  const CH = 1 << 20;
  for (let pos = 0; pos < bytes; pos += CH) {
    const b = await readExact(src, offset + pos, Math.min(CH, bytes - pos), 'dumpable bitmap');
    for (let i = 0; i < b.length; i++) {
      let x = b[i]!;
      const firstPfn = (pos + i) * 8;
      if (firstPfn + 8 > maxPfn) x &= (1 << Math.max(0, maxPfn - firstPfn)) - 1;
      while (x) {
        x &= x - 1;
        n++;
      }
    }
  }
  return n;
}

/** One positional write of the output. */
export interface FixWrite {
  offset: number;
  bytes: Uint8Array;
}

/**
 * The output file as positional writes, in ascending order: the head, both bitmaps (cut at
 * the new max_mapnr), the kept descriptors with their offsets moved by dataShift, then the data
 * area. Reads the input once, sequentially.
 */
export async function* kdumpFixWrites(plan: KdumpFixPlan, chunkBytes = 1 << 20): AsyncGenerator<FixWrite> {
  const { part, dataShift, maxPfn } = plan;
  const src = part.src;
  const le = part.h.littleEndian;
  const bs = part.h.blockSize;
  yield { offset: 0, bytes: plan.head };
  const step = Math.max(bs, Math.floor(chunkBytes / bs) * bs);
  // bitmaps: bits of pfns >= maxPfn cleared, padded with zeros to the new length
  const lastByte = Math.floor(maxPfn / 8);
  for (let which = 0; which < 2; which++) {
    const from = plan.oldBody + which * plan.oldBitmapLen;
    const to = plan.newBody + which * plan.newBitmapLen;
    for (let pos = 0; pos < plan.newBitmapLen; pos += step) {
      const n = Math.min(step, plan.newBitmapLen - pos);
      const out = new Uint8Array(n);
      const avail = Math.min(n, plan.oldBitmapLen - pos);
      if (avail > 0) out.set(await readExact(src, from + pos, avail, which ? 'dumpable bitmap' : 'RAM bitmap'), 0);
      if (maxPfn < plan.oldMaxPfn) {
        for (let i = Math.max(pos, lastByte); i < pos + n; i++) {
          out[i - pos] = i === lastByte ? out[i - pos]! & ((1 << (maxPfn & 7)) - 1) : 0;
        }
      }
      yield { offset: to + pos, bytes: out };
    }
  }
  // descriptors
  const dStep = Math.max(1, Math.floor(chunkBytes / PAGE_DESC_SIZE)) * PAGE_DESC_SIZE;
  const dEnd = Math.min(plan.inputSize, plan.descStart + plan.keptDescs * PAGE_DESC_SIZE);
  const newDesc = plan.newBody + 2 * plan.newBitmapLen;
  for (let pos = plan.descStart; pos < dEnd; pos += dStep) {
    const n = Math.min(dStep, dEnd - pos);
    const out = new Uint8Array(await readExact(src, pos, n, 'page descriptors')); // a copy: sources may share buffers
    if (dataShift !== 0) {
      const t = new PageDescTable(out, le);
      for (let i = 0; i < t.count; i++) {
        const off = t.offset(i);
        if (off >= plan.oldDataStart) t.setOffset(i, off + dataShift);
      }
    }
    yield { offset: newDesc + (pos - plan.descStart), bytes: out };
  }
  // data area
  for (let pos = plan.oldDataStart; pos < plan.oldDataEnd; pos += chunkBytes) {
    const n = Math.min(chunkBytes, plan.oldDataEnd - pos);
    yield { offset: pos + dataShift, bytes: await readExact(src, pos, n, 'page data') };
  }
}

/** The `--in-place` fix: the phys_base field alone, one naturally aligned write. */
export function planPhysBaseInPlace(part: KdumpFile, physBase: bigint): FixWrite {
  const h = part.h;
  const bs = h.blockSize;
  const v = BigInt.asUintN(64, physBase);
  if (h.layout === '64') {
    const b = new Uint8Array(8);
    new DataView(b.buffer).setBigUint64(0, v, h.littleEndian);
    return { offset: bs, bytes: b };
  }
  if (v >= 1n << 32n && v < 0xffffffff00000000n) {
    throw new VmcoreError('USAGE', `phys_base ${hex64(v)} does not fit the 32-bit sub-header`, { file: part.file, offset: bs, field: 'phys_base' });
  }
  const b = new Uint8Array(4);
  new DataView(b.buffer).setUint32(0, Number(BigInt.asUintN(32, v)), h.littleEndian);
  return { offset: bs, bytes: b };
}
