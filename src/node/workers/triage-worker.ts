/**
 * Triage of the input on its own thread: opens the dump files itself and returns what
 * `triageRecord` says of them (fingerprint, the page frames read and asked about) and the digest
 * of those pages, so that a filtering `convert` classifies pages on the main thread meanwhile.
 */
import { parentPort, workerData } from 'node:worker_threads';
import { openDumpFiles } from '../open.js';
import { pagesDigest, triageRecord } from '../../core/triage.js';
import { nodeSha256 } from '../hash.js';
import { isVmcoreError } from '../../core/errors.js';
import { inKernelPages } from '../../core/reblock.js';

const { paths, noBacktraces } = workerData as { paths: string[]; noBacktraces: boolean };
try {
  const opened = await openDumpFiles(paths);
  try {
    // in the kernel's pages, as convert classifies them (QEMU's 64 KiB arm64 blocks)
    const dump = inKernelPages(opened);
    const r = await triageRecord(dump, noBacktraces ? { noBacktraces: true } : {});
    const digest = r.touched ? await pagesDigest(dump, r.touched, nodeSha256) : undefined;
    parentPort!.postMessage({ ok: { ...r, digest, pageSize: dump.pageSize } });
  } finally {
    await opened.close();
  }
} catch (e) {
  parentPort!.postMessage({ error: isVmcoreError(e) ? e.toJSON() : { code: 'IO', message: String((e as Error)?.message ?? e) } });
}
