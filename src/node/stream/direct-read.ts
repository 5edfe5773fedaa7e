/**
 * Reading a one-pass stream (a FIFO QEMU writes into, a pipe, standard input) straight into the
 * caller's buffers: the converter's page batches are filled by the read system calls themselves,
 * with no intermediate chunk and no copy.
 *
 * A pipe or socket is read through a libuv stream whose reads land in a buffer the reader names
 * (net.Socket `onread`, Node's user-buffer mode): while `readFull(dst)` waits, each read goes
 * into the unfilled rest of `dst`. Bytes that arrive while no `readFull` waits (between two
 * batches) go into a small parking buffer and are copied into the next destination; more than
 * `PARK_LIMIT` of them pause the stream (bounded memory). A regular file or character device is
 * read with positional-free `fs.read` into `dst`.
 */
import net from 'node:net';
import { nativeAddon } from '../native.js';
import { constants as fsc, fstat, open as openFd, read as readFd, close as closeFd } from 'node:fs';

/** A byte stream read once, in order, into buffers the caller provides. */
export interface DirectByteStream {
  /**
   * Fill `dst` from the stream; resolves with the number of bytes read, which is `dst.length`
   * unless the stream ended first (then the rest of `dst` is left as it was).
   * Rejects with the stream's error.
   */
  readFull(dst: Uint8Array): Promise<number>;
  /** Stop reading and release the descriptor. */
  close(): void;
}

/** Parked bytes (arrived while no destination waits) beyond which the stream pauses. */
const PARK_LIMIT = 1 << 20;
const PARK_CHUNK = 64 << 10;

/** A pipe, FIFO or socket descriptor read with libuv into the caller's buffers (see the module comment). */
class SocketReader implements DirectByteStream {
  readonly socket: net.Socket;
  private target: Uint8Array | undefined;
  private got = 0;
  private resolve: ((n: number) => void) | undefined;
  private reject: ((e: Error) => void) | undefined;
  /** Bytes read while no target waited, in order. */
  private parked: Uint8Array[] = [];
  private parkedBytes = 0;
  /** A reusable parking buffer, free when none of `parked` is a view of it. */
  private park: Uint8Array | undefined = new Uint8Array(PARK_CHUNK);
  private parkBuf = this.park!.buffer;
  private ended = false;
  private error: Error | undefined;
  private paused = false;

  constructor(fd: number) {
    // `onread` (user-buffer reads) is documented for net.Socket but missing from its options type
    const onread = { buffer: () => this.nextBuffer(), callback: (n: number, buf: Uint8Array) => this.onRead(n, buf) };
    this.socket = new net.Socket({ fd, readable: true, writable: false, onread } as net.SocketConstructorOpts);
    this.socket.on('end', () => {
      this.ended = true;
      this.settle();
    });
    this.socket.on('close', () => {
      this.ended = true;
      this.settle();
    });
    this.socket.on('error', (e) => {
      this.error = e;
      this.settle();
    });
  }

  /** Where the next read goes: the rest of the waiting destination, else a parking buffer. */
  private nextBuffer(): Uint8Array {
    if (this.target && this.got < this.target.length) return this.target.subarray(this.got);
    if (this.park) {
      const p = this.park;
      this.park = undefined; // lent to the next read
      return p;
    }
    return new Uint8Array(PARK_CHUNK);
  }

  private onRead(n: number, buf: Uint8Array): boolean {
    const t = this.target;
    if (t && buf.buffer === t.buffer && buf.byteOffset === t.byteOffset + this.got) {
      this.got += n;
    } else {
      this.parked.push(buf.subarray(0, n));
      this.parkedBytes += n;
      if (t) this.unpark();
    }
    if (t && this.got === t.length) this.settle();
    if (!this.target && this.parkedBytes >= PARK_LIMIT) {
      this.paused = true;
      return false;
    }
    return true;
  }

