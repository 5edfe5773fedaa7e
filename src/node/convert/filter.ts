/**
 * Page filtering for `convert` (dump levels 2-31): classify every page frame through the
 * kernel's struct pages, check before writing that triage keeps every page it reads, and after
 * writing that `info`, `dmesg` and `bt -a` say the same of the output as of the input.
 */
import { warning, type Warning } from '../../core/warnings.js';
import { rm, stat } from 'node:fs/promises';
import type { Dump } from '../../core/dump.js';
import { isVmcoreError, VmcoreError } from '../../core/errors.js';
import type { KernelInfo } from '../../core/kernel/kernel.js';
import { collectExcluded, excludedPages, excludedRunAt, type ExcludedRun } from '../../core/kernel/pagefilter.js';
import { DL_PAGE_TYPES, pageModel, type PageModel } from '../../core/kernel/pagetypes.js';
import { compareTriage, digestOfPages, filteredView, neededButExcluded, pagesDigest, triageFingerprint, triageRecord, type TriageFingerprint, type TriageRecord } from '../../core/triage.js';
import { openDumpFiles } from '../open.js';
import { nodeSha256 } from '../hash.js';
import { availableParallelism } from 'node:os';
import type { TriageAnswer, TriageJob } from '../workers/triage-worker.js';
import { prestartWorkers, takeWorker } from '../workers/prestart.js';


export interface FilterPlan {
  level: number;
  exclude: ExcludedRun[];
  model: PageModel;
  /** What triage says of the input, to compare with the output. */
  triage: TriageFingerprint;
  /**
   * The page frames triage asked about on the input, and their digest (pagesDigest); undefined
   * when triage walked page runs or scanned memory (the output is then checked by running it again).
   * Pages only the kernel analysis asked about and the filter leaves out are not among them: the
   * output check runs that analysis again (info) and compares what it concludes.
   */
  touched?: { pfns: number[]; digest: string };
  /** The input's local files (opts.inputFiles) and their sizes when the filter started: checked again before the output is judged and checked. */
  inputs?: readonly { name: string; size: number }[];
}

export interface FilterOptions {
  /** Warn instead of refusing when triage would lose pages or change its answer. */
  force?: boolean;
  onWarning?: (msg: Warning) => void;
  /** Change the classification before it is used (tests: inject a wrong one). */
  alter?: (runs: ExcludedRun[]) => ExcludedRun[];
  /** Guard info and dmesg only, not `bt -a` (tests: show what the backtraces add). */
  noBacktraces?: boolean;
  /** Run the whole of triage again on the filtered input and on the output, even when the pages it reads show that it cannot change. */
  fullCheck?: boolean;
  /**
   * Record the digest of the pages triage asked about on the input (default true), so that the
   * output check compares pages instead of running bt -a again. False where reading those pages
   * again is costly (a live guest read through QMP).
   */
  digestPages?: boolean;
  /**
   * The files `dump` was opened from (openDumpFiles, then inKernelPages with `kernel.vmcoreinfo`).
   * With them, and more than one CPU, the input's triage runs on a worker thread of its own
   * (workers/triage-worker.ts) while this thread classifies the pages; without them (a live
   * guest), it runs here after the classification.
   */
  inputFiles?: readonly string[];
}

/**
 * The input's triage (triageRecord) and, from the worker, the digest of each page of
 * `record.touched` (they come after the record; the promise rejects as the worker failed).
 */
interface InputTriage {
  record: TriageRecord;
  digests?: Promise<string[]>;
}

/**
 * Start the thread that triages a filter's input now, before the job is known, so that its start
 * (a Node isolate and the triage modules: 0.1-0.3 s) overlaps what the calling thread does first
 * (opening the dump, the kernel analysis). The next triageOnWorker takes it (prestart.ts: unref'd
 * until then). Does nothing on one CPU (the triage then runs on the calling thread) or when one
 * is waiting already.
 */
export function prestartTriageWorker(): void {
  if (availableParallelism() > 1) prestartWorkers('triage-worker', 1);
}

/**
 * Run triageRecord on the dump files `paths` on a worker thread (workers/triage-worker.ts): the
 * prestarted one (prestartTriageWorker), else a new one. Never rejects: a failure is returned as the error to throw, so
 * that the calling thread can go on classifying and throw its own error first.
 */
