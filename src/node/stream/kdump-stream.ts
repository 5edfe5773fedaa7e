/**
 * One-pass readers for a dump that arrives as a sequential stream (standard input, a pipe, a
 * FIFO): `makedumpfile -F | vmcore convert - OUT`, `cat vmcore | vmcore hash -`.
 *
 * `openDumpStream` recognises the stream by content, as `openDump` does for files:
 *  - a flattened kdump (makedumpfile -F, QEMU's kdump-* output): records {offset, size, bytes}
 *    in the order the producer wrote them (makedumpfile.c write_buffer / write_start_flat_header);
 *  - a kdump-compressed file read front to back (one record per input chunk);
 *  - an ELF core (/proc/vmcore, QEMU dump-guest-memory, makedumpfile -E): `ElfStream`.
 * and returns a `PageStreamInput`: the present pfn ranges, notes and header values known before
 * the first page, then the pages in ascending pfn order (ELF: in file order).
 *
 * kdump from a stream. Everything below the page descriptors (main header, sub-header, notes,
 * VMCOREINFO, both bitmaps) is collected first, and read with the file readers
 * (`KdumpDump.open` over an in-memory source). From the first record at or beyond the
 * descriptor area on, descriptors and page data are matched as they come: descriptor i belongs
 * to the i-th set bit of the dumpable bitmap, and page data waits until its descriptor is there
 * (makedumpfile flushes its 64 KiB page-data cache more often than its descriptor cache, so data
 * usually comes first). Page data behind the descriptor being served is dropped, except the
 * first page of the data area (the shared zero page makedumpfile's pd_zero and vmcore's writer
 * put there).
 * Bounded memory: metadata at most 256 MiB (the bitmaps of a 4 TiB machine), page data waiting
 * for its descriptor at most 256 MiB, descriptors waiting for their data at most 256 MiB; beyond
 * that, or when the producer writes the bitmap again after the first page (makedumpfile's
 * cyclic mode with several cycles) or refers back to page data already passed, a typed
 * UNSUPPORTED error says to save the stream to a file first. Stream errors are typed
 * (TRUNCATED with the stream offset, BAD_FIELD for a bad record, DECOMPRESS / PAGE_DAMAGED
 * with the pfn): a stream cannot skip a damaged page in an output whose bitmaps are already
 * written, so it stops there.
 */
import { warning, type Warning } from '../../core/warnings.js';
import { VmcoreError } from '../../core/errors.js';
import type { ByteSource } from '../../core/io/source.js';
import type { CodecRegistry } from '../../core/codec/types.js';
import { isElf } from '../../core/format/elf/reader.js';
import { isFlattened } from '../../core/format/kdump/flattened.js';
import { codecOfFlags, descDamage, isKdump, KdumpDump } from '../../core/format/kdump/reader.js';
import { FLAT_HEADER_SIZE, FLAT_SIGNATURE, FLAT_TYPE, FlatDataHeader, FlatHeader, PAGE_DESC_SIZE, PageDescTable } from '../../core/format/kdump/structs.js';
import type { PageStreamInput, PfnRange } from '../convert/index.js';
import { streamInput } from '../dump-qmp.js';
import { ChunkReader, ElfStream } from './elf-stream.js';
import { isDirectByteStream, type DirectByteStream } from './direct-read.js';
import { KDUMP_STREAM_LIMITS } from '../../core/limits.js';

const MAX_META = KDUMP_STREAM_LIMITS.maxMetaBytes;
/** Bytes of the main kdump header that hold its geometry in every layout (disk_dump_header up to nr_cpus). */
const MAIN_HEADER_BYTES = 448;
const MAX_PENDING_DATA = KDUMP_STREAM_LIMITS.maxPendingDataBytes;
const MAX_PENDING_DESCS = KDUMP_STREAM_LIMITS.maxPendingDescBytes;
const MAX_RECORD = KDUMP_STREAM_LIMITS.maxFlatRecordBytes;

export interface DumpStream {
  /** What the stream holds, e.g. "flattened kdump", "kdump", "ELF". */
  format: string;
  input: PageStreamInput;
  warnings: Warning[];
  /** Bytes read from the stream so far. */
  bytesRead(): number;
}

