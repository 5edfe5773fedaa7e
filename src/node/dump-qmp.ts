/**
 * `vmcore dump --qmp`: dump a running QEMU guest in one step.
 *
 * QEMU writes its ELF dump (`dump-guest-memory`, detached) into a FIFO that vmcore created in a
 * private directory; vmcore reads the stream once, in order, and converts it on the fly with the
 * parallel writer. The guest's memory never lands on disk uncompressed. Afterwards the kernel
 * analysis runs on the written output and the true phys_base (and, when the guest has none, a
 * VMCOREINFO recovered from memory) is patched into the headers and notes, so crash, drgn and
 * libkdumpfile read the result without help.
 *
 * Failures: QEMU exiting mid-dump, a full disk or an interrupt (AbortSignal) remove the partial
 * output (or keep it marked incomplete with keepIncomplete); vmcore stops reading, which makes
 * QEMU's write fail, then waits for QEMU's DUMP_COMPLETED so that the guest is resumed and the
 * monitor usable before reporting what happened.
 */
import { warning, type Warning } from '../core/warnings.js';
import { producerText } from './version.js';
import { mkdtemp, rm, stat } from 'node:fs/promises';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { VmcoreError, isVmcoreError } from '../core/errors.js';
import { QmpClient, type QmpDumpStatus, type QmpEvent, type QmpStatus } from './qmp.js';
import { ElfStream, type ElfStreamInfo, type PageBatch } from './stream/elf-stream.js';
import { padNote, patchKernelInfo, type KernelPatchResult } from './stream/patch-kernel.js';
import { convertDump, type PageStreamInput, type PfnRange } from './convert/index.js';
import type { PageChunk } from './convert/types.js';
import { openFifoDirect, type DirectByteStream } from './stream/direct-read.js';
import { celfOutput } from './convert/celf.js';
import { checkOutput } from './convert/sinks.js';
import { cpuCountOfNotes, findVmcoreinfoNote } from '../core/format/elf/notes.js';
import { openDump } from '../core/format/open.js';
import { analyzeKernel } from '../core/kernel/kernel.js';
import { kernelMemoryEnd } from '../core/kernel/memsection.js';
import { DL_PAGE_TYPES } from '../core/kernel/pagetypes.js';
import type { KindCounts } from '../core/kernel/pagefilter.js';
import { checkFilteredOutput, planFilter, type FilterPlan } from './convert/filter.js';
import { qmpGuestMemory } from './guest-memory.js';
import { nodeCodecs } from './codecs.js';
import { codecUnavailable, compressorImpl } from './workers/page-codec.js';
import { latin1 } from '../core/text.js';

const execFileP = promisify(execFile);

export type DumpOutputFormat = 'kdump' | 'elf' | 'celf';
export type DumpCodec = 'zlib' | 'lzo' | 'snappy' | 'zstd' | 'none';

export interface QmpDumpProgress {
  /** 'starting' | 'classifying' (page filtering: reading struct pages) | 'dumping' | 'finishing' (kernel analysis, patching) */
  phase: 'starting' | 'classifying' | 'dumping' | 'finishing';
  /** Guest memory bytes read from the stream so far. */
  memoryRead: number;
  /** Guest memory bytes the stream will deliver. */
  memoryTotal: number;
  /** Bytes of the output written so far. */
  bytesOut: number;
  /** What QEMU reports (query-dump), when polled. */
  qemu?: QmpDumpStatus;
}

