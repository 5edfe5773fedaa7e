/**
 * `convertDump`: one-pass, bounded-memory conversion of any dump into kdump-compressed
 * (seekable, flattened or a split set) or ELF.
 *
 * Pipeline
 *   input pages ──► batches (≤ batchPages consecutive present pages, one ArrayBuffer each)
 *     ──► CompressPool (worker_threads; buffers transferred, not copied; zero check and
 *         per-page compression in place) ──► results in page order ──► output format plug-in
 *     ──► OutputSink (positional writes: temp file + rename, or the flattened stream)
 * A kdump input's batches go to the workers in their stored form (one read of their data, into
 * a recycled buffer): the workers decode every page once (check it, find zero pages) and keep the
 * stored bytes of the pages stored in the output's codec (no --level), compressing only the others.
 * An ELF file's batches go as their place in the file when the native addon can read them
 * (CompressPool.readsFiles): the worker reads and compresses them, the main thread copies no page;
 * a batch it cannot read is read again here (submitBatch), which names what is wrong.
 * Pages the input lacks (ConvertPlan.missing) are left out and the output is marked incomplete.
 * At most `2 * threads + 2` batches exist at any time: the producer awaits a free slot,
 * and the consumer awaits each sink write before taking the next result, so a slow disk
 * holds the whole pipeline back instead of piling pages up in memory. Buffers are recycled.
 *
 * Inputs
 *  - a random-access `Dump` (openDumpFiles): the plan (RAM and present page runs) comes from
 *    `pageRuns()` (metadata only); pages are read with `readPhys` run by run.
 *  - a sequential `PageStreamInput` (e.g. an ELF read once from a FIFO while QEMU writes it):
 *    the memory ranges, notes and page size are declared up front and every page of every
 *    range arrives exactly once in ascending order. No output format needs a second pass over
 *    such an input: kdump reserves the descriptor area from the declared page count (zero pages
 *    share one zero page, so they stay "dumped"), writes data and each batch's descriptors at
 *    their final offsets, then bitmaps and headers at the end; ELF assigns segment offsets while
 *    streaming and writes the program headers at the end (zero runs inside a segment stay as
 *    sparse gaps instead of split points, since splitting needs the zero map before the header).
 *
 * Output-format plug-in interface (`OutputFormat`), e.g. for a compressed-ELF writer:
 *    page in  → `compression` tells the workers which codec/level to use and whether to detect
 *               zero pages (kinds PAGE_ZERO / PAGE_RAW / PAGE_COMPRESSED per page);
 *    compressed chunk → `writeBatch(batch)` receives each CompressedBatch in ascending pfn order
 *               (the batch buffer is reused after the returned promise settles);
 *    placed bytes → the plug-in calls `sink.write(offset, bytes)` / `sink.zeros(offset, n)` for
 *               every byte range of its file and returns the final size from `finish()`.
 *  `begin(plan, sink)` comes first, `finish({incomplete})` last (also on an abort with
 *  --keep-incomplete, with incomplete = true, to leave a readable partial file). A split set
 *  creates one plug-in instance per part (`plan.part`), each with its own sink.
 */
