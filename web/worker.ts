/**
 * The page's Web Worker: every read, decompression and kernel analysis runs here, so the page
 * never freezes. Messages in: open (a File or a URL), hex (read memory), bt (one task's
 * backtrace). Messages out: progress, report, log, map, tasks, bt, modules, hex, error. Only the
 * portable core is used.
 */
import { BlobSource, type ByteSource } from '../src/core/io/source.js';
import { HttpSource } from '../src/core/io/http.js';
import { VmcoreError, isVmcoreError } from '../src/core/errors.js';
import { openDump } from '../src/core/format/open.js';
import { portableCodecs } from '../src/core/codec/portable.js';
import { analyzeKernel, type KernelInfo } from '../src/core/kernel/kernel.js';
import { panicSummary } from '../src/core/kernel/panic.js';
import { describeDump } from '../src/core/info.js';
import { readDmesg, recordToJson } from '../src/core/kernel/dmesg.js';
import type { Dump, PageState } from '../src/core/dump.js';
import { backtraceReport, createBacktracer, formatTaskBacktrace, type Backtracer, type TaskInfo } from '../src/core/kernel/backtrace.js';
import { warning } from '../src/core/warnings.js';
import type { FromWorker, ModuleRow, TaskRow, ToWorker } from './protocol.js';

const STATES: PageState[] = ['hole', 'data', 'zero', 'excluded', 'missing'];
/** Most page runs sent for the map; beyond that neighbouring runs are merged (data wins). */
const MAX_RUNS = 1 << 20;

let dump: Dump | undefined;
let kernel: KernelInfo | undefined;
let source: ByteSource | undefined;
let tracer: Backtracer | undefined;
let taskList: TaskInfo[] = [];
let panicTask: bigint | undefined;

const post = (m: FromWorker, transfer: Transferable[] = []) => (self as unknown as Worker).postMessage(m, transfer);
const progress = (step: string, fraction: number) => post({ type: 'progress', step, fraction });

function jsonSafe(v: unknown): unknown {
  return JSON.parse(JSON.stringify(v, (_k, x) => (typeof x === 'bigint' ? '0x' + BigInt.asUintN(64, x).toString(16) : x)));
}

function errorOf(e: unknown): FromWorker {
  const x = e as { code?: string; message?: string };
  return { type: 'error', code: typeof x?.code === 'string' ? x.code : 'ERROR', message: String(x?.message ?? e) };
}

/**
 * HttpSource.open with a hint when the dump is on another origin: the browser hides a refused
 * cross-origin read (CORS) as a network error, so the page says what such a server must allow.
 */
async function openRemote(url: string): Promise<HttpSource> {
  try {
    return await HttpSource.open(url);
  } catch (e) {
    const origin = new URL(url).origin;
    if (isVmcoreError(e) && e.code === 'IO' && origin !== self.location.origin) {
      // e.message already names the URL, offset and field
      throw new VmcoreError('IO', `${e.message}. The dump is on another origin (${origin}); if that server is up, it must allow this page to read it (CORS: Access-Control-Allow-Origin, and Access-Control-Expose-Headers: Content-Range, ETag), or open the dump through vmcore serve`, { cause: e });
    }
    throw e;
  }
}

