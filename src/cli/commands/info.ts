import { warning } from '../../core/warnings.js';
import { Option, type Command } from 'commander';
import { describeDump, type InfoReport, type PageCountMode } from '../../core/info.js';
import { isHttpUrl } from '../../core/io/http.js';
import { analyzeKernel, kernelAnalysable } from '../../core/kernel/kernel.js';
import { panicSummary } from '../../core/kernel/panic.js';
import { kernelStateReport } from '../../core/kernel/state.js';
import { loadKernelBtf } from '../../core/kernel/btf/kernel-btf.js';
import { readDmesg } from '../../core/kernel/dmesg.js';
import { isVmcoreError } from '../../core/errors.js';
import type { KernelInfo } from '../../core/kernel/kernel.js';
import { createBacktracer, panicBacktrace, type KernelSymbolSource } from '../../core/kernel/backtrace.js';
import { systemMapForDump } from '../../core/kernel/system-map.js';
import { readFile } from 'node:fs/promises';
import { openDumpFiles } from '../../node/open.js';
import { STATS_OPTION, fetchJson, printStats } from '../remote.js';
import type { ByteSource } from '../../core/io/source.js';
import { humanBytes, printable, printJson, printWarnings, writeStdout } from '../util.js';
import { latin1 } from '../../core/text.js';

export function register(program: Command): void {
  program
    .command('info')
    .description('Describe dumps: format, producer and evidence, kernel, crash, phys_base (header vs proven), memory ranges, page counts.')
    .argument('<dump...>', 'dump files; several files are opened as one split set (use --each to describe them one by one)')
    .option('--json', 'machine-readable report (keys documented in the README)')
    .option('--each', 'treat every file as its own dump')
    .option(...STATS_OPTION)
    .addOption(
      new Option('--pages <how>', 'how to count pages: full (every kdump page descriptor: zero-shared, damaged, per codec) or bitmaps (the two bitmaps only; default for http(s) dumps, where descriptors are most of what info fetches)').choices(['full', 'bitmaps']),
    )
    .option('--recover', 'for a URL of a dump without VMCOREINFO: recover it by scanning all of memory (downloads the dump; done by default for files)')
    .option('--no-kernel', 'skip the kernel analysis (phys_base proof, VMCOREINFO recovery, panic summary)')
    .option('--system-map <file>', "symbols for the panic backtrace from this System.map (shifted by VMCOREINFO's KERNELOFFSET), for kernels whose kallsyms has no data symbols")
    .action(async (files: string[], o: { json?: boolean; each?: boolean; kernel?: boolean; stats?: boolean; systemMap?: string; pages?: PageCountMode; recover?: boolean }) => {
      const sets = o.each ? files.map((f) => [f]) : [files];
      const reports: (InfoReport & { fetch?: ReturnType<typeof fetchJson> })[] = [];
      for (const set of sets) {
        const sources: ByteSource[] = [];
        const dump = await openDumpFiles(set, { sources });
        try {
          let kernel;
          let panic = null;
          let kernelState = null;
          const remote = set.some(isHttpUrl);
          // VMCOREINFO recovery reads every page (twice when the first pass finds nothing): over
          // HTTP that is a download of the whole dump, so a URL gets it only when asked
          const skipRecovery = remote && !o.recover && !dump.vmcoreinfoText;
          if (o.kernel !== false && kernelAnalysable(dump)) {
            kernel = await analyzeKernel(dump, { recover: !skipRecovery });
            const k = kernel;
            kernelState = await kernelStateReport(k, {
              cpus: Math.max(1, k.cpus.length),
              btf: () => loadKernelBtf(k, { file: set[0]! }),
              modules: () => k.modules(),
              notes: k.cpus,
            });
            const runningPids = kernelState.running.map((r) => r?.pid ?? null);
            panic = (await panicSummary(kernel, undefined, dump.littleEndian, { runningPids })) as Record<string, unknown> | null;
            // the panic's CPU from its note's match (kernel-written notes carry pids, not CPUs)
            const regs = panic?.registers as { index?: number; source?: string; cpu?: number | null } | null | undefined;
            const m = regs && regs.source === 'NT_PRSTATUS' ? kernelState.cpuNotes.find((c) => c.note === regs.index && c.cpu !== null) : undefined;
            if (panic && m && panic.cpu === null) panic.cpu = m.cpu;
            if (panic) {
              let symbols: KernelSymbolSource | undefined;
              if (o.systemMap) {
                symbols = systemMapForDump(await readFile(o.systemMap, 'latin1'), kernel.vmcoreinfo, o.systemMap);
              }
              await addPanicBacktrace(kernel, panic, dump.littleEndian, symbols);
            }
          }
          const pages = o.pages ?? (remote ? 'bitmaps' : 'full');
          const r = await describeDump(dump, kernel, { panic, kernelState, pages });
          if (kernel && skipRecovery) r.warnings.push(warning('VMCOREINFO_NOT_RECOVERED', 'the file has no VMCOREINFO: recovering it from memory reads every page, a download of the whole dump over HTTP, so it was not done (--recover does it; or run info on the file)'));
          const fetched = fetchJson(sources);
          reports.push(fetched ? { ...r, fetch: fetched } : r);
          if (!o.json) {
            await writeStdout(formatInfo(r) + '\n');
            printWarnings(r.warnings);
          }
          printStats(sources, o);
        } finally {
          await dump.close();
        }
      }
      if (o.json) await printJson(o.each ? reports : reports[0]);
    });
}

