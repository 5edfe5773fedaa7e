/**
 * The triage guard for filtered dumps: what `info`, `dmesg` and `bt -a` say about a dump,
 * reduced to the parts that must not change when pages are filtered out (kernel identity, proven
 * phys_base, panic line, CPU registers, the whole kernel log, every task's backtrace), and the
 * page frames that analysis reads.
 * A filter that drops one of those pages would make the output useless for triage.
 */
import type { Dump, PageRun, PageState } from './dump.js';
import { dumpView } from './dump.js';
import { notPresent, readPhysGeneric } from './memory.js';
import { isVmcoreError } from './errors.js';
import { digestOne, portableSha256, type HasherFactory } from './hash.js';
import { analyzeKernel, type KernelInput } from './kernel/kernel.js';
import { formatDmesg, readDmesg } from './kernel/dmesg.js';
import { panicSummary } from './kernel/panic.js';
import { recordingDump } from './kernel/recording.js';
import { hex64 } from './hex.js';
import { excludedRunAt, type ExcludedRun } from './kernel/pagefilter.js';
import { backtraceReport, createBacktracer, formatTaskBacktrace } from './kernel/backtrace.js';
import { kernelArch } from './kernel/archs.js';
import { latin1 } from './text.js';

export interface TriageFingerprint {
  release: string | null;
  physBase: string | null;
  utsname: string | null;
  panic: string | null;
  cpus: string;
  /** The kernel log as `vmcore dmesg` prints it, or the error that stopped it. */
  dmesg: string;
  /**
   * Every task's backtrace as `vmcore bt -a` prints it (x86_64 and aarch64, archs.ts; null on
   * other architectures),
   * or the error that stopped the walk.
   */
  bt: string | null;
}

export interface TriageOptions {
  /** Leave out `bt -a` (its field is null): the guard of info and dmesg alone. */
  noBacktraces?: boolean;
}

/** `vmcore bt -a`'s text output for the kernel `k`, or the error that stopped it. */
async function allBacktraces(k: Awaited<ReturnType<typeof analyzeKernel>>, panic: { task: number | null; cpu: number | null } | null): Promise<string> {
  try {
    const bt = await createBacktracer(k);
    const report = await backtraceReport(bt, { all: true, panicPid: panic?.task ?? null, panicCpu: panic?.cpu ?? null });
    return report.tasks.map((t) => formatTaskBacktrace(t, report.panicTask)).join('\n\n');
  } catch (e) {
    if (!isVmcoreError(e)) throw e;
    return `error: ${e.message}`;
  }
}

async function fingerprintOf(dump: KernelInput & Pick<Dump, 'littleEndian' | 'maxPfn' | 'pageSize'>, opts: TriageOptions = {}, onAnalysed?: () => void): Promise<TriageFingerprint> {
  const k = await analyzeKernel(dump, { bruteForce: false });
  onAnalysed?.();
  let dmesg: string;
  let log;
  try {
    if (!k.vmcoreinfo) throw new Error('no VMCOREINFO');
    log = await readDmesg({ vmcoreinfo: k.vmcoreinfo, readVirt: (va, n) => k.readVirt(va, n), littleEndian: dump.littleEndian }, { maxLogBytes: Math.min(2 ** 31, dump.maxPfn * dump.pageSize) });
    dmesg = latin1(formatDmesg(log));
  } catch (e) {
    if (!isVmcoreError(e) && !(e instanceof Error && e.message === 'no VMCOREINFO')) throw e;
    dmesg = `error: ${(e as Error).message}`;
  }
  let panic: string | null = null;
  let panicAt: { task: number | null; cpu: number | null } | null = null;
  try {
    const p = await panicSummary(k, log, dump.littleEndian);
    panic = p ? JSON.stringify(p) : null;
    panicAt = p;
  } catch (e) {
    if (!isVmcoreError(e)) throw e;
    panic = `error: ${e.message}`;
  }
  const bt = !opts.noBacktraces && kernelArch(k.arch) !== undefined ? await allBacktraces(k, panicAt) : null;
  return {
    release: k.vmcoreinfo?.osrelease ?? null,
    physBase: k.physBase.value === undefined ? null : hex64(k.physBase.value),
    utsname: k.utsname ? JSON.stringify(k.utsname) : null,
    panic,
    cpus: JSON.stringify(k.cpus.map((c) => ({ cpu: c.cpu, rip: c.rip?.toString(16) ?? null, rsp: c.rsp?.toString(16) ?? null, cr3: c.cr3?.toString(16) ?? null, ...(c.pc !== undefined ? { pc: c.pc.toString(16), sp: c.sp?.toString(16) ?? null } : {}) }))),
    dmesg,
    bt,
  };
}