function triageOnWorker(job: TriageJob): Promise<InputTriage | Error> {
  return new Promise((resolve) => {
    const w = takeWorker('triage-worker');
    w.postMessage(job);
    let answered = false;
    // the digests come in a message of their own after the record (job.digestPages)
    let digestsDone: ((d: string[] | Error) => void) | undefined;
    const digests = job.digestPages
      ? new Promise<string[]>((ok, fail) => {
          digestsDone = (d) => (d instanceof Error ? fail(d) : ok(d));
        })
      : undefined;
    digests?.catch(() => undefined); // rejected only where awaited
    const failure = (m: TriageAnswer) =>
      m.error?.code ? VmcoreError.fromJSON(m.error as Parameters<typeof VmcoreError.fromJSON>[0]) : new VmcoreError('IO', `triage of the input failed: ${m.error?.message ?? 'no answer'}`);
    w.on('message', (m: TriageAnswer) => {
      if (!answered) {
        answered = true;
        resolve(m.record ? { record: m.record, ...(digests ? { digests } : {}) } : failure(m));
      } else digestsDone?.(m.digests ?? failure(m));
    });
    // a thread that cannot start (its module missing from an installation) or dies: IO, as the
    // compression workers' failures are
    w.once('error', (e) => {
      const err = isVmcoreError(e) ? e : new VmcoreError('IO', `triage thread failed: ${e instanceof Error ? e.message : String(e)}`);
      if (!answered) resolve(err);
      answered = true;
      digestsDone?.(err);
    });
    w.once('exit', (code) => {
      const err = new VmcoreError('IO', `triage of the input: its thread exited (code ${code}) without an answer`);
      if (!answered) resolve(err);
      answered = true;
      digestsDone?.(err); // no-op once settled
    });
  });
}

/**
 * The input files (their sizes when filtering began) that are not that size any more: a dump changed while
 * it was converted (a crash kernel still writing it, a copy under way). Triage of such an input
 * differs from the output's for that reason alone: the error names the file, not the filter.
 * @throws VmcoreError TRUNCATED (the file shrank) or IO (it grew, or cannot be stat'ed), with
 *         `outputs` removed unless `force` (then the warning FILTER_FORCED)
 */
async function checkInputsUnchanged(inputs: FilterPlan['inputs'], outputs: readonly string[], opts: FilterOptions): Promise<void> {
  for (const f of inputs ?? []) {
    let now: number | undefined;
    let why: string;
    try {
      now = (await stat(f.name)).size;
      if (now === f.size) continue;
      why = `${f.name} changed while it was converted: ${f.size} bytes when filtering began, ${now} now`;
    } catch (e) {
      why = `${f.name} changed while it was converted: ${(e as Error).message}`;
    }
    const what = outputs.length ? 'output removed (--force keeps it)' : 'nothing written';
    if (!opts.force || !outputs.length) {
      for (const o of outputs) await rm(o, { force: true });
      throw new VmcoreError(now !== undefined && now < f.size ? 'TRUNCATED' : 'IO', `${why}; what triage says of it cannot judge the filter; ${what}`, { file: f.name, offset: now !== undefined && now < f.size ? now : undefined, field: 'size' });
    }
    opts.onWarning?.(warning('FILTER_FORCED', `${why} (kept: --force)`));
  }
}

/**
 * Classify the pages of `dump` for dump level `level` and check that triage keeps what it reads.
 * @throws VmcoreError UNSUPPORTED (kernel encoding unknown, keys missing), NO_VMCOREINFO,
 *         TRIAGE when pages that info, dmesg or bt -a read would be left out (unless `force`),
 *         TRUNCATED or IO when a file of `opts.inputFiles` changed size meanwhile, IO when the
 *         triage thread fails
 */
export async function planFilter(dump: Dump, kernel: KernelInfo, level: number, opts: FilterOptions = {}): Promise<FilterPlan | undefined> {
  const started = await startFilter(dump, kernel, level, opts);
  return started?.finish();
}