export interface QmpDumpOptions {
  qmp: string;
  output: string;
  format?: DumpOutputFormat;
  codec?: DumpCodec;
  /** Do not store all-zero pages (kdump: shared zero page is used anyway; ELF: p_memsz tails). */
  excludeZero?: boolean;
  /**
   * makedumpfile dump level 0-31. With bits 2-16 the pages are classified from the stopped
   * guest's struct pages (read with QMP pmemsave before the stream's memory is read), the
   * triage guard runs on the guest and on the output, and the output ends at the kernel's
   * memory model as `convert` does.
   */
  dumpLevel?: number;
  threads?: number;
  /** Ask QEMU for paging=true (PT_LOADs with kernel virtual addresses). */
  paging?: boolean;
  force?: boolean;
  keepIncomplete?: boolean;
  /** After the dump, check that QEMU answers and the guest is back in its former run state. */
  detachCheck?: boolean;
  /** Patch phys_base / VMCOREINFO from the kernel analysis (default true). */
  fixKernelInfo?: boolean;
  signal?: AbortSignal;
  onProgress?: (p: QmpDumpProgress) => void;
  /** Also called with warnings as they occur. */
  onWarning?: (w: Warning) => void;
  /** Progress poll interval for query-dump, ms (default 500). */
  pollMs?: number;
}

export interface QmpDumpSummary {
  output: string;
  format: DumpOutputFormat;
  codec: DumpCodec;
  codecImpl: string;
  threads: number;
  qemuVersion: string;
  guestStatusBefore: string;
  guestStatusAfter?: string;
  /** Guest memory (sum of PT_LOAD sizes QEMU wrote). */
  guestMemory: number;
  /** Bytes QEMU wrote into the FIFO (the whole ELF stream). */
  streamBytes: number;
  /** Size of the output file. */
  bytesWritten: number;
  pages: { total: number; zero: number; stored: number };
  elapsedMs: number;
  /** Where the time went: QEMU stream + conversion, waiting for QEMU's verdict, kernel analysis and patch. */
  timings: { streamMs: number; qemuDoneMs: number; analysisMs: number };
  /** From QEMU's STOP and RESUME event timestamps (a running guest is paused for the dump). */
  guestPausedMs?: number;
  physBase?: { value: bigint; verdict: string; method?: string; patched: boolean };
  vmcoreinfo: { source: string; added: boolean };
  /** The dump level recorded in the output. */
  dumpLevel: number;
  /** Pages left out per kind (dump levels 2-31). */
  filtered?: KindCounts;
  /** The classification's reads of the stopped guest (dump levels 2-31). */
  classification?: { requests: number; bytes: number; ms: number };
  warnings: Warning[];
}

/** The converter's sequential input, built from QEMU's ELF stream. */
export function streamInput(
  info: ElfStreamInfo,
  batches: AsyncIterable<PageBatch>,
  name: string,
  opts: { reserveNoteSpace?: boolean; useBuffers?: (get: (bytes: number) => ArrayBuffer) => void } = {},
): PageStreamInput {
  const ps = info.pageSize;
  const ranges: PfnRange[] = [];
  for (const sg of info.segments) {
    const r = { startPfn: Math.floor(sg.paddr / ps), endPfn: Math.ceil((sg.paddr + sg.memsz) / ps) };
    const last = ranges[ranges.length - 1];
    if (last && last.endPfn === r.startPfn) last.endPfn = r.endPfn;
    else ranges.push(r);
  }
  const vmci = findVmcoreinfoNote(info.notes);
  const nrCpus = cpuCountOfNotes(info.notes);
  async function* pages(): AsyncGenerator<PageChunk> {
    let zero: Uint8Array | undefined;
    for await (const b of batches) {
      if (b.data) {
        yield b.owned ? { startPfn: b.pfn, data: b.data, owned: true } : { startPfn: b.pfn, data: b.data };
        continue;
      }
      zero ??= new Uint8Array(256 * ps);
      for (let p = 0; p < b.count; p += 256) yield { startPfn: b.pfn + p, data: zero.subarray(0, Math.min(256, b.count - p) * ps) };
    }
  }
  return {
    kind: 'stream',
    name,
    pageSize: ps,
    arch: info.arch,
    is64: info.is64,
    littleEndian: info.littleEndian,
    // ELF readers (crash) want the notes near the headers: keep room there for a VMCOREINFO
    // recovered after the conversion (see stream/patch-kernel.ts).
    notes: !vmci && opts.reserveNoteSpace ? [...info.notes, padNote()] : info.notes,
    ...(vmci ? { vmcoreinfoText: latin1(vmci.desc).replace(/\0+$/, '') } : {}),
    ranges,
    maxPfn: info.maxPfn,
    pages: pages(),
    ...(opts.useBuffers ? { useBuffers: opts.useBuffers } : {}),
    segments: info.segments.map((x) => ({ paddr: x.paddr, vaddr: x.vaddr, memsz: x.memsz })),
    ...(nrCpus ? { header: { nrCpus } } : {}),
  };
}

