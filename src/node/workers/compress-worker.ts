/**
 * Compression worker: receives batches of raw pages (transferred ArrayBuffers), classifies each
 * page (zero / raw / compressed) and compresses it in place: page i's stored bytes are written
 * at or before offset i * pageSize of the same buffer, so no second buffer is needed. The
 * buffer goes back to the main thread with the per-page kinds and sizes (transferred too).
 */
import { parentPort } from 'node:worker_threads';
import { pageCompressor, type WorkerConfig } from './page-codec.js';

interface Job {
  id: number;
  buf: ArrayBuffer;
  count: number;
}

if (!parentPort) throw new Error('compress-worker must run in a worker thread');
const port = parentPort;
let compress: ((page: Uint8Array, out: Uint8Array, outOff: number) => number) | undefined;
let cfg: WorkerConfig | undefined;
let zero: Buffer | undefined;

port.on('message', (m: { init?: WorkerConfig; job?: Job }) => {
  if (m.init) {
    cfg = m.init;
    zero = Buffer.alloc(cfg.pageSize);
    compress = pageCompressor(cfg);
    return;
  }
  const job = m.job;
  if (!job || !cfg || !zero) return;
  try {
    const ps = cfg.pageSize;
    const buf = Buffer.from(job.buf);
    const kinds = new Uint8Array(job.count);
    const sizes = new Uint32Array(job.count);
    let out = 0;
    for (let i = 0; i < job.count; i++) {
      const page = buf.subarray(i * ps, (i + 1) * ps);
      if (cfg.detectZero && page.equals(zero)) {
        kinds[i] = 0;
        continue;
      }
      const n = compress ? compress(page, buf, out) : -1;
      if (n > 0 && n < ps) {
        kinds[i] = 2;
        sizes[i] = n;
        out += n;
      } else {
        if (out !== i * ps) buf.copyWithin(out, i * ps, (i + 1) * ps);
        kinds[i] = 1;
        sizes[i] = ps;
        out += ps;
      }
    }
    port.postMessage({ id: job.id, buf: job.buf, count: job.count, kinds: kinds.buffer, sizes: sizes.buffer, dataLen: out }, [
      job.buf,
      kinds.buffer,
      sizes.buffer,
    ]);
  } catch (e) {
    port.postMessage({ id: job.id, error: e instanceof Error ? e.message : String(e) });
  }
});
