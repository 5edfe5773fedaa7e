/**
 * vmcore dump --qmp SOCKET OUT — dump a running QEMU guest through its QMP monitor into a
 * compact kdump (or ELF) file in one step, converting QEMU's dump stream on the fly.
 */
import { Option, type Command } from 'commander';
import { VmcoreError } from '../../core/errors.js';
import { hex64 } from '../../core/hex.js';
import { dumpViaQmp, type DumpCodec, type DumpOutputFormat, type QmpDumpProgress, type QmpDumpSummary } from '../../node/dump-qmp.js';
import { humanBytes, parseCount, printable, printJson } from '../util.js';

interface Opts {
  qmp?: string;
  format?: string;
  compress?: string;
  excludeZero?: boolean;
  dumpLevel?: string;
  threads?: string;
  paging?: boolean;
  detachCheck?: boolean;
  keepIncomplete?: boolean;
  force?: boolean;
  fixKernel?: boolean;
  quiet?: boolean;
  json?: boolean;
  c?: boolean;
  l?: boolean;
  p?: boolean;
  z?: boolean;
}


export function formatSummary(s: QmpDumpSummary): string {
  const lines = [
    `${s.output}: ${s.format}${s.codec !== 'none' ? `, ${s.codec} (${s.codecImpl}, ${s.threads} threads)` : ''}`,
    `  guest memory ${humanBytes(s.guestMemory)} (QEMU ${s.qemuVersion}, guest ${s.guestStatusBefore}${s.guestStatusAfter ? ` -> ${s.guestStatusAfter}` : ''})`,
    `  written ${humanBytes(s.bytesWritten)} (${((100 * s.bytesWritten) / Math.max(1, s.guestMemory)).toFixed(1)} % of guest memory), ` +
      `${s.pages.total} pages (${s.pages.stored} stored, ${s.pages.zero} zero)`,
    `  took ${(s.elapsedMs / 1000).toFixed(1)} s` + (s.guestPausedMs !== undefined ? `, guest paused ${(s.guestPausedMs / 1000).toFixed(1)} s (QEMU events)` : ''),
  ];
  if (s.physBase) {
    const how = s.physBase.patched
      ? 'written into the header'
      : s.physBase.verdict === 'header absent'
        ? 'this format has no header field; VMCOREINFO carries it'
        : 'header already right';
    lines.push(`  phys_base ${hex64(s.physBase.value)} (${how})`);
  }
  lines.push(`  VMCOREINFO: ${s.vmcoreinfo.source}${s.vmcoreinfo.added ? ' (added to the output)' : ''}`);
  if (s.filtered) {
    const kinds = Object.entries(s.filtered).filter(([, n]) => n > 0).map(([k, n]) => `${k} ${n}`);
    lines.push(`  dump level ${s.dumpLevel}: left out ${kinds.length ? kinds.join(', ') : 'nothing'} (pages)` + (s.classification ? `; classified from ${humanBytes(s.classification.bytes)} of guest memory in ${(s.classification.ms / 1000).toFixed(1)} s` : ''));
  }
  return lines.join('\n') + '\n';
}