/** A filter classified, its input's triage under way (startFilter). */
export interface StartedFilter {
  level: number;
  /** The page frames to leave out (what FilterPlan.exclude will be). */
  exclude: ExcludedRun[];
  model: PageModel;
  /** The input's triage runs on a worker thread, concurrently with what the caller does next. */
  concurrent: boolean;
  /**
   * Wait for the input's triage and judge the classification by it: the plan, or TRIAGE (unless
   * `force`). `written`: the outputs already written with `exclude`, removed on a refusal (the
   * message then says so instead of "nothing written"); `started`: their output check
   * (startOutputCheck), which begins digesting the output's pages as soon as the input's triage
   * names them.
   */
  finish(written?: readonly string[], started?: OutputCheck): Promise<FilterPlan>;
  /** Wait for the input's triage without judging (after a failure elsewhere); never rejects. */
  settle(): Promise<void>;
}

/**
 * The first half of planFilter: classify the pages of `dump` for dump level `level`, while the
 * input's triage runs on a worker thread (with `opts.inputFiles`); `finish` judges the
 * classification by that triage. The triage worker is never terminated: a caller that does not
 * call `finish` calls `settle`.
 * @throws VmcoreError UNSUPPORTED (kernel encoding unknown, keys missing), NO_VMCOREINFO,
 *         ADDRESS_TRANSLATION, and the errors of the classification (pagefilter.ts)
 */
export async function startFilter(dump: Dump, kernel: KernelInfo, level: number, opts: FilterOptions = {}): Promise<StartedFilter | undefined> {
  if (!(level & DL_PAGE_TYPES)) return undefined;
  const file = dump.files[0]?.name;
  if (!kernel.vmcoreinfo) throw new VmcoreError('NO_VMCOREINFO', `dump level ${level} needs VMCOREINFO and the dump has none (not even in memory)`, { ...(file ? { file } : {}) });
  if (!kernel.translator) throw new VmcoreError('ADDRESS_TRANSLATION', `dump level ${level} reads struct pages through kernel virtual addresses, and they cannot be translated (phys_base not proven, no CPU page tables)`, { ...(file ? { file } : {}) });
  const model = pageModel(kernel.vmcoreinfo, { ...(file ? { file } : {}), littleEndian: dump.littleEndian });
  const topts = opts.noBacktraces ? { noBacktraces: true } : {};
  // the input files' sizes now, before they are classified and triaged (checkInputsUnchanged)
  const inputSizes: { name: string; size: number }[] = [];
  for (const name of opts.inputFiles ?? []) {
    const st = await stat(name).catch(() => undefined);
    if (st?.isFile()) inputSizes.push({ name, size: st.size });
  }
  // triage on the input does not depend on the classification: on files, a thread of its own
  // reads it while this one classifies
  const onWorker =
    opts.inputFiles?.length && availableParallelism() > 1
      ? triageOnWorker({ paths: [...opts.inputFiles], vmcoreinfo: kernel.vmcoreinfo.text, noBacktraces: !!opts.noBacktraces, digestPages: opts.digestPages !== false && !opts.fullCheck })
      : undefined;
  let exclude: ExcludedRun[];
  try {
    exclude = await collectExcluded(
      excludedPages({ vmcoreinfo: kernel.vmcoreinfo, readVirt: (va, n, into) => kernel.readVirt(va, n, into), ...(file ? { file } : {}), littleEndian: dump.littleEndian }, dump.pageSize, level, {
        maxPfn: dump.maxPfn,
        model,
        ...(opts.onWarning ? { onWarning: opts.onWarning } : {}),
      }),
    );
  } catch (e) {
    // the worker is never terminated (it may be inside node:zlib's synchronous code): waited for
    await onWorker;
    throw e;
  }
  if (opts.alter) exclude = opts.alter(exclude);
  const excluded = exclude;
  return {
    level,
    exclude: excluded,
    model,
    concurrent: onWorker !== undefined,
    settle: async () => {
      await onWorker;
    },
    finish: async (written, started) => {
      const input: InputTriage | Error = onWorker ? await onWorker : { record: await triageRecord(dump, topts) };
      if (input instanceof Error) {
        // an output the triage cannot judge is not kept
        if (written?.length) {
          for (const o of written) await rm(o, { force: true });
          input.message += '; output removed';
        }
        throw input;
      }
      try {
        return await judgeFilter(dump, level, model, excluded, input, { ...opts, ...(written ? { written } : {}), ...(started ? { started } : {}), inputSizes });
      } catch (e) {
        // a judge that fails (the input's page digests lost with their thread, say) judged
        // nothing: the output is not kept (a refusal has removed it already)
        if (written?.length && e instanceof Error && !/output removed/.test(e.message)) {
          for (const o of written) await rm(o, { force: true });
          e.message += '; output removed';
        }
        throw e;
      }
    },
  };
}