function qemuVersion(c: QmpClient): string {
  const v = c.greeting.QMP.version;
  return `${v.qemu.major}.${v.qemu.minor}.${v.qemu.micro}${v.package ? ` (${v.package.trim()})` : ''}`;
}

const tsMs = (e: QmpEvent | undefined) => (e?.timestamp ? e.timestamp.seconds * 1000 + e.timestamp.microseconds / 1000 : undefined);

/**
 * Dump a running QEMU guest through its QMP monitor: `dump-guest-memory` into a FIFO that
 * vmcore reads once and writes as kdump, ELF or celf (with `dumpLevel` 2-31 filtered from the
 * stopped guest's struct pages), then patch phys_base and VMCOREINFO from the kernel analysis.
 * @param opts `qmp` (a UNIX socket path or host:port), `output` (a new file), `format`,
 *   `codec`, `dumpLevel`, `threads`, `pollMs` (milliseconds).
 * @returns the `vmcore dump --json` summary (keys in README): bytes, pages, times in ms.
 * @throws VmcoreError CODEC_UNAVAILABLE (the codec cannot be written here, before QEMU is asked anything), QMP (the monitor refused or failed; QmpCommandError carries QEMU's
 *   class), IO, EXISTS, INTERRUPTED (`signal`), TRIAGE (filtering would lose what the analysis
 *   needs). QMP commands: qapi/dump.json, qapi/misc.json (pmemsave).
 */