/** panic.backtrace, panic.oops, panic.signature (README "Crash signature"); a failure is panic.backtraceError. */
async function addPanicBacktrace(kernel: KernelInfo, panic: Record<string, unknown>, littleEndian: boolean, symbols?: KernelSymbolSource): Promise<void> {
  try {
    const bt = await createBacktracer(kernel, symbols ? { symbols } : {});
    const log = kernel.vmcoreinfo ? await readDmesg({ vmcoreinfo: kernel.vmcoreinfo, readVirt: (va, n) => kernel.readVirt(va, n), littleEndian }) : undefined;
    const lines = log ? log.records.map((r) => latin1(r.text)) : [];
    const pb = await panicBacktrace(bt, panic as { message: string | null; task: number | null; cpu: number | null }, lines);
    if (!pb) {
      panic.backtraceError = 'the panicking task is not known';
      return;
    }
    if (bt.symbolSources) panic.symbolSources = bt.symbolSources;
    Object.assign(panic, { backtrace: pb.backtrace, oops: pb.oops, oopsKind: pb.oopsKind, oopsContext: pb.oopsContext, faulting: pb.faulting, signature: pb.signature, signatureReason: pb.reason, signatureChain: pb.chain });
  } catch (e) {
    if (!isVmcoreError(e)) throw e;
    panic.backtraceError = `${e.code}: ${e.message}`;
  }
}

