/**
 * The batch producers of `convertDump`: consecutive present pages, at most `max` a batch and
 * cut at the split-set boundaries, each in one ArrayBuffer (recycled through a BufferPool) that
 * goes to the compressor. From a random-access Dump (read run by run) or a sequential page
 * stream (every page arrives once, in order).
 */
import { VmcoreError } from '../../core/errors.js';
import type { Dump } from '../../core/dump.js';
import { decodeStoredPages, STORED_CODES, STORED_RAW, STORED_ZERO, type StoredPages } from '../../core/format/kdump/reader.js';
import { PAGE_COMPRESSED, PAGE_RAW, type CompressedBatch, type OutputCodec } from '../../core/format/batch.js';
import { isZeroPage } from '../../core/memory.js';
import { nodeCodecs } from '../codecs.js';
import { DirectElfReader } from './direct.js';
import type { PageChunk, PageStreamInput, PfnRange } from './types.js';

export interface RawBatch {
  startPfn: number;
  count: number;
  /** count × page size bytes: the pages, or (with `stored`) a buffer for the worker to decode them into. */
  buf: ArrayBuffer;
  /** The pages as the input file stores them (kdump), decoded into `buf` by the worker. */
  stored?: StoredPages;
}

/** A dump that can hand out pages in their stored form (KdumpDump). */
interface StoredPageSource {
  storedPages(pfn: number, count: number): Promise<StoredPages | undefined>;
}

function storedSource(d: Dump): StoredPageSource | undefined {
  return typeof (d as Partial<StoredPageSource>).storedPages === 'function' ? (d as unknown as StoredPageSource) : undefined;
}

/** Batch `b`'s pages read and decoded on this thread (when a worker could not decode its stored form). */
export async function readBatch(dump: Dump, b: RawBatch, pool: BufferPool): Promise<RawBatch> {
  const ps = dump.pageSize;
  const data = await dump.readPhys(b.startPfn * ps, b.count * ps, { fillMissing: true });
  if (data.length !== b.count * ps) throw new VmcoreError('TRUNCATED', `short read at pfn 0x${b.startPfn.toString(16)}`, { file: dump.files[0]?.name });
  const buf = pool.get(b.count * ps);
  new Uint8Array(buf).set(data);
  return { startPfn: b.startPfn, count: b.count, buf };
}

/**
 * A batch of a kdump input whose pages the file stores with the output's codec, raw, or as its
 * shared zero page, made into the output's compressed batch without compressing anything: the
 * stored bytes are written as they are. Every stored page is decompressed once (into `scratch`,
 * one page) to prove that it decodes to one page and to find the zero pages (`detectZero`), as
 * the compressor would have. Undefined when a page is stored otherwise, its codec has no
 * `decompressInto`, a page does not decode (the worker's path then names the damage), or a shared
 * zero page must be stored as data (`detectZero` false): the batch then goes to the compressor.
 * The result's buffer is `b.buf` (the stored bytes are copied into it).
 */
export function storedBatch(b: RawBatch, codec: OutputCodec, pageSize: number, detectZero: boolean, scratch: Uint8Array): (CompressedBatch & { buffer: ArrayBuffer }) | undefined {
  const st = b.stored;
  if (!st || codec === 'none') return undefined;
  const want = STORED_CODES.indexOf(codec);
  const impl = nodeCodecs().get(codec);
  if (!impl?.decompressInto) return undefined;
  const n = b.count;
  const kinds = new Uint8Array(n);
  const sizes = new Uint32Array(n);
  for (let i = 0; i < n; i++) {
    const c = st.codes[i]!;
    if (c === STORED_ZERO) {
      if (!detectZero) return undefined;
      continue; // kinds[i] = PAGE_ZERO
    }
    const src = st.blob.subarray(st.offsets[i]!, st.offsets[i]! + st.sizes[i]!);
    let page: Uint8Array;
    if (c === STORED_RAW) {
      if (src.length !== pageSize) return undefined;
      page = src;
      kinds[i] = PAGE_RAW;
    } else {
      if (c !== want || src.length >= pageSize) return undefined;
      let got: number;
      try {
        got = impl.decompressInto(src, scratch);
      } catch {
        return undefined;
      }
      if (got !== pageSize) return undefined;
      page = scratch;
      kinds[i] = PAGE_COMPRESSED;
    }
    if (detectZero && isZeroPage(page)) kinds[i] = 0; // PAGE_ZERO
    else sizes[i] = src.length;
  }
  const out = new Uint8Array(b.buf);
  let len = 0;
  for (let i = 0; i < n; i++) {
    if (!sizes[i]) continue;
    out.set(st.blob.subarray(st.offsets[i]!, st.offsets[i]! + sizes[i]!), len);
    len += sizes[i]!;
  }
  return { startPfn: b.startPfn, count: n, kinds, sizes, data: out.subarray(0, len), buffer: b.buf };
}