export interface DumpStreamOptions {
  /** Name for messages (default "standard input"). */
  name?: string;
  codecs: CodecRegistry;
}

/** A byte range of the rebuilt file, as the stream delivers it. */
interface StreamRecord {
  offset: number;
  data: Uint8Array;
}

async function* flatRecords(r: ChunkReader, name: string, ended: { marker: boolean }): AsyncGenerator<StreamRecord> {
  const head = await r.read(FLAT_HEADER_SIZE, 'the flattened header (makedumpfile_header)');
  const h = FlatHeader.read(head, 0, false, { file: name });
  if (h.signature !== FLAT_SIGNATURE) throw new VmcoreError('BAD_MAGIC', 'not a flattened dump', { file: name, offset: 0, field: 'signature' });
  if (h.type !== FLAT_TYPE) throw new VmcoreError('UNSUPPORTED', `flattened header type ${h.type} (expected ${FLAT_TYPE})`, { file: name, offset: 16, field: 'type' });
  for (;;) {
    const at = r.offset;
    const first = await r.next(16);
    if (!first) return; // no end marker: the caller decides whether that matters
    const hb = new Uint8Array(16);
    hb.set(first, 0);
    if (first.length < 16) await r.readInto(hb, first.length, 16 - first.length, 'a flattened record header');
    const dh = FlatDataHeader.read(hb, 0, false, { file: name, base: at });
    if (dh.offset === -1n && dh.buf_size === -1n) {
      ended.marker = true;
      await r.drain();
      return;
    }
    if (dh.offset < 0n || dh.buf_size <= 0n || dh.offset > BigInt(Number.MAX_SAFE_INTEGER) || dh.buf_size > BigInt(MAX_RECORD)) {
      throw new VmcoreError('BAD_FIELD', `bad flattened record (offset ${dh.offset}, size ${dh.buf_size})`, { file: name, offset: at, field: 'makedumpfile_data_header' });
    }
    let off = Number(dh.offset);
    let left = Number(dh.buf_size);
    // pass the record on in pieces as they arrive (a 1 GiB record is not held in memory)
    while (left > 0) {
      const piece = await r.next(Math.min(left, 4 << 20));
      if (!piece) throw new VmcoreError('TRUNCATED', `the stream ended inside a flattened record (offset 0x${off.toString(16)}, ${left} bytes missing)`, { file: name, offset: r.offset });
      yield { offset: off, data: piece };
      off += piece.length;
      left -= piece.length;
    }
  }
}

async function* plainRecords(r: ChunkReader): AsyncGenerator<StreamRecord> {
  for (;;) {
    const at = r.offset;
    const b = await r.next(4 << 20);
    if (!b) return;
    yield { offset: at, data: b };
  }
}

/** Byte ranges held in memory, ascending; reads outside them see zeros (as `makedumpfile -R` leaves holes). */
class Pieces {
  list: StreamRecord[] = [];
  bytes = 0;

  add(offset: number, data: Uint8Array): void {
    const copy = data.slice();
    const l = this.list;
    let i = l.length;
    while (i > 0 && l[i - 1]!.offset > offset) i--;
    l.splice(i, 0, { offset, data: copy });
    this.bytes += copy.length;
  }

  covers(offset: number, length: number): boolean {
    let pos = offset;
    const end = offset + length;
    for (const p of this.list) {
      if (p.offset + p.data.length <= pos) continue;
      if (p.offset > pos) return false;
      pos = p.offset + p.data.length;
      if (pos >= end) return true;
    }
    return pos >= end;
  }

  /** Bytes [offset, offset+length); later pieces override earlier ones where they overlap. */
  read(offset: number, length: number): Uint8Array {
    const out = new Uint8Array(length);
    const end = offset + length;
    for (const p of this.list) {
      const s = Math.max(offset, p.offset);
      const e = Math.min(end, p.offset + p.data.length);
      if (e > s) out.set(p.data.subarray(s - p.offset, e - p.offset), s - offset);
    }
    return out;
  }

