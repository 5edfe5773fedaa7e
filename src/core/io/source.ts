/**
 * Random-access byte sources. The format code only ever sees this interface, so a file, a
 * buffer, a browser Blob or an HTTP range source are interchangeable.
 */
import { VmcoreError } from '../errors.js';

export interface ByteSource {
  /** Name used in error messages (a path, a URL, "buffer"). */
  readonly name: string;
  /** Total size in bytes. */
  readonly size: number;
  /**
   * Read `length` bytes at `offset`. Returns fewer bytes only when the source ends first.
   * Never reads past `size`.
   */
  read(offset: number, length: number): Promise<Uint8Array>;
  /**
   * Optional: read `dst.length` bytes at `offset` into `dst` (a buffer the caller reuses, so a
   * long sequential read allocates nothing). Returns the bytes read: fewer only when the source
   * ends first. Sources without it are read with `read` (see {@link readExact}).
   */
  readInto?(offset: number, dst: Uint8Array): Promise<number>;
  close?(): Promise<void>;
  /** True when the source has its own cache (HttpSource): openDump then adds no read-ahead cache. */
  readonly cached?: boolean;
}

/**
 * Reads exactly `length` bytes or throws TRUNCATED naming the field being read. With `into`
 * (at least `length` bytes), the bytes land in `into` (through `readInto` when the source has
 * it, else copied) and the result is its first `length` bytes.
 */
export async function readExact(src: ByteSource, offset: number, length: number, field: string, into?: Uint8Array): Promise<Uint8Array> {
  if (!Number.isSafeInteger(offset) || !Number.isSafeInteger(length) || offset < 0 || length < 0) {
    throw new VmcoreError('OUT_OF_BOUNDS', `bad read of ${length} bytes`, { file: src.name, offset, field });
  }
  if (offset + length > src.size) {
    throw new VmcoreError('TRUNCATED', `${field} needs ${length} bytes but the file ends at 0x${src.size.toString(16)}`, {
      file: src.name,
      offset,
      field,
    });
  }
  let got: number;
  let b: Uint8Array;
  if (into && into.length >= length) {
    b = into.subarray(0, length);
    if (src.readInto) got = await src.readInto(offset, b);
    else {
      const r = await src.read(offset, length);
      b.set(r.subarray(0, length));
      got = r.length;
    }
  } else {
    b = await src.read(offset, length);
    got = b.length;
  }
  if (got !== length) {
    throw new VmcoreError('TRUNCATED', `short read: ${got} of ${length} bytes`, { file: src.name, offset, field });
  }
  return b;
}

export class BufferSource implements ByteSource {
  readonly size: number;
  constructor(
    private readonly buf: Uint8Array,
    readonly name = 'buffer',
  ) {
    this.size = buf.length;
  }
  async read(offset: number, length: number): Promise<Uint8Array> {
    const end = Math.min(this.size, offset + length);
    return this.buf.subarray(Math.min(offset, end), end);
  }
}

/** A Blob (browser File) as a source. */
export class BlobSource implements ByteSource {
  readonly size: number;
  constructor(
    private readonly blob: Blob,
    readonly name = 'blob',
  ) {
    this.size = blob.size;
  }
  async read(offset: number, length: number): Promise<Uint8Array> {
    const end = Math.min(this.size, offset + length);
    return new Uint8Array(await this.blob.slice(offset, end).arrayBuffer());
  }
}

/** Wraps a source and counts reads and bytes (for tests and diagnostics). */
export class CountingSource implements ByteSource {
  reads = 0;
  bytes = 0;
  constructor(private readonly inner: ByteSource) {}
  get name(): string {
    return this.inner.name;
  }
  get size(): number {
    return this.inner.size;
  }
  async read(offset: number, length: number): Promise<Uint8Array> {
    this.reads++;
    const b = await this.inner.read(offset, length);
    this.bytes += b.length;
    return b;
  }
}