/** What triage read of a dump (triageRecord). */
export interface TriageRecord {
  fingerprint: TriageFingerprint;
  /** Every page frame whose contents were read, sorted. */
  pfns: number[];
  /**
   * Every page frame the fingerprint depends on (read, read tolerantly, state asked), sorted;
   * undefined when triage also walked page runs or scanned memory.
   */
  touched: number[] | undefined;
  /**
   * The part of `touched` asked about after the kernel analysis (phys_base proof, page tables,
   * CPUs, utsname): the pages dmesg, the panic summary and bt -a read. The analysis also reads
   * pages only to reject wrong phys_base candidates; what it concludes is in the fingerprint's
   * release, physBase, utsname and cpus, so a change there is seen by running it again.
   */
  afterAnalysis: number[] | undefined;
}

/**
 * What triage reads of `dump`: the fingerprint and the page frames read to make it.
 * @param dump any dump (kernel analysis covers x86_64 and aarch64; elsewhere the fingerprint is mostly null)
 */
export async function triageRecord(dump: Dump, opts: TriageOptions = {}): Promise<TriageRecord> {
  const { dump: wrapped, recorder } = recordingDump(dump, { skipTolerantReads: true });
  let analysis: number[] | undefined;
  const fingerprint = await fingerprintOf(wrapped, opts, () => {
    analysis = recorder.splitPhase();
  });
  const after = recorder.touchedPfns();
  const touched = analysis && after ? [...new Set([...analysis, ...after])].sort((a, b) => a - b) : undefined;
  return { fingerprint, pfns: recorder.pfns(), touched, afterAnalysis: touched ? after : undefined };
}

/**
 * The digest (hex, of `hasher`, SHA-256 by default) of each page frame of `pfns` as triage sees
 * it, in the same order: the digest of the page's bytes when it is present (data or zero), ''
 * when it is not (excluded, missing, a hole, beyond max_mapnr). Consecutive present frames are
 * read with one read of up to 256 pages.
 */
export async function pageDigests(dump: Dump, pfns: readonly number[], hasher: HasherFactory = portableSha256): Promise<string[]> {
  const ps = dump.pageSize;
  let zeroDigest: string | undefined;
  const digest = (b: Uint8Array) => digestOne(hasher, b);
  const one = async (pfn: number): Promise<string> => {
    const st = pfn < dump.maxPfn ? await dump.pageState(pfn) : 'hole';
    if (st === 'data') return digest(await dump.readPage(pfn));
    if (st === 'zero') return (zeroDigest ??= digest(new Uint8Array(ps)));
    return '';
  };
  const out: string[] = [];
  // every run is read into the same memory (digested before the next read)
  let scratch: Uint8Array | undefined;
  for (let i = 0; i < pfns.length; ) {
    // runs of consecutive page frames in one read when all of them are present
    let j = i + 1;
    while (j < pfns.length && pfns[j] === pfns[j - 1]! + 1 && j - i < 256) j++;
    let run: Uint8Array | undefined;
    if (j - i > 1 && pfns[j - 1]! < dump.maxPfn) {
      scratch ??= new Uint8Array(256 * ps);
      run = await dump.readPhys(pfns[i]! * ps, (j - i) * ps, { into: scratch }).catch(() => undefined);
    }
    if (run) for (let k = i; k < j; k++) out.push(digest(run.subarray((k - i) * ps, (k - i + 1) * ps)));
    else for (let k = i; k < j; k++) out.push(await one(pfns[k]!));
    i = j;
  }
  return out;
}

/**
 * One digest (hex) over the page frames `pfns` and their page digests `digests` (pageDigests, same
 * order): per pfn a line "pfn-in-hex page-digest". Two dumps with the same digest answer every
 * read and state question about these pages alike.
 */
