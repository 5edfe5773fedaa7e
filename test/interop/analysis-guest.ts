/**
 * The analysis guest of the symbol, type and backtrace interop tests: one panicked guest per
 * kernel series (Debian 6.1.0-56 and 6.12.107+deb12 cloud kernels), booted, dumped and read by
 * the real tools once by scripts/guest/analysis-guest.sh and cached under $VMCORE_GUEST_CACHE
 * (keyed by kernel and script hash), so every interop test shares one boot per kernel.
 *
 *   const g = analysisGuest('6.1.0-56');
 *   if ('skip' in g) { test(..., { skip: g.skip }) } else { g.elf, g.drgn.tasks, g.console.modules ... }
 *
 * What is missing (QEMU, python3-drgn, crash, the kernel packages) gives `{skip}` with the reason;
 * under CI=true it throws instead, so a CI run never passes by skipping.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('../../../', import.meta.url));
const SCRIPT = join(root, 'scripts/guest/analysis-guest.sh');

export type AnalysisKernel = '6.1.0-56' | '6.12.107+deb12';
export const ANALYSIS_KERNELS: readonly AnalysisKernel[] = ['6.1.0-56', '6.12.107+deb12'];

export interface DrgnFrame {
  function: string | null;
  /** null: drgn unwound a frame whose program counter it could not recover */
  pc: string | null;
  sp: string | null;
  inline: boolean;
}
export interface DrgnTask {
  pid: number;
  tgid: number;
  ppid: number;
  comm: string;
  state: string;
  cpu: number;
  task: string;
  on_cpu: number | null;
  kernel_thread: boolean;
  idle_cpu?: number;
  stack?: DrgnFrame[];
  stack_error?: string;
}
export interface DrgnTruth {
  drgn: string;
  errors: string[];
  release: string;
  kaslr_offset: string;
  symbols: Record<string, string>;
  cpus: { cpu: number; online: boolean; current: string; idle: string; hardirq_stack_ptr?: string }[];
  tasks: DrgnTask[];
  prstatus_threads: { tid: number; stack?: DrgnFrame[]; stack_error?: string }[];
  crashed_thread_tid?: number;
  modules: { name: string; base: string; size: number }[];
}

/** What the guest printed on its console (scripts/guest/init.sh with vmcore_procs). */
export interface GuestConsole {
  /** `ps -o pid,ppid,stat,comm` rows. */
  ps: { pid: number; ppid: number; stat: string; comm: string }[];
  /** /proc/modules rows: name, size, load address. */
  modules: { name: string; size: number; base: string }[];
  /** The /proc/kallsyms sample: name -> 0x address (first occurrence). */
  kallsyms: Map<string, string>;
  /**
   * Every `Call Trace:` block the kernel printed, as its frames in order: the function name and
   * whether the kernel marked it unreliable (`? ` prefix). `regs` is the text after the block
   * (RIP/RSP lines) until the next blank of frames.
   */
  traces: { frames: { function: string; offset: string; reliable: boolean; module?: string }[]; text: string }[];
  text: string;
}

export interface AnalysisGuest {
  abi: AnalysisKernel;
  dir: string;
  kver: string;
  vmlinux: string;
  /** QEMU's dumps (paging=false ELF, kdump-zlib in the flattened format). */
  elf: string;
  kdump: string;
  /** `vmcore fix` of the ELF: the file drgn read. */
  fixedElf: string;
  serial: string;
  drgn: DrgnTruth;
  /** crash 8.0.2 output (6.1 only; Debian's crash cannot open 6.12 dumps). */
  crash?: { ps: string; mod: string; btA: string; task: string; log: string };
  console: GuestConsole;
  timings: Record<string, number>;
}

function has(cmd: string, args: string[]): boolean {
  return spawnSync(cmd, args, { stdio: 'ignore' }).error === undefined;
}

function missing(abi: AnalysisKernel): string | undefined {
  if (!has('qemu-system-x86_64', ['--version'])) return 'qemu-system-x86_64 not installed';
  if (!existsSync('/bin/busybox')) return 'busybox-static not installed';
  if (spawnSync('/usr/bin/python3', ['-c', 'import drgn'], { stdio: 'ignore' }).status !== 0) return 'python3-drgn not installed';
  if (abi.startsWith('6.1.') && !has('crash', ['--version'])) return 'crash not installed';
  if (!existsSync(join(root, 'dist/src/cli/vmcore.js'))) return 'the CLI is not built (npm run build)';
  return undefined;
}

