import type { Command } from 'commander';
import { hashMemory } from '../../core/hash.js';
import { openDumpFiles } from '../../node/open.js';
import { nodeSha256 } from '../../node/hash.js';
import { hashDumpParallel } from '../../node/parallel-read.js';
import { STATS_OPTION, fetchJson, printStats } from '../remote.js';
import type { ByteSource } from '../../core/io/source.js';
import { parseNumber, printJson, progressBar, writeStdout } from '../util.js';

export function register(program: Command): void {
  program
    .command('hash')
    .description(
      'SHA-256 of the physical memory held by a dump: for each present page in ascending pfn order, the pfn as 8-byte little-endian then the page bytes. Proves two dumps hold the same memory.',
    )
    .argument('<dump...>', 'dump file (several files: one split set)')
    .option('--skip-zero', 'leave all-zero pages out (compare an ELF with a zero-excluding kdump)')
    .option('--json', 'print {"sha256", "pages"} as JSON')
    .option(...STATS_OPTION)
    .option('--threads <n>', 'worker threads that read and decompress pages (default: number of cores; 0 = none)')
    .option('--quiet', 'no progress bar (it is drawn only when stderr is a terminal)')
    .action(async (files: string[], o: { skipZero?: boolean; json?: boolean; threads?: string; quiet?: boolean; stats?: boolean }) => {
      const sources: ByteSource[] = [];
      const dump = await openDumpFiles(files, { sources });
      const remote = fetchJson(sources) !== null;
      try {
        const threads = o.threads === undefined ? undefined : parseNumber(o.threads, '--threads');
        const bar = await progressBar('hash', !o.quiet && !o.json);
        const onProgress = (done: number, total: number) => bar.update(done, total);
        let r;
        try {
          r =
            threads === 0 || dump.maxPfn < 65536 || remote
              ? await hashMemory(dump, { skipZero: !!o.skipZero, hasher: nodeSha256, onProgress })
              : await hashDumpParallel(dump, files, { skipZero: !!o.skipZero, hasher: nodeSha256, onProgress, ...(threads === undefined ? {} : { threads }) });
        } finally {
          bar.stop();
        }
        for (const w of dump.warnings) process.stderr.write(`warning: ${w}\n`);
        if (r.missingPages) process.stderr.write(`warning: ${r.missingPages} pages are missing from the dump and were not hashed\n`);
        if (o.json) await printJson({ sha256: r.sha256, pages: r.pages, zeroPages: r.zeroPages, missingPages: r.missingPages, ...(remote ? { fetch: fetchJson(sources) } : {}) });
        else await writeStdout(`${r.sha256}  ${r.pages} pages\n`);
        printStats(sources, o);
      } finally {
        await dump.close();
      }
    });
}