import { hex64 } from '../../core/hex.js';
import { warning, type Warning } from '../../core/warnings.js';
import { VmcoreError } from '../../core/errors.js';
import { producerNote, withoutProducerNote, type ElfNote } from '../../core/format/elf/notes.js';
import { producerText } from '../version.js';
import { PAGE_ZERO, type OutputCodec } from '../../core/format/batch.js';
import { Vmcoreinfo } from '../../core/kernel/vmcoreinfo.js';
import { kernelArchOf } from '../../core/kernel/kernel.js';
import { subtractExcluded, subtractSpans, type KindCounts } from '../../core/kernel/pagefilter.js';
import { DL_PAGE_TYPES } from '../../core/kernel/pagetypes.js';
import type { Dump } from '../../core/dump.js';
import { InFlight } from '../../core/inflight.js';
import { unreadablePages } from '../../core/hash.js';
import { unreadableWarnings } from '../../core/info.js';
import { CompressPool, releaseSpareWorkers, StoredDecodeError, type BatchOut } from '../workers/pool.js';
import { codecUnavailable, compressorImpl, maxLevel } from '../workers/page-codec.js';
import { checkOutput, FileSink, FlatSink, type OutputSink } from './sinks.js';
import { kernelMappings } from '../../core/kernel/kernel-map.js';
import { defaultThreads, limitThreads } from '../threads.js';
import type { Writable } from 'node:stream';
import { ElfFormat, KdumpFormat } from './formats.js';
import { KdumpDump } from '../../core/format/kdump/reader.js';
import { inKernelPages } from '../../core/reblock.js';
import { headerFor, scanKeptRuns, scanRuns, splitParts, withKernelValues, type Scan } from './plan.js';
import { DirectElfReader } from './direct.js';
import { BufferPool, dumpBatches, readBatch, streamBatches, withoutRuns, type RawBatch } from './batches.js';
import { clipRanges, countIn, isStream, pushRange } from './ranges.js';
import type { ConvertInput, ConvertOptions, ConvertPlan, ConvertProgress, ConvertSummary, OutputFormat, OutputFormatFactory, PfnRange } from './types.js';
import { latin1, latin1Bytes } from '../../core/text.js';

export type { OutputSink } from './sinks.js';
export type { PfnRange, PageStreamInput, ConvertInput, ConvertProgress, ConvertOptions, ConvertSummary, ConvertPlan, OutputFormat, OutputFormatFactory } from './types.js';
export { KdumpFormat, ElfFormat } from './formats.js';
export { splitParts } from './plan.js';

function validate(opts: ConvertOptions): void {
  const dl = opts.dumpLevel ?? 0;
  if (!Number.isInteger(dl) || dl < 0 || dl > 31) throw new VmcoreError('USAGE', `dump level ${dl}: must be 0-31`, { field: 'dump_level' });
  if (dl & DL_PAGE_TYPES && !opts.exclude) {
    throw new VmcoreError('USAGE', `dump level ${dl} leaves out pages by type: it needs the page classification (exclude, from excludedPages)`, { field: 'dump_level' });
  }
  if (opts.split !== undefined && (!Number.isInteger(opts.split) || opts.split < 1 || opts.split > 256)) {
    throw new VmcoreError('USAGE', `--split wants a number of files from 1 to 256, got ${opts.split}`);
  }
  if (opts.threads !== undefined && (!Number.isInteger(opts.threads) || opts.threads < 0 || opts.threads > 256)) {
    throw new VmcoreError('USAGE', `--threads wants 0..256, got ${opts.threads}`);
  }
  const lv = opts.level;
  if (lv !== undefined) {
    const c = opts.codec ?? 'zlib';
    if (c !== 'zlib' && c !== 'zstd') throw new VmcoreError('USAGE', `--level applies to zlib and zstd: ${c === 'none' ? 'uncompressed output' : c} has no level`);
    const max = maxLevel(c, !!opts.noNative);
    if (!Number.isInteger(lv) || lv < 1 || lv > max) throw new VmcoreError('USAGE', `--level ${lv} is out of range for ${c} with ${compressorImpl(c, !!opts.noNative)} (1..${max})`);
  }
  if (opts.batchPages !== undefined && (!Number.isInteger(opts.batchPages) || opts.batchPages < 1 || opts.batchPages > 4096)) {
    throw new VmcoreError('USAGE', `batchPages must be 1..4096`);
  }
}

/**
 * At most this many pages to write (256 MiB of 4 KiB pages), each passed on as the input stores it
 * (a kdump input in the output's codec: one decode each), or an eighth as many to compress, a
 * conversion without `threads` works on the calling thread: about 0.1 s of work, less than
 * starting the workers costs (an isolate and the codec modules each, ~0.2 s of CPU). Measured
 * with dump level 31 of the 4 GiB bench guest (bench/README.md): -l from an lzo kdump, 52,679
 * pages, 1.05 s instead of 1.21 s; -c from it, compressed on one thread, was slower (1.7 s
 * instead of 1.53 s), hence the eighth.
 */
export const FEW_PAGES = 65536;

