/**
 * Triage of a filter's input on its own thread (planFilter): waits for its one job (a message:
 * the thread may be started before the job is known, prestartTriageWorker), opens the same dump files itself,
 * sees them in the kernel's pages as `convert` does (inKernelPages, with the VMCOREINFO the
 * calling thread's kernel analysis found), and answers once with what triage reads of them
 * (triageRecord) and the digest of each page it asked about (pageDigests), while the calling
 * thread classifies the pages. It reads nothing the classification decides: its answer is the
 * same as the calling thread's own triageRecord would be.
 */
import { parentPort } from 'node:worker_threads';
import { openDumpFiles } from '../open.js';
import { nodeSha256 } from '../hash.js';
import { inKernelPages } from '../../core/reblock.js';
import { Vmcoreinfo } from '../../core/kernel/vmcoreinfo.js';
import { isVmcoreError } from '../../core/errors.js';
import { pageDigests, triageRecord, type TriageRecord } from '../../core/triage.js';

export interface TriageJob {
  /** The files the calling thread opened the dump from. */
  paths: string[];
  /** The VMCOREINFO text the calling thread's kernel analysis used (inKernelPages). */
  vmcoreinfo?: string;
  noBacktraces: boolean;
  /** Also digest each page of `record.touched`. */
  digestPages: boolean;
}

/**
 * An answer: first the record (or the error), then, when the job asks for them, the page digests
 * (in `record.touched`'s order) in a second message, so that the calling thread can go on with
 * the record while they are computed. (Imported as a type only: this module opens the dump when
 * loaded.)
 */
export interface TriageAnswer {
  record?: TriageRecord;
  digests?: string[];
  /** A VmcoreError in its plain form (toJSON), or a plain message for any other error. */
  error?: { code?: string; message: string; file?: string; field?: string };
}

const errorAnswer = (e: unknown): TriageAnswer => ({ error: isVmcoreError(e) ? (e.toJSON() as TriageAnswer['error'])! : { message: e instanceof Error ? e.message : String(e) } });

/** Waits for the job, answers it (no top-level await: the CLI's bundle of this file is a CommonJS script). */
async function run(): Promise<void> {
  const job = await new Promise<TriageJob>((resolve) => parentPort!.once('message', resolve));
  try {
    const opened = await openDumpFiles(job.paths);
    try {
      const dump = inKernelPages(opened, job.vmcoreinfo !== undefined ? new Vmcoreinfo(job.vmcoreinfo) : undefined);
      const record = await triageRecord(dump, job.noBacktraces ? { noBacktraces: true } : {});
      const digesting = job.digestPages && record.touched !== undefined;
      parentPort!.postMessage({ record } satisfies TriageAnswer);
      // after the record: a failure here is the second message's
      if (digesting) {
        try {
          parentPort!.postMessage({ digests: await pageDigests(dump, record.touched!, nodeSha256) } satisfies TriageAnswer);
        } catch (e) {
          parentPort!.postMessage(errorAnswer(e));
        }
      }
    } finally {
      await opened.close();
    }
  } catch (e) {
    parentPort!.postMessage(errorAnswer(e));
  }
}
void run();
