/**
 * A pool of compression workers. Batches go out as transferred ArrayBuffers to the first idle
 * worker (or wait in a queue); `submit` returns at once with a promise of that batch's result.
 * The pool does not bound or order anything itself: callers keep a bounded number of batches
 * in flight and await the results in submission order, so output stays in page order and a
 * slow consumer (disk writes) holds back the producer.
 */
import type { Worker } from 'node:worker_threads';
import { VmcoreError } from '../../core/errors.js';
import type { CompressedBatch } from '../../core/format/batch.js';
import { compressBatchInPlace, nativeBatchCompressor, nativeFileCompressor, pageCompressor, passStoredBatch, type FilePages, type WorkerConfig } from './page-codec.js';
import type { StoredPages } from '../../core/format/kdump/reader.js';
import { nodeCodecs } from '../codecs.js';
import { prestartWorkers, releasePrestarted, takeWorker } from './prestart.js';

export interface BatchIn {
  startPfn: number;
  count: number;
  /** count * pageSize bytes, owned by the pool from now on (it is transferred). */
  buf: ArrayBuffer;
  /** The pages in their stored (kdump) form: the worker makes the result from them (passStoredBatch). */
  stored?: StoredPages;
  /**
   * `stored.blob` starts an ArrayBuffer made for this batch alone: it is transferred as it is
   * (and comes back as BatchOut.storedBuffer) instead of copied.
   */
  storedOwned?: boolean;
  /**
   * The pages are in this file (`buf` only receives the result): read by the thread that
   * compresses them. Only when `readsFiles`; the descriptor stays open until the result is in.
   */
  file?: FilePages;
}

/**
 * A batch's stored pages did not all decode to one page each: read that batch on the calling
 * thread (which reports the damaged page) and submit it again.
 */
export class StoredDecodeError extends Error {
  constructor(readonly startPfn: number, readonly index: number) {
    super(`stored page ${index} of the batch at pfn 0x${startPfn.toString(16)} does not decode`);
  }
}

/**
 * `stored` with its blob copied into an ArrayBuffer of its own, to be transferred (the reader's
 * bytes may be a view of a cached read-ahead block, which must not be detached).
 */
function ownBlob(stored: StoredPages): StoredPages {
  return { ...stored, blob: new Uint8Array(stored.blob) }; // a copy (Buffer.slice would be a view)
}

export interface BatchOut extends CompressedBatch {
  /** The underlying buffer, free for reuse once `data` has been written. */
  buffer: ArrayBuffer;
  /** The buffer of the batch's stored form (BatchIn.stored), free for reuse. */
  storedBuffer?: ArrayBuffer;
}

interface Pending {
  startPfn: number;
  count: number;
  resolve: (b: BatchOut) => void;
  reject: (e: Error) => void;
  promise: Promise<BatchOut>;
}

/**
 * Start up to `n` compression worker threads now, before any pool needs them, so that their
 * start (a Node isolate and the codec modules: ~0.2 s each, mostly on their own threads) overlaps
 * work the calling thread does first (convert's kernel analysis). The next CompressPool takes
 * them instead of starting its own (prestart.ts: unref'd until taken, releaseSpareWorkers ends
 * them; one that exits early is dropped). n: 0..16 (more is clipped); returns how many spares
 * there are now.
 */
export function prestartCompressWorkers(n: number): number {
  return prestartWorkers('compress-worker', n);
}

/** End the prestarted workers no pool took (a conversion that ran without workers). */
export function releaseSpareWorkers(): Promise<void> {
  return releasePrestarted('compress-worker');
}

export class CompressPool {
  private readonly workers: Worker[] = [];
  private readonly idle: Worker[] = [];
  private readonly queue: { id: number; buf: ArrayBuffer; count: number; stored?: StoredPages; file?: FilePages }[] = [];
  private readonly pending = new Map<number, Pending>();
  private readonly byWorker = new Map<Worker, number>();
  private nextId = 0;
  private failed: Error | undefined;
  private readonly inline: ((page: Uint8Array, out: Uint8Array, outOff: number) => number) | undefined;
  private readonly inlineBatch: ReturnType<typeof nativeBatchCompressor>;
  private readonly inlineFile: ReturnType<typeof nativeFileCompressor>;
  /**
   * Batches may come as their place in a file (BatchIn.file): the native addon reads and
   * compresses them on the thread that does the work (nativeFileCompressor).
   */
  readonly readsFiles: boolean;

  /** threads = 0 compresses on the calling thread (no workers). */
  constructor(
    private readonly cfg: WorkerConfig,
    readonly threads: number,
  ) {
    this.inlineFile = nativeFileCompressor(cfg);
    this.readsFiles = this.inlineFile !== undefined;
    if (threads === 0) {
      this.inline = pageCompressor(cfg);
      this.inlineBatch = nativeBatchCompressor(cfg);
    }
  }

