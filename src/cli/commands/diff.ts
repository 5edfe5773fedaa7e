/** `vmcore diff A B`: which page frames two dumps hold differently. */
import type { Command } from 'commander';
import { diffMemory } from '../../core/diff.js';
import { openDumpFiles } from '../../node/open.js';
import { STATS_OPTION, printStats } from '../remote.js';
import type { ByteSource } from '../../core/io/source.js';
import { parseNumber, printable, printJson, progressBar, writeStdout } from '../util.js';

const HELP_AFTER = `
A page is present when the dump holds it (data or a zero page, as vmcore hash counts it); zero
pages compare as zero bytes. The output counts the pages present only in A, only in B, and in
both with the same or with different bytes, then lists the first differences in pfn order:
  pfn 0x1234  phys 0x1234000  content differs at offset 0x10
  pfn 0x8000  phys 0x8000000  only in A
Exit status 0 whether or not the dumps differ (JSON: "identical"), 1 for an error, 2 for usage.`;

export function register(program: Command): void {
  program
    .command('diff')
    .description('Which page frames two dumps hold differently: pfns present in one and not the other, pfns with different bytes (counts, and the first differences with pfn, physical address and first differing byte). One pass, bounded memory.')
    .argument('<a>', 'first dump (file or URL)')
    .argument('<b>', 'second dump (file or URL)')
    .option('--max <n>', 'how many differences to list (default 20; the counts are always complete)')
    .option('--json', 'print the result as JSON')
    .option('--quiet', 'no progress bar (it is drawn only when stderr is a terminal)')
    .option(...STATS_OPTION)
    .addHelpText('after', HELP_AFTER)
    .action(async (fa: string, fb: string, o: { max?: string; json?: boolean; quiet?: boolean; stats?: boolean }) => {
      const max = o.max === undefined ? 20 : parseNumber(o.max, '--max');
      const sources: ByteSource[] = [];
      const a = await openDumpFiles([fa], { sources });
      try {
        const b = await openDumpFiles([fb], { sources });
        try {
          for (const [d, f] of [[a, fa], [b, fb]] as const) for (const w of d.warnings) process.stderr.write(`warning: ${f}: ${printable(w.text)}\n`);
          const bar = await progressBar('diff', !o.quiet && !o.json);
          let r;
          try {
            r = await diffMemory(a, b, { maxDifferences: max, onProgress: (d, t) => bar.update(d, t) });
          } finally {
            bar.stop();
          }
          if (o.json) {
            await printJson({
              a: { file: fa, pages: r.pagesA, missing: r.missingA },
              b: { file: fb, pages: r.pagesB, missing: r.missingB },
              pageSize: r.pageSize,
              identical: r.identical,
              both: r.both,
              same: r.same,
              differ: r.differ,
              onlyA: r.onlyA,
              onlyB: r.onlyB,
              differences: r.differences.map((d) => ({ pfn: d.pfn, phys: d.phys, kind: d.kind, ...(d.offset !== undefined ? { offset: d.offset } : {}) })),
              truncated: r.truncated,
            });
          } else {
            const lines = [
              `A: ${fa}: ${r.pagesA} pages${r.missingA ? ` (${r.missingA} missing)` : ''}`,
              `B: ${fb}: ${r.pagesB} pages${r.missingB ? ` (${r.missingB} missing)` : ''}`,
              `in both: ${r.both} (${r.same} same, ${r.differ} different); only in A: ${r.onlyA}; only in B: ${r.onlyB}`,
            ];
            if (r.identical) lines.push('identical');
            else if (r.differences.length) {
              lines.push(`first ${r.differences.length} difference${r.differences.length === 1 ? '' : 's'}${r.truncated ? ` of ${r.onlyA + r.onlyB + r.differ}` : ''}:`);
              for (const d of r.differences) {
                const what = d.kind === 'content' ? `content differs at offset 0x${d.offset!.toString(16)}` : d.kind === 'onlyA' ? 'only in A' : 'only in B';
                lines.push(`  pfn 0x${d.pfn.toString(16)}  phys 0x${d.phys.toString(16)}  ${what}`);
              }
            }
            await writeStdout(lines.join('\n') + '\n');
          }
        } finally {
          await b.close();
        }
      } finally {
        printStats(sources, o);
        await a.close();
      }
    });
}
