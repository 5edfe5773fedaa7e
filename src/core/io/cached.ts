/**
 * Read-ahead cache over a byte source: small reads are served from aligned chunks (default
 * 256 KiB, 16 kept), so walking a dump page by page costs one read per chunk instead of one per
 * page. (1 MiB chunks cost more where the reads are scattered, as triage's are: each miss copies
 * a whole chunk for one page; `convert -l -d 31` of the bench guest 4 % less wall time with
 * 256 KiB, bench/README.md.) Reads larger than a chunk go straight through, and so does `readInto` (the caller's
 * buffer is the cache). Memory is bounded by chunk × count. A read served from a chunk is a
 * copy, so that an evicted chunk's memory is read into again instead of fresh memory (a page
 * fault per 4 KiB, which on some machines costs more than the read: bench/README.md, "Page faults").
 */
import type { ByteSource } from './source.js';
import { LruCache } from './lru.js';

export class CachedSource implements ByteSource {
  private readonly cache: LruCache<number, Uint8Array>;
  /** An evicted chunk's memory, read into next. */
  private spare: Uint8Array | undefined;
  constructor(
    readonly inner: ByteSource,
    private readonly chunk = 1 << 18,
    count = 16,
  ) {
    this.cache = new LruCache(count);
  }
  get name(): string {
    return this.inner.name;
  }
  get size(): number {
    return this.inner.size;
  }
  async read(offset: number, length: number): Promise<Uint8Array> {
    const C = this.chunk;
    const ci = Math.floor(offset / C);
    if (length > C || Math.floor((offset + length - 1) / C) !== ci) return this.inner.read(offset, length);
    let c = this.cache.get(ci);
    if (!c) {
      const want = Math.min(C, this.inner.size - ci * C);
      const spare = this.spare;
      this.spare = undefined;
      if (spare && this.inner.readInto) {
        const got = await this.inner.readInto(ci * C, spare.subarray(0, want));
        c = spare.subarray(0, got);
      } else c = await this.inner.read(ci * C, want);
      const evicted = this.cache.set(ci, c);
      if (evicted && evicted.byteOffset === 0 && evicted.buffer.byteLength === C) this.spare = new Uint8Array(evicted.buffer, 0, C);
    }
    const o = offset - ci * C;
    // a copy (a Node Buffer's slice() would be a view of the chunk)
    const part = c.subarray(o, Math.min(c.length, o + length));
    const out = new Uint8Array(part.length);
    out.set(part);
    return out;
  }
  /** Reads past the cache: straight into `dst` when the inner source can, else a read and a copy. */
  async readInto(offset: number, dst: Uint8Array): Promise<number> {
    if (this.inner.readInto) return this.inner.readInto(offset, dst);
    const b = await this.inner.read(offset, dst.length);
    dst.set(b);
    return b.length;
  }
  async close(): Promise<void> {
    this.cache.clear();
    await this.inner.close?.();
  }
}