async function open(m: Extract<ToWorker, { type: 'open' }>): Promise<void> {
  await dump?.close().catch(() => undefined);
  dump = undefined;
  kernel = undefined;
  tracer = undefined;
  taskList = [];
  panicTask = undefined;
  const t0 = performance.now();
  progress('opening', 0);
  source = m.file ? new BlobSource(m.file, m.file.name) : await openRemote(m.url!);
  dump = await openDump([source], portableCodecs());
  progress('analysing the kernel', 0.2);
  let panic = null;
  if (dump.arch === 'x86_64' || dump.arch === 'unknown') {
    // VMCOREINFO recovery reads every page: over HTTP a download of the whole dump, not done
    kernel = await analyzeKernel(dump, { recover: !(source instanceof HttpSource) });
    panic = (await panicSummary(kernel, undefined, dump.littleEndian)) as Record<string, unknown> | null;
  }
  progress('describing', 0.4);
  // over HTTP the summary counts pages from the bitmaps (the descriptors are most of the bytes
  // it would fetch); the memory map below reads them all and sends the exact counts
  const report = await describeDump(dump, kernel, { panic, pages: source instanceof HttpSource ? 'bitmaps' : 'full' });
  if (kernel && source instanceof HttpSource && !dump.vmcoreinfoText) {
    report.warnings.push(warning('VMCOREINFO_NOT_RECOVERED', 'the file has no VMCOREINFO: recovering it from memory reads every page, a download of the whole dump over HTTP, so it was not done (open the file itself, or run vmcore info on it)'));
  }
  const fetched = source instanceof HttpSource ? { ...source.stats, size: source.size } : null;
  post({ type: 'report', report: jsonSafe(report), ms: performance.now() - t0, fetched });

  progress('reading the kernel log', 0.5);
  if (kernel?.vmcoreinfo) {
    try {
      const k = kernel;
      const log = await readDmesg(
        { vmcoreinfo: k.vmcoreinfo!, readVirt: (va, len) => k.readVirt(va, len), littleEndian: dump.littleEndian, file: source.name },
        { maxLogBytes: Math.min(2 ** 31, dump.maxPfn * dump.pageSize) },
      );
      const ts: string[] = [];
      const level: number[] = [];
      const text: string[] = [];
      for (const r of log.records) {
        if (r.lost || (!r.text.length && !r.empty)) continue;
        const j = recordToJson(r);
        ts.push(j.timestamp as string);
        level.push(r.level);
        text.push(j.text as string);
      }
      post({ type: 'log', ts, level, text, warnings: log.warnings });
    } catch (e) {
      post({ type: 'log', ts: [], level: [], text: [], warnings: [warning('PRINTK_DAMAGED', `the kernel log could not be read: ${(e as Error).message}`)] });
    }
  } else post({ type: 'log', ts: [], level: [], text: [], warnings: [warning('NO_VMCOREINFO', 'no VMCOREINFO: the kernel log cannot be located')] });

  progress('mapping memory', 0.7);
  const starts: number[] = [];
  const ends: number[] = [];
  const states: number[] = [];
  const counts: Record<PageState, number> = { hole: 0, data: 0, zero: 0, excluded: 0, missing: 0 };
  let n = 0;
  for await (const r of dump.pageRuns()) {
    counts[r.state] += r.endPfn - r.startPfn;
    const s = STATES.indexOf(r.state);
    const last = starts.length - 1;
    if (last >= 0 && ends[last] === r.startPfn && (states[last] === s || starts.length >= MAX_RUNS)) {
      ends[last] = r.endPfn;
      if (s === 1) states[last] = 1;
    } else {
      starts.push(r.startPfn);
      ends.push(r.endPfn);
      states.push(s);
    }
    if (++n % 4096 === 0) progress('mapping memory', 0.7 + 0.3 * Math.min(1, r.endPfn / Math.max(1, dump.maxPfn)));
  }
  const S = new Float64Array(starts);
  const E = new Float64Array(ends);
  const T = new Uint8Array(states);
  post({ type: 'map', starts: S, ends: E, states: T, maxPfn: dump.maxPfn, pageSize: dump.pageSize, counts }, [S.buffer, E.buffer, T.buffer]);
  progress('listing tasks', 0.9);
  await tasks(panic as { task: number | null; cpu: number | null } | null);
  progress('listing modules', 0.95);
  await modules();
  progress('done', 1);
  if (source instanceof HttpSource) post({ type: 'fetched', fetched: { ...source.stats, size: source.size } });
}

const hx = (v: bigint) => '0x' + BigInt.asUintN(64, v).toString(16);

