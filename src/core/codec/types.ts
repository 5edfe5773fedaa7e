/**
 * Page codecs. The kdump format compresses each page on its own with one of four codecs; the
 * compressed-ELF format uses the same codecs per chunk. Implementations are registered per
 * environment: the Node layer registers native bindings, the portable core pure JS ones.
 */
export type CodecName = 'zlib' | 'lzo' | 'snappy' | 'zstd';
export const CODEC_NAMES: readonly CodecName[] = ['zlib', 'lzo', 'snappy', 'zstd'];

export interface Codec {
  readonly name: CodecName;
  /** Implementation label, e.g. "node:zlib", "fflate". */
  readonly impl: string;
  /**
   * Decompress `src`; the result must be exactly `expectedSize` bytes, else throw.
   * (Callers wrap failures into typed DECOMPRESS errors naming file and offset.)
   */
  decompress(src: Uint8Array, expectedSize: number): Uint8Array;
  /**
   * Decompress `src` into `dst` (at most dst.length bytes, never beyond it) and return the number
   * of bytes written; throws on corrupt input. Optional: a fast path without an allocation per
   * call, where an implementation has one.
   */
  decompressInto?(src: Uint8Array, dst: Uint8Array): number;
  /** Compress one buffer. Absent when the environment can only read this codec. */
  compress?(src: Uint8Array, level?: number): Uint8Array;
}

export interface CodecRegistry {
  get(name: CodecName): Codec | undefined;
  list(): Codec[];
}

export class MapCodecRegistry implements CodecRegistry {
  private readonly map = new Map<CodecName, Codec>();
  /** Codecs loaded on first use (registerLazy), in registration order. */
  private readonly lazy = new Map<CodecName, () => Codec | undefined>();
  constructor(codecs: Codec[] = []) {
    for (const c of codecs) this.map.set(c.name, c);
  }
  register(c: Codec): this {
    this.lazy.delete(c.name);
    this.map.set(c.name, c);
    return this;
  }
  /**
   * Register `name` to be loaded when it is first asked for (get, list): `load` returns the codec,
   * or undefined when it cannot be had (a native module not installed; a load that throws counts
   * as that), and the codec registered before it (a portable one) then stays. Loading a native
   * module costs milliseconds per thread; a command that uses one codec loads only that one.
   */
  registerLazy(name: CodecName, load: () => Codec | undefined): this {
    this.lazy.set(name, load);
    return this;
  }
  private resolve(name: CodecName): void {
    const load = this.lazy.get(name);
    if (!load) return;
    this.lazy.delete(name);
    let c: Codec | undefined;
    try {
      c = load();
    } catch {
      c = undefined; // a module that loads but cannot start (a broken native build): as if absent
    }
    if (c) this.map.set(name, c);
  }
  get(name: CodecName): Codec | undefined {
    this.resolve(name);
    return this.map.get(name);
  }
  list(): Codec[] {
    for (const name of [...this.lazy.keys()]) this.resolve(name);
    return [...this.map.values()];
  }
}