/** The compression worker threads a conversion uses when `threads` is not given: one per core, 1..16. */
export const defaultConvertThreads = defaultThreads;

/**
 * Convert `input` into `out` (a path, or a Writable for the flattened stream, e.g. stdout).
 * With `split: N`, `out` is the name prefix: files OUT.1 … OUT.N.
 * @param input an opened dump (or a sequential page stream).
 * @param opts `format` (kdump default, elf, celf), `codec` (zstd default), `dumpLevel` 0-31
 *   (makedumpfile's bits; 2-31 need `exclude` from the page classification, its pfns in the
 *   kernel's pages), `threads`,
 *   `physBase` and the other header values (derived from the kernel analysis when absent).
 * A dump in blocks larger than its kernel's VMCOREINFO PAGESIZE (QEMU's arm64 files) is written
 * in the kernel's pages (inKernelPages).
 * @returns sizes in bytes, page counts, the codec implementation and the time taken.
 * @throws VmcoreError USAGE (bad options), CODEC_UNAVAILABLE (the output codec cannot be written in this installation, before anything is written), EXISTS (OUT exists without `force`), IO, INTERRUPTED
 *   (`signal`), and the input's read errors. The output is written to a temporary name and
 *   renamed when complete. Layouts: makedumpfile diskdump_mod.h, include/uapi/linux/elf.h.
 */