export function formatInfo(r: InfoReport): string {
  const L: string[] = [];
  const row = (k: string, v: string) => L.push(`${k.padEnd(14)}${v}`);
  for (const f of r.files) row(r.files.length > 1 ? 'File (part)' : 'File', `${f.name}  ${humanBytes(f.size)}`);
  row('Format', `${r.variant}  (${r.arch}, ${r.endian}-endian, page ${r.pageSize})`);
  const lr = (r.header as { layout_reason?: unknown }).layout_reason;
  if (typeof lr === 'string') row('Layout', lr);
  row('Producer', `${r.producer}${r.producerEvidence.length ? '  — ' + r.producerEvidence.join('; ') : ''}`);
  const k = r.kernel;
  row('Kernel', k.release ? `${k.release}${k.version ? '  ' + k.version : ''}${k.releaseSource ? `  [${k.releaseSource}]` : ''}` : 'unknown');
  if (r.crashTime) row('Crash time', r.crashTime);
  // what went wrong first (panic, registers, backtrace, signature), then the kernel's state
  if (r.panic) {
    const p = r.panic as { message: string | null; cpu: number | null; task: number | null; uptime: string | null; registers: Record<string, string> | null; registersSource: string | null; registersNote?: string | null };
    if (p.message) {
      const who = [p.cpu !== null ? `CPU ${p.cpu}` : null, p.task !== null ? `task ${p.task}` : null, p.uptime !== null ? `${p.uptime} s after boot` : null].filter(Boolean);
      row('Panic', `${p.message}${who.length ? `  (${who.join(', ')})` : ''}`);
    }
    if (p.registers) {
      const g = p.registers;
      const regs = ['rip', 'rsp', 'rbp', 'cr3', 'cr4', 'pc', 'sp', 'fp', 'lr'].filter((x) => g[x] !== undefined).map((x) => `${x.toUpperCase()} ${g[x]}`);
      // QEMU writes NT_PRSTATUS next to its CPU-state notes: the vCPU state when it stopped the
      // guest (makedumpfile copies them from a QEMU ELF). Without them, the kernel saved the
      // registers at the crash. On arm, QEMU's NT_PRSTATUS carries pr_pid = vCPU + 1 (pidIsTask false).
      const qemuNotes = r.notes.some((n) => n.type === 'QEMU CPU state') || (g as Record<string, unknown>).pidIsTask === false;
      const when = qemuNotes ? 'when QEMU stopped the guest' : 'saved by the kernel at the crash';
      row('Registers', `${regs.join('  ')}  [${p.registersSource}, ${when}]`);
    } else if (p.registersNote) row('Registers', `unknown: ${p.registersNote}`);
    const pb = r.panic as { backtrace?: { pid: number; comm: string; frames: { function: string | null; offset: number | null; size: number | null; module: string | null; reliable: boolean; pc: string }[] }; oops?: string | null; signature?: string; signatureChain?: string[]; backtraceError?: string };
    if (pb.oops) row('Oops', pb.oops);
    const fa = (r.panic as { faulting?: { function: string | null; offset: number | null; size: number | null; module: string | null; pc: string; pt_regs: string } | null; oopsKind?: string | null; oopsContext?: string | null });
    if (fa.faulting) {
      const f = fa.faulting;
      const where = f.function === null ? f.pc : `${f.function}+0x${(f.offset ?? 0).toString(16)}/0x${(f.size ?? 0).toString(16)}`;
      const ctx = fa.oopsContext === 'irq' ? 'in interrupt context (IRQ stack)' : fa.oopsContext === 'exception' ? 'on an exception stack' : 'in task context';
      row('Faulting', `${where}${f.module ? ` [${f.module}]` : ''}  (${fa.oopsKind ?? 'oops'} ${ctx}; pt_regs at ${f.pt_regs})`);
    }
    if (pb.backtrace) {
      const fr = pb.backtrace.frames;
      const shown = fr.slice(0, 12).map((f) => `${f.reliable ? '' : '? '}${f.function === null ? f.pc : `${f.function}+0x${(f.offset ?? 0).toString(16)}/0x${(f.size ?? 0).toString(16)}`}${f.module ? ` [${f.module}]` : ''}`);
      row('Backtrace', `pid ${pb.backtrace.pid} (${pb.backtrace.comm}), ${fr.length} frames${fr.length > shown.length ? `, top ${shown.length}` : ''}`);
      for (const s of shown) row('', `  ${s}`);
    } else if (pb.backtraceError) row('Backtrace', `none: ${pb.backtraceError}`);
    if (pb.signature) row('Signature', `${pb.signature}  (${(pb.signatureChain ?? []).join(' < ')})`);
    const ss = (r.panic as { symbolSources?: Record<string, string> }).symbolSources;
    if (ss) row('Task symbols', Object.entries(ss).map(([n, s]) => `${n} [${s}]`).join(', '));
  }
  const ks = r.kernelState;
  if (ks) {
    row('Symbols', ks.symbols.source === 'none' ? `none: ${ks.symbols.reason}` : `kallsyms, ${ks.symbols.count} symbols${ks.symbols.lost ? ` (${ks.symbols.lost} lost: unreadable pages)` : ''}  [${ks.symbols.source}]`);
    if (ks.taint) row('Taint', ks.taint.letters ? `${ks.taint.letters}  (tainted_mask ${ks.taint.mask})` : 'not tainted');
    row('BTF', ks.btf.present ? `yes, ${ks.btf.size} bytes at ${ks.btf.address}  [${ks.btf.source === 'symbols' ? '__start_BTF..__stop_BTF' : 'scan of the kernel image'}]` : `none: ${ks.btf.reason}`);
    if (ks.uptime !== null) {
      // tk_core lags the crash by up to the idle time before it: the panic record's timestamp is
      // the later, closer figure when the log has one
      const atPanic = r.panic ? Number((r.panic as { uptime?: string | null }).uptime ?? NaN) : NaN;
      row(
        'Uptime',
        atPanic > ks.uptime
          ? `${atPanic.toFixed(3)} s at the panic  [its log timestamp; tk_core last updated at ${ks.uptime.toFixed(3)} s]`
          : `${ks.uptime.toFixed(3)} s at the last timekeeping update  [tk_core]`,
      );
    }
    if (ks.tasks !== null) row('Tasks', `${ks.tasks}  (threads included, idle tasks not)`);
    if (ks.modules !== null) row('Modules', `${ks.modules} loaded`);
    // the task each CPU was running (its index in __per_cpu_offset[], a proven CPU number)
    if (ks.currentTasks.length) {
      const cell = (t: string | null, i: number) => {
        const r = ks.running[i];
        return r ? `CPU ${i}: pid ${r.pid} (${r.comm})` : `CPU ${i}: ${t ?? '?'}`;
      };
      row('Running', ks.currentTasks.map(cell).join('  ') + '  [per-CPU current task]');
    }
    for (const c of ks.cpuNotes ?? []) {
      row(c === ks.cpuNotes[0] ? 'CPU notes' : '', `NT_PRSTATUS note ${c.note}  pid ${c.pid ?? '?'}  ${c.cpu === null ? 'CPU unknown' : `CPU ${c.cpu}  task ${c.task} (${c.comm})  [${c.evidence}]`}`);
    }
  }
  row('CPUs', r.nrCpus === null ? 'unknown' : String(r.nrCpus));
  row('VMCOREINFO', r.vmcoreinfo.present ? `yes (${r.vmcoreinfo.source})` : 'none');
  const pb = r.physBase;
  row(pb.name, `${pb.verdict.toUpperCase()}${pb.name === 'PHYS_OFFSET' ? '  (arm64: the header\'s phys_base field holds memstart_addr)' : ''}`);
  row('  header', pb.header ?? '(format has no phys_base field)');
  if (pb.vmcoreinfoRaw !== null) row('  VMCOREINFO', `NUMBER(${pb.name})=${pb.vmcoreinfoRaw}${pb.vmcoreinfo !== null && pb.vmcoreinfo !== pb.vmcoreinfoRaw ? `  (${pb.vmcoreinfo})` : ''}`);
  row('  true', pb.value ?? 'not proven');
  if (pb.proof.length) row('  proof', pb.proof.map((s) => s.text).join('; '));
  if (pb.explanation) row('  why', pb.explanation);
  if (pb.closest) {
    row('  closest', `${pb.closest.value} (${pb.closest.sources.join(', ')}): ${pb.closest.passed.length} checks passed`);
    if (pb.closest.failed.length) row('  failed', pb.closest.failed.map((s) => s.text).join('; '));
  }
  const a64 = pb.aarch64 as Record<string, string | number | null> | null | undefined;
  if (a64) row('  layout', `kimage_voffset ${a64.kimageVoffset ?? '?'}  PAGE_OFFSET ${a64.pageOffset ?? '?'}  VA_BITS ${a64.vaBits ?? '?'}  granule ${a64.granule ?? '?'}  ${a64.tableLevels ?? '?'}-level tables at ${a64.swapperPgDir ?? '?'}`);
  const kram = r.ranges.filter((x) => x.kernelRam !== false).reduce((a, x) => a + x.pages, 0);
  const other = r.pages.ram - kram;
  row('Memory', `${humanBytes(r.pages.ram * r.pageSize)} in ${r.ranges.length} range${r.ranges.length === 1 ? '' : 's'}${other > 0 ? ` (${humanBytes(kram * r.pageSize)} kernel RAM)` : ''}`);
  const shown = r.ranges.slice(0, 8);
  for (const x of shown) {
    const note = x.kernelRam === false ? '  not kernel RAM: above the kernel\'s memory map (firmware ROM/flash)' : '';
    L.push(`${''.padEnd(14)}${x.start.padStart(14)} - ${x.end.padEnd(14)} ${String(x.pages).padStart(9)} pages${note}`);
  }
  if (r.ranges.length > shown.length) L.push(`${''.padEnd(14)}... ${r.ranges.length - shown.length} more (--json lists all)`);
  const p = r.pages;
  if (r.pageCount === 'bitmaps') {
    row('Pages', `frames ${p.ram}  dumped ${p.dumped}  excluded ${p.excluded}  missing ${p.missing}  [bitmaps only: zero-shared, damaged descriptors and codecs not counted; --pages full reads every page descriptor]`);
  } else row('Pages', `frames ${p.ram}  dumped ${p.dumped} (data ${p.data}, zero-shared ${p.zeroShared})  excluded ${p.excluded}  missing ${p.missing}${p.damaged ? `  damaged ${p.damaged}` : ''}`);
  const codecs = Object.entries(r.codecs);
  if (codecs.length) row('Storage', codecs.map(([c, n]) => `${c} ${n}`).join('  '));
  row('File size', `${humanBytes(r.fileBytes)}${r.fileToRamRatio !== null ? `  (${(r.fileToRamRatio * 100).toFixed(1)}% of RAM)` : ''}`);
  if (r.notes.length) {
    row('Notes', `${r.notes.length}`);
    for (const n of r.notes) L.push(`${''.padEnd(14)}${n.name.padEnd(12)} ${n.type.padEnd(18)} ${n.size} bytes`);
  }
  // each line one line: a string of the dump (utsname, a note's name, a comm) cannot forge another
  return L.map((l) => printable(l)).join('\n');
}
