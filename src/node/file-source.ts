/** Positional-read file source: never loads a whole file. */
import { open, stat, type FileHandle } from 'node:fs/promises';
import { createReadStream, fstat, readSync, type Stats } from 'node:fs';
import { directReader, openFifoDirect, type DirectByteStream } from './stream/direct-read.js';
import type { ByteSource } from '../core/io/source.js';
import { VmcoreError } from '../core/errors.js';

export class FileSource implements ByteSource {
  private reads = 0;
  private constructor(
    private readonly fh: FileHandle,
    readonly name: string,
    readonly size: number,
  ) {}

  /**
   * Opens a regular file or block device for positional reads. Throws VmcoreError IO when it
   * cannot be opened, NOT_SEEKABLE for "-" (standard input), a FIFO, a socket or a character
   * device (see `isStreamPath`: those are read by the one-pass readers, stream/kdump-stream.ts).
   */
  static async open(path: string): Promise<FileSource> {
    if (path === '-') throw notSeekable(path);
    let fh: FileHandle;
    try {
      fh = await open(path, 'r');
    } catch (e) {
      throw new VmcoreError('IO', `cannot open: ${(e as Error).message}`, { file: path, cause: e });
    }
    const st = await fh.stat();
    if (!st.isFile() && !st.isBlockDevice()) {
      await fh.close();
      if (st.isFIFO() || st.isSocket() || st.isCharacterDevice()) throw notSeekable(path, st.isCharacterDevice() ? 'a character device' : st.isSocket() ? 'a socket' : 'a pipe');
      throw new VmcoreError('IO', st.isDirectory() ? 'is a directory' : 'not a regular file', { file: path });
    }
    return new FileSource(fh, path, st.size);
  }

  async read(offset: number, length: number): Promise<Uint8Array> {
    const end = Math.min(this.size, offset + length);
    if (offset >= end) return new Uint8Array(0);
    const buf = Buffer.allocUnsafe(end - offset);
    const got = await this.readInto(offset, buf);
    return got === buf.length ? buf : buf.subarray(0, got);
  }

  /**
   * Positional reads into `dst` until it is full or the file ends; returns the bytes read.
   * Synchronous pread(2) on the calling thread: a regular file's pages come from the page cache
   * in microseconds, where a read through libuv's thread pool costs two thread hand-offs and, with
   * its four threads on two cores, lock contention in the kernel (measured: `convert -l -d 1` of
   * the 4 GiB bench guest's ELF 4.1-4.4 s instead of 5.3-5.7 s, bench/README.md).
   */
  async readInto(offset: number, dst: Uint8Array): Promise<number> {
    // synchronous reads never return to the event loop by themselves: every 256th read does,
    // so that a signal (Ctrl-C) still ends a long scan
    if (++this.reads === 256) {
      this.reads = 0;
      await new Promise<void>((r) => setImmediate(r));
    }
    const want = Math.max(0, Math.min(dst.length, this.size - offset));
    let got = 0;
    while (got < want) {
      const bytesRead = readSync(this.fh.fd, dst, got, want - got, offset + got);
      if (bytesRead === 0) break;
      got += bytesRead;
    }
    return got;
  }

  async close(): Promise<void> {
    await this.fh.close();
  }
}

function notSeekable(path: string, kind = 'a pipe'): VmcoreError {
  const what = path === '-'
    ? "it is read once, in order, whether a pipe or a redirected file; only convert and hash read a dump from it (give the file's path)"
    : `${kind} cannot be read at random offsets; only convert and hash read a dump from a pipe or a device, once, in order (save it to a file first)`;
  return new VmcoreError('NOT_SEEKABLE', what, {
    file: path === '-' ? 'standard input' : path,
  });
}

/** True for "-" (standard input) and for a path that names a FIFO, socket or character device: input read once, in order. */
export async function isStreamPath(path: string): Promise<boolean> {
  if (path === '-') return true;
  try {
    const st = await stat(path);
    return st.isFIFO() || st.isSocket() || st.isCharacterDevice();
  } catch {
    return false;
  }
}

/**
 * The bytes of a stream path, read straight into the reader's buffers where the descriptor
 * allows it (stream/direct-read.ts): "-" is standard input (a pipe, FIFO, socket or regular
 * file directly; a terminal through process.stdin), else the path (a FIFO directly).
 */
export async function streamOf(path: string): Promise<AsyncIterable<Uint8Array> | DirectByteStream> {
  if (path === '-') {
    const st = await new Promise<Stats>((res, rej) => fstat(0, (e, s) => (e ? rej(e) : res(s))));
    if (st.isFIFO() || st.isSocket() || st.isFile()) return directReader(0, false);
    return process.stdin;
  }
  if ((await stat(path)).isFIFO()) return openFifoDirect(path);
  return createReadStream(path, { highWaterMark: 1 << 20 });
}
