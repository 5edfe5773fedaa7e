/**
 * Compression worker: receives batches of raw pages (transferred ArrayBuffers), classifies each
 * page (zero / raw / compressed) and compresses it in place: page i's stored bytes are written
 * at or before offset i * pageSize of the same buffer, so no second buffer is needed. The
 * buffer goes back to the main thread with the per-page kinds and sizes (transferred too).
 * A batch from a kdump input may come in its stored form: the worker decodes each page once
 * (to check it and find zero pages) and writes the pages stored in the output's codec as they
 * are, compressing only the others (passStoredBatch); the stored form's buffer goes back too.
 */
import { parentPort } from 'node:worker_threads';
import { compressBatchInPlace, nativeBatchCompressor, pageCompressor, passStoredBatch, type WorkerConfig } from './page-codec.js';
import type { StoredPages } from '../../core/format/kdump/reader.js';
import { nodeCodecs } from '../codecs.js';

interface Job {
  id: number;
  buf: ArrayBuffer;
  count: number;
  /** The pages as a kdump input stores them: the result is made from them into buf. */
  stored?: StoredPages;
}

if (!parentPort) throw new Error('compress-worker must run in a worker thread');
const port = parentPort;
let compress: ((page: Uint8Array, out: Uint8Array, outOff: number) => number) | undefined;
let batch: ReturnType<typeof nativeBatchCompressor>;
let cfg: WorkerConfig | undefined;
let scratch = new Uint8Array(0);
const codec = (n: Parameters<ReturnType<typeof nodeCodecs>['get']>[0]) => nodeCodecs().get(n);

port.on('message', (m: { init?: WorkerConfig; job?: Job }) => {
  if (m.init) {
    cfg = m.init;
    compress = pageCompressor(cfg);
    batch = nativeBatchCompressor(cfg);
    scratch = new Uint8Array(cfg.pageSize);
    return;
  }
  const job = m.job;
  if (!job || !cfg) return;
  try {
    let r: { kinds: Uint8Array<ArrayBuffer>; sizes: Uint32Array<ArrayBuffer>; dataLen: number };
    if (job.stored) {
      const p = passStoredBatch(job.stored, new Uint8Array(job.buf), cfg, compress, scratch, codec);
      if ('bad' in p) {
        port.postMessage({ id: job.id, decodeFailed: p.bad });
        return;
      }
      r = p;
    } else r = batch ? batch(new Uint8Array(job.buf), job.count) : compressBatchInPlace(new Uint8Array(job.buf), job.count, cfg, compress);
    const blob = job.stored?.blob.buffer as ArrayBuffer | undefined;
    port.postMessage(
      { id: job.id, buf: job.buf, count: job.count, kinds: r.kinds.buffer, sizes: r.sizes.buffer, dataLen: r.dataLen, blob },
      blob ? [job.buf, r.kinds.buffer, r.sizes.buffer, blob] : [job.buf, r.kinds.buffer, r.sizes.buffer],
    );
  } catch (e) {
    port.postMessage({ id: job.id, error: e instanceof Error ? e.message : String(e) });
  }
});