  /** Copy parked bytes into the waiting destination. */
  private unpark(): void {
    const t = this.target!;
    while (this.parked.length && this.got < t.length) {
      const p = this.parked[0]!;
      const k = Math.min(p.length, t.length - this.got);
      t.set(p.subarray(0, k), this.got);
      this.got += k;
      this.parkedBytes -= k;
      if (k === p.length) {
        this.parked.shift();
        if (p.buffer === this.parkBuf) this.park = new Uint8Array(this.parkBuf);
      } else this.parked[0] = p.subarray(k);
    }
  }

  private settle(): void {
    const t = this.target;
    if (!t) return;
    if (this.got < t.length && !this.ended && !this.error) return;
    const res = this.resolve!;
    const rej = this.reject!;
    const got = this.got;
    this.target = this.resolve = this.reject = undefined;
    if (this.error && got < t.length) rej(this.error);
    else res(got);
  }

  readFull(dst: Uint8Array): Promise<number> {
    if (this.target) return Promise.reject(new Error('readFull: a read is already waiting'));
    this.target = dst;
    this.got = 0;
    this.unpark();
    return new Promise<number>((res, rej) => {
      this.resolve = res;
      this.reject = rej;
      this.settle();
      if (this.target && this.paused) {
        this.paused = false;
        this.socket.resume();
      }
    });
  }

  close(): void {
    this.socket.destroy();
  }
}

/** A regular file or character device descriptor read with fs.read (the thread pool). */
class FdReader implements DirectByteStream {
  private closed = false;
  constructor(private readonly fd: number, private readonly own: boolean) {}

  async readFull(dst: Uint8Array): Promise<number> {
    let got = 0;
    while (got < dst.length) {
      const n = await new Promise<number>((res, rej) => readFd(this.fd, dst, got, dst.length - got, null, (e, k) => (e ? rej(e) : res(k))));
      if (n === 0) break;
      got += n;
    }
    return got;
  }

  close(): void {
    if (this.closed || !this.own) return;
    this.closed = true;
    closeFd(this.fd, () => undefined);
  }
}

/**
 * A direct reader of descriptor `fd`: libuv stream reads for a pipe, FIFO or socket (the
 * descriptor must be non-blocking or will be made so by libuv), fs.read otherwise. `own`: close
 * the descriptor with the reader (a socket always closes it).
 */
export async function directReader(fd: number, own = true): Promise<DirectByteStream> {
  const st = await new Promise<import('node:fs').Stats>((res, rej) => fstat(fd, (e, s) => (e ? rej(e) : res(s))));
  if (st.isFIFO()) growPipe(fd); // a pipe from a shell (`makedumpfile -F | vmcore convert -`) as QEMU's FIFO
  if (st.isFIFO() || st.isSocket()) return new SocketReader(fd);
  return new FdReader(fd, own);
}

/** The pipe capacity asked for a FIFO vmcore reads (fcntl F_SETPIPE_SZ; Linux's default limit for a process without CAP_SYS_RESOURCE, /proc/sys/fs/pipe-max-size). */
export const FIFO_PIPE_BYTES = 1 << 20;

/**
 * Grow the pipe behind `fd` to FIFO_PIPE_BYTES when the native addon can (fcntl F_SETPIPE_SZ,
 * pipe(7)): a writer that writes a page per write() (QEMU's dump) then fills more of the pipe
 * between two reads, and each read takes up to 1 MiB instead of 64 KiB. Without the addon, or
 * refused, the pipe keeps its size. Returns the pipe's capacity in bytes, or 0 when unknown.
 */
export function growPipe(fd: number): number {
  const r = nativeAddon()?.pipeSize?.(fd, FIFO_PIPE_BYTES) ?? 0;
  return r > 0 ? r : 0;
}

/** Open a FIFO's read end without blocking (the writer may come later) and read it directly. */
export async function openFifoDirect(path: string): Promise<DirectByteStream> {
  const fd = await new Promise<number>((res, rej) => openFd(path, fsc.O_RDONLY | fsc.O_NONBLOCK, (e, d) => (e ? rej(e) : res(d))));
  growPipe(fd);
  return new SocketReader(fd);
}

export function isDirectByteStream(x: unknown): x is DirectByteStream {
  return typeof (x as Partial<DirectByteStream>)?.readFull === 'function';
}