/** Parse the console of the analysis guest (exported for the unit-free checks of the tests). */
export function parseConsole(text: string): GuestConsole {
  const lines = text.split(/\r?\n/);
  const section = (start: string, end: string): string[] => {
    const i = lines.findIndex((l) => l.startsWith(start));
    if (i < 0) return [];
    const out: string[] = [];
    for (let j = i + 1; j < lines.length && !lines[j]!.startsWith(end); j++) out.push(lines[j]!);
    return out;
  };
  const ps = section('GUEST: ps:', 'GUEST: ps end')
    .map((l) => /^\s*(\d+)\s+(\d+)\s+(\S+)\s+(.*)$/.exec(l))
    .filter((m): m is RegExpExecArray => m !== null)
    .map((m) => ({ pid: Number(m[1]), ppid: Number(m[2]), stat: m[3]!, comm: m[4]!.trim() }));
  const modules = section('GUEST: modules:', 'GUEST: modules end')
    .map((l) => /^(\S+) (\d+) \d+ \S+ \S+ (0x[0-9a-f]+)/.exec(l))
    .filter((m): m is RegExpExecArray => m !== null)
    .map((m) => ({ name: m[1]!, size: Number(m[2]), base: m[3]! }));
  const kallsyms = new Map<string, string>();
  for (const l of section('GUEST: kallsyms sample:', 'GUEST: kallsyms sample end')) {
    const m = /^([0-9a-f]{16}) \S (\S+)/.exec(l);
    if (m && !kallsyms.has(m[2]!)) kallsyms.set(m[2]!, `0x${BigInt(`0x${m[1]!}`).toString(16)}`);
  }
  const traces: GuestConsole['traces'] = [];
  for (let i = 0; i < lines.length; i++) {
    if (!/\] Call Trace:/.test(lines[i]!)) continue;
    const frames: GuestConsole['traces'][number]['frames'] = [];
    const text: string[] = [];
    let j = i + 1;
    for (; j < lines.length; j++) {
      const body = lines[j]!.replace(/^\[\s*[\d.]+\]\s?/, '');
      if (/^\s*<\/TASK>/.test(body) || /^---\[ end/.test(body) || /^Kernel Offset/.test(body)) break;
      const f = /^\s*(\? )?([A-Za-z0-9_.$]+)\+(0x[0-9a-f]+)\/0x[0-9a-f]+(?: \[([^\]]+)\])?\s*$/.exec(body);
      if (f) frames.push({ function: f[2]!, offset: f[3]!, reliable: f[1] === undefined, ...(f[4] ? { module: f[4] } : {}) });
      else text.push(body);
    }
    traces.push({ frames, text: text.join('\n') });
    i = j;
  }
  return { ps, modules, kallsyms, traces, text };
}

/**
 * Boot (or take from the cache) the analysis guest of kernel `abi` and read its truth.
 * Takes about 2 minutes on 2 cores the first time (boot, two QEMU dumps, drgn, crash), then
 * nothing. Throws when the script fails; returns {skip} when a tool is missing outside CI.
 */
export function analysisGuest(abi: AnalysisKernel): AnalysisGuest | { skip: string } {
  const why = missing(abi);
  if (why) {
    if (process.env['CI'] === 'true') throw new Error(`analysis guest ${abi}: ${why} (required in CI)`);
    return { skip: why };
  }
  const r = spawnSync('bash', [SCRIPT], {
    encoding: 'utf8',
    env: { ...process.env, VMCORE_KERNEL_ABI: abi },
    maxBuffer: 64 << 20,
    timeout: 900_000,
  });
  if (r.status !== 0) throw new Error(`scripts/guest/analysis-guest.sh (${abi}) failed: ${(r.stderr ?? '').slice(-1500)}`);
  const env = new Map([...r.stdout.matchAll(/^(\w+)=(.*)$/gm)].map((m) => [m[1]!, m[2]!] as const));
  const dir = env.get('ANALYSIS_DIR')!;
  const read = (f: string) => readFileSync(join(dir, f), 'utf8');
  const crash = existsSync(join(dir, 'crash-ps.txt'))
    ? { ps: read('crash-ps.txt'), mod: read('crash-mod.txt'), btA: read('crash-bt-a.txt'), task: read('crash-task.txt'), log: read('crash.log') }
    : undefined;
  const timings: Record<string, number> = {};
  for (const m of read('timings.env').matchAll(/^(\w+)=(\d+)$/gm)) timings[m[1]!] = Number(m[2]);
  return {
    abi,
    dir,
    kver: env.get('KVER')!,
    vmlinux: env.get('VMLINUX')!,
    elf: join(dir, 'qemu-elf.vmcore'),
    kdump: join(dir, 'qemu-kdump-zlib.vmcore'),
    fixedElf: join(dir, 'fixed-elf.vmcore'),
    serial: join(dir, 'serial.log'),
    drgn: JSON.parse(read('truth-drgn.json')) as DrgnTruth,
    ...(crash ? { crash } : {}),
    console: parseConsole(readFileSync(join(dir, 'serial.log'), 'latin1')),
    timings,
  };
}

/** Function names of a frame list without drgn's inlined frames and unnamed ones. */
export function drgnFunctions(frames: readonly DrgnFrame[]): string[] {
  return frames.filter((f) => !f.inline && f.function !== null).map((f) => f.function!);
}
