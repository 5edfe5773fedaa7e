/**
 * vmcore convert IN... OUT — what makedumpfile does (kdump / ELF / flattened / split /
 * reassemble / -R), with worker threads.
 */
import { warning, type Warning } from '../../core/warnings.js';
import { Option, type Command } from 'commander';
import { VmcoreError } from '../../core/errors.js';
import type { OutputCodec } from '../../core/format/batch.js';
import { openDumpFiles } from '../../node/open.js';
import { inKernelPages } from '../../core/reblock.js';
import { isStreamPath, streamOf } from '../../node/file-source.js';
import { openDumpStream } from '../../node/stream/kdump-stream.js';
import { nodeCodecs } from '../../node/codecs.js';
import { KdumpDump } from '../../core/format/kdump/reader.js';
import { STATS_OPTION, printStats } from '../remote.js';
import type { ByteSource } from '../../core/io/source.js';
import { prestartCompressWorkers } from '../../node/workers/pool.js';
import { convertDump, defaultConvertThreads, type ConvertProgress, type ConvertSummary } from '../../node/convert/index.js';
import { celfOutput } from '../../node/convert/celf.js';
import { checkChunkSize, parseChunkSize } from '../../core/format/celf/writer.js';
import { humanBytes, parseBigint, parseCount, printable, printJson } from '../util.js';
import { analyzeKernel, kernelAnalysable } from '../../core/kernel/kernel.js';
import { isHttpUrl } from '../../core/io/http.js';
import { DL_PAGE_TYPES } from '../../core/kernel/pagetypes.js';
import { checkFilteredOutput, prestartTriageWorker, startFilter, startOutputCheck, type FilterPlan } from '../../node/convert/filter.js';
import { checkOutput } from '../../node/convert/sinks.js';

interface Opts {
  stats?: boolean;
  format?: string;
  compress?: string;
  level?: string;
  excludeZero?: boolean;
  dumpLevel?: string;
  threads?: string;
  flatten?: boolean;
  split?: string;
  force?: boolean;
  quiet?: boolean;
  json?: boolean;
  keepIncomplete?: boolean;
  physBase?: string;
  c?: boolean;
  l?: boolean;
  p?: boolean;
  z?: boolean;
  E?: boolean;
  native?: boolean;
  kernel?: boolean;
  chunk?: string;
  keepAllPages?: boolean;
  R?: boolean;
  reassemble?: boolean;
}

function int(s: string | undefined, what: string): number | undefined {
  if (s === undefined) return undefined;
  return parseCount(s, what);
}

