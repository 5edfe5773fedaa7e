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
  constructor(codecs: Codec[] = []) {
    for (const c of codecs) this.map.set(c.name, c);
  }
  register(c: Codec): this {
    this.map.set(c.name, c);
    return this;
  }
  get(name: CodecName): Codec | undefined {
    return this.map.get(name);
  }
  list(): Codec[] {
    return [...this.map.values()];
  }
}