export async function convertDump(input: ConvertInput, out: string | Writable, opts: ConvertOptions = {}): Promise<ConvertSummary> {
  const t0 = performance.now();
  validate(opts);
  const format = opts.format ?? 'kdump';
  const codec: OutputCodec = format === 'elf' ? 'none' : (opts.codec ?? 'zlib');
  const level = opts.level ?? 1;
  const dumpLevel = opts.dumpLevel ?? 0;
  const toStream = typeof out !== 'string';
  const flatten = toStream || !!opts.flatten;
  const nsplit = opts.split ?? 1;
  if (toStream && nsplit > 1) throw new VmcoreError('USAGE', '--split writes files: it cannot go to stdout');
  // without `threads`: one per core, or none (compression on this thread) when the pages to
  // write are few (FEW_PAGES; e.g. dump level 31), where starting workers costs more than it saves
  const warnings: Warning[] = [];
  let threads = opts.threads !== undefined ? limitThreads(opts.threads, warnings) : defaultThreads();
  const batchPages = opts.batchPages ?? 256;
  // in the kernel's pages (VMCOREINFO PAGESIZE): QEMU writes arm64 dumps in 64 KiB blocks, and
  // crash, makedumpfile and libkdumpfile take block_size, max_mapnr and the bitmaps in PAGESIZE
  if (!isStream(input)) input = inKernelPages(input, opts.kernel ? opts.kernel.vmcoreinfo : undefined);
  const ps = input.pageSize;
  // the header values the kernel proves (phys_base, utsname, VMCOREINFO, memory end)
  opts = await withKernelValues(input, opts, warnings);

  // ---- plan
  let scan: Scan;
  if (isStream(input)) {
    const present: PfnRange[] = [];
    let prev = -1;
    for (const r of input.ranges) {
      if (!(Number.isSafeInteger(r.startPfn) && r.endPfn > r.startPfn && r.startPfn >= prev)) {
        throw new VmcoreError('BAD_FIELD', 'stream ranges must be ascending, disjoint and non-empty', { file: input.name });
      }
      prev = r.endPfn;
      pushRange(present, r.startPfn, r.endPfn);
    }
    let clipped = present;
    let ramIn: readonly PfnRange[] = input.ram ?? present;
    if (opts.maxPfn !== undefined) {
      const dropped = countIn(present, opts.maxPfn, Infinity);
      if (dropped > 0) {
        clipped = clipRanges(present, opts.maxPfn);
        warnings.push(warning('PAGES_BEYOND_MEMORY_MODEL', `${dropped} pages at and above pfn 0x${opts.maxPfn.toString(16)} (the end of the kernel's memory model: firmware, not kernel memory) left out; max_mapnr 0x${opts.maxPfn.toString(16)}`));
        input = { ...input, ranges: clipped, pages: withoutRuns(input.pages, [{ startPfn: opts.maxPfn, endPfn: Infinity }], ps) };
      }
      ramIn = clipRanges(ramIn, opts.maxPfn);
    }
    const n = countIn(clipped, 0, Infinity);
    const ram: PfnRange[] = [];
    for (const r of ramIn) pushRange(ram, r.startPfn, r.endPfn);
    const excluded = Math.max(0, countIn(ram, 0, Infinity) - n);
    scan = { ram, present: clipped.map((r) => ({ ...r })), missing: [], counts: { data: n, zero: 0, excluded, missing: 0, hole: 0 } };
  } else {
    const end = opts.maxPfn !== undefined ? Math.min(opts.maxPfn, input.maxPfn) : input.maxPfn;
    // filtering: the per-page records of the kept pages only (kdump: 24 bytes a page, where most
    // pages are left out at dump level 31)
    const mapped = input.mapRuns ? (input as Dump & Required<Pick<Dump, 'mapRuns'>>) : undefined;
    scan = opts.exclude && dumpLevel & DL_PAGE_TYPES && mapped ? await scanKeptRuns(mapped, end, opts.exclude) : await scanRuns(input.pageRuns(0, end));
    scan.ram = clipRanges(scan.ram, end);
    scan.present = clipRanges(scan.present, end);
    scan.missing = clipRanges(scan.missing, end);
    if (end < input.maxPfn) {
      let dropped = 0;
      for await (const r of input.pageRuns(end, input.maxPfn)) if (r.state === 'data' || r.state === 'zero') dropped += Math.min(r.endPfn, input.maxPfn) - Math.max(r.startPfn, end);
      if (dropped) warnings.push(warning('PAGES_BEYOND_MEMORY_MODEL', `${dropped} pages at and above pfn 0x${end.toString(16)} (the end of the kernel's memory model: firmware, not kernel memory) left out; max_mapnr 0x${end.toString(16)}`));
    }
  }
  let filtered: KindCounts | undefined;
  if (opts.exclude && dumpLevel & DL_PAGE_TYPES) {
    const f = subtractExcluded(scan.present, opts.exclude);
    scan.present = f.present;
    scan.counts.excluded += f.total;
    // pages the filter leaves out anyway are no loss
    if (scan.missing.length) scan.missing = subtractSpans(scan.missing, opts.exclude);
    filtered = f.removed;
    // a stream passes the left-out pages by: drop them as they come
    if (isStream(input)) input = { ...input, ranges: f.present, pages: withoutRuns(input.pages, opts.exclude, ps) };
  }
  const lastEnd = scan.ram.length ? scan.ram[scan.ram.length - 1]!.endPfn : 0;
  const maxPfn = isStream(input) ? (opts.maxPfn !== undefined ? Math.min(opts.maxPfn, Math.max(input.maxPfn ?? 0, lastEnd)) : Math.max(input.maxPfn ?? 0, lastEnd)) : Math.max(Math.min(opts.maxPfn ?? Infinity, input.maxPfn), lastEnd);
  // unreadable pages, in info's and hash's words: damaged descriptors apart from pages not in the file
  if (scan.counts.missing) warnings.push(...unreadableWarnings(isStream(input) ? { missing: scan.counts.missing, damaged: 0 } : await unreadablePages(input, scan.counts.missing), 'written as excluded'));
  // the producer note names vmcore (and replaces the one of an input vmcore wrote)
  let notes: ElfNote[] = [...withoutProducerNote([...input.notes, ...(opts.extraNotes ?? [])]), producerNote(opts.producer ?? producerText('convert'))];
  let vmciText = input.vmcoreinfoText;
  if (opts.vmcoreinfoText !== undefined && vmciText !== undefined) {
    // the source's VMCOREINFO with the proven layout values (kernelHeaderValues)
    const text = opts.vmcoreinfoText;
    vmciText = text;
    notes = notes.map((n) => (n.name === 'VMCOREINFO' ? { name: n.name, type: n.type, desc: latin1Bytes(text) } : n));
  }
  if (vmciText === undefined) {
    const n = opts.extraNotes?.find((x) => x.name === 'VMCOREINFO');
    if (n) vmciText = latin1(n.desc);
  }
  const vmci = vmciText ? new Vmcoreinfo(vmciText) : undefined;
  const { header, sourceVaddr } = await headerFor(input, vmci, { ...opts, dumpLevel }, warnings);

  const plan: ConvertPlan = {
    pageSize: ps,
    maxPfn,
    // QEMU's arm64 kdump files name the machine "Unknown": then the kernel's architecture (CPU
    // notes, VMCOREINFO) gives the output's e_machine / kdump ABI, else the ELF says EM_NONE
    arch: !input.arch || input.arch === 'unknown' || input.arch === 'Unknown' ? (kernelArchOf(input.arch, input.notes, vmci) ?? input.arch) : input.arch,
    is64: input.is64,
    littleEndian: input.littleEndian,
    notes,
    vmcoreinfoText: vmciText,
    // a stream's kernel-text alias is only known once the written file has been analysed
    sparePhdrs: isStream(input) ? 2 : 0,
    ram: scan.ram,
    present: scan.present,
    ...(scan.missing.length ? { missing: scan.missing } : {}),
    header,
    codec,
    dumpLevel,
  };
  if (format === 'elf' && opts.kernelVaddrs !== false) {
    const km = isStream(input) ? undefined : await kernelMappings(input, vmci, header.physBase);
    const direct = km?.directMapBase;
    plan.vaddrOf = (paddr) => sourceVaddr?.(paddr) ?? (direct !== undefined ? direct + BigInt(paddr) : undefined);
    if (km?.kernelImage) plan.aliases = [km.kernelImage];
  }

  const makeFormat: OutputFormatFactory =
    opts.outputFormat ?? ((o) => (format === 'elf' ? new ElfFormat(o) : new KdumpFormat(o)));
  const probe = makeFormat({ codec, level, dumpLevel });
  // a codec this installation cannot write is said before anything is written (the
  // workers would each find it at their start); celf compresses its chunks with `codec`
  for (const c of new Set([probe.compression.codec, codec])) {
    if (c !== 'none' && compressorImpl(c, !!opts.noNative) === 'unavailable') throw codecUnavailable(c, !!opts.noNative);
  }
  const bufPool = new BufferPool(batchPages * ps);
  // a stream may read its pages straight into the batch buffers
  if (isStream(input)) input.useBuffers?.((bytes) => bufPool.get(bytes));
  // a kdump input's batches in their stored form: the data of batchPages pages, a little more
  // when the file leaves gaps between them (KdumpFile.storedPages)
  const storedPool = new BufferPool(batchPages * ps + 65536);
  const progress = (p: ConvertProgress) => opts.onProgress?.(p);
  const pagesTotal = countIn(scan.present, 0, Infinity);
  // A kdump input's pages stored in the output's codec are written as they are stored (each
  // decoded once on a worker, to check it and find zero pages), not compressed again: kdump
  // output of the plug-in's own, the codec's default level (no --level asked)
  const passStored = !isStream(input) && format === 'kdump' && !opts.outputFormat && opts.level === undefined;
  // pages passed on as stored (a kdump input in the output's codec) cost a decode each, others a compression
  const storedAsIs = passStored && input instanceof KdumpDump && input.parts.every((p) => p.fileCodec === codec);
  if (opts.threads === undefined && pagesTotal <= (storedAsIs ? FEW_PAGES : FEW_PAGES / 8)) threads = 0;
  const pool = new CompressPool(
    { codec: probe.compression.codec, level: probe.compression.level ?? level, pageSize: ps, detectZero: probe.compression.detectZero, noNative: !!opts.noNative, passStored },
    threads,
  );
  // an ELF file's pages are read by the threads that compress them (no copy on this thread)
  const files = !isStream(input) && pool.readsFiles ? await DirectElfReader.open(input) : undefined;
  const recycle = (b: BatchOut) => {
    bufPool.put(b.buffer);
    if (b.storedBuffer) storedPool.put(b.storedBuffer);
  };
  const checkAbort = () => {
    if (opts.signal?.aborted) throw new VmcoreError('INTERRUPTED', 'interrupted');
  };

  // ---- outputs
  const partRanges = nsplit > 1 ? splitParts(scan.present, maxPfn, nsplit) : [{ startPfn: 0, endPfn: maxPfn }];
  const names = typeof out === 'string' ? (nsplit > 1 ? partRanges.map((_, i) => `${out}.${i + 1}`) : [out]) : ['-'];
  const sinks: OutputSink[] = [];
  const formats: OutputFormat[] = [];
  let pagesDone = 0;
  let bytesIn = 0;
  let ok = false;
  const sizes: number[] = [];
  try {
    if (typeof out === 'string') for (const n of names) await checkOutput(n, !!opts.force, opts.inputFiles ?? []);
    // ELF with zero runs from a random-access input: find them first (a second read pass, as
    // makedumpfile -E does), so that long zero runs become split points.
    if (format === 'elf' && dumpLevel >= 1 && !isStream(input) && !opts.outputFormat) {
      plan.zeroRuns = await scanZeroRuns(input, scan.present, batchPages, bufPool, storedPool, pool, files, checkAbort, (n) =>
        progress({ phase: 'scan', pagesDone: n, pagesTotal, bytesIn: n * ps, bytesOut: 0 }),
      );
    }
    for (let i = 0; i < names.length; i++) {
      const name = names[i]!;
      const sink = typeof out !== 'string' ? new FlatSink('-', out) : flatten ? await FlatSink.toFile(name) : await FileSink.create(name);
      sinks.push(sink);
      const f = i === 0 ? probe : makeFormat({ codec, level, dumpLevel });
      formats.push(f);
      const p = nsplit > 1 ? { ...plan, part: { index: i, count: nsplit, ...partRanges[i]! } } : plan;
      await f.begin(p, sink);
    }
    const cuts = partRanges.slice(1).map((r) => r.startPfn);
    const batches = isStream(input) ? streamBatches(input, cuts, batchPages, bufPool) : dumpBatches(input, scan.present, cuts, batchPages, bufPool, storedPool, files);
    let part = 0;
    const inflight = new InFlight<BatchOut>(Math.max(2, threads * 2 + 2), async (b) => {
      while (part < partRanges.length - 1 && b.startPfn >= partRanges[part]!.endPfn) part++;
      await formats[part]!.writeBatch(b);
      recycle(b);
      pagesDone += b.count;
      progress({ phase: 'write', pagesDone, pagesTotal, bytesIn: pagesDone * ps, bytesOut: sinks.reduce((a, s) => a + s.bytesOut, 0) });
    });
    let sinceYield = 0;
    for await (const b of batches) {
      // reads and writes are synchronous and, without workers, so is compression: a turn of the
      // event loop now and then lets a signal (Ctrl-C, SIGTERM) abort the conversion
      if (++sinceYield === 16) {
        sinceYield = 0;
        await new Promise<void>((r) => setImmediate(r));
      }
      checkAbort();
      bytesIn += b.count * ps;
      await inflight.push(isStream(input) ? pool.submit(b) : submitBatch(pool, input, b, bufPool));
    }
    await inflight.drain();
    checkAbort();
    for (let i = 0; i < formats.length; i++) {
      const size = await formats[i]!.finish({ incomplete: false });
      sizes.push(size);
      await sinks[i]!.finish(size);
    }
    ok = true;
  } catch (e) {
    // Clean up: remove temporaries, or keep them marked incomplete.
    const keep = !!opts.keepIncomplete;
    for (let i = 0; i < sinks.length; i++) {
      let size: number | undefined;
      if (keep && formats[i]) {
        try {
          size = await formats[i]!.finish({ incomplete: true });
        } catch {
          /* the file stays as far as it got */
        }
      }
      await sinks[i]!.abort(keep, size);
    }
    throw e;
  } finally {
    await pool.close();
    // the compressing threads read from it until the pool is closed
    await files?.close();
    for (const f of formats) await f.close?.();
    await releaseSpareWorkers();
  }

  const counts = formats.reduce(
    (a, f) => {
      const c = f.counts();
      return { compressed: a.compressed + c.compressed, raw: a.raw + c.raw, zero: a.zero + c.zero };
    },
    { compressed: 0, raw: 0, zero: 0 },
  );
  return {
    format: (opts.outputFormat ? probe.name : format) + (flatten ? ' (flattened)' : '') + (nsplit > 1 ? ` split ${nsplit}` : ''),
    codec: probe.storedCodec ?? probe.compression.codec,
    codecImpl: compressorImpl(probe.storedCodec ?? probe.compression.codec, !!opts.noNative),
    threads,
    outputs: names.map((name, i) => ({
      name,
      // a file's size (an ELF's segments are placed at aligned offsets: it holds gaps that were
      // never written, so it is larger than the bytes written); a flattened stream's, its bytes
      bytes: flatten ? sinks[i]!.bytesOut : (sizes[i] ?? sinks[i]!.bytesOut),
      ...(nsplit > 1 ? { startPfn: partRanges[i]!.startPfn, endPfn: partRanges[i]!.endPfn } : {}),
    })),
    pages: {
      total: pagesTotal,
      ...counts,
      excluded: scan.counts.excluded,
      missing: scan.counts.missing,
      holes: scan.counts.hole,
    },
    ...(filtered ? { filtered } : {}),
    bytesIn,
    bytesOut: flatten ? sinks.reduce((a, s) => a + s.bytesOut, 0) : sizes.reduce((a, s) => a + s, 0),
    seconds: (performance.now() - t0) / 1000,
    physBase: hex64(header.physBase),
    warnings,
  };
}