/**
 * The second half of planFilter: triage on the input (`input`), and on the input as the filter
 * leaves it, before the output is kept.
 */
async function judgeFilter(
  dump: Dump,
  level: number,
  model: PageModel,
  exclude: ExcludedRun[],
  input: InputTriage,
  opts: FilterOptions & { written?: readonly string[]; inputSizes?: FilterPlan['inputs']; started?: OutputCheck },
): Promise<FilterPlan> {
  const file = dump.files[0]?.name;
  const topts = opts.noBacktraces ? { noBacktraces: true } : {};
  // an input that changed while it was read gives a triage that judges nothing
  const inputs = opts.inputSizes;
  await checkInputsUnchanged(inputs, opts.written ?? [], opts);
  const { fingerprint, pfns, touched, afterAnalysis } = input.record;
  // the pages the output must hold with the input's bytes: all that triage asked about, less those
  // only the kernel analysis asked about and the filter leaves out (the output check runs the
  // analysis again and compares what it concludes)
  let digestPfns: number[] | undefined;
  if (touched && afterAnalysis && !opts.fullCheck && opts.digestPages !== false) {
    const after = new Set(afterAnalysis);
    digestPfns = touched.filter((p) => after.has(p) || excludedRunAt(exclude, p) === undefined);
    // the output's digest of them begins now, while the input's are computed on the triage thread
    opts.started?.digest(digestPfns);
  }
  // Triage is a function of the pages it asks about (and of the file's notes, kept as they are).
  // When the filter leaves out none of them, triage on the filtered input asks the same questions
  // and gets the same answers: it cannot say anything else, and is not run a second time. When it
  // leaves out only pages the kernel analysis asked about (it reads some only to reject wrong
  // phys_base candidates), and none that dmesg, the panic summary and bt -a read after it, info
  // and dmesg run on the filtered input: the same analysis there gives bt -a the same pages.
  const full = opts.fullCheck || touched === undefined || afterAnalysis === undefined || neededButExcluded(afterAnalysis, exclude, 1).length > 0;
  const analysisOnly = !full && neededButExcluded(touched, exclude, 1).length > 0;
  const diffs = full
    ? compareTriage(fingerprint, await triageFingerprint(filteredView(dump, exclude), topts))
    : analysisOnly
      ? compareTriage({ ...fingerprint, bt: null }, await triageFingerprint(filteredView(dump, exclude), { noBacktraces: true }))
      : [];
  if (diffs.length) {
    const lost = neededButExcluded(pfns, exclude);
    const which = lost.length ? `; pages it reads and the filter leaves out: ${lost.slice(0, 6).map((l) => `pfn 0x${l.pfn.toString(16)} (${l.kind})`).join(', ')}${lost.length > 6 ? ', …' : ''}` : '';
    const msg = `dump level ${level} would change what info/dmesg/bt -a say: ${diffs.join('; ')}${which}`;
    if (!opts.force) {
      if (opts.written) for (const o of opts.written) await rm(o, { force: true });
      throw new VmcoreError('TRIAGE', `${msg}; ${opts.written ? 'output removed (--force keeps it)' : 'nothing written (--force writes it anyway)'}`, { ...(file ? { file } : {}), field: 'dump_level' });
    }
    opts.onWarning?.(warning('FILTER_FORCED', `${msg} (written anyway: --force)`));
  }
  let digest: string | undefined;
  if (digestPfns && input.digests && touched) {
    const digests = await input.digests;
    const of = new Map(touched.map((p, i) => [p, digests[i]!]));
    digest = digestOfPages(digestPfns, digestPfns.map((p) => of.get(p)!), nodeSha256);
  } else if (digestPfns) digest = await pagesDigest(dump, digestPfns, nodeSha256);
  return { level, exclude, model, triage: fingerprint, ...(digestPfns && digest !== undefined ? { touched: { pfns: digestPfns, digest } } : {}), ...(inputs?.length ? { inputs } : {}) };
}