  /** Remove and return the bytes at and above `offset`. */
  splitAt(offset: number): StreamRecord[] {
    const out: StreamRecord[] = [];
    const keep: StreamRecord[] = [];
    for (const p of this.list) {
      const end = p.offset + p.data.length;
      if (end <= offset) keep.push(p);
      else if (p.offset >= offset) out.push(p);
      else {
        keep.push({ offset: p.offset, data: p.data.subarray(0, offset - p.offset) });
        out.push({ offset, data: p.data.subarray(offset - p.offset) });
      }
    }
    this.list = keep;
    this.bytes = keep.reduce((a, p) => a + p.data.length, 0);
    return out;
  }

  /** Drop everything that ends at or below `offset`. */
  dropBelow(offset: number): void {
    let k = 0;
    while (k < this.list.length && this.list[k]!.offset + this.list[k]!.data.length <= offset) {
      this.bytes -= this.list[k]!.data.length;
      k++;
    }
    if (k) this.list.splice(0, k);
  }
}

/** `head`, then the rest of a direct reader. */
function withPrefix(head: Uint8Array, rest: DirectByteStream): DirectByteStream {
  let pos = 0;
  return {
    async readFull(dst: Uint8Array): Promise<number> {
      const k = Math.min(head.length - pos, dst.length);
      if (k > 0) dst.set(head.subarray(pos, pos + k));
      pos += k;
      return k === dst.length ? k : k + (await rest.readFull(dst.subarray(k)));
    },
    close: () => rest.close(),
  };
}

/** Prepend `head` to the rest of an iterator. */
async function* joined(head: Uint8Array[], it: AsyncIterator<Uint8Array>): AsyncGenerator<Uint8Array> {
  for (const h of head) yield h;
  for (;;) {
    const r = await it.next();
    if (r.done) return;
    yield r.value instanceof Uint8Array ? r.value : new Uint8Array(r.value as ArrayBuffer);
  }
}

/**
 * Open a dump from a one-pass byte stream (e.g. `process.stdin`). Reads up to the first page
 * (headers, notes, bitmaps) and returns the sequential input for `convertDump` or `hashPages`;
 * its `pages` can be iterated once. Throws VmcoreError: BAD_MAGIC for an unknown stream,
 * UNSUPPORTED for a stream that cannot be read in one pass (see the module comment), TRUNCATED,
 * BAD_FIELD.
 */
export async function openDumpStream(stream: AsyncIterable<Uint8Array> | DirectByteStream, opts: DumpStreamOptions): Promise<DumpStream> {
  const name = opts.name ?? 'standard input';
  let first: Uint8Array;
  let have: number;
  let input: AsyncIterable<Uint8Array> | DirectByteStream;
  if (isDirectByteStream(stream)) {
    const b = new Uint8Array(32);
    have = await stream.readFull(b);
    first = b.subarray(0, have);
    input = withPrefix(first, stream);
  } else {
    const it = stream[Symbol.asyncIterator]();
    const head: Uint8Array[] = [];
    have = 0;
    while (have < 32) {
      const r = await it.next();
      if (r.done) break;
      const b = r.value instanceof Uint8Array ? r.value : new Uint8Array(r.value as ArrayBuffer);
      head.push(b);
      have += b.length;
    }
    first = new Uint8Array(Math.min(have, 32));
    let o = 0;
    for (const b of head) {
      if (o >= first.length) break;
      const k = Math.min(b.length, first.length - o);
      first.set(b.subarray(0, k), o);
      o += k;
    }
    input = joined(head, it);
  }
  if (have === 0) throw new VmcoreError('TRUNCATED', 'the stream is empty', { file: name, offset: 0 });
  if (isElf(first)) {
    const es = await ElfStream.open(input, { name, reuseBuffer: false });
    return { format: 'ELF', input: streamInput(es.info, es.pages(), name, { useBuffers: (get) => es.useBuffers(get) }), warnings: es.warnings, bytesRead: () => es.bytesRead };
  }
  const r = new ChunkReader(input, name);
  if (isFlattened(first)) {
    const ended = { marker: false };
    return openKdumpRecords(flatRecords(r, name, ended), r, name, opts.codecs, 'flattened kdump', () =>
      ended.marker ? undefined : warning('FILE_TRUNCATED', 'the flattened stream has no end marker: it may have been cut short'),
    );
  }
  if (isKdump(first)) return openKdumpRecords(plainRecords(r), r, name, opts.codecs, 'kdump', () => undefined);
  throw new VmcoreError('BAD_MAGIC', 'the stream is not a dump vmcore reads from a pipe (ELF, kdump or flattened kdump)', { file: name, offset: 0, field: 'magic' });
}

