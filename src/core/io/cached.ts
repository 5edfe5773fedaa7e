/**
 * Read-ahead cache over a byte source: small reads are served from aligned chunks (default
 * 1 MiB, 8 kept), so walking a dump page by page costs one read per chunk instead of one per
 * page. Reads larger than a chunk go straight through, and so does `readInto` (the caller's
 * buffer is the cache). Memory is bounded by chunk × count.
 */
import type { ByteSource } from './source.js';
import { LruCache } from './lru.js';

export class CachedSource implements ByteSource {
  private readonly cache: LruCache<number, Uint8Array>;
  constructor(
    readonly inner: ByteSource,
    private readonly chunk = 1 << 20,
    count = 8,
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
      c = await this.inner.read(ci * C, Math.min(C, this.inner.size - ci * C));
      this.cache.set(ci, c);
    }
    const o = offset - ci * C;
    return c.subarray(o, Math.min(c.length, o + length));
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
