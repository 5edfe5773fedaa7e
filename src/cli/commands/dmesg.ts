/** `vmcore dmesg`: the kernel log from a dump, without vmlinux. */
import { warning, type Warning } from '../../core/warnings.js';
import type { Command } from 'commander';
import { VmcoreError } from '../../core/errors.js';
import { analyzeKernel } from '../../core/kernel/kernel.js';
import { readDmesg, formatDmesg, dmesgToJson } from '../../core/kernel/dmesg.js';
import { openDumpFiles } from '../../node/open.js';
import { STATS_OPTION, printStats } from '../remote.js';
import type { ByteSource } from '../../core/io/source.js';
import { printJson, printWarnings, writeOutputFile, writeStdoutRaw, jsonText } from '../util.js';

interface DmesgCliOptions {
  json?: boolean;
  caller?: boolean;
  level?: boolean;
  levelNames?: boolean;
  utf8?: boolean;
  sinceClear?: boolean;
  staticRing?: boolean;
  output?: string;
  force?: boolean;
  quiet?: boolean;
  stats?: boolean;
}

const HELP_AFTER = `
Output (default): byte-identical to \`makedumpfile --dump-dmesg\` (1.7.2): "[%5lu.%06lu] " then the
text; lines after the first of a multi-line record are indented under the prefix; bytes that are
neither printable nor white space are escaped as makedumpfile does (\\xNN, and \\xffffffNN for bytes
>= 0x80 unless --utf8); records without text (lost, empty) are left out. Kernels before 3.5 (plain
log_buf): the buffer bytes unchanged.

  --caller       adds "[%8s] " with T<pid> or C<cpu> after the timestamp (makedumpfile 1.7.3+ layout)
  --level        prefixes "<prio>" (facility*8+level) as \`dmesg -r\` does
  --level-names  prefixes "facility:level: " as \`dmesg -x\` does ("kern  :err   : [ ...")
  --json         {kind, ring, stats, warnings, records: [{seq, timestamp_ns, timestamp, level,
                 level_name, facility, facility_name, caller {tid|cpu}, text, subsystem, device,
                 continuation, committed, empty, lost, truncated, desc_id}]}; includes records
                 whose text was lost, with the reason.

Needs VMCOREINFO (from the file, or recovered from memory when the file has none) and a proven
phys_base; both come from the kernel analysis that \`vmcore info\` shows.`;

export function register(program: Command): void {
  program
    .command('dmesg')
    .description('Print the kernel log (dmesg) stored in a dump, without vmlinux (Linux 2.6 to current: lockless ringbuffer, printk_log records, plain log_buf).')
    .argument('<dump...>', 'dump file(s); several files are opened as one split set')
    .option('--json', 'machine-readable records (see below)')
    .option('--caller', 'add the caller column [T<pid>] / [C<cpu>]')
    .option('--level', 'prefix each record with its syslog priority, <6>, as `dmesg -r` does')
    .option('--level-names', 'prefix each record with facility and level names, "kern  :info  : ", as `dmesg -x` does')
    .option('--utf8', 'print bytes >= 0x80 as they are (UTF-8 text) instead of escaping them')
    .option('--since-clear', 'only records logged after the last "dmesg -c" (like makedumpfile --partial-dmesg)')
    .option('--static-ring', '5.10+: read the boot-time ring printk_rb_static instead of the one prb points to')
    .option('-o, --output <file>', 'write the log to a file instead of standard output')
    .option('-f, --force', 'overwrite the --output file')
    .option('-q, --quiet', 'do not print warnings on standard error')
    .option(...STATS_OPTION)
    .addHelpText('after', HELP_AFTER)
    .action(async (files: string[], o: DmesgCliOptions) => {
      if (o.level && o.levelNames) throw new VmcoreError('USAGE', '--level and --level-names exclude each other');
      const level = o.level ? ('prio' as const) : o.levelNames ? ('name' as const) : undefined;

      const sources: ByteSource[] = [];
      const dump = await openDumpFiles(files, { sources });
      try {
        const kernel = await analyzeKernel(dump);
        if (!kernel.vmcoreinfo) {
          throw new VmcoreError('NO_VMCOREINFO', 'the dump has no VMCOREINFO and none was found in memory: the kernel log cannot be located', { file: files[0] });
        }
        const log = await readDmesg(
          { vmcoreinfo: kernel.vmcoreinfo, readVirt: (va, len) => kernel.readVirt(va, len), littleEndian: dump.littleEndian, file: files[0] },
          {
            ...(o.sinceClear ? { sinceClear: true } : {}),
            ...(o.staticRing ? { ring: 'static' as const } : {}),
            // the log lives in RAM: a ring claiming more than the dump describes is corrupt
            maxLogBytes: Math.min(2 ** 31, dump.maxPfn * dump.pageSize),
          },
        );
        const warnings: Warning[] = [];
        if (kernel.vmcoreinfoSource.startsWith('memory scan')) warnings.push(warning('VMCOREINFO_RECOVERED', `VMCOREINFO recovered from memory (${kernel.vmcoreinfoSource})`));
        if (kernel.physBase.value === undefined) warnings.push(warning('PHYS_BASE_UNPROVEN', 'phys_base could not be proven; the log may be unreadable or wrong'));
        warnings.push(...log.warnings);
        if (!o.quiet) printWarnings([...dump.warnings, ...warnings]);
        if (o.json) {
          const j = { file: files.length === 1 ? files[0] : files, vmcoreinfo_source: kernel.vmcoreinfoSource, ...dmesgToJson(log), warnings };
          if (o.output) await writeOutputFile(o.output, jsonText(j) + '\n', o.force);
          else await printJson(j);
          return;
        }
        const out = formatDmesg(log, { ...(o.caller ? { caller: true } : {}), ...(level ? { level } : {}), ...(o.utf8 ? { utf8: true } : {}) });
        if (o.output) await writeOutputFile(o.output, out, o.force);
        else await writeStdoutRaw(out); // escaped by formatDmesg as makedumpfile does
      } finally {
        printStats(sources, o);
        await dump.close();
      }
    });
}
