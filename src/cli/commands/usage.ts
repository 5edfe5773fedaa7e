/**
 * vmcore usage DUMP — pages per type and the estimated output size per dump level and codec
 * (makedumpfile --mem-usage, with the estimate).
 */
import type { Command } from 'commander';
import { openDumpFiles } from '../../node/open.js';
import { analyzeKernel } from '../../core/kernel/kernel.js';
import { memoryUsage, type UsageKind } from '../../node/usage.js';
import { humanBytes, parseNumber, printJson, printWarnings, writeStdout } from '../util.js';

const ROWS: [UsageKind, string, string][] = [
  ['cache', 'NON_PRI_CACHE', 'page cache without private data (-d 2 or 4)'],
  ['cachePrivate', 'PRI_CACHE', 'page cache with private data (-d 4)'],
  ['user', 'USER', 'anonymous and hugetlbfs pages of processes (-d 8)'],
  ['free', 'FREE', 'free pages of the buddy allocator (-d 16)'],
  ['hwpoison', 'HWPOISON', 'hardware-poisoned pages (always left out)'],
  ['offline', 'OFFLINE', 'logically offline pages (always left out)'],
  ['kernel', 'KERN_DATA', 'everything else: kernel text, data, slab, page tables, stacks'],
];
const SHOWN_LEVELS = [0, 1, 3, 7, 9, 17, 31];

export function register(program: Command): void {
  program
    .command('usage')
    .description('Pages per type (page cache, user data, free, kernel) and the estimated kdump size for each dump level and codec, to choose -d before converting (makedumpfile --mem-usage).')
    .argument('<dump...>', 'dump file (several files: one split set)')
    .option('--sample <n>', 'pages read to estimate zero pages and compressed sizes (default 2048)')
    .option('--json', 'print the report as JSON (every level 0-31)')
    .action(async (files: string[], o: { sample?: string; json?: boolean }) => {
      const dump = await openDumpFiles(files);
      try {
        const kernel = await analyzeKernel(dump);
        const r = await memoryUsage(dump, kernel, o.sample !== undefined ? { samplePages: parseNumber(o.sample, '--sample') } : {});
        const warnings = [...dump.warnings, ...kernel.warnings, ...r.warnings];
        printWarnings(warnings);
        if (o.json) return await printJson({ ...r, warnings });
        const lines: string[] = [];
        lines.push(`Kernel ${r.kernel} (page types: ${r.encoding}), ${r.pages} present pages of ${r.pageSize} bytes`);
        lines.push('');
        lines.push(`${'TYPE'.padEnd(14)}${'PAGES'.padStart(10)}${'SIZE'.padStart(11)}${'ZERO (est.)'.padStart(13)}  DESCRIPTION`);
        for (const [k, name, desc] of ROWS) {
          const t = r.types[k];
          if (!t.pages && (k === 'hwpoison' || k === 'offline')) continue;
          lines.push(`${name.padEnd(14)}${String(t.pages).padStart(10)}${humanBytes(t.bytes).padStart(11)}${String(t.zeroEstimate).padStart(13)}  ${desc}`);
        }
        lines.push('');
        lines.push(`Estimated kdump size per dump level (zero pages and codec ratios from ${r.sample.pages} sampled pages; --json has every level):`);
        lines.push(`${'LEVEL'.padEnd(7)}${'PAGES'.padStart(10)}${['zlib', 'lzo', 'snappy', 'zstd', 'none'].map((c) => c.padStart(11)).join('')}`);
        for (const l of r.levels.filter((x) => SHOWN_LEVELS.includes(x.level))) {
          lines.push(`${`-d ${l.level}`.padEnd(7)}${String(l.pages).padStart(10)}${(['zlib', 'lzo', 'snappy', 'zstd', 'none'] as const).map((c) => humanBytes(l.bytes[c]).padStart(11)).join('')}`);
        }
        await writeStdout(lines.join('\n') + '\n');
      } finally {
        await dump.close();
      }
    });
}