async function scanZeroRuns(
  dump: Dump,
  present: readonly PfnRange[],
  batchPages: number,
  bufPool: BufferPool,
  storedPool: BufferPool,
  pool: CompressPool,
  files: DirectElfReader | undefined,
  checkAbort: () => void,
  onPages: (n: number) => void,
): Promise<PfnRange[]> {
  const runs: PfnRange[] = [];
  const starts = new Set(present.map((r) => r.startPfn));
  let cur: PfnRange | undefined;
  let done = 0;
  const flush = () => {
    if (cur && (cur.endPfn - cur.startPfn >= 256 || starts.has(cur.startPfn))) runs.push(cur);
    cur = undefined;
  };
  const inflight = new InFlight<BatchOut>(Math.max(2, pool.threads * 2 + 2), (b) => {
    for (let i = 0; i < b.count; i++) {
      const pfn = b.startPfn + i;
      if (b.kinds[i] === PAGE_ZERO) {
        if (cur && cur.endPfn === pfn) cur.endPfn++;
        else {
          flush();
          cur = { startPfn: pfn, endPfn: pfn + 1 };
        }
      } else flush();
    }
    bufPool.put(b.buffer);
    if (b.storedBuffer) storedPool.put(b.storedBuffer);
    done += b.count;
    onPages(done);
  });
  for await (const b of dumpBatches(dump, present, [], batchPages, bufPool, storedPool, files)) {
    checkAbort();
    await inflight.push(submitBatch(pool, dump, b, bufPool));
  }
  await inflight.drain();
  flush();
  return runs;
}

/**
 * Submit a batch to the workers; one whose stored pages do not decode there is read again on
 * this thread (which throws the damaged page's error, or fills what is missing) and resubmitted.
 */
function submitBatch(pool: CompressPool, dump: Dump, b: RawBatch, bufPool: BufferPool): Promise<BatchOut> {
  if (b.file) {
    // read where the pages are by a thread of the pool; when that fails (a file cut short, an
    // I/O error), by this thread, which names what is wrong (or delivers the pages after all)
    let p: Promise<BatchOut>;
    try {
      p = pool.submit(b);
    } catch (e) {
      p = Promise.reject(e as Error);
    }
    return p.catch(async (e: unknown) => {
      if (pool.ended) throw e;
      return pool.submit(await readBatch(dump, b, bufPool));
    });
  }
  if (!b.stored) return pool.submit(b);
  return pool.submit(b).catch(async (e: unknown) => {
    if (!(e instanceof StoredDecodeError)) throw e;
    return pool.submit(await readBatch(dump, b, bufPool));
  });
}
