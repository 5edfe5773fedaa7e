/**
 * Output sinks. Every writer places bytes at absolute offsets of the file it builds; a sink
 * decides how they get there:
 *  - FileSink: positional writes into a temporary file beside OUT, renamed over OUT when
 *    complete and removed on failure; zero ranges are left sparse.
 *  - FlatSink: the makedumpfile -F flattened stream (big-endian {offset, size} records, end
 *    marker), to stdout or to a file (then also via a temporary name).
 */
import { writeSync } from 'node:fs';
import { open, rename, stat, unlink, type FileHandle } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import type { Writable } from 'node:stream';
import { VmcoreError } from '../../core/errors.js';
import { FLAT_HEADER_SIZE, FLAT_SIGNATURE, FLAT_TYPE, FLAT_VERSION, FlatHeader } from '../../core/format/kdump/structs.js';

export interface OutputSink {
  readonly name: string;
  /** Bytes handed to the sink so far (records and padding included). */
  readonly bytesOut: number;
  write(offset: number, bytes: Uint8Array): Promise<void>;
  /** `length` zero bytes at `offset` (a file sink leaves a hole). */
  zeros(offset: number, length: number): Promise<void>;
  /** Complete the output: `size` is the final logical file size. */
  finish(size: number): Promise<void>;
  /** Stop after an error; `keep` keeps what was written (under the final name). */
  abort(keep: boolean, size?: number): Promise<void>;
  /** Cut the output at `size` bytes now (a file; a stream cannot take back what it sent). */
  truncate?(size: number): Promise<void>;
}

/** The error says the device (or the user's quota) is full: ENOSPC, EDQUOT. */
export function isNoSpace(e: unknown): boolean {
  const codeOf = (x: unknown) => (x as NodeJS.ErrnoException | undefined)?.code;
  return ['ENOSPC', 'EDQUOT'].includes(codeOf(e) ?? codeOf((e as { cause?: unknown } | undefined)?.cause) ?? '');
}

export function ioError(e: unknown, file: string, what: string): VmcoreError {
  if (e instanceof VmcoreError) return e;
  const err = e as NodeJS.ErrnoException;
  const msg =
    err?.code === 'ENOSPC'
      ? `no space left on the device while ${what}`
      : err?.code === 'EDQUOT'
        ? `disk quota exceeded while ${what}`
        : err?.code === 'EPIPE'
          ? `output closed while ${what}`
          : `${what}: ${err?.message ?? String(e)}`;
  return new VmcoreError('IO', msg, { file, cause: e });
}

async function exists(path: string): Promise<boolean> {
  try {
    await stat(path);
    return true;
  } catch {
    return false;
  }
}

/**
 * Check OUT before anything is written: refuse to overwrite it unless forced, to write it over
 * one of the inputs, or to replace anything but a regular file (a directory, a device such as
 * /dev/null, a FIFO: the output is renamed into place, which would replace the node itself);
 * and its directory must exist.
 * @throws VmcoreError EXISTS (OUT exists, no force), USAGE (OUT is an input, not a regular
 *         file, empty, or ends in "/"), IO (OUT's directory does not exist or is not a directory)
 */
export async function checkOutput(path: string, force: boolean, inputs: readonly string[]): Promise<void> {
  // a name that names no file: refused before anything is read (it failed at the final rename)
  if (path === '' || path.endsWith('/')) {
    throw new VmcoreError('USAGE', path === '' ? 'the output name is empty' : 'the output name ends in "/": give a file name', path ? { file: path } : {});
  }
  const dir = dirname(path);
  const d = await stat(dir).catch(() => undefined);
  if (!d?.isDirectory()) throw new VmcoreError('IO', d ? `${dir} is not a directory` : `the directory ${dir} does not exist`, { file: path });
  if (await exists(path)) {
    const o = await stat(path);
    for (const i of inputs) {
      try {
        const s = await stat(i);
        if (s.ino === o.ino && s.dev === o.dev) throw new VmcoreError('USAGE', 'output is one of the inputs; refusing to overwrite it', { file: path });
      } catch (e) {
        if (e instanceof VmcoreError) throw e;
      }
    }
    if (!o.isFile()) {
      const what = o.isDirectory() ? 'a directory' : o.isFIFO() ? 'a FIFO' : o.isCharacterDevice() || o.isBlockDevice() ? 'a device' : 'not a regular file';
      throw new VmcoreError('USAGE', `output is ${what}: vmcore writes a regular file, renamed into place (for standard output, give -)`, { file: path });
    }
    if (!force) throw new VmcoreError('EXISTS', 'output exists (use --force to overwrite it)', { file: path });
  }
}

function tempName(path: string): string {
  return join(dirname(path), `.${basename(path)}.partial-${process.pid}-${Math.random().toString(36).slice(2, 8)}`);
}

export class FileSink implements OutputSink {
  bytesOut = 0;
  private done = false;
  private constructor(
    readonly name: string,
    private readonly temp: string,
    private readonly fh: FileHandle,
  ) {}

  static async create(path: string): Promise<FileSink> {
    const temp = tempName(path);
    let fh: FileHandle;
    try {
      fh = await open(temp, 'wx', 0o644);
    } catch (e) {
      throw ioError(e, path, 'creating the output');
    }
    return new FileSink(path, temp, fh);
  }

