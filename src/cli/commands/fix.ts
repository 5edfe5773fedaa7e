/**
 * vmcore fix DUMP (-o OUT | --in-place) [--phys-base auto|VALUE]: make a dump (QEMU's above
 * all) readable by every tool: proved phys_base, VMCOREINFO, utsname, seekable kdump or a
 * /proc/vmcore-like ELF.
 */
import type { Command } from 'commander';
import { VmcoreError } from '../../core/errors.js';
import { fixDump } from '../../node/fix.js';
import { parseBigint, parseCount, printJson, printWarnings } from '../util.js';

interface Opts {
  output?: string;
  inPlace?: boolean;
  physBase?: string;
  force?: boolean;
  threads?: string;
  json?: boolean;
  quiet?: boolean;
  keepAllPages?: boolean;
}

export function register(program: Command): void {
  program
    .command('fix')
    .description(
      'Rewrite a dump so that libkdumpfile, drgn, crash, makedumpfile and vmcore-dmesg read it correctly: ' +
        'kdump (also flattened) -> seekable kdump with the proved phys_base, VMCOREINFO recovered from memory, utsname and nr_cpus filled in ' +
        '(pages copied, not recompressed); ELF -> a /proc/vmcore-like ELF (program headers first, kernel virtual addresses in PT_LOAD, VMCOREINFO note). ' +
        '--in-place corrects only the phys_base of a seekable kdump file (one aligned 8-byte write).',
    )
    .argument('<dump>', 'dump file (ELF, kdump or flattened kdump)')
    .option('-o, --output <out>', 'write the fixed dump to OUT (never over the input)')
    .option('--in-place', 'correct the header phys_base of a seekable kdump file in place (nothing else changes)')
    .option('--phys-base <value>', 'auto (the proved value; refuses when it cannot be proved) or a value (hex 0x..., or decimal, may be negative)', 'auto')
    .option('--force', 'overwrite OUT if it exists')
    .option('--keep-all-pages', "kdump: keep pages above the end of the kernel's memory model (QEMU's firmware ROM); makedumpfile cannot re-filter such a file")
    .option('--threads <n>', 'worker threads for the ELF copy (default: number of cores)')
    .option('--json', 'print a JSON report')
    .option('--quiet', 'print nothing but errors')
    .action(async (input: string, o: Opts) => {
      const pb = o.physBase === undefined || o.physBase === 'auto' ? 'auto' : parseBigint(o.physBase, '--phys-base');
      let threads: number | undefined;
      if (o.threads !== undefined) {
        threads = parseCount(o.threads, '--threads');
      }
      const r = await fixDump(input, {
        ...(o.output !== undefined ? { out: o.output } : {}),
        inPlace: !!o.inPlace,
        force: !!o.force,
        keepAllPages: !!o.keepAllPages,
        physBase: pb,
        ...(threads !== undefined ? { threads } : {}),
      });
      if (o.json) {
        await printJson(r);
        return;
      }
      if (o.quiet) return;
      printWarnings(r.warnings);
      const lines = [
        `${r.output}: ${r.inPlace ? 'corrected in place' : `fixed ${r.outputFormat}`} (from ${r.inputVariant})`,
        `  phys_base ${r.physBase.after} (${r.physBase.source === 'given' ? 'given' : `proved: ${r.physBase.proof.map((s) => s.text).join('; ')}`})` +
          (r.physBase.before !== null ? `, header was ${r.physBase.before}` : ''),
        `  VMCOREINFO ${
          r.vmcoreinfo.added
            ? `added (${r.vmcoreinfo.source})`
            : r.vmcoreinfo.source === 'none'
              ? 'none'
              : r.vmcoreinfo.source.startsWith('memory')
                ? `not in the file (found by ${r.vmcoreinfo.source})`
                : `kept (${r.vmcoreinfo.source})`
        }`,
        ...(r.changes.length ? r.changes.map((c) => `  - ${c}`) : ['  nothing to change']),
      ];
      process.stderr.write(lines.join('\n') + '\n');
    });
}
