/** `vmcore bt`: kernel backtraces from a dump, without vmlinux (ORC tables, kallsyms, BTF). */
import type { Command } from 'commander';
import { readFile } from 'node:fs/promises';
import { VmcoreError } from '../../core/errors.js';
import { analyzeKernel, kernelAnalysable } from '../../core/kernel/kernel.js';
import { panicSummary } from '../../core/kernel/panic.js';
import { systemMapForDump } from '../../core/kernel/system-map.js';
import { backtraceReport, createBacktracer, formatTaskBacktrace, taskBacktraceToJSON } from '../../core/kernel/backtrace.js';
import { openDumpFiles } from '../../node/open.js';
import { parseNumber, printJson, printWarnings, writeStdout } from '../util.js';

const HELP_AFTER = `
Default: the task that panicked (the task that logged the panic, else the current task of the
panicking CPU); -a every task; PIDs as given. A running task starts from its CPU's registers
(matched by the note's pid or the per-CPU current task, never by note position), a sleeping one
from thread.sp's inactive_task_frame. Frames come from the kernel's ORC tables as its own oops
output does; frames marked "?" are guesses (frame pointers or a stack scan after the ORC walk
stopped). Exception and interrupt frames print their pt_regs as crash does; a walk that ends
at the entry from user mode prints the user registers.

--json  {tasks: [{pid, tgid, comm, task, cpu, state, active, panic, start, frames: [{level, sp,
        pc, function, offset, size, module, reliable, method, stack}], exception_frames: [{level,
        address, user, partial, regs}], user: {rip, rsp} | null, stop, stop_detail, error}],
        warnings}  (keys in README)`;

export function register(program: Command): void {
  program
    .command('bt')
    .description('Kernel backtraces of the panicking task, of given PIDs or of every task (ORC unwinder, no vmlinux needed).')
    .argument('<dump>', 'dump file')
    .argument('[pid...]', 'tasks by pid')
    .option('-a, --all', 'every task')
    .option('--panic', 'the panicking task (the default)')
    .option('--json', 'machine-readable output (see below)')
    .option('--system-map <file>', "symbols from this System.map (shifted by VMCOREINFO's KERNELOFFSET) instead of the dump's kallsyms")
    .option('--max-frames <n>', 'frames per task (default 256)')
    .addHelpText('after', HELP_AFTER)
    .action(async (file: string, pidArgs: string[], o: { all?: boolean; panic?: boolean; json?: boolean; systemMap?: string; maxFrames?: string }) => {
      const pids = pidArgs.map((p) => parseNumber(p, 'PID'));
      if ((o.all ? 1 : 0) + (o.panic ? 1 : 0) + (pids.length > 0 ? 1 : 0) > 1) throw new VmcoreError('USAGE', 'give PIDs, -a or --panic, not several');
      const dump = await openDumpFiles([file]);
      try {
        if (!kernelAnalysable(dump)) throw new VmcoreError('UNSUPPORTED', `backtraces are implemented for x86_64 and aarch64 only, not ${dump.arch}`, { file });
        const kernel = await analyzeKernel(dump);
        let symbols;
        if (o.systemMap) {
          symbols = systemMapForDump(await readFile(o.systemMap, 'latin1'), kernel.vmcoreinfo, o.systemMap);
        }
        const bt = await createBacktracer(kernel, symbols ? { symbols } : {});
        const panic = await panicSummary(kernel, undefined, dump.littleEndian);
        const report = await backtraceReport(bt, {
          ...(pids.length ? { pids } : {}),
          ...(o.all ? { all: true } : {}),
          panicPid: panic?.task ?? null,
          panicCpu: panic?.cpu ?? null,
          ...(o.maxFrames ? { maxFrames: parseNumber(o.maxFrames, '--max-frames') } : {}),
        });
        const missing = pids.filter((p) => !report.tasks.some((t) => t.task.pid === p));
        if (o.json) {
          await printJson({ tasks: report.tasks.map((t) => taskBacktraceToJSON(t, report.panicTask)), warnings: report.warnings, ...(bt.symbolSources ? { symbol_sources: bt.symbolSources } : {}) });
        } else {
          if (bt.symbolSources) for (const [n, src] of Object.entries(bt.symbolSources)) if (src !== 'kallsyms') process.stderr.write(`vmcore: ${n}: ${src}\n`);
          printWarnings([...dump.warnings, ...report.warnings]);
          if (report.tasks.length) await writeStdout(report.tasks.map((t) => formatTaskBacktrace(t, report.panicTask)).join('\n\n') + '\n');
        }
        // as `sym` does for a name it cannot find: the others are printed, the exit status is 1
        if (missing.length) throw new VmcoreError('NO_TASK', `no task with pid ${missing.join(', ')}`, { file });
      } finally {
        await dump.close();
      }
    });
}
