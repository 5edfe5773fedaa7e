/**
 * The batch producers of `convertDump`: consecutive present pages, at most `max` a batch and
 * cut at the split-set boundaries, each in one ArrayBuffer (recycled through a BufferPool) that
 * goes to the compressor. From a random-access Dump (read run by run) or a sequential page
 * stream (every page arrives once, in order).
 */
import { VmcoreError } from '../../core/errors.js';
import type { Dump } from '../../core/dump.js';
import type { StoredPages, StoredPagesOptions } from '../../core/format/kdump/reader.js';
import { DirectElfReader } from './direct.js';
import type { FilePages } from '../workers/page-codec.js';
import type { PageChunk, PageStreamInput, PfnRange } from './types.js';

export interface RawBatch {
  startPfn: number;
  count: number;
  /** count × page size bytes: the pages, or (with `stored`) a buffer for the worker to decode them into. */
  buf: ArrayBuffer;
  /** The pages as the input file stores them (kdump), made into the output's batch by the worker. */
  stored?: StoredPages;
  /** `stored.blob` starts a buffer of the batch's own (from a BufferPool): transferred, not copied. */
  storedOwned?: boolean;
  /** The pages are at this place of an open file (`buf` is for the result): read by the compressing thread. */
  file?: FilePages;
}

/** A dump that can hand out pages in their stored form (KdumpDump). */
interface StoredPageSource {
  storedPages(pfn: number, count: number, opts?: StoredPagesOptions): Promise<StoredPages | undefined>;
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
 * Recycled ArrayBuffers of one size (at most 64 kept): the batch buffers that go to the workers
 * and come back. `get(bytes)` gives one of exactly `bytes` (a pooled one when `bytes` is the
 * pool's size); `view(bytes)` the first `bytes` of a pooled one when they fit, else of a new one.
 */
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
  view(bytes: number): Uint8Array {
    return bytes <= this.size ? new Uint8Array(this.get(this.size), 0, bytes) : new Uint8Array(bytes);
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

/**
 * The batches of `ranges` (cut at `cuts`, at most `max` pages each) of a random-access dump: an
 * ELF's pages read straight into the batch buffer (DirectElfReader) or, with `files` (the
 * caller's open DirectElfReader, whose compressing threads read files themselves: CompressPool
 * readsFiles), as their place in the file; a kdump file's pages in their stored form (read into
 * a buffer of `storedPool` when given: the batch owns it); others through readPhys. `files`
 * stays open after the last batch: the caller closes it once every batch is done.
 */
export async function* dumpBatches(dump: Dump, ranges: readonly PfnRange[], cuts: number[], max: number, pool: BufferPool, storedPool?: BufferPool, files?: DirectElfReader): AsyncGenerator<RawBatch> {
  const ps = dump.pageSize;
  const direct = files ?? (await DirectElfReader.open(dump));
  const stored = direct ? undefined : storedSource(dump);
  const opts: StoredPagesOptions | undefined = storedPool ? { buffer: (bytes) => storedPool.view(bytes) } : undefined;
  try {
    for (const c of chunks(ranges, cuts, max)) {
      const n = c.endPfn - c.startPfn;
      const buf = pool.get(n * ps);
      // kdump input: the stored pages go to the workers, which decode them
      const st = stored && (await stored.storedPages(c.startPfn, n, opts));
      if (st) {
        // the blob is the start of a pooled buffer unless the read could not use it
        const owned = !!storedPool && st.blob.byteOffset === 0 && st.blob.buffer.byteLength > 0;
        yield { startPfn: c.startPfn, count: n, buf, stored: st, ...(owned ? { storedOwned: true } : {}) };
        continue;
      }
      const at = files?.locate(c.startPfn * ps, n * ps);
      if (at !== undefined) {
        yield { startPfn: c.startPfn, count: n, buf, file: { fd: files!.fd, offset: at } };
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
    if (!files) await direct?.close();
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
