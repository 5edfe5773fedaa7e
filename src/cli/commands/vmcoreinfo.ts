/** `vmcore vmcoreinfo`: print the VMCOREINFO text of a dump (from the file, or recovered from memory). */
import type { Command } from 'commander';
import { VmcoreError } from '../../core/errors.js';
import { analyzeKernel } from '../../core/kernel/kernel.js';
import { hex64 } from '../../core/hex.js';
import { openDumpFiles } from '../../node/open.js';
import { STATS_OPTION, printStats } from '../remote.js';
import type { ByteSource } from '../../core/io/source.js';
import { printJson, printWarnings, writeStdout } from '../util.js';

interface VmcoreinfoCliOptions {
  json?: boolean;
  scan?: boolean;
  all?: boolean;
  quiet?: boolean;
  stats?: boolean;
}

const HELP_AFTER = `
Where the text comes from (printed on standard error unless --quiet):
  note                  the file's VMCOREINFO ELF note (kernel vmcores, QEMU with -device vmcoreinfo)
  kdump header          the kdump sub-header's offset_vmcoreinfo area
  memory scan at 0xADDR recovered from guest memory: the kernel keeps its VMCOREINFO note in RAM
                        even when the dump file has none (QEMU without -device vmcoreinfo). Every
                        present page is checked; when several copies exist, the one whose
                        symbols prove a phys_base against the kernel's own page tables is used.

Exit status 1 with NO_VMCOREINFO when there is none anywhere.`;

export function register(program: Command): void {
  program
    .command('vmcoreinfo')
    .description('Print the VMCOREINFO text of a dump; recovers it from guest memory when the file has none.')
    .argument('<dump...>', 'dump file(s); several files are opened as one split set')
    .option('--json', 'print {source, text, entries, physBase, copies} as JSON (keys in the README)')
    .option('--no-scan', 'do not scan memory when the file has no VMCOREINFO')
    .option('--all', 'with a memory scan: print every copy found, each preceded by a "# source" line')
    .option('-q, --quiet', 'do not print the source on standard error')
    .option(...STATS_OPTION)
    .addHelpText('after', HELP_AFTER)
    .action(async (files: string[], o: VmcoreinfoCliOptions) => {
      const sources: ByteSource[] = [];
      const dump = await openDumpFiles(files, { sources });
      try {
        const k = await analyzeKernel(dump, { recover: o.scan !== false, bruteForce: false });
        printWarnings(dump.warnings);
        if (!k.vmcoreinfo) {
          throw new VmcoreError(
            'NO_VMCOREINFO',
            o.scan === false ? 'the file has no VMCOREINFO (memory not scanned: --no-scan)' : 'no VMCOREINFO in the file or anywhere in its memory',
            { file: files[0] },
          );
        }
        if (o.json) {
          await printJson({
            source: k.vmcoreinfoSource,
            text: k.vmcoreinfo.text,
            entries: Object.fromEntries(k.vmcoreinfo.entries),
            physBase: k.physBase.value === undefined ? null : hex64(k.physBase.value),
            copies: k.recovered.map((r) => ({ addr: '0x' + r.addr.toString(16), form: r.form, hasCrashTime: r.hasCrashTime, text: r.text })),
          });
          return;
        }
        if (o.all && k.recovered.length) {
          for (const r of k.recovered) await writeStdout(`# ${r.source} (${r.form}${r.hasCrashTime ? ', CRASHTIME' : ''})\n${ensureNl(r.text)}`);
        } else {
          await writeStdout(ensureNl(k.vmcoreinfo.text));
        }
        if (!o.quiet) process.stderr.write(`vmcoreinfo source: ${k.vmcoreinfoSource}\n`);
      } finally {
        printStats(sources, o);
        await dump.close();
      }
    });
}

function ensureNl(t: string): string {
  const s = t.replace(/\0+$/, '');
  return s.endsWith('\n') ? s : s + '\n';
}
