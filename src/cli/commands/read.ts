import type { Command } from 'commander';
import { VmcoreError } from '../../core/errors.js';
import { analyzeKernel } from '../../core/kernel/kernel.js';
import { openDumpFiles } from '../../node/open.js';
import { STATS_OPTION, printStats } from '../remote.js';
import type { ByteSource } from '../../core/io/source.js';
import { hexdumpChunks, parseBigint, parseNumber, printWarnings, writeOutputFile, writeStdout } from '../util.js';

export function register(program: Command): void {
  program
    .command('read')
    .description('Read raw memory from a dump: physical (--phys) or kernel virtual (--virt). Hex dump on a terminal, raw bytes otherwise.')
    .argument('<dump...>', 'dump file (several files: one split set)')
    .option('--phys <addr>', 'physical start address')
    .option('--virt <addr>', 'kernel virtual start address (translated with the proven phys_base and the kernel page tables)')
    .requiredOption('--length <n>', 'number of bytes (suffixes k, m, g allowed)')
    .option('-o, --output <file>', 'write the bytes to a file')
    .option('--force', 'overwrite the --output file if it exists')
    .option('--fill-missing', 'read pages that are not in the dump as zeros instead of failing')
    .option(...STATS_OPTION)
    .option('--hex', 'always print a hex dump')
    .action(async (files: string[], o: { phys?: string; virt?: string; length: string; output?: string; fillMissing?: boolean; hex?: boolean; force?: boolean; stats?: boolean }) => {
      if ((o.phys === undefined) === (o.virt === undefined)) throw new VmcoreError('USAGE', 'give exactly one of --phys and --virt');
      const length = parseNumber(o.length, '--length');
      if (length > 1 << 30) throw new VmcoreError('USAGE', '--length is limited to 1 GiB per read');
      const sources: ByteSource[] = [];
      const dump = await openDumpFiles(files, { sources });
      try {
        printWarnings(dump.warnings);
        let data: Uint8Array;
        let base: number | bigint;
        if (o.phys !== undefined) {
          base = parseNumber(o.phys, '--phys');
          data = await dump.readPhys(base, length, { fillMissing: !!o.fillMissing });
        } else {
          const va = parseBigint(o.virt!, '--virt');
          const k = await analyzeKernel(dump);
          data = await k.readVirt(va, length);
          base = va;
        }
        if (o.output) await writeOutputFile(o.output, data, o.force);
        else if (o.hex || process.stdout.isTTY) for (const piece of hexdumpChunks(data, base)) await writeStdout(piece);
        else await writeStdout(data);
        printStats(sources, o);
      } finally {
        await dump.close();
      }
    });
}