/** The task list and the panicking task's backtrace (kallsyms, BTF and ORC from the dump). */
async function tasks(panic: { task: number | null; cpu: number | null } | null): Promise<void> {
  const none = (error: string) => {
    post({ type: 'tasks', tasks: [], warnings: [], error });
    post({ type: 'bt', task: null, text: '', panic: true, error });
  };
  if (!kernel) return none('tasks and backtraces need the kernel analysis (x86_64)');
  try {
    tracer = await createBacktracer(kernel);
    const report = await backtraceReport(tracer, { panicPid: panic?.task ?? null, panicCpu: panic?.cpu ?? null });
    panicTask = report.panicTask;
    taskList = await tracer.tasks();
    const rows: TaskRow[] = taskList.map((t) => ({
      task: hx(t.task),
      pid: t.pid,
      tgid: t.tgid,
      ppid: t.ppid,
      comm: t.comm,
      state: t.state,
      cpu: t.activeCpu ?? t.cpu,
      activeCpu: t.activeCpu,
      panic: t.task === panicTask,
    }));
    post({ type: 'tasks', tasks: rows, warnings: [...tracer.warnings], error: null });
    const b = report.tasks.find((t) => t.task.task === panicTask) ?? report.tasks[0];
    if (b) post({ type: 'bt', task: hx(b.task.task), text: formatTaskBacktrace(b, panicTask), panic: true, error: null });
    else post({ type: 'bt', task: null, text: '', panic: true, error: 'the panicking task is not known (no panic line and no CPU registers)' });
  } catch (e) {
    none(`${(e as { code?: string }).code ?? 'ERROR'}: ${(e as Error).message}`);
  }
}

/** The kernel's modules list (kallsyms and BTF from the dump). */
async function modules(): Promise<void> {
  if (!kernel) {
    post({ type: 'modules', modules: [], warnings: [], error: 'modules need the kernel analysis (x86_64)' });
    return;
  }
  try {
    const list = await kernel.modules();
    const rows: ModuleRow[] = list.modules.map((m) => ({
      name: m.name,
      module: hx(m.module),
      base: hx(m.base),
      size: m.size,
      state: m.state,
      taint: m.taint,
      symbols: m.symbols ? m.symbols.length : null,
      symbolsError: m.symbols ? null : (m.symbolsError ?? null),
    }));
    post({ type: 'modules', modules: rows, warnings: list.warnings, error: null });
  } catch (e) {
    post({ type: 'modules', modules: [], warnings: [], error: `${(e as { code?: string }).code ?? 'ERROR'}: ${(e as Error).message}` });
  }
}

async function taskBacktrace(m: Extract<ToWorker, { type: 'bt' }>): Promise<void> {
  const t = taskList.find((x) => hx(x.task) === m.task);
  if (!tracer || !t) {
    post({ type: 'bt', task: m.task, text: '', panic: false, error: 'no such task' });
    return;
  }
  try {
    post({ type: 'bt', task: m.task, text: formatTaskBacktrace(await tracer.backtrace(t), panicTask), panic: false, error: null });
  } catch (e) {
    post({ type: 'bt', task: m.task, text: '', panic: false, error: (e as Error).message });
  }
}

async function hex(m: Extract<ToWorker, { type: 'hex' }>): Promise<void> {
  if (!dump) throw new Error('no dump is open');
  const len = Math.min(Math.max(1, m.length), 65536);
  let bytes: Uint8Array;
  if (m.space === 'phys') {
    const a = Number(BigInt(m.addr));
    if (!Number.isSafeInteger(a)) throw new Error('physical address too large');
    bytes = await dump.readPhys(a, len, { fillMissing: false });
  } else {
    if (!kernel) throw new Error('kernel-virtual addresses need the kernel analysis (x86_64 with VMCOREINFO)');
    bytes = await kernel.readVirt(BigInt.asUintN(64, BigInt(m.addr)), len);
  }
  const copy = bytes.slice();
  post({ type: 'hex', space: m.space, addr: m.addr, bytes: copy }, [copy.buffer]);
}

self.onmessage = (ev: MessageEvent<ToWorker>) => {
  const m = ev.data;
  const job = m.type === 'open' ? open(m) : m.type === 'bt' ? taskBacktrace(m) : hex(m);
  job.catch((e) => post(m.type === 'hex' ? { ...(errorOf(e) as { code: string; message: string }), type: 'hexError' } : errorOf(e)));
};