export class BufferPool {
  private free: ArrayBuffer[] = [];
  constructor(private readonly size: number) {}
  get(bytes: number): ArrayBuffer {
    if (bytes === this.size) {
      const b = this.free.pop();
      if (b) return b;
    }
    return new ArrayBuffer(bytes);
  }
  put(b: ArrayBuffer): void {
    if (b.byteLength === this.size && this.free.length < 64) this.free.push(b);
  }
}

/** Cut ranges at `cuts` (sorted pfns) and into chunks of at most `max` pages. */
function* chunks(ranges: readonly PfnRange[], cuts: readonly number[], max: number): Generator<PfnRange> {
  let c = 0;
  for (const r of ranges) {
    let s = r.startPfn;
    while (s < r.endPfn) {
      while (c < cuts.length && cuts[c]! <= s) c++;
      let e = Math.min(r.endPfn, s + max);
      if (c < cuts.length && cuts[c]! < e) e = cuts[c]!;
      yield { startPfn: s, endPfn: e };
      s = e;
    }
  }
}

export async function* dumpBatches(dump: Dump, ranges: readonly PfnRange[], cuts: number[], max: number, pool: BufferPool): AsyncGenerator<RawBatch> {
  const ps = dump.pageSize;
  const direct = await DirectElfReader.open(dump);
  const stored = direct ? undefined : storedSource(dump);
  try {
    for (const c of chunks(ranges, cuts, max)) {
      const n = c.endPfn - c.startPfn;
      const buf = pool.get(n * ps);
      // kdump input: the stored pages go to the workers, which decompress them
      const st = stored && (await stored.storedPages(c.startPfn, n));
      if (st) {
        yield { startPfn: c.startPfn, count: n, buf, stored: st };
        continue;
      }
      if (!direct || !(await direct.read(c.startPfn * ps, new Uint8Array(buf)))) {
        const data = await dump.readPhys(c.startPfn * ps, n * ps, { fillMissing: true });
        if (data.length !== n * ps) throw new VmcoreError('TRUNCATED', `short read at pfn 0x${c.startPfn.toString(16)}`, { file: dump.files[0]?.name });
        new Uint8Array(buf).set(data);
      }
      yield { startPfn: c.startPfn, count: n, buf };
    }
  } finally {
    await direct?.close();
  }
}

/**
 * The stream's page chunks without the page frames in `exclude` (ascending, disjoint): each chunk
 * is cut into the parts outside the runs. Chunks may come in any order.
 */
export async function* withoutRuns(pages: AsyncIterable<PageChunk>, exclude: readonly PfnRange[], pageSize: number): AsyncGenerator<PageChunk> {
  for await (const chunk of pages) {
    if (chunk.data.length % pageSize !== 0) {
      yield chunk; // refused by streamBatches
      continue;
    }
    const end = chunk.startPfn + chunk.data.length / pageSize;
    // the first run that ends after the chunk's start
    let lo = 0;
    let hi = exclude.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (exclude[mid]!.endPfn <= chunk.startPfn) lo = mid + 1;
      else hi = mid;
    }
    let p = chunk.startPfn;
    for (let j = lo; j < exclude.length && exclude[j]!.startPfn < end && p < end; j++) {
      const x = exclude[j]!;
      if (x.startPfn > p) yield { startPfn: p, data: chunk.data.subarray((p - chunk.startPfn) * pageSize, (x.startPfn - chunk.startPfn) * pageSize) };
      p = Math.max(p, Math.min(x.endPfn, end));
    }
    if (p < end) yield p === chunk.startPfn ? chunk : { startPfn: p, data: chunk.data.subarray((p - chunk.startPfn) * pageSize) };
  }
}