async function openKdumpRecords(
  records: AsyncGenerator<StreamRecord>,
  r: ChunkReader,
  name: string,
  codecs: CodecRegistry,
  format: string,
  endCheck: () => Warning | undefined,
): Promise<DumpStream> {
  // ---- metadata: everything before the first record at or beyond the descriptors
  const meta = new Pieces();
  const metaSrc: ByteSource = { name, size: Number.MAX_SAFE_INTEGER, read: async (o, n) => meta.read(o, n) };
  let descOffset: number | undefined;
  // records at or beyond the descriptors that came with the metadata, in arrival order
  const early: StreamRecord[] = [];
  for (;;) {
    const n = await records.next();
    if (n.done) throw new VmcoreError('TRUNCATED', 'the stream ended before the first page descriptor', { file: name, offset: r.offset });
    const rec = n.value;
    if (descOffset !== undefined && rec.offset + rec.data.length > descOffset) {
      // a record that straddles the start of the descriptors: keep its metadata part
      if (rec.offset < descOffset) meta.add(rec.offset, rec.data.subarray(0, descOffset - rec.offset));
      early.push(rec.offset < descOffset ? { offset: descOffset, data: rec.data.subarray(descOffset - rec.offset) } : rec);
      break;
    }
    meta.add(rec.offset, rec.data);
    if (meta.bytes > MAX_META) {
      throw new VmcoreError('UNSUPPORTED', `more than ${MAX_META >> 20} MiB of headers and bitmaps before the first page; save the stream to a file and convert that`, { file: name, offset: r.offset });
    }
    if (descOffset === undefined && meta.covers(0, 16) && isElf(meta.read(0, 16))) {
      throw new VmcoreError('UNSUPPORTED', 'the flattened stream holds an ELF dump (makedumpfile -E -F), whose headers come last: save it to a file (makedumpfile -R) and convert that', {
        file: name,
        offset: r.offset,
      });
    }
    if (descOffset === undefined && meta.covers(0, MAIN_HEADER_BYTES)) {
      // the main header gives the geometry (block_size, sub_hdr_size, bitmap_blocks)
      const dd = await KdumpDump.open([{ src: metaSrc, flattened: false }], codecs);
      descOffset = dd.parts[0]!.descOffset;
      early.push(...meta.splitAt(descOffset));
      if (early.length) break;
    }
  }
  const dump = await KdumpDump.open([{ src: metaSrc, flattened: format !== 'kdump' }], codecs);
  const part = dump.parts[0]!;
  const h = part.h;
  const bs = h.blockSize;
  // the part's own warnings are about the data area, which this header-only view does not hold
  // (its descriptors "end beyond the file"): leave them out, by identity
  const warnings = dump.warnings.filter((w) => !part.warnings.includes(w));
  // present pages: the dumpable bitmap within the part's own range; RAM: the first bitmap
  const dumpableBase = part.bitmapOffset + (part.twoBitmaps ? part.bitmapBytes : 0);
  const bitRanges = (base: number): PfnRange[] => {
    const out: PfnRange[] = [];
    const CH = 1 << 20;
    let run = -1;
    for (let byte0 = Math.floor(part.ownStart / 8); byte0 * 8 < part.ownEnd; byte0 += CH) {
      const bits = meta.read(base + byte0, Math.min(CH, Math.ceil(part.ownEnd / 8) - byte0));
      for (let i = 0; i < bits.length; i++) {
        const v = bits[i]!;
        if ((v === 0 && run < 0) || (v === 0xff && run >= 0)) continue;
        for (let b = 0; b < 8; b++) {
          const pfn = (byte0 + i) * 8 + b;
          if (pfn < part.ownStart || pfn >= part.ownEnd) continue;
          const set = (v >> b) & 1;
          if (set && run < 0) run = pfn;
          else if (!set && run >= 0) {
            out.push({ startPfn: run, endPfn: pfn });
            run = -1;
          }
        }
      }
    }
    if (run >= 0) out.push({ startPfn: run, endPfn: part.ownEnd });
    return out;
  };
  const ranges = bitRanges(dumpableBase);
  const ram = part.twoBitmaps ? bitRanges(part.bitmapOffset) : ranges;
  let numDescs = 0;
  for (const x of ranges) numDescs += x.endPfn - x.startPfn;
  const descBase = part.descOffset;
  const dataStart = descBase + numDescs * PAGE_DESC_SIZE;
  const bitmapEnd = descBase;
  const le = h.littleEndian;

  async function* pages(): AsyncGenerator<{ startPfn: number; data: Uint8Array }> {
    const data = new Pieces();
    // descriptors that arrived: bytes [descPos, descLen) of descBuf, the first being descriptor `served`
    let descBuf = new Uint8Array(1 << 16);
    let descPos = 0;
    let descLen = 0;
    let descNext = descBase; // next descriptor byte expected from the stream
    let zeroCopy: Uint8Array | undefined; // the first page of the data area, kept once passed
    let frontier = dataStart; // page data below this has been dropped
    const B = 256;
    const out = new Uint8Array(B * bs);
    let outStart = 0;
    let outCount = 0;
    let ri = 0; // range of the next pfn
    let rpfn = ranges.length ? ranges[0]!.startPfn : 0; // pfn of descriptor `served`
    let served = 0;

    const takeRecord = (rec: StreamRecord) => {
      let { offset, data: b } = rec;
      if (offset < bitmapEnd) {
        // the header or sub-header written again at the end (makedumpfile update_sub_header) is
        // not page data; a bitmap written after the first page is a cyclic producer
        const end = Math.min(offset + b.length, bitmapEnd);
        if (end > part.bitmapOffset) {
          throw new VmcoreError(
            'UNSUPPORTED',
            'the producer writes the bitmap again after the first page (makedumpfile cyclic mode with several cycles); save the stream to a file (makedumpfile -R) and convert that',
            { file: name, offset: r.offset },
          );
        }
        if (offset + b.length <= bitmapEnd) return;
        b = b.subarray(bitmapEnd - offset);
        offset = bitmapEnd;
      }
      if (offset < dataStart) {
        const k = Math.min(b.length, dataStart - offset);
        if (offset !== descNext) {
          throw new VmcoreError('UNSUPPORTED', `page descriptors arrive out of order (at 0x${offset.toString(16)}, expected 0x${descNext.toString(16)}); save the stream to a file and convert that`, {
            file: name,
            offset: r.offset,
          });
        }
        if (descLen + k > descBuf.length) {
          if (descPos > 0) {
            descBuf.copyWithin(0, descPos, descLen);
            descLen -= descPos;
            descPos = 0;
          }
          if (descLen + k > descBuf.length) {
            if (descLen + k > MAX_PENDING_DESCS) {
              throw new VmcoreError('UNSUPPORTED', `more than ${MAX_PENDING_DESCS >> 20} MiB of page descriptors wait for their page data; save the stream to a file and convert that`, {
                file: name,
                offset: r.offset,
              });
            }
            const nb = new Uint8Array(Math.max(descBuf.length * 2, descLen + k));
            nb.set(descBuf.subarray(0, descLen));
            descBuf = nb;
          }
        }
        descBuf.set(b.subarray(0, k), descLen);
        descLen += k;
        descNext += k;
        if (k === b.length) return;
        b = b.subarray(k);
        offset += k;
      }
      if (offset + b.length <= frontier) return; // page data already served, written again
      data.add(offset, b);
      if (data.bytes > MAX_PENDING_DATA) {
        throw new VmcoreError('UNSUPPORTED', `more than ${MAX_PENDING_DATA >> 20} MiB of page data wait for their descriptors; save the stream to a file and convert that`, {
          file: name,
          offset: r.offset,
        });
      }
    };

    /** Serve the descriptors whose data is here, yielding full batches; false when none could be served. */
    function* serve(): Generator<{ startPfn: number; data: Uint8Array }, boolean> {
      let progressed = false;
      while (served < numDescs && descLen - descPos >= PAGE_DESC_SIZE) {
        const desc = new PageDescTable(descBuf.subarray(descPos, descPos + PAGE_DESC_SIZE), le);
        const off = desc.offset(0);
        const size = desc.size(0);
        const flags = desc.flags(0);
        const pfn = rpfn;
        const descAt = descBase + served * PAGE_DESC_SIZE;
        const damage = off <= 0 ? 'no page data (offset 0, negative or beyond 2^53)' : descDamage(size, flags, bs);
        if (damage) throw new VmcoreError('PAGE_DAMAGED', `page descriptor of pfn 0x${pfn.toString(16)}: ${damage}`, { file: name, offset: descAt, field: 'page_desc' });
        let raw: Uint8Array;
        if (off < frontier) {
          if (zeroCopy && off === dataStart && size <= zeroCopy.length) raw = zeroCopy.subarray(0, size);
          else {
            throw new VmcoreError('UNSUPPORTED', `the page descriptor of pfn 0x${pfn.toString(16)} refers back to page data already passed (0x${off.toString(16)}); save the stream to a file and convert that`, {
              file: name,
              offset: descAt,
              field: 'page_desc.offset',
            });
          }
        } else {
          if (!data.covers(off, size)) break; // its data has not arrived yet
          raw = data.read(off, size);
          if (off > dataStart) {
            if (!zeroCopy && data.covers(dataStart, bs)) zeroCopy = data.read(dataStart, bs);
            frontier = off;
            data.dropBelow(off);
          }
        }
        const kind = codecOfFlags(flags);
        let page: Uint8Array;
        if (kind === 'raw') page = raw;
        else {
          const codec = kind ? codecs.get(kind) : undefined;
          if (!codec) throw new VmcoreError('CODEC_UNAVAILABLE', `no ${kind} codec available`, { file: name, offset: off });
          try {
            page = codec.decompress(raw, bs);
          } catch (e) {
            throw new VmcoreError('DECOMPRESS', `${kind} page of pfn 0x${pfn.toString(16)} does not decompress to one page: ${(e as Error).message}`, {
              file: name,
              offset: off,
              field: 'page data',
              cause: e,
            });
          }
          if (page.length !== bs) {
            throw new VmcoreError('DECOMPRESS', `${kind} page of pfn 0x${pfn.toString(16)} decompresses to ${page.length} bytes, not ${bs}`, { file: name, offset: off, field: 'page data' });
          }
        }
        if (outCount && (pfn !== outStart + outCount || outCount === B)) {
          yield { startPfn: outStart, data: out.subarray(0, outCount * bs) };
          outCount = 0;
        }
        if (!outCount) outStart = pfn;
        out.set(page, outCount * bs);
        outCount++;
        descPos += PAGE_DESC_SIZE;
        served++;
        rpfn++;
        if (rpfn >= ranges[ri]!.endPfn && ++ri < ranges.length) rpfn = ranges[ri]!.startPfn;
        progressed = true;
      }
      return progressed;
    }

    for (const e of early) takeRecord(e);
    while (served < numDescs) {
      if (yield* serve()) continue;
      const n = await records.next();
      if (n.done) {
        throw new VmcoreError('TRUNCATED', `the stream ended after ${served} of ${numDescs} pages (next pfn 0x${rpfn.toString(16)})`, { file: name, offset: r.offset });
      }
      takeRecord(n.value);
    }
    if (outCount) yield { startPfn: outStart, data: out.subarray(0, outCount * bs) };
    // the rest (eraseinfo, the end marker) is read so that the writer finishes
    for (;;) {
      const n = await records.next();
      if (n.done) break;
    }
    const w = endCheck();
    if (w) warnings.push(w);
  }

  const details = part.h;
  const input: PageStreamInput = {
    kind: 'stream',
    name,
    pageSize: bs,
    arch: dump.arch,
    is64: dump.is64,
    littleEndian: dump.littleEndian,
    notes: dump.notes,
    ...(dump.vmcoreinfoText !== undefined ? { vmcoreinfoText: dump.vmcoreinfoText } : {}),
    ranges,
    ram,
    maxPfn: dump.maxPfn,
    pages: pages(),
    header: {
      utsname: details.utsname,
      timestampSec: details.timestampSec,
      nrCpus: details.nrCpus,
      physBase: details.physBase,
      ...(details.dumpLevel > 0 && details.dumpLevel < 32 ? { dumpLevel: details.dumpLevel } : {}),
    },
  };
  return { format, input, warnings, bytesRead: () => r.offset };
}