export async function dumpViaQmp(opts: QmpDumpOptions): Promise<QmpDumpSummary> {
  const t0 = Date.now();
  const format = opts.format ?? 'kdump';
  const codec = format === 'elf' ? 'none' : (opts.codec ?? (format === 'celf' ? 'zstd' : 'zlib'));
  const warnings: Warning[] = [];
  const warn = (w: Warning) => {
    warnings.push(w);
    opts.onWarning?.(w);
  };
  if (opts.signal?.aborted) throw new VmcoreError('INTERRUPTED', 'interrupted before the dump started');
  // a codec this installation cannot write is said before QEMU pauses the guest
  if (codec !== 'none' && compressorImpl(codec) === 'unavailable') throw codecUnavailable(codec);

  const qmp = await QmpClient.connect(opts.qmp);
  let dir: string | undefined;
  let reader: DirectByteStream | undefined;
  let poll: NodeJS.Timeout | undefined;
  // Events QEMU sends during the dump (registered before the command).
  const events: QmpEvent[] = [];
  const onEvent = (e: QmpEvent) => {
    if (e.event === 'STOP' || e.event === 'RESUME' || e.event === 'DUMP_COMPLETED') events.push(e);
  };
  qmp.on('event', onEvent);
  let dumpStarted = false;
  let completed: Promise<QmpEvent> | undefined;

  try {
    const status = await qmp.execute<QmpStatus>('query-status', undefined, { timeoutMs: 10000 });
    if (status.status === 'inmigrate') {
      throw new VmcoreError('QMP', 'the guest is waiting for an incoming migration; its memory is not there yet', { file: qmp.target });
    }
    if (status.status === 'prelaunch') {
      throw new VmcoreError('QMP', 'the guest has not been started (QEMU status prelaunch); there is no guest memory to dump yet', { file: qmp.target });
    }
    if (opts.paging) {
      warn(warning('PAGING_DUMP', '--paging: QEMU then describes only the memory that the vCPUs\' page tables map; RAM mapped by no page table is left out of the dump'));
    }
    if (!status.running) warn(warning('GUEST_STATE', `the guest is not running (QEMU status ${status.status}); dumping its memory as it is`));
    const before = await qmp.execute<QmpDumpStatus>('query-dump', undefined, { timeoutMs: 10000 });
    if (before.status === 'active') throw new VmcoreError('QMP', 'QEMU is already writing a dump (query-dump status active); try again when it is done', { file: qmp.target });

    // Refuse an existing OUT before QEMU pauses the guest for nothing.
    await checkOutput(opts.output, opts.force ?? false, []);
    dir = await mkdtemp(join(tmpdir(), 'vmcore-qmp-'));
    const fifo = join(dir, 'guest.elf');
    try {
      await execFileP('mkfifo', ['-m', '600', fifo]);
    } catch (e) {
      throw new VmcoreError('IO', `cannot create a FIFO with mkfifo: ${(e as Error).message}`, { file: fifo, cause: e });
    }
    // QEMU's stream is read straight into the converter's batch buffers (stream/direct-read.ts)
    reader = await openFifoDirect(fifo);

    completed = qmp.waitEvent('DUMP_COMPLETED');
    completed.catch(() => undefined);
    await qmp.execute('dump-guest-memory', { paging: opts.paging ?? false, protocol: `file:${fifo}`, detach: true, format: 'elf' }, { timeoutMs: 60000 });
    dumpStarted = true;
    // QEMU has opened the FIFO: the name is no longer needed.
    await rm(dir, { recursive: true, force: true });
    dir = undefined;

    const stream = await ElfStream.open(reader, { name: `QEMU dump stream (${qmp.target})` });
    for (const w of stream.warnings) warn(w);
    const info = stream.info;
    let bytesOut = 0;
    let lastQemu: QmpDumpStatus | undefined;
    const report = (phase: QmpDumpProgress['phase']) =>
      opts.onProgress?.({
        phase,
        memoryRead: Math.max(0, stream.bytesRead - (info.segments[0]?.offset ?? 0)),
        memoryTotal: info.memoryBytes,
        bytesOut,
        ...(lastQemu ? { qemu: lastQemu } : {}),
      });
    poll = setInterval(() => {
      qmp
        .execute<QmpDumpStatus>('query-dump', undefined, { timeoutMs: 5000 })
        .then((s) => {
          lastQemu = s;
          report('dumping');
        })
        .catch(() => undefined);
    }, opts.pollMs ?? 500);
    report('starting');

    // QEMU exiting closes the QMP socket: stop the conversion with that as the reason.
    const abort = new AbortController();
    let qemuGone: VmcoreError | undefined;
    const onClosed = (e: VmcoreError) => {
      qemuGone = e;
      abort.abort();
    };
    qmp.on('closed', onClosed);
    const onUserAbort = () => abort.abort();
    opts.signal?.addEventListener('abort', onUserAbort);

    async function* batches(): AsyncGenerator<PageBatch> {
      for await (const b of stream.pages()) {
        if (abort.signal.aborted) break;
        yield b;
        report('dumping');
      }
    }

    // Page filtering: classify from the stopped guest while QEMU waits on the FIFO.
    const dumpLevel = opts.dumpLevel ?? (format === 'kdump' || opts.excludeZero ? 1 : 0);
    let filter: FilterPlan | undefined;
    let memoryEnd: number | undefined;
    let classification: QmpDumpSummary['classification'];
    if (dumpLevel & DL_PAGE_TYPES) {
      const tc = Date.now();
      report('classifying');
      const guest = await qmpGuestMemory(qmp, info, `guest memory (${qmp.target})`);
      try {
        const gdump = await openDump([guest.source], nodeCodecs());
        try {
          const kernel = await analyzeKernel(gdump);
          const end = await kernelMemoryEnd(kernel, info.pageSize);
          if (end && end.endPfn < info.maxPfn) memoryEnd = end.endPfn;
          filter = await planFilter(gdump, kernel, dumpLevel, { force: opts.force ?? false, onWarning: warn, digestPages: false });
        } finally {
          await gdump.close();
        }
      } finally {
        await guest.close();
      }
      classification = { ...guest.stats, ms: Date.now() - tc };
    }

    let conv;
    try {
      const reserve = format === 'elf' && (opts.fixKernelInfo ?? true);
      conv = await convertDump(streamInput(info, batches(), `QEMU dump stream (${qmp.target})`, { reserveNoteSpace: reserve, useBuffers: (get) => stream.useBuffers(get) }), opts.output, {
        format: format === 'elf' ? 'elf' : 'kdump',
        producer: producerText('dump'),
        codec,
        ...(format === 'celf' ? { outputFormat: celfOutput(opts.threads !== undefined ? { threads: opts.threads } : {}) } : {}),
        // default: kdump zero pages share one zero page (lossless, as QEMU does); ELF: only on request
        dumpLevel,
        ...(filter ? { exclude: filter.exclude } : {}),
        ...(memoryEnd !== undefined ? { maxPfn: memoryEnd } : {}),
        ...(opts.threads !== undefined ? { threads: opts.threads } : {}),
        force: opts.force ?? false,
        keepIncomplete: opts.keepIncomplete ?? false,
        signal: abort.signal,
        onProgress: (p) => (bytesOut = p.bytesOut),
      });
      if (abort.signal.aborted) throw new VmcoreError('INTERRUPTED', 'interrupted');
    } catch (e) {
      throw await explainFailure(e, { qemuGone, userAbort: opts.signal?.aborted ?? false, keep: opts.keepIncomplete ?? false, output: opts.output });
    } finally {
      qmp.off('closed', onClosed);
      opts.signal?.removeEventListener('abort', onUserAbort);
      clearInterval(poll);
      poll = undefined;
    }
    const convWarnings = conv.warnings;

    const tStream = Date.now();
    // The stream is at EOF: QEMU has finished writing. Its verdict:
    const done = await withTimeout(completed, 120000, 'QEMU did not report DUMP_COMPLETED');
    const result = (done.data?.result ?? {}) as QmpDumpStatus;
    if (result.status !== 'completed') {
      const why = typeof done.data?.error === 'string' ? done.data.error : `status ${result.status}`;
      if (!opts.keepIncomplete) await rm(opts.output, { force: true });
      throw new VmcoreError('QMP', `QEMU reports the dump failed: ${why}; ${opts.keepIncomplete ? 'the output was kept' : 'the output was removed'}`, { file: qmp.target });
    }
    dumpStarted = false;
    const tDone = Date.now();
    report('finishing');

    let kernel: KernelPatchResult = { vmcoreinfo: { source: 'not checked', added: false }, warnings: [] };
    if (opts.fixKernelInfo ?? true) {
      try {
        kernel = await patchKernelInfo(opts.output, format);
      } catch (e) {
        warn(warning('KERNEL_ANALYSIS_FAILED', `kernel analysis of the output failed, phys_base and VMCOREINFO left as QEMU wrote them: ${(e as Error).message}`));
      }
    }
    // The triage guard on the written (and patched) output.
    if (filter) {
      try {
        await checkFilteredOutput([opts.output], filter, { force: opts.force ?? false, onWarning: warn });
      } catch (e) {
        if (!opts.keepIncomplete) await rm(opts.output, { force: true });
        throw e;
      }
    }
    // Warnings about phys_base that the patch has resolved are noise.
    const fixed =
      kernel.physBase?.value !== undefined && (kernel.physBase.patched || format !== 'kdump' || kernel.physBase.verdict === 'header correct');
    for (const w of [...convWarnings, ...kernel.warnings]) {
      if (fixed && (w.code === 'PHYS_BASE_HEADER_WRONG' || w.code === 'PHYS_BASE_UNKNOWN')) continue;
      warn(w);
    }

    const tPatch = Date.now();
    let after: string | undefined;
    if (opts.detachCheck) {
      // A detached dump must leave the guest as it found it: ask QEMU for its run state now.
      const st = await qmp.execute<QmpStatus>('query-status', undefined, { timeoutMs: 10000 });
      after = st.status;
      if (st.running !== status.running) {
        warn(warning('GUEST_STATE', `the guest was ${status.status} before the dump and is ${st.status} after it`));
      }
    }

    const stop = events.find((e) => e.event === 'STOP');
    const resume = events.find((e) => e.event === 'RESUME' && (tsMs(e) ?? 0) >= (tsMs(stop) ?? 0));
    const pausedMs = stop && resume ? (tsMs(resume)! - tsMs(stop)!) : undefined;

    return {
      output: opts.output,
      format,
      codec,
      codecImpl: conv.codecImpl,
      threads: conv.threads,
      qemuVersion: qemuVersion(qmp),
      guestStatusBefore: status.status,
      ...(after !== undefined ? { guestStatusAfter: after } : {}),
      guestMemory: info.memoryBytes,
      streamBytes: stream.bytesRead,
      bytesWritten: (await stat(opts.output)).size,
      pages: { total: conv.pages.total, zero: conv.pages.zero, stored: conv.pages.compressed + conv.pages.raw },
      elapsedMs: Date.now() - t0,
      timings: { streamMs: tStream - t0, qemuDoneMs: tDone - tStream, analysisMs: tPatch - tDone },
      ...(pausedMs !== undefined ? { guestPausedMs: Math.round(pausedMs) } : {}),
      ...(kernel.physBase ? { physBase: kernel.physBase } : {}),
      vmcoreinfo: kernel.vmcoreinfo,
      dumpLevel,
      ...(conv.filtered ? { filtered: conv.filtered } : {}),
      ...(classification ? { classification } : {}),
      warnings,
    };
  } catch (e) {
    if (dumpStarted && !qmp.closed) {
      // Stop reading so QEMU's writes fail, then wait until QEMU has given up and resumed the
      // guest, so the monitor is usable when we return.
      reader?.close();
      if (completed) await withTimeout(completed, 60000, '').catch(() => undefined);
    }
    throw e;
  } finally {
    if (poll) clearInterval(poll);
    reader?.close();
    qmp.off('event', onEvent);
    qmp.close();
    if (dir) await rm(dir, { recursive: true, force: true }).catch(() => undefined);
  }
}