/**
 * The stream's pages as batches: at most `max` pages, within one declared range, cut at `cuts`.
 * A chunk the stream hands over `owned` (its own buffer from `pool`) that fits these bounds
 * becomes a batch as it is; other chunks are copied into batch buffers (and an owned buffer
 * copied from goes back to `pool`). Throws BAD_FIELD for a chunk out of order, of partial
 * pages, beyond or across the declared ranges; TRUNCATED when the stream ends early.
 */
export async function* streamBatches(input: PageStreamInput, cuts: number[], max: number, pool: BufferPool): AsyncGenerator<RawBatch> {
  const ps = input.pageSize;
  const ranges = input.ranges;
  let ri = 0;
  /** The pfn the stream delivers next (-1: all ranges delivered). */
  let next = ranges.length ? ranges[0]!.startPfn : -1;
  let ci = 0;
  let cur: { startPfn: number; n: number; buf: ArrayBuffer; fill: number } | undefined;
  /** Pages a batch starting at `next` may hold. */
  const room = () => {
    while (ci < cuts.length && cuts[ci]! <= next) ci++;
    return Math.min(ranges[ri]!.endPfn, ci < cuts.length ? cuts[ci]! : Infinity, next + max) - next;
  };
  const advance = (pages: number) => {
    next += pages;
    if (next === ranges[ri]!.endPfn) next = ++ri < ranges.length ? ranges[ri]!.startPfn : -1;
  };
  for await (const chunk of input.pages) {
    const len = chunk.data.length;
    if (len % ps !== 0) throw new VmcoreError('BAD_FIELD', `page stream chunk of ${len} bytes is not whole pages`, { file: input.name });
    if (len === 0) continue;
    if (next < 0) throw new VmcoreError('BAD_FIELD', 'page stream has more pages than its declared ranges', { file: input.name });
    if (chunk.startPfn !== next) {
      throw new VmcoreError('BAD_FIELD', `page stream out of order: got pfn 0x${chunk.startPfn.toString(16)}, expected 0x${next.toString(16)}`, { file: input.name });
    }
    const pages = len / ps;
    if (next + pages > ranges[ri]!.endPfn) {
      throw new VmcoreError('BAD_FIELD', `page stream chunk at pfn 0x${next.toString(16)} runs beyond its declared range (ends at 0x${ranges[ri]!.endPfn.toString(16)})`, { file: input.name });
    }
    if (!cur && chunk.owned && chunk.data.byteOffset === 0 && pages <= room()) {
      yield { startPfn: next, count: pages, buf: chunk.data.buffer as ArrayBuffer };
      advance(pages);
      continue;
    }
    let off = 0;
    while (off < len) {
      if (!cur) {
        const n = room();
        cur = { startPfn: next, n, buf: pool.get(n * ps), fill: 0 };
      }
      const take = Math.min(cur.n * ps - cur.fill, len - off);
      new Uint8Array(cur.buf, cur.fill, take).set(chunk.data.subarray(off, off + take));
      cur.fill += take;
      off += take;
      advance(take / ps);
      if (cur.fill === cur.n * ps) {
        yield { startPfn: cur.startPfn, count: cur.n, buf: cur.buf };
        cur = undefined;
      }
    }
    if (chunk.owned) pool.put(chunk.data.buffer as ArrayBuffer);
  }
  if (next >= 0 || cur) throw new VmcoreError('TRUNCATED', `page stream ended early (at pfn 0x${Math.max(next, 0).toString(16)})`, { file: input.name });
}
