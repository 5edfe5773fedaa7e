/**
 * Page-reading worker for the memory digest: opens the same dump files itself and returns runs
 * of present pages, decompressed, as one transferred buffer per job, already laid out as the
 * digest hashes them: per page its pfn (8 bytes, little-endian) then its bytes. The zero-page
 * check is done here too, and with `skipZero` the zero pages are left out, so the calling
 * thread hashes the whole buffer with one update. A kdump input's pages are read with one read
 * per run piece and decompressed in place (KdumpDump.storedPages); any piece that does not
 * decode cleanly is read again page by page, which names the damaged page as before.
 */
import { parentPort, workerData } from 'node:worker_threads';
import { openDumpFiles } from '../open.js';
import { isVmcoreError } from '../../core/errors.js';
import { isZeroPage } from '../../core/memory.js';
import { decodeStoredPages, type StoredPages, type StoredPagesOptions } from '../../core/format/kdump/reader.js';
import { nodeCodecs } from '../codecs.js';

export interface ReadJob {
  id: number;
  /** [startPfn, endPfn, zeroState(1|0)] triples */
  runs: number[];
  pages: number;
  /** Leave all-zero pages out of the records. */
  skipZero: boolean;
  /** A buffer of an earlier answer, handed back for reuse (transferred). */
  reuse?: ArrayBuffer;
}

/** A job's answer: `buf` holds `hashed` records of 8 + pageSize bytes; `zero` pages were all zeros. (Imported as a type only: this module opens the dump when loaded.) */
export interface ReadResult {
  id: number;
  buf?: ArrayBuffer;
  hashed?: number;
  zero?: number;
  error?: unknown;
}

/** Reads of a run go through storedPages in pieces of at most this many pages. */
const PIECE = 256;

const dump = await openDumpFiles(workerData.paths as string[]);
const ps = dump.pageSize;
const rs = 8 + ps; // one record: the pfn and the page
const stored = typeof (dump as { storedPages?: unknown }).storedPages === 'function' ? (dump as unknown as { storedPages(pfn: number, count: number, opts?: StoredPagesOptions): Promise<StoredPages | undefined> }) : undefined;
/**
 * The stored bytes of one piece are read into this one buffer (its largest size, see
 * KdumpFile.storedPages), not a new one per read: a buffer per read is garbage that V8 collects
 * only after tens of MiB of it have piled up in each worker (the cause of a 340 MiB peak RSS
 * when hashing a 4 GiB dump with two workers).
 */
const scratch = stored ? new Uint8Array(PIECE * ps * 2 + 65536) : undefined;
const readOpts: StoredPagesOptions | undefined = scratch ? { buffer: (bytes) => (bytes <= scratch.length ? scratch : undefined) } : undefined;
const codecs = nodeCodecs();
const codec = (n: Parameters<typeof codecs.get>[0]) => codecs.get(n);

/** Fill the page slots of records [first, first + n) with the pages from pfn `s`. */
async function fill(out: Uint8Array, first: number, s: number, n: number): Promise<void> {
  const st = stored && n > 1 ? await stored.storedPages(s, n, readOpts) : undefined;
  if (st && decodeStoredPages(st, out, ps, codec, { base: first * rs + 8, stride: rs }) === undefined) return;
  for (let k = 0; k < n; k++) out.set(await dump.readPage(s + k), (first + k) * rs + 8);
}

/**
 * Jobs run one after the other, and 'close' after all of them: the calling thread ends this
 * worker with 'close' instead of terminating it, since a thread terminated inside node:zlib's
 * synchronous code aborts the process (Node 20, "close before init").
 */
let chain: Promise<void> = Promise.resolve();
parentPort!.on('message', (job: ReadJob | 'close') => {
  chain = chain.then(() => handle(job));
});

async function handle(job: ReadJob | 'close'): Promise<void> {
  if (job === 'close') {
    await dump.close();
    parentPort!.close();
    return;
  }
  try {
    const buf = job.reuse && job.reuse.byteLength >= job.pages * rs ? job.reuse : new ArrayBuffer(job.pages * rs);
    const out = new Uint8Array(buf);
    const dv = new DataView(buf);
    let r = 0;
    for (let i = 0; i < job.runs.length; i += 3) {
      const [s, e, zero] = [job.runs[i]!, job.runs[i + 1]!, job.runs[i + 2]!];
      if (zero) out.fill(0, r * rs, (r + e - s) * rs);
      else for (let p = s; p < e; p += PIECE) await fill(out, r + p - s, p, Math.min(PIECE, e - p));
      for (let p = s; p < e; p++) dv.setBigUint64((r + p - s) * rs, BigInt(p), true);
      r += e - s;
    }
    // zero check, and with skipZero the records of zero pages are dropped (compacted in place)
    let zeroPages = 0;
    let kept = 0;
    r = 0;
    for (let i = 0; i < job.runs.length; i += 3) {
      const [s, e, zero] = [job.runs[i]!, job.runs[i + 1]!, job.runs[i + 2]!];
      for (let p = s; p < e; p++, r++) {
        const isZero = zero === 1 || isZeroPage(out.subarray(r * rs + 8, (r + 1) * rs));
        if (isZero) zeroPages++;
        if (isZero && job.skipZero) continue;
        if (kept !== r) out.copyWithin(kept * rs, r * rs, (r + 1) * rs);
        kept++;
      }
    }
    const res: ReadResult = { id: job.id, buf, hashed: kept, zero: zeroPages };
    parentPort!.postMessage(res, [buf]);
  } catch (e) {
    const res: ReadResult = { id: job.id, error: isVmcoreError(e) ? e.toJSON() : { code: 'IO', message: String((e as Error)?.message ?? e) } };
    parentPort!.postMessage(res);
  }
}
parentPort!.postMessage({ ready: true });
