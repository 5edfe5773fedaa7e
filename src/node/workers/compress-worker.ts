/**
 * Compression worker: receives batches of raw pages (transferred ArrayBuffers), classifies each
 * page (zero / raw / compressed) and compresses it in place: page i's stored bytes are written
 * at or before offset i * pageSize of the same buffer, so no second buffer is needed. The
 * buffer goes back to the main thread with the per-page kinds and sizes (transferred too).
 * A batch from a kdump input may come in its stored form: the worker decompresses it first.
 */
import { parentPort } from 'node:worker_threads';
import { compressBatchInPlace, pageCompressor, type WorkerConfig } from './page-codec.js';
import { decodeStoredPages, type StoredPages } from '../../core/format/kdump/reader.js';
import { nodeCodecs } from '../codecs.js';

interface Job {
  id: number;
  buf: ArrayBuffer;
  count: number;
  /** The pages as a kdump input stores them: decompressed into buf first. */
  stored?: StoredPages;
}

if (!parentPort) throw new Error('compress-worker must run in a worker thread');
const port = parentPort;
let compress: ((page: Uint8Array, out: Uint8Array, outOff: number) => number) | undefined;
let cfg: WorkerConfig | undefined;

port.on('message', (m: { init?: WorkerConfig; job?: Job }) => {
  if (m.init) {
    cfg = m.init;
    compress = pageCompressor(cfg);
    return;
  }
  const job = m.job;
  if (!job || !cfg) return;
  try {
    if (job.stored) {
      const bad = decodeStoredPages(job.stored, new Uint8Array(job.buf, 0, job.count * cfg.pageSize), cfg.pageSize, (n) => nodeCodecs().get(n));
      if (bad !== undefined) {
        port.postMessage({ id: job.id, decodeFailed: bad });
        return;
      }
    }
    const { kinds, sizes, dataLen: out } = compressBatchInPlace(new Uint8Array(job.buf), job.count, cfg, compress);
    port.postMessage({ id: job.id, buf: job.buf, count: job.count, kinds: kinds.buffer, sizes: sizes.buffer, dataLen: out }, [
      job.buf,
      kinds.buffer,
      sizes.buffer,
    ]);
  } catch (e) {
    port.postMessage({ id: job.id, error: e instanceof Error ? e.message : String(e) });
  }
});
