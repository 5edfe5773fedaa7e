/**
 * Read every present page of a dump in pfn order with decompression spread over worker
 * threads (each opens the files itself). Memory is bounded: at most `4 × threads` jobs of
 * `jobPages` pages are in flight. The workers return the pages laid out as the digest hashes
 * them (pfn, page), zero pages already counted, so this thread only hashes.
 */
import { InFlight } from '../core/inflight.js';
import { Worker } from 'node:worker_threads';
import { availableParallelism } from 'node:os';
import { THREADS_PER_CORE } from './threads.js';
import { VmcoreError, type ErrorCode } from '../core/errors.js';
import { isPresent, type Dump } from '../core/dump.js';
import { unreadablePages, type Hasher, type MemoryDigest } from '../core/hash.js';
import type { ReadJob, ReadResult } from './workers/read-worker.js';
import { workerUrl } from './workers/url.js';
import { WORKER_OPTIONS } from './workers/prestart.js';

interface JobSpec {
  runs: number[];
  pages: number;
}

async function* jobs(dump: Dump, jobPages: number): AsyncGenerator<JobSpec> {
  let cur: JobSpec = { runs: [], pages: 0 };
  for await (const r of dump.pageRuns(0, dump.maxPfn)) {
    if (!isPresent(r.state)) continue;
    for (let s = r.startPfn; s < r.endPfn; ) {
      const n = Math.min(r.endPfn - s, jobPages - cur.pages);
      cur.runs.push(s, s + n, r.state === 'zero' ? 1 : 0);
      cur.pages += n;
      s += n;
      if (cur.pages === jobPages) {
        yield cur;
        cur = { runs: [], pages: 0 };
      }
    }
  }
  if (cur.pages) yield cur;
}

export interface ParallelHashOptions {
  skipZero?: boolean;
  threads?: number;
  jobPages?: number;
  hasher: () => Hasher;
  /** Called after each job with the highest pfn hashed so far and max_mapnr. */
  onProgress?: (pfnDone: number, maxPfn: number) => void;
}

/**
 * `hashMemory` with worker threads reading and decompressing: the same digest (pages are fed in
 * pfn order). `paths` are the files `dump` was opened from (each worker opens its own).
 * @throws the errors of `hashMemory` and of opening `paths` (IO).
 */
export async function hashDumpParallel(dump: Dump, paths: string[], opts: ParallelHashOptions): Promise<MemoryDigest> {
  const threads = Math.max(1, Math.min(opts.threads ?? availableParallelism(), THREADS_PER_CORE * Math.max(1, availableParallelism())));
  const jobPages = opts.jobPages ?? 512;
  const ps = dump.pageSize;
  const url = workerUrl('read-worker');
  // a small young generation per worker: pages are short-lived, and the nursery is what RSS is made of
  const workers = Array.from({ length: threads }, () => new Worker(url, { workerData: { paths }, ...WORKER_OPTIONS['read-worker'] }));
  const exited = workers.map((w) => new Promise<void>((res) => w.once('exit', () => res())));
  const ready = workers.map((w) => new Promise<void>((res, rej) => {
    w.once('message', () => res());
    w.once('error', rej);
  }));
  const h = opts.hasher();
  const rs = 8 + ps; // one record: the pfn (8 bytes, little-endian) and the page
  let pages = 0;
  let zeroPages = 0;
  let missing = 0;
  interface Done {
    buf: ArrayBuffer;
    hashed: number;
    zero: number;
  }
  try {
    await Promise.all(ready);
    const results = new Map<number, { resolve: (d: Done) => void; reject: (e: Error) => void }>();
    for (const w of workers) {
      w.on('message', (m: ReadResult) => {
        const r = results.get(m.id);
        if (!r) return;
        results.delete(m.id);
        if (m.error) r.reject(VmcoreError.fromJSON(m.error as { code: ErrorCode; message: string }));
        else r.resolve({ buf: m.buf!, hashed: m.hashed!, zero: m.zero! });
      });
    }
    for await (const r of dump.pageRuns(0, dump.maxPfn)) if (r.state === 'missing') missing += r.endPfn - r.startPfn;
    let id = 0;
    const spare: ArrayBuffer[] = []; // hashed buffers, handed back to the workers for reuse
    const inflight = new InFlight<{ spec: JobSpec; done: Done }>(4 * threads, ({ spec, done }) => {
      h.update(new Uint8Array(done.buf, 0, done.hashed * rs));
      pages += done.hashed;
      zeroPages += done.zero;
      if (spare.length < 4 * threads) spare.push(done.buf);
      const last = spec.runs[spec.runs.length - 2];
      if (opts.onProgress && last !== undefined) opts.onProgress(last, dump.maxPfn);
    });
    for await (const spec of jobs(dump, jobPages)) {
      const jid = id++;
      const promise = new Promise<Done>((resolve, reject) => results.set(jid, { resolve, reject }));
      promise.catch(() => undefined);
      const reuse = spare.pop();
      const job: ReadJob = { id: jid, runs: spec.runs, pages: spec.pages, skipZero: !!opts.skipZero, ...(reuse ? { reuse } : {}) };
      workers[jid % threads]!.postMessage(job, reuse ? [reuse] : []);
      await inflight.push(promise.then((done) => ({ spec, done })));
    }
    await inflight.drain();
    const lost = await unreadablePages(dump, missing);
    return { sha256: h.digestHex(), pages, zeroPages, missingPages: lost.missing, damagedPages: lost.damaged };
  } finally {
    // 'close' runs after the jobs already sent, then the worker exits by itself; a worker is
    // never terminated inside a job (node:zlib's synchronous code would abort the process)
    for (const w of workers) w.postMessage('close');
    await Promise.all(exited);
  }
}