export function register(program: Command): void {
  program
    .command('convert')
    .description(
      'Convert a dump (ELF, kdump, flattened, split set) into kdump-compressed, ELF or compressed ELF (celf), in one pass with worker threads: convert IN... OUT. OUT "-" writes the flattened stream to stdout.',
    )
    .argument('<in...>', 'input dump (several files: a split set; "-", a pipe or a FIFO: read once, in order), then OUT')
    .addOption(new Option('--format <fmt>', 'output format (celf: compressed ELF, docs/compressed-elf.md)').choices(['kdump', 'elf', 'celf']))
    .addOption(new Option('--compress <codec>', 'page codec (kdump: default zlib; celf: chunk codec, default zstd)').choices(['zlib', 'lzo', 'snappy', 'zstd', 'none']))
    .option('--level <n>', 'codec level for zlib/zstd (default 1, as makedumpfile and QEMU)')
    .option('--exclude-zero', 'zero pages cost nothing: one shared zero page (kdump), not stored (ELF); dump level 1')
    .option('-d, --dump-level <n>', 'makedumpfile dump level 0-31: 1 zero pages, 2 page cache, 4 page cache with private data, 8 user data, 16 free pages (bits add up)')
    .option('--threads <n>', 'compression worker threads (default: number of cores; 0 = none)')
    .option('-F, --flatten', 'write the makedumpfile -F flattened stream (implied by OUT "-")')
    .option('--split <n>', 'write N files OUT.1..OUT.N, each its own pfn range (makedumpfile --split)')
    .option('--force', 'overwrite OUT if it exists')
    .option('--keep-incomplete', 'on failure keep the partial output, marked incomplete')
    .option('--phys-base <value>', 'phys_base to record in the kdump header (default: VMCOREINFO, else the source header)')
    .option('--chunk <size>', 'celf: uncompressed bytes per chunk, e.g. 64K (default 64K)')
    .option('--no-native', 'compress with the npm codec packages (node:zlib, lzo) even when the native addon is built')
    .option('--keep-all-pages', "keep pages above the end of the kernel's memory model (QEMU's firmware ROM); makedumpfile cannot re-filter such a file")
    .option('--no-kernel', 'do not analyse the kernel (proven phys_base, utsname and VMCOREINFO recovered from memory)')
    .option('--quiet', 'no progress bar and no summary line (warnings are still printed)')
    .option(...STATS_OPTION)
    .option('--json', 'print a JSON summary')
    .option('-c', 'zlib (makedumpfile -c)')
    .option('-l', 'lzo (makedumpfile -l)')
    .option('-p', 'snappy (makedumpfile -p)')
    .option('-z', 'zstd (makedumpfile -z)')
    .option('-E', 'ELF output (makedumpfile -E)')
    .option('-R', 'read the dump from standard input (makedumpfile -R); give only OUT')
    .option('--reassemble', 'the inputs must be one split set, written as one file (makedumpfile --reassemble)')
    .action(async (args: string[], o: Opts) => {
      if (o.R && args.length !== 1) throw new VmcoreError('USAGE', '-R reads the dump from standard input: give only OUT');
      if (!o.R && args.length < 2) throw new VmcoreError('USAGE', 'convert needs IN... OUT');
      const inputs = o.R ? ['-'] : args.slice(0, -1);
      const out = args[args.length - 1]!;
      const shortCodecs = [o.c && 'zlib', o.l && 'lzo', o.p && 'snappy', o.z && 'zstd'].filter(Boolean) as OutputCodec[];
      if (shortCodecs.length > 1 || (shortCodecs.length && o.compress && o.compress !== shortCodecs[0])) {
        throw new VmcoreError('USAGE', 'give one codec (-c, -l, -p, -z or --compress)');
      }
      const celf = o.format === 'celf';
      const format = o.E ? 'elf' : celf ? 'kdump' : ((o.format ?? 'kdump') as 'kdump' | 'elf');
      if (celf && (o.E || o.flatten || out === '-' || o.split !== undefined)) {
        throw new VmcoreError('USAGE', 'celf output is one seekable file: -E, --flatten, --split and OUT "-" do not apply');
      }
      if (o.chunk !== undefined && !celf) throw new VmcoreError('USAGE', '--chunk applies to --format celf only');
      const chunkSize = o.chunk !== undefined ? checkChunkSize(parseChunkSize(o.chunk), 4096) : undefined;
      if (o.E && o.format === 'kdump') throw new VmcoreError('USAGE', '-E and --format kdump contradict each other');
      const codec = (shortCodecs[0] ?? o.compress ?? (celf ? 'zstd' : 'zlib')) as OutputCodec;
      if (format === 'elf' && (shortCodecs.length || o.compress)) throw new VmcoreError('USAGE', 'ELF output is not compressed: drop the codec option');
      let dumpLevel = int(o.dumpLevel, '--dump-level') ?? 0;
      if (o.excludeZero) dumpLevel = Math.max(dumpLevel, 1) === 1 ? 1 : dumpLevel;
      if (dumpLevel > 31) throw new VmcoreError('USAGE', `dump level ${dumpLevel}: must be 0-31 (makedumpfile bits: 1 zero, 2 cache, 4 private cache, 8 user, 16 free)`);
      const filtering = (dumpLevel & DL_PAGE_TYPES) !== 0;
      if (filtering && o.kernel === false) throw new VmcoreError('USAGE', `dump level ${dumpLevel} classifies pages through the kernel's struct pages: it cannot be combined with --no-kernel`);
      const toStdout = out === '-';
      const split = int(o.split, '--split');
      const showBar = !o.quiet && !o.json && process.stderr.isTTY;

      if (o.reassemble) {
        if (inputs.length < 2) throw new VmcoreError('USAGE', '--reassemble wants the files of one split set, then OUT');
        if (split !== undefined) throw new VmcoreError('USAGE', '--reassemble and --split contradict each other');
      }
      const streamIn = inputs.length === 1 && (await isStreamPath(inputs[0]!));
      if (streamIn && filtering) {
        throw new VmcoreError('USAGE', `dump level ${dumpLevel} classifies pages through the kernel's struct pages, which needs random access: save the stream to a file and convert that`);
      }
      // the outputs are checked before the inputs are opened and analysed (an existing OUT, a
      // missing directory, OUT one of the inputs: refused at once); convertDump checks again
      // when it creates them
      if (!toStdout) {
        const names = split !== undefined && split > 1 ? Array.from({ length: split }, (_, i) => `${out}.${i + 1}`) : [out];
        for (const n of names) await checkOutput(n, !!o.force, inputs.filter((x) => x !== '-'));
      }
      // the thread that triages the input for the guard starts now: its isolate loads while this
      // one opens the dump and analyses the kernel (local files only, as startFilter asks)
      if (filtering && (o.threads === undefined || int(o.threads, '--threads')! > 0) && !inputs.some(isHttpUrl)) prestartTriageWorker();
      const sources: ByteSource[] = [];
      const stream = streamIn ? await openDumpStream(await streamOf(inputs[0]!), { name: inputs[0] === '-' ? 'standard input' : inputs[0]!, codecs: nodeCodecs() }) : undefined;
      const dump = stream ? undefined : await openDumpFiles(inputs, { sources });
      if (o.reassemble && !(dump instanceof KdumpDump && dump.parts.length > 1)) throw new VmcoreError('USAGE', '--reassemble: the files are not one split set');
      // the compression workers start now, on their own threads, while this one analyses the
      // kernel and classifies the pages
      // (not with dump levels 2-31: the pages they keep are few, see convertDump's threads)
      if (!filtering) prestartCompressWorkers(o.threads !== undefined ? int(o.threads, '--threads')! : defaultConvertThreads());
      const ac = new AbortController();
      // the first signal stops the conversion; more signals while it removes (or marks) the
      // partial output are taken by this handler too, so that the process exits only once the
      // temporary file is gone (a second Ctrl-C had exited at once and left it behind)
      const onSig = () => ac.abort();
      process.on('SIGINT', onSig);
      process.on('SIGTERM', onSig);
      let bar: import('cli-progress').SingleBar | undefined;
      let t0 = Date.now();
      try {
        // every warning goes to stderr as it comes (--quiet too: it only drops the progress bar
        // and the summary), or with --json into its warnings
        const warnings: Warning[] = [];
        const warn = (w: Warning) => {
          warnings.push(w);
          if (!o.json) process.stderr.write(`warning: ${printable(w.text)}\n`);
        };
        for (const w of dump?.warnings ?? stream!.warnings) warn(w);
        if (stream && !o.quiet && o.kernel !== false) {
          process.stderr.write(`note: ${stream.input.name} is read once (${stream.format}): the header values are the stream's, without kernel analysis (fix the output afterwards with vmcore fix)\n`);
        }
        if (showBar) {
          const { SingleBar, Presets } = await import('cli-progress');
          bar = new SingleBar(
            {
              format: ' {phase} [{bar}] {percentage}% | {value}/{total} pages | {rate} MB/s | ETA {eta_formatted}',
              hideCursor: true,
              stream: process.stderr,
              etaBuffer: 50,
            },
            Presets.shades_classic,
          );
        }
        const nStreamWarnings = stream?.warnings.length ?? 0;
        let started = false;
        const onProgress = (p: ConvertProgress) => {
          if (!bar) return;
          if (!started) {
            started = true;
            t0 = Date.now();
            bar.start(p.pagesTotal, 0, { phase: p.phase, rate: '0' });
          }
          const s = (Date.now() - t0) / 1000;
          bar.update(p.pagesDone, { phase: p.phase, rate: s > 0 ? (p.bytesIn / 1e6 / s).toFixed(0) : '0' });
        };
        // Kernel awareness: the proven phys_base, utsname read from memory, and VMCOREINFO
        // recovered from memory when the file has none (so the output carries it). A stream
        // is read once: its header values are kept as they are.
        const physBase = o.physBase !== undefined ? parseBigint(o.physBase, '--phys-base') : undefined;
        let filter: FilterPlan | undefined;
        let kernel: Awaited<ReturnType<typeof analyzeKernel>> | undefined;
        if (dump && o.kernel !== false && (kernelAnalysable(dump) || filtering)) {
          try {
            kernel = await analyzeKernel(dump, {});
            for (const w of kernel.warnings) warn(w);
          } catch (e) {
            if (filtering) throw e;
            warn(warning('KERNEL_ANALYSIS_FAILED', `kernel analysis failed (${(e as Error).message}); header values come from the file`));
          }
        }
        // written and classified in the kernel's pages: QEMU's arm64 files use 64 KiB blocks, and
        // crash, makedumpfile and libkdumpfile count block_size, max_mapnr and pfns in PAGESIZE
        const input = dump ? inKernelPages(dump, kernel?.vmcoreinfo) : undefined;
        // the classification first; the input's triage, on a worker thread of its own, goes on
        // while the output is written, and judges it before it is checked (a refusal removes it).
        // What goes to standard output cannot be taken back: judged before writing.
        // local files only: a remote input's triage pages would be fetched a second time, without
        // the HTTP options, and left out of --stats
        const classified = input && filtering ? await startFilter(input, kernel!, dumpLevel, { force: !!o.force, onWarning: warn, ...((o.threads === undefined || int(o.threads, '--threads')! > 0) && !inputs.some(isHttpUrl) ? { inputFiles: inputs } : {}) }) : undefined;
        if (classified && (toStdout || !classified.concurrent)) filter = await classified.finish();
        let summary: ConvertSummary;
        try {
          summary = await convertDump(input ?? stream!.input, toStdout ? process.stdout : out, {
            ...(physBase !== undefined ? { physBase } : {}),
            // the header values convertDump derives from the kernel (kernelHeaderValues); pages
            // above the kernel's memory model are firmware and left out, as `fix` does
            kernel: kernel ?? false,
            keepAllPages: !!o.keepAllPages,
            format,
            codec: format === 'elf' ? 'none' : codec,
            ...(o.level !== undefined ? { level: int(o.level, '--level')! } : {}),
            dumpLevel,
            ...(classified ? { exclude: classified.exclude } : {}),
            ...(o.threads !== undefined ? { threads: int(o.threads, '--threads')! } : {}),
            flatten: !!o.flatten || toStdout,
            ...(split !== undefined ? { split } : {}),
            force: !!o.force,
            keepIncomplete: !!o.keepIncomplete,
            noNative: o.native === false,
            ...(celf
              ? {
                  outputFormat: celfOutput({
                    ...(chunkSize !== undefined ? { chunkSize } : {}),
                    ...(o.threads !== undefined ? { threads: int(o.threads, '--threads')! } : {}),
                    noNative: o.native === false,
                  }),
                }
              : {}),
            signal: ac.signal,
            onProgress,
            inputFiles: inputs.filter((x) => x !== '-'),
          });
        } catch (e) {
          // the input's triage worker is waited for, never terminated
          await classified?.settle();
          throw e;
        }
        bar?.stop();
        bar = undefined;
        const written = summary.outputs.map((x) => x.name);
        // info and dmesg of the output run while the input's triage thread finishes
        const outputCheck = filtering && !toStdout ? startOutputCheck(written) : undefined;
        try {
          if (classified && !filter) filter = await classified.finish(written, outputCheck);
          if (filter && !toStdout) await checkFilteredOutput(written, filter, { force: !!o.force, onWarning: warn, ...(outputCheck ? { started: outputCheck } : {}) });
        } finally {
          await outputCheck?.close();
        }
        for (const w of [...summary.warnings, ...(stream?.warnings.slice(nStreamWarnings) ?? [])]) warn(w);
        if (o.json) {
          await printJson({ ...summary, warnings });
        } else if (!o.quiet) {
          const p = summary.pages;
          process.stderr.write(
            `${summary.outputs.map((x) => x.name).join(', ')}: ${summary.format}${summary.codec !== 'none' ? ` ${summary.codec} (${summary.codecImpl})` : ''}, ` +
              `${p.total} pages (${p.compressed} compressed, ${p.raw} raw, ${p.zero} zero; ${p.excluded} excluded), ` +
              `${humanBytes(summary.bytesIn)} -> ${humanBytes(summary.bytesOut)} in ${summary.seconds.toFixed(1)} s ` +
              `(${(summary.bytesIn / 1048576 / Math.max(summary.seconds, 1e-3)).toFixed(0)} MiB/s, ${summary.threads === 0 ? 'on the main thread' : summary.threads === 1 ? '1 worker thread' : `${summary.threads} worker threads`})\n`,
          );
        }
      } catch (e) {
        bar?.stop();
        if (ac.signal.aborted) throw new VmcoreError('INTERRUPTED', `interrupted${o.keepIncomplete ? ' (partial output kept, marked incomplete)' : ': output removed'}`);
        throw e;
      } finally {
        process.off('SIGINT', onSig);
        process.off('SIGTERM', onSig);
        printStats(sources, o);
        await dump?.close();
      }
    });
}
