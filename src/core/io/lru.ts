/** A small LRU map (Map keeps insertion order; re-inserting on hit moves a key to the end). */
export class LruCache<K, V> {
  private readonly map = new Map<K, V>();
  constructor(private readonly capacity: number) {}
  get(k: K): V | undefined {
    const v = this.map.get(k);
    if (v !== undefined) {
      this.map.delete(k);
      this.map.set(k, v);
    }
    return v;
  }
  /** Store `v` under `k`; returns the value evicted to make room (the least recently used), if any. */
  set(k: K, v: V): V | undefined {
    let evicted: V | undefined;
    if (this.map.has(k)) this.map.delete(k);
    else if (this.map.size >= this.capacity) {
      const oldest = this.map.keys().next().value as K;
      evicted = this.map.get(oldest);
      this.map.delete(oldest);
    }
    this.map.set(k, v);
    return evicted;
  }
  /** True when `k` is cached (does not count as a use). */
  has(k: K): boolean {
    return this.map.has(k);
  }
  clear(): void {
    this.map.clear();
  }
}