  async write(offset: number, bytes: Uint8Array): Promise<void> {
    let done = 0;
    try {
      while (done < bytes.length) {
        // synchronous pwrite(2), as FileSource reads: into the page cache, no thread-pool hops
        const bytesWritten = writeSync(this.fh.fd, bytes, done, bytes.length - done, offset + done);
        if (bytesWritten <= 0) throw Object.assign(new Error('write returned 0'), { code: 'ENOSPC' });
        done += bytesWritten;
      }
    } catch (e) {
      throw ioError(e, this.name, `writing ${bytes.length} bytes at offset 0x${offset.toString(16)}`);
    }
    this.bytesOut += bytes.length;
  }

  async zeros(): Promise<void> {
    /* sparse: the final truncate or a later write extends the file */
  }

  async truncate(size: number): Promise<void> {
    try {
      await this.fh.truncate(size);
    } catch (e) {
      throw ioError(e, this.name, `cutting the output at ${size} bytes`);
    }
  }

  async finish(size: number): Promise<void> {
    try {
      await this.fh.truncate(size);
      await this.fh.close();
      this.done = true;
      await rename(this.temp, this.name);
    } catch (e) {
      await this.abort(false);
      throw ioError(e, this.name, 'completing the output');
    }
  }

  async abort(keep: boolean, size?: number): Promise<void> {
    if (!this.done) {
      this.done = true;
      try {
        if (keep && size !== undefined) await this.fh.truncate(size);
      } catch {
        /* keep what is there */
      }
      await this.fh.close().catch(() => undefined);
    }
    if (keep) await rename(this.temp, this.name).catch(() => undefined);
    else await unlink(this.temp).catch(() => undefined);
  }
}

const FLAT_REC_MAX = 1 << 20;

/** makedumpfile -F stream writer over a Writable (stdout or a file stream). */
export class FlatSink implements OutputSink {
  bytesOut = 0;
  private started = false;
  private closed = false;
  private error: unknown;

  constructor(
    readonly name: string,
    private readonly out: Writable,
    private readonly onDone?: (ok: boolean, keep: boolean) => Promise<void>,
  ) {
    out.on('error', (e) => {
      this.error = e;
    });
  }

  static async toFile(path: string): Promise<FlatSink> {
    const temp = tempName(path);
    const { createWriteStream } = await import('node:fs');
    const ws = createWriteStream(temp, { flags: 'wx', mode: 0o644 });
    await new Promise<void>((res, rej) => {
      ws.once('open', () => res());
      ws.once('error', (e) => rej(ioError(e, path, 'creating the output')));
    });
    return new FlatSink(path, ws, async (ok, keep) => {
      await new Promise<void>((res) => ws.end(() => res()));
      if (ok || keep) await rename(temp, path);
      else await unlink(temp).catch(() => undefined);
    });
  }

  private async push(b: Uint8Array): Promise<void> {
    if (this.error) throw ioError(this.error, this.name, 'writing the flattened stream');
    this.bytesOut += b.length;
    if (!this.out.write(b)) {
      await new Promise<void>((res, rej) => {
        const done = (e?: unknown) => {
          this.out.off('drain', onDrain);
          this.out.off('error', onErr);
          this.out.off('close', onClose);
          if (e) rej(ioError(e, this.name, 'writing the flattened stream'));
          else res();
        };
        const onDrain = () => done();
        const onErr = (e: unknown) => done(e);
        const onClose = () => done(Object.assign(new Error('output closed'), { code: 'EPIPE' }));
        this.out.on('drain', onDrain);
        this.out.on('error', onErr);
        this.out.on('close', onClose);
      });
    }
  }

  private async start(): Promise<void> {
    if (this.started) return;
    this.started = true;
    const h = new Uint8Array(FLAT_HEADER_SIZE);
    FlatHeader.write({ signature: FLAT_SIGNATURE, type: FLAT_TYPE, version: FLAT_VERSION }, h, 0, false);
    await this.push(h);
  }

  private record(offset: number, size: number): Uint8Array {
    const r = new Uint8Array(16);
    const dv = new DataView(r.buffer);
    dv.setBigInt64(0, BigInt(offset), false);
    dv.setBigInt64(8, BigInt(size), false);
    return r;
  }

  async write(offset: number, bytes: Uint8Array): Promise<void> {
    await this.start();
    for (let p = 0; p < bytes.length; p += FLAT_REC_MAX) {
      const n = Math.min(FLAT_REC_MAX, bytes.length - p);
      await this.push(this.record(offset + p, n));
      // copy: the caller may reuse its buffer as soon as we return
      await this.push(bytes.slice(p, p + n));
    }
  }

  async zeros(offset: number, length: number): Promise<void> {
    const z = new Uint8Array(Math.min(length, FLAT_REC_MAX));
    for (let p = 0; p < length; p += z.length) await this.write(offset + p, z.subarray(0, Math.min(z.length, length - p)));
  }

  async finish(): Promise<void> {
    await this.start();
    await this.push(new Uint8Array(16).fill(0xff));
    this.closed = true;
    await this.onDone?.(true, false);
  }

  async abort(keep: boolean): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    if (keep && this.started && !this.error) {
      try {
        await this.push(new Uint8Array(16).fill(0xff));
      } catch {
        /* ignore */
      }
    }
    await this.onDone?.(false, keep).catch(() => undefined);
  }
}
