/**
 * Compression worker: receives batches of raw pages (transferred ArrayBuffers), classifies each
 * page (zero / raw / compressed) and compresses it in place: page i's stored bytes are written
 * at or before offset i * pageSize of the same buffer, so no second buffer is needed. The
 * buffer goes back to the main thread with the per-page kinds and sizes (transferred too).
 * A batch from a kdump input may come in its stored form: the worker decodes each page once
 * (to check it and find zero pages) and writes the pages stored in the output's codec as they
 * are, compressing only the others (passStoredBatch); the stored form's buffer goes back too.
 * A batch of an ELF file's pages may come as their place in the file: the worker reads them
 * itself (nativeFileCompressor), so that the main thread copies no page and each page is
 * compressed while it is in this core's cache.
 */
import { parentPort } from 'node:worker_threads';
import { compressBatchInPlace, nativeBatchCompressor, nativeFileCompressor, pageCompressor, passStoredBatch, type FilePages, type WorkerConfig } from './page-codec.js';
import type { StoredPages } from '../../core/format/kdump/reader.js';
import { nodeCodecs } from '../codecs.js';

interface Job {
  id: number;
  buf: ArrayBuffer;
  count: number;
  /** The pages as a kdump input stores them: the result is made from them into buf. */
  stored?: StoredPages;
  /** The pages are in this file: read here and stored into buf (nativeFileCompressor). */
  file?: FilePages;
}

if (!parentPort) throw new Error('compress-worker must run in a worker thread');
const port = parentPort;
let compress: ((page: Uint8Array, out: Uint8Array, outOff: number) => number) | undefined;
let batch: ReturnType<typeof nativeBatchCompressor>;
let fromFile: ReturnType<typeof nativeFileCompressor>;
let cfg: WorkerConfig | undefined;
let scratch = new Uint8Array(0);
const codec = (n: Parameters<ReturnType<typeof nodeCodecs>['get']>[0]) => nodeCodecs().get(n);

port.on('message', (m: { init?: WorkerConfig; job?: Job }) => {
  if (m.init) {
    cfg = m.init;
    compress = pageCompressor(cfg);
    batch = nativeBatchCompressor(cfg);
    fromFile = nativeFileCompressor(cfg);
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
    } else if (job.file) {
      if (!fromFile) throw new Error('this thread cannot read pages from a file');
      r = fromFile(job.file, job.count, new Uint8Array(job.buf));
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