/**
 * What info and dmesg say of a written output (triageFingerprint without bt -a), begun before the
 * input's triage has answered (startOutputCheck), for checkFilteredOutput.
 */
export interface OutputCheck {
  /** The output opened and its fingerprint; rejects as openDumpFiles and triageFingerprint do. */
  readonly ready: Promise<{ out: Dump; fingerprint: TriageFingerprint }>;
  /** pagesDigest of the output over `pfns`, begun at the first call (the same array: the same promise). */
  digest(pfns: readonly number[]): Promise<string>;
  /** Close the output (after checkFilteredOutput, or when it is not called); never rejects. */
  close(): Promise<void>;
}

/**
 * Begin the output check that does not depend on the input's triage: open the written output and
 * run info and dmesg on it, while the input's triage thread is still at work (this thread would
 * otherwise wait for it idle). checkFilteredOutput then takes it. The caller closes it.
 */
export function startOutputCheck(outputs: readonly string[]): OutputCheck {
  const opened = openDumpFiles([...outputs]);
  const ready = opened.then(async (out) => ({ out, fingerprint: await triageFingerprint(out, { noBacktraces: true }) }));
  // a failure is thrown where checkFilteredOutput awaits it, not as an unhandled rejection here
  ready.catch(() => undefined);
  const digests = new Map<readonly number[], Promise<string>>();
  return {
    ready,
    digest: (pfns) => {
      let d = digests.get(pfns);
      if (!d) {
        d = ready.then(({ out }) => pagesDigest(out, pfns, nodeSha256));
        d.catch(() => undefined);
        digests.set(pfns, d);
      }
      return d;
    },
    close: async () => {
      const out = await opened.catch(() => undefined);
      await out?.close().catch(() => undefined);
    },
  };
}

/**
 * Open the written output and compare what triage says of it with the input's fingerprint: info
 * and dmesg run on the output; bt -a runs again only when a page it read on the input is not in
 * the output with the same bytes (plan.touched), or when its pages are not known. `started`: the
 * output opened and info and dmesg run on it already (startOutputCheck; closed by its caller).
 * On a difference: remove the output and throw TRIAGE, or with `force` warn and keep it. First, an
 * input file of `plan.inputs` whose size changed since it was opened: TRUNCATED or IO naming it
 * (checkInputsUnchanged), not TRIAGE.
 */
export async function checkFilteredOutput(outputs: readonly string[], plan: FilterPlan, opts: FilterOptions & { started?: OutputCheck } = {}): Promise<void> {
  await checkInputsUnchanged(plan.inputs, outputs, opts);
  const own = opts.started ? undefined : startOutputCheck(outputs);
  const check = opts.started ?? own!;
  const { out, fingerprint: quickPrint } = await check.ready;
  let diffs: string[] | undefined;
  try {
    if (plan.touched && !opts.fullCheck) {
      // info and dmesg run on the output; for bt -a (the costly part), the output must hold every
      // page triage asked about on the input with the same bytes: it then reads what it read there
      const quick = compareTriage({ ...plan.triage, bt: null }, quickPrint);
      if (!quick.length && (await check.digest(plan.touched.pfns)) === plan.touched.digest) diffs = [];
    }
    // the whole of triage again, for the exact difference
    diffs ??= compareTriage(plan.triage, await triageFingerprint(out, plan.triage.bt === null ? { noBacktraces: true } : {}));
  } finally {
    await own?.close();
  }
  if (!diffs.length) return;
  const msg = `the filtered output does not give the same triage as the input: ${diffs.join('; ')}`;
  if (!opts.force) {
    for (const o of outputs) await rm(o, { force: true });
    throw new VmcoreError('TRIAGE', `${msg}; output removed (--force keeps it)`, { file: outputs[0] ?? '', field: 'dump_level' });
  }
  opts.onWarning?.(warning('FILTER_FORCED', `${msg} (kept: --force)`));
}
