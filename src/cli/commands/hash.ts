import type { Command } from 'commander';
import { hashMemory, hashPageChunks, type MemoryDigest } from '../../core/hash.js';
import { unreadableWarnings } from '../../core/info.js';
import { openDumpFiles } from '../../node/open.js';
import { nodeSha256 } from '../../node/hash.js';
import { hashDumpParallel } from '../../node/parallel-read.js';
import { isStreamPath, streamOf } from '../../node/file-source.js';
import { openDumpStream } from '../../node/stream/kdump-stream.js';
import { nodeCodecs } from '../../node/codecs.js';
import { isSplitSet } from '../../node/split-set.js';
import { STATS_OPTION, fetchJson, printStats } from '../remote.js';
import type { ByteSource } from '../../core/io/source.js';
import { parseCount, printJson, printWarnings, progressBar, writeStdout } from '../util.js';
import { limitThreads } from '../../node/threads.js';
import type { Warning } from '../../core/warnings.js';

interface Opts {
  skipZero?: boolean;
  json?: boolean;
  threads?: string;
  quiet?: boolean;
  stats?: boolean;
}

/** The digest of one dump (a file, a split set, or a stream read once). */
async function hashOne(files: string[], o: Opts, threads: number | undefined): Promise<{ r: MemoryDigest; fetch: ReturnType<typeof fetchJson> }> {
  const bar = await progressBar('hash', !o.quiet && !o.json);
  const onProgress = (done: number, total: number) => bar.update(done, total);
  if (files.length === 1 && (await isStreamPath(files[0]!))) {
    const name = files[0] === '-' ? 'standard input' : files[0]!;
    const s = await openDumpStream(await streamOf(files[0]!), { name, codecs: nodeCodecs() });
    let total = 0;
    for (const x of s.input.ranges) total += x.endPfn - x.startPfn;
    try {
      const r = await hashPageChunks(s.input.pages, s.input.pageSize, { skipZero: !!o.skipZero, hasher: nodeSha256, onProgress, name, totalPages: total });
      printWarnings(s.warnings);
      return { r, fetch: null };
    } finally {
      bar.stop();
    }
  }
  const sources: ByteSource[] = [];
  const dump = await openDumpFiles(files, { sources });
  const remote = fetchJson(sources) !== null;
  try {
    let r;
    try {
      r =
        threads === 0 || dump.maxPfn < 65536 || remote
          ? await hashMemory(dump, { skipZero: !!o.skipZero, hasher: nodeSha256, onProgress })
          : await hashDumpParallel(dump, files, { skipZero: !!o.skipZero, hasher: nodeSha256, onProgress, ...(threads === undefined ? {} : { threads }) });
    } finally {
      bar.stop();
    }
    printWarnings(dump.warnings);
    printWarnings(unreadableWarnings({ missing: r.missingPages, damaged: r.damagedPages }, 'not hashed'));
    printStats(sources, o);
    return { r, fetch: fetchJson(sources) };
  } finally {
    await dump.close();
  }
}

export function register(program: Command): void {
  program
    .command('hash')
    .description(
      'SHA-256 of the physical memory held by a dump: for each present page in ascending pfn order, the pfn as 8-byte little-endian then the page bytes. Proves two dumps hold the same memory. ' +
        'Several files are one split set when their headers say so (kdump split fields, one machine); otherwise each file is hashed on its own. "-" or a pipe is read once, in order.',
    )
    .argument('<dump...>', 'dump file(s): one dump, the parts of one split set, or several dumps; "-" reads standard input')
    .option('--skip-zero', 'leave all-zero pages out (compare an ELF with a zero-excluding kdump)')
    .option('--json', 'print {"sha256", "pages", "zeroPages", "missingPages", "damagedPages"} as JSON (several dumps: {"dumps": [{"file", ...}]})')
    .option(...STATS_OPTION)
    .option('--threads <n>', 'worker threads that read and decompress pages (default: number of cores; 0 = none)')
    .option('--quiet', 'no progress bar (it is drawn only when stderr is a terminal)')
    .action(async (files: string[], o: Opts) => {
      const asked = o.threads === undefined ? undefined : parseCount(o.threads, '--threads');
      const limited: Warning[] = [];
      const threads = asked === undefined ? undefined : limitThreads(asked, limited);
      printWarnings(limited);
      const set = files.length > 1 ? await isSplitSet(files) : { set: true, reason: '' };
      if (set.set) {
        const { r, fetch } = await hashOne(files, o, threads);
        if (o.json) await printJson({ sha256: r.sha256, pages: r.pages, zeroPages: r.zeroPages, missingPages: r.missingPages, damagedPages: r.damagedPages, ...(fetch ? { fetch } : {}) });
        else await writeStdout(`${r.sha256}  ${r.pages} pages\n`);
        return;
      }
      if (!o.quiet) process.stderr.write(`vmcore hash: the files are not one split set (${set.reason}): each is hashed on its own; \`vmcore diff A B\` shows where two dumps differ\n`);
      const dumps = [];
      for (const f of files) {
        const { r, fetch } = await hashOne([f], o, threads);
        if (o.json) dumps.push({ file: f, sha256: r.sha256, pages: r.pages, zeroPages: r.zeroPages, missingPages: r.missingPages, damagedPages: r.damagedPages, ...(fetch ? { fetch } : {}) });
        else await writeStdout(`${r.sha256}  ${r.pages} pages  ${f}\n`);
      }
      if (o.json) await printJson({ dumps });
    });
}