export function register(program: Command): void {
  program
    .command('dump')
    .description(
      'Dump a running QEMU guest via its QMP monitor (unix socket or host:port) into OUT: QEMU streams its ELF dump through a FIFO and vmcore converts it on the fly (the guest memory never lands on disk uncompressed), then writes the true phys_base and, if the guest has none, the VMCOREINFO recovered from memory.',
    )
    .requiredOption('--qmp <socket>', 'QEMU monitor: unix socket path, unix:PATH, HOST:PORT or tcp:HOST:PORT')
    .argument('<out>', 'output file')
    .addOption(new Option('--format <fmt>', 'output format (default kdump)').choices(['kdump', 'elf', 'celf']))
    .addOption(new Option('--compress <codec>', 'page codec (default zlib for kdump, zstd for celf)').choices(['zlib', 'lzo', 'snappy', 'zstd', 'none']))
    .option('-c', 'zlib')
    .option('-l', 'lzo')
    .option('-p', 'snappy')
    .option('-z', 'zstd')
    .option('--exclude-zero', 'zero pages cost nothing (always so for kdump: one shared zero page; ELF: not stored)')
    .option('-d, --dump-level <n>', "makedumpfile dump level 0-31 (1 zero, 2 page cache, 4 page cache with private data, 8 user data, 16 free pages): pages are classified from the stopped guest's struct pages before its memory is streamed")
    .option('--threads <n>', 'compression worker threads (default: number of cores)')
    .option('--paging', 'ask QEMU for paging=true: PT_LOADs with virtual addresses, but only memory the page tables map')
    .option('--detach-check', 'after the dump, check that QEMU answers and the guest is back in its former run state')
    .option('--keep-incomplete', 'on failure keep the partial output, marked incomplete')
    .option('--force', 'overwrite OUT if it exists')
    .option('--no-fix-kernel', 'do not analyse the output to write phys_base / recovered VMCOREINFO')
    .option('--quiet', 'no progress bar and no summary line (warnings are still printed)')
    .option('--json', 'print a JSON summary on stdout')
    .action(async (out: string, o: Opts) => {
      if (out === '-') throw new VmcoreError('USAGE', 'dump writes a file (phys_base and VMCOREINFO are patched into it afterwards): give a path, not "-"');
      const short = [o.c && 'zlib', o.l && 'lzo', o.p && 'snappy', o.z && 'zstd'].filter(Boolean) as DumpCodec[];
      if (short.length > 1 || (short.length && o.compress && o.compress !== short[0])) throw new VmcoreError('USAGE', 'give one codec (-c, -l, -p, -z or --compress)');
      const format = (o.format ?? 'kdump') as DumpOutputFormat;
      if (format === 'elf' && (short.length || o.compress)) throw new VmcoreError('USAGE', 'ELF output is not compressed: drop the codec option');
      let dumpLevel: number | undefined;
      if (o.dumpLevel !== undefined) {
        if (!/^\d+$/.test(o.dumpLevel) || Number(o.dumpLevel) > 31) throw new VmcoreError('USAGE', `--dump-level: 0-31 (makedumpfile bits: 1 zero, 2 cache, 4 private cache, 8 user, 16 free), got ${o.dumpLevel}`);
        dumpLevel = Number(o.dumpLevel);
      }
      let threads: number | undefined;
      if (o.threads !== undefined) {
        threads = parseCount(o.threads, '--threads');
      }
      const showBar = !o.quiet && !o.json && process.stderr.isTTY;
      const ac = new AbortController();
      let sigs = 0;
      const onSig = () => {
        if (++sigs > 1) process.exit(130);
        process.stderr.write('\nvmcore: stopping the dump (QEMU keeps running; press Ctrl-C again to quit at once)\n');
        ac.abort();
      };
      process.on('SIGINT', onSig);
      process.on('SIGTERM', onSig);
      let bar: import('cli-progress').SingleBar | undefined;
      try {
        if (showBar) {
          const { SingleBar, Presets } = await import('cli-progress');
          bar = new SingleBar(
            {
              format: ' {phase} [{bar}] {percentage}% | {done}/{all} MiB | QEMU {qemu} | out {out} MiB | {rate} MiB/s | ETA {eta_formatted}',
              hideCursor: true,
              stream: process.stderr,
              etaBuffer: 30,
            },
            Presets.shades_classic,
          );
        }
        let started = false;
        const t0 = Date.now();
        const onProgress = (p: QmpDumpProgress) => {
          if (!bar) return;
          const mib = (n: number) => (n / 1048576).toFixed(0);
          const payload = {
            phase: p.phase,
            done: mib(p.memoryRead),
            all: mib(p.memoryTotal),
            qemu: p.qemu && p.qemu.total ? `${((100 * p.qemu.completed) / p.qemu.total).toFixed(0)}%` : '-',
            out: mib(p.bytesOut),
            rate: (p.memoryRead / 1048576 / Math.max(0.001, (Date.now() - t0) / 1000)).toFixed(0),
          };
          if (!started) {
            started = true;
            bar.start(Math.max(1, p.memoryTotal), 0, payload);
          }
          bar.update(Math.min(p.memoryRead, p.memoryTotal), payload);
        };
        const summary = await dumpViaQmp({
          qmp: o.qmp!,
          output: out,
          format,
          ...(format !== 'elf' && (short[0] ?? o.compress) !== undefined ? { codec: (short[0] ?? o.compress) as DumpCodec } : {}),
          excludeZero: !!o.excludeZero,
          ...(dumpLevel !== undefined ? { dumpLevel } : {}),
          ...(threads !== undefined ? { threads } : {}),
          paging: !!o.paging,
          detachCheck: !!o.detachCheck,
          keepIncomplete: !!o.keepIncomplete,
          force: !!o.force,
          fixKernelInfo: o.fixKernel !== false,
          signal: ac.signal,
          onProgress,
          onWarning: (w) => {
            if (o.json) return; // in --json's warnings (--quiet keeps warnings: it drops the bar and the summary)
            if (bar) bar.stop();
            bar = undefined;
            process.stderr.write(`warning: ${printable(w.text)}\n`);
          },
        });
        bar?.stop();
        bar = undefined;
        if (o.json) await printJson(summary);
        else if (!o.quiet) process.stderr.write(formatSummary(summary));
      } finally {
        bar?.stop();
        process.off('SIGINT', onSig);
        process.off('SIGTERM', onSig);
      }
    });
}
