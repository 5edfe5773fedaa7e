/**
 * Page-reading worker: opens the same dump files itself and returns runs of present pages,
 * decompressed, as one transferred buffer per job. Used to spread decompression over cores
 * while the caller consumes pages in pfn order.
 */
import { parentPort, workerData } from 'node:worker_threads';
import { openDumpFiles } from '../open.js';
import { isVmcoreError } from '../../core/errors.js';

interface Job {
  id: number;
  /** [startPfn, endPfn, zeroState(1|0)] triples */
  runs: number[];
  pages: number;
}

const dump = await openDumpFiles(workerData.paths as string[]);
const ps = dump.pageSize;
parentPort!.on('message', async (job: Job | 'close') => {
  if (job === 'close') {
    await dump.close();
    parentPort!.close();
    return;
  }
  try {
    const buf = new ArrayBuffer(job.pages * ps);
    const out = new Uint8Array(buf);
    let o = 0;
    for (let i = 0; i < job.runs.length; i += 3) {
      const [s, e, zero] = [job.runs[i]!, job.runs[i + 1]!, job.runs[i + 2]!];
      for (let p = s; p < e; p++, o += ps) if (!zero) out.set(await dump.readPage(p), o);
    }
    parentPort!.postMessage({ id: job.id, buf }, [buf]);
  } catch (e) {
    parentPort!.postMessage({ id: job.id, error: isVmcoreError(e) ? e.toJSON() : { code: 'IO', message: String((e as Error)?.message ?? e) } });
  }
});
parentPort!.postMessage({ ready: true });