export function digestOfPages(pfns: readonly number[], digests: readonly string[], hasher: HasherFactory = portableSha256): string {
  let text = '';
  for (let i = 0; i < pfns.length; i++) text += `${pfns[i]!.toString(16)} ${digests[i] ?? ''}\n`;
  const h = hasher();
  h.update(new TextEncoder().encode(text));
  return h.digestHex();
}

/** digestOfPages over the page frames `pfns` of `dump` (pageDigests). */
export async function pagesDigest(dump: Dump, pfns: readonly number[], hasher: HasherFactory = portableSha256): Promise<string> {
  return digestOfPages(pfns, await pageDigests(dump, pfns, hasher), hasher);
}

/** The fingerprint of a dump (used on a filtered output). */
export function triageFingerprint(dump: Dump, opts: TriageOptions = {}): Promise<TriageFingerprint> {
  return fingerprintOf(dump, opts);
}

/** The fields that differ, each as "field: input … / output …" (empty when triage agrees). */
export function compareTriage(input: TriageFingerprint, output: TriageFingerprint): string[] {
  const diffs: string[] = [];
  for (const key of Object.keys(input) as (keyof TriageFingerprint)[]) {
    const a = input[key];
    const b = output[key];
    if (a === b) continue;
    if (key === 'dmesg' || key === 'bt') {
      const la = (a ?? '').split('\n');
      const lb = (b ?? '').split('\n');
      let i = 0;
      while (i < la.length && la[i] === lb[i]) i++;
      diffs.push(`${key}: differs from line ${i + 1} (input ${la.length} lines, output ${lb.length}): input "${(la[i] ?? '').slice(0, 80)}" / output "${(lb[i] ?? '').slice(0, 80)}"`);
    } else diffs.push(`${key}: input ${String(a).slice(0, 120)} / output ${String(b).slice(0, 120)}`);
  }
  return diffs;
}

/**
 * The page frames triage needs that `excluded` would leave out (at most `limit` of them), with
 * the kind each was classified as.
 */
export function neededButExcluded(pfns: readonly number[], excluded: readonly ExcludedRun[], limit = 16): { pfn: number; kind: ExcludedRun['kind'] }[] {
  const sorted = [...pfns].sort((a, b) => a - b);
  const hits: { pfn: number; kind: ExcludedRun['kind'] }[] = [];
  let j = 0;
  for (const p of sorted) {
    while (j < excluded.length && excluded[j]!.endPfn <= p) j++;
    const x = excluded[j];
    if (x && x.startPfn <= p && p < x.endPfn) {
      hits.push({ pfn: p, kind: x.kind });
      if (hits.length >= limit) break;
    }
  }
  return hits;
}


/**
 * `dump` as a filter would leave it: present pages inside `excluded` read as excluded. Used to
 * check triage on the output before writing it.
 */
export function filteredView(dump: Dump, excluded: readonly ExcludedRun[]): Dump {
  const file = dump.files[0]?.name;
  const state = async (pfn: number): Promise<PageState> => {
    const st = await dump.pageState(pfn);
    return (st === 'data' || st === 'zero') && excludedRunAt(excluded, pfn) !== undefined ? 'excluded' : st;
  };
  const view: Dump = dumpView(dump, {
    pageState: state,
    async *pageRuns(s?: number, e?: number): AsyncIterable<PageRun> {
      for await (const r of dump.pageRuns(s, e)) {
        if (r.state !== 'data' && r.state !== 'zero') {
          yield r;
          continue;
        }
        let p = r.startPfn;
        for (const x of excluded) {
          if (x.endPfn <= p) continue;
          if (x.startPfn >= r.endPfn) break;
          if (x.startPfn > p) yield { startPfn: p, endPfn: x.startPfn, state: r.state };
          const end = Math.min(x.endPfn, r.endPfn);
          yield { startPfn: Math.max(p, x.startPfn), endPfn: end, state: 'excluded' };
          p = end;
        }
        if (p < r.endPfn) yield { startPfn: p, endPfn: r.endPfn, state: r.state };
      }
    },
    async readPage(pfn: number): Promise<Uint8Array> {
      const st = await state(pfn);
      if (st === 'excluded') throw notPresent(pfn, st, dump.pageSize, file);
      return dump.readPage(pfn);
    },
    readPhys: (addr, length, opts) => readPhysGeneric(view, addr, length, opts ?? {}, file),
  });
  return view;
}
