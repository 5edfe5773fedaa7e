/** Positional-read file source: never loads a whole file. */
import { open, type FileHandle } from 'node:fs/promises';
import type { ByteSource } from '../core/io/source.js';
import { VmcoreError } from '../core/errors.js';

export class FileSource implements ByteSource {
  private constructor(
    private readonly fh: FileHandle,
    readonly name: string,
    readonly size: number,
  ) {}

  static async open(path: string): Promise<FileSource> {
    let fh: FileHandle;
    try {
      fh = await open(path, 'r');
    } catch (e) {
      throw new VmcoreError('IO', `cannot open: ${(e as Error).message}`, { file: path, cause: e });
    }
    const st = await fh.stat();
    if (!st.isFile() && !st.isBlockDevice()) {
      await fh.close();
      throw new VmcoreError('IO', 'not a regular file (for pipes, use a stream reader)', { file: path });
    }
    return new FileSource(fh, path, st.size);
  }

  async read(offset: number, length: number): Promise<Uint8Array> {
    const end = Math.min(this.size, offset + length);
    if (offset >= end) return new Uint8Array(0);
    const buf = Buffer.allocUnsafe(end - offset);
    let got = 0;
    while (got < buf.length) {
      const { bytesRead } = await this.fh.read(buf, got, buf.length - got, offset + got);
      if (bytesRead === 0) break;
      got += bytesRead;
    }
    return got === buf.length ? buf : buf.subarray(0, got);
  }

  async close(): Promise<void> {
    await this.fh.close();
  }
}
