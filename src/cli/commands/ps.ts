import type { Warning } from '../../core/warnings.js';
import { withTaskSymbols } from '../../core/kernel/task-symbols.js';
import type { Command } from 'commander';
import { VmcoreError, isVmcoreError } from '../../core/errors.js';
import { analyzeKernel } from '../../core/kernel/kernel.js';
import { loadKernelBtf, noBtf, type BtfKernel, type SymbolLookup } from '../../core/kernel/btf/kernel-btf.js';
import { panicSummary } from '../../core/kernel/panic.js';
import { listTasks, type TaskEntry } from '../../core/kernel/tasks.js';
import { systemMapForDump } from '../../core/kernel/system-map.js';
import { openDumpFiles } from '../../node/open.js';
import { readFile } from 'node:fs/promises';
import { printable, printWarnings, writeStdout, writeStdoutRaw, jsonText } from '../util.js';

/** One `ps` row as JSON (keys documented in README.md). */
export function taskToJson(t: TaskEntry): Record<string, unknown> {
  return { pid: t.pid, tgid: t.tgid, ppid: t.ppid, cpu: t.cpu, state: t.state, comm: t.comm, task: '0x' + t.task.toString(16), active: t.active, panic: t.panic };
}

/** crash-like table: `>` marks a task running on its CPU, `*` the one that panicked; kernel threads in [brackets]. */
export function formatTasks(tasks: readonly TaskEntry[]): string {
  const rows = ['   PID    PPID  CPU       TASK        ST  COMM'];
  for (const t of tasks) {
    const mark = t.panic ? '*' : t.active ? '>' : ' ';
    // a comm is any 15 bytes a process chose (prctl PR_SET_NAME): one line, escaped
    const comm = printable(t.kthread ? `[${t.comm}]` : t.comm);
    rows.push(`${mark}${String(t.pid).padStart(6)}  ${String(t.ppid).padStart(6)}  ${String(t.cpu).padStart(3)}  ${t.task.toString(16).padStart(16)}  ${t.state}   ${comm}`);
  }
  return rows.join('\n') + '\n';
}

export function register(program: Command): void {
  program
    .command('ps')
    .description("Every task of the dump (threads and each CPU's idle task): PID, PPID, CPU, state letter, task address, COMM; > marks the running tasks, * the one that panicked. Needs the kernel's symbols (kallsyms) and BTF from the dump.")
    .argument('<dump...>', 'dump file (several files: one split set)')
    .option('--json', 'JSON: an array of {pid, tgid, ppid, cpu, state, comm, task, active, panic}')
    .option('--system-map <file>', "symbols from this System.map (shifted by VMCOREINFO's KERNELOFFSET) instead of the dump's kallsyms (kernels without CONFIG_KALLSYMS_ALL have no init_task there)")
    .action(async (files: string[], o: { json?: boolean; systemMap?: string }) => {
      const dump = await openDumpFiles(files);
      try {
        const info = await analyzeKernel(dump);
        let kernel = info as unknown as BtfKernel;
        if (o.systemMap) {
          const map = systemMapForDump(await readFile(o.systemMap, 'latin1'), info.vmcoreinfo, o.systemMap);
          kernel = { readVirt: (va, n) => info.readVirt(va, n), vmcoreinfo: info.vmcoreinfo, symbols: async () => map };
        }
        if (!kernel.symbols) throw new VmcoreError('NO_SYMBOLS', 'ps needs the kernel symbol table (kallsyms), which this build cannot load');
        let syms: SymbolLookup;
        try {
          syms = await kernel.symbols();
        } catch (e) {
          if (!isVmcoreError(e)) throw e;
          throw new VmcoreError('NO_SYMBOLS', `ps needs the kernel's symbols (init_task): ${e.message}`, { cause: e });
        }
        const kb = await loadKernelBtf(kernel, { file: files[0]! }).catch((e: unknown) => {
          throw noBtf('ps', e);
        });
        const panic = await panicSummary(info).catch(() => null);
        // kernels without CONFIG_KALLSYMS_ALL: init_task and the per-CPU data found in memory
        const walk = await withTaskSymbols(syms, (va, n) => info.readVirt(va, n), kb.types);
        const r = await listTasks({
          types: kb.types,
          symbol: (n) => walk.addressOf(n),
          ...(walk.perCpuOffsets ? { perCpuOffsets: walk.perCpuOffsets } : {}),
          ...(panic ? { panic: { cpu: panic.cpu, task: panic.task } } : {}),
        });
        const symWarnings = 'warnings' in syms && Array.isArray(syms.warnings) ? (syms.warnings as Warning[]) : [];
        printWarnings([...dump.warnings, ...symWarnings, ...kb.warnings, ...walk.warnings, ...r.warnings]);
        if (o.json) await writeStdoutRaw(jsonText(r.tasks.map(taskToJson)) + '\n');
        else await writeStdout(formatTasks(r.tasks));
      } finally {
        await dump.close();
      }
    });
}