  /**
   * The worker threads, started with the first batch (a conversion that compresses nothing starts
   * none), or taken from those prestartCompressWorkers started.
   */
  private start(): void {
    const { cfg, threads } = this;
    for (let i = 0; i < threads; i++) {
      const w = takeWorker('compress-worker');
      w.postMessage({ init: cfg });
      w.on('message', (m: { id: number; error?: string; decodeFailed?: number; buf: ArrayBuffer; count: number; kinds: ArrayBuffer; sizes: ArrayBuffer; dataLen: number; blob?: ArrayBuffer }) => {
        this.byWorker.delete(w);
        const p = this.pending.get(m.id);
        this.pending.delete(m.id);
        if (p) {
          if (m.decodeFailed !== undefined) p.reject(new StoredDecodeError(p.startPfn, m.decodeFailed));
          else if (m.error) p.reject(new VmcoreError('IO', `compression failed at pfn 0x${p.startPfn.toString(16)}: ${m.error}`));
          else
            p.resolve({
              startPfn: p.startPfn,
              count: m.count,
              kinds: new Uint8Array(m.kinds),
              sizes: new Uint32Array(m.sizes),
              data: new Uint8Array(m.buf, 0, m.dataLen),
              buffer: m.buf,
              ...(m.blob ? { storedBuffer: m.blob } : {}),
            });
        }
        this.dispatch(w);
      });
      w.on('error', (e) => this.fail(e));
      w.on('exit', (code) => {
        this.exited.add(w);
        if (code !== 0 && !this.closing) this.fail(new Error(`compression worker exited with code ${code}`));
      });
      this.workers.push(w);
      this.idle.push(w);
    }
  }

  private closing = false;
  private readonly exited = new Set<Worker>();

  /** close() was called, or a worker failed: nothing more is compressed. */
  get ended(): boolean {
    return this.closing || this.failed !== undefined;
  }

  private fail(e: Error): void {
    if (this.failed) return;
    this.failed = e instanceof VmcoreError ? e : new VmcoreError('IO', `compression worker failed: ${e.message}`, { cause: e });
    for (const p of this.pending.values()) p.reject(this.failed);
    this.pending.clear();
  }

  private dispatch(w: Worker): void {
    const j = this.queue.shift();
    if (!j) {
      this.idle.push(w);
      return;
    }
    this.byWorker.set(w, j.id);
    w.postMessage({ job: j }, j.stored ? [j.buf, j.stored.blob.buffer as ArrayBuffer] : [j.buf]);
  }

  /** Start compressing a batch; returns its result promise (results are awaited in order by the caller). */
  submit(b: BatchIn): Promise<BatchOut> {
    if (this.failed) return Promise.reject(this.failed);
    if (this.inline !== undefined || this.threads === 0) {
      try {
        return Promise.resolve(this.runInline(b));
      } catch (e) {
        return Promise.reject(e as Error);
      }
    }
    if (this.workers.length === 0) this.start();
    const id = this.nextId++;
    let resolve!: (x: BatchOut) => void;
    let reject!: (e: Error) => void;
    const promise = new Promise<BatchOut>((res, rej) => {
      resolve = res;
      reject = rej;
    });
    promise.catch(() => undefined); // surfaced when awaited
    this.pending.set(id, { startPfn: b.startPfn, count: b.count, resolve, reject, promise });
    this.queue.push({ id, buf: b.buf, count: b.count, ...(b.stored ? { stored: b.storedOwned ? b.stored : ownBlob(b.stored) } : {}), ...(b.file ? { file: b.file } : {}) });
    const w = this.idle.pop();
    if (w) this.dispatch(w);
    return promise;
  }

  private scratch: Uint8Array | undefined;

  private runInline(b: BatchIn): BatchOut {
    const buf = new Uint8Array(b.buf);
    if (b.stored) {
      this.scratch ??= new Uint8Array(this.cfg.pageSize);
      const r = passStoredBatch(b.stored, buf, this.cfg, this.inline, this.scratch, (n) => nodeCodecs().get(n));
      if ('bad' in r) throw new StoredDecodeError(b.startPfn, r.bad);
      const storedBuffer = b.storedOwned ? (b.stored.blob.buffer as ArrayBuffer) : undefined;
      return { startPfn: b.startPfn, count: b.count, kinds: r.kinds, sizes: r.sizes, data: buf.subarray(0, r.dataLen), buffer: b.buf, ...(storedBuffer ? { storedBuffer } : {}) };
    }
    if (b.file) {
      if (!this.inlineFile) throw new VmcoreError('IO', 'this installation cannot read pages from a file in the native addon');
      const r = this.inlineFile(b.file, b.count, buf);
      return { startPfn: b.startPfn, count: b.count, kinds: r.kinds, sizes: r.sizes, data: buf.subarray(0, r.dataLen), buffer: b.buf };
    }
    const { kinds, sizes, dataLen } = this.inlineBatch ? this.inlineBatch(buf, b.count) : compressBatchInPlace(buf, b.count, this.cfg, this.inline);
    return { startPfn: b.startPfn, count: b.count, kinds, sizes, data: buf.subarray(0, dataLen), buffer: b.buf };
  }

  /**
   * Stop the workers. Jobs not started are dropped (their promises reject); a worker busy with a
   * job is terminated only once it has answered: terminating a thread inside node:zlib's
   * synchronous code (a zlib handle made but not yet initialised) aborts the whole process
   * (Node 20, node_zlib.cc "close before init"). A job is at most one batch, so this waits
   * milliseconds.
   */
  async close(): Promise<void> {
    this.closing = true;
    const dropped = new VmcoreError('IO', 'the compression pool was closed');
    for (const j of this.queue.splice(0)) {
      this.pending.get(j.id)?.reject(dropped);
      this.pending.delete(j.id);
    }
    await Promise.all(
      this.workers.map(async (w) => {
        if (this.byWorker.has(w) && !this.exited.has(w)) await new Promise<void>((res) => {
          const done = () => res();
          w.once('message', done);
          w.once('exit', done);
        });
        await w.terminate();
      }),
    );
  }
}
