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
  set(k: K, v: V): void {
    if (this.map.has(k)) this.map.delete(k);
    else if (this.map.size >= this.capacity) this.map.delete(this.map.keys().next().value as K);
    this.map.set(k, v);
  }
  /** True when `k` is cached (does not count as a use). */
  has(k: K): boolean {
    return this.map.has(k);
  }
  clear(): void {
    this.map.clear();
  }
}