async function withTimeout<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let t: NodeJS.Timeout | undefined;
  try {
    return await Promise.race([
      p,
      new Promise<never>((_, rej) => {
        t = setTimeout(() => rej(new VmcoreError('QMP', `${what} within ${ms / 1000} s`)), ms);
      }),
    ]);
  } finally {
    clearTimeout(t);
  }
}

async function explainFailure(
  e: unknown,
  ctx: { qemuGone: VmcoreError | undefined; userAbort: boolean; keep: boolean; output: string },
): Promise<VmcoreError> {
  const fate = ctx.keep ? `the partial output was kept and marked incomplete: ${ctx.output}` : 'the partial output was removed';
  if (ctx.userAbort) return new VmcoreError('INTERRUPTED', `interrupted; ${fate}; QEMU and the guest keep running`, { file: ctx.output, cause: e });
  if (ctx.qemuGone || (isVmcoreError(e) && e.code === 'TRUNCATED')) {
    return new VmcoreError('QMP', `QEMU stopped writing the dump (${ctx.qemuGone ? 'QEMU exited or closed the monitor' : 'the stream ended early'}); ${fate}`, {
      file: ctx.output,
      cause: e,
    });
  }
  if (isVmcoreError(e)) {
    const msg = e.code === 'IO' ? `${e.message}; ${fate}; QEMU's dump was stopped and the guest left in its former state` : e.message;
    return new VmcoreError(e.code, msg, { cause: e });
  }
  return new VmcoreError('IO', `${(e as Error)?.message ?? String(e)}; ${fate}`, { file: ctx.output, cause: e });
}
