/**
 * Kernel backtraces without vmlinux, for every architecture vmcore knows (archs.ts): every task
 * (tasks.ts: the task lists, per-CPU idle tasks), the per-CPU offsets and current tasks, the
 * module text, the stacks a task may be on (its task stack, and for a running task its CPU's
 * IRQ and exception stacks), the unwinder of the dump's architecture (KernelArch.createUnwinder:
 * x86_64/unwinder.ts ORC, aarch64/unwinder.ts frame records) and the symbolized result, printed
 * like crash's `bt` or as JSON.
 *
 * Facts and sources: kernel/sched/sched.h (struct rq: curr, idle), fs/proc/array.c (task state
 * letters), lib/vsprintf.c (%pB: a return address is looked up at pc - 1). Structure offsets
 * come from BTF; symbols from a {@link KernelSymbolSource} (kallsyms or a System.map).
 */
import { printable } from '../text.js';
import { warning, type Warning } from '../warnings.js';
import { isVmcoreError, VmcoreError } from '../errors.js';
import { kernelPacMask } from './aarch64/pagetables.js';
import type { KernelTypes } from './btf/reader.js';
import { listModules, type ModuleList } from './modules.js';
import { readPerCpu } from './percpu.js';
import { listTasks, type TaskEntry } from './tasks.js';
import { loadKernelBtf, type BtfKernel } from './btf/kernel-btf.js';
import type { KernelInfo } from './kernel.js';
import { crashSignature, OOPS_RE, oopsKind, signatureChain } from './signature.js';
import { registersOfCpu, registersOfTask, type CpuRegisters } from './x86_64/cpu.js';
import type { ArchUnwinder, ArchWalk, KernelArch } from './arch.js';
import { kernelArch } from './archs.js';
import { withTaskSymbols, type SymbolOrigin } from './task-symbols.js';
import type { ExceptionFrame, StackRange, StopReason, UnwindFrame } from './unwind.js';
import { hex64 } from '../hex.js';

/** Symbols by name and address (the kallsyms decoder provides this). */
export interface KernelSymbolSource {
  addressOf(name: string): bigint | undefined;
  /** The symbol containing `addr`: offset from its start, its size when known, its module. */
  symbolize(addr: bigint): { name: string; offset: bigint | number; size?: bigint | number | undefined; module?: string | undefined } | undefined;
  /** The per-CPU offsets when the source proved them itself (task-symbols.ts), instead of `__per_cpu_offset[]`. */
  perCpuOffsets?: readonly bigint[];
}

export interface BacktraceEnv {
  readVirt(va: bigint, length: number): Promise<Uint8Array>;
  release: string;
  symbols: KernelSymbolSource;
  types: KernelTypes;
  cpus: readonly CpuRegisters[];
  /** The module list when already read (KernelInfo.modules()); else it is walked here. */
  modules?: ModuleList;
  /** The kernel's architecture, a name of archs.ts (default 'x86_64'). */
  arch?: string;
  /** aarch64: NUMBER(KERNELPACMASK), the pointer-authentication bits of return addresses. */
  pacMask?: bigint;
  /** The kernel's page size (VMCOREINFO PAGESIZE): arm64's THREAD_SIZE is at least one page. */
  pageSize?: number;
}

export interface TaskInfo {
  task: bigint;
  pid: number;
  tgid: number;
  ppid: number;
  comm: string;
  /** fs/proc/array.c task_state_to_char */
  state: string;
  cpu: number;
  /** The CPU it runs on at the crash (its current task), else null. */
  activeCpu: number | null;
  /** The idle task of that CPU. */
  idleOf: number | null;
  stackBase: bigint;
  threadSp: bigint;
}

export interface SymbolizedFrame extends UnwindFrame {
  function: string | null;
  offset: number | null;
  size: number | null;
  module: string | null;
}

export interface TaskBacktrace {
  task: TaskInfo;
  /** The architecture of the walk (archs.ts), for printing its pt_regs. */
  arch: string;
  frames: SymbolizedFrame[];
  exceptionFrames: ExceptionFrame[];
  stop: StopReason;
  stopDetail: string;
  /** The user-mode registers at the entry from user mode (x86_64: rip/rsp; aarch64: pc/sp). */
  user?: Readonly<Record<string, bigint>>;
  /** Where the starting state came from (x86_64 sleeping tasks: inactive_task_frame; aarch64: thread.cpu_context). */
  start: ArchWalk['start'];
  error?: string;
}

interface PerCpu {
  cpu: number;
  offset: bigint;
  current: bigint | undefined;
  idle: bigint | undefined;
  stacks: StackRange[];
}

interface ModuleText {
  name: string;
  start: bigint;
  end: bigint;
}


/** Read a u64 (little-endian) at `va`. */
async function u64(env: { readVirt: BacktraceEnv['readVirt'] }, va: bigint): Promise<bigint> {
  const b = await env.readVirt(va, 8);
  return new DataView(b.buffer, b.byteOffset, 8).getBigUint64(0, true);
}

export class Backtracer {
  readonly warnings: Warning[] = [];
  /** Where the symbols the task walk uses came from, when some were found in memory (task-symbols.ts). */
  symbolSources: Record<string, SymbolOrigin> | undefined;
  /** The architecture's unwinder (KernelArch.createUnwinder). */
  unwinder!: ArchUnwinder<CpuRegisters>;
  readonly arch: KernelArch<CpuRegisters, unknown>;
  private perCpu: PerCpu[] = [];
  private modules: ModuleText[] = [];
  private textStart = 0n;
  private textEnd = 0n;
  private initText: { start: bigint; end: bigint } | undefined;

  private constructor(readonly env: BacktraceEnv) {
    const name = env.arch ?? 'x86_64';
    const arch = kernelArch(name);
    if (!arch) throw new VmcoreError('UNSUPPORTED', `backtraces are implemented for x86_64 and aarch64 only, not ${name}`);
    this.arch = arch;
  }

  /**
   * Load the architecture's unwinder, the modules and the per-CPU data. Never throws for bad
   * memory: warnings say what is missing.
   * @throws VmcoreError UNSUPPORTED for an architecture archs.ts does not list.
   */
  static async create(env: BacktraceEnv): Promise<Backtracer> {
    const bt = new Backtracer(env);
    await bt.init();
    return bt;
  }

  private sym(name: string): bigint | undefined {
    return this.env.symbols.addressOf(name);
  }

  private async init(): Promise<void> {
    this.textStart = this.sym('_stext') ?? this.sym('_text') ?? 0n;
    this.textEnd = this.sym('_etext') ?? 0n;
    if (this.textEnd <= this.textStart) this.warnings.push(warning('UNWIND_DATA_UNAVAILABLE', 'no _stext/_etext symbols: kernel text range unknown'));
    const si = this.sym('_sinittext');
    const ei = this.sym('_einittext');
    if (si !== undefined && ei !== undefined && ei > si) this.initText = { start: si, end: ei };
    const { env } = this;
    this.unwinder = await this.arch.createUnwinder({
      readVirt: env.readVirt,
      release: env.release,
      symbol: (n) => this.sym(n),
      types: env.types,
      cpus: env.cpus,
      ...(env.pageSize !== undefined ? { pageSize: env.pageSize } : {}),
      ...(env.pacMask !== undefined ? { pacMask: env.pacMask } : {}),
      isText: (pc) => this.isText(pc),
      functionStart: (pc) => this.functionStart(pc),
      warnings: this.warnings,
    });
    await this.loadModules();
    await this.loadPerCpu();
  }

  /** Each module's text ranges, from the module list (modules.ts), and the unwinder's module data. */
  private async loadModules(): Promise<void> {
    const { types } = this.env;
    if (this.sym('modules') === undefined || types.btf.find('struct module') === undefined) return;
    let list = this.env.modules;
    if (!list) {
      try {
        list = await listModules(types, (n) => this.sym(n), { symbols: false });
      } catch (e) {
        if (!isVmcoreError(e)) throw e;
        this.warnings.push(warning('MODULE_UNREADABLE', `modules: ${e.message}`));
        return;
      }
      this.warnings.push(...list.warnings);
    }
    for (const m of list.modules) {
      for (const r of m.regions) if (r.name === 'text' || r.name === 'init_text') this.modules.push({ name: m.name, start: r.start, end: r.start + BigInt(r.size) });
    }
    await this.unwinder.loadModules(list);
  }

  /** Per-CPU offsets and current tasks (percpu.ts readPerCpu), with each CPU's idle task and the unwinder's per-CPU stacks. */
  private async loadPerCpu(): Promise<void> {
    const { types } = this.env;
    const btf = types.btf;
    if (this.sym('__per_cpu_offset') === undefined && !this.env.symbols.perCpuOffsets) {
      this.warnings.push(warning('PERCPU_UNAVAILABLE', 'no __per_cpu_offset symbol: per-CPU current tasks and IRQ stacks unknown'));
      return;
    }
    const fromRq = this.unwinder.currentFromRunqueue;
    const pc = await readPerCpu({ readVirt: this.env.readVirt }, this.env.symbols, { cpus: Math.max(1, this.env.cpus.length), types, ...(fromRq ? { current: false } : {}) });
    this.warnings.push(...pc.warnings);
    const off = (type: string, path: string): bigint | undefined => {
      try {
        return BigInt(btf.offsetOf(type, path));
      } catch {
        return undefined;
      }
    };
    const runqueues = this.sym('runqueues');
    const idleOff = off('rq', 'idle');
    const currOff = off('rq', 'curr');
    for (let cpu = 0; cpu < pc.offsets.length; cpu++) {
      const base = pc.offsets[cpu]!;
      const p: PerCpu = { cpu, offset: base, current: pc.currentTasks[cpu], idle: undefined, stacks: [] };
      const rd = async (va: bigint | undefined) => (va === undefined ? undefined : u64(this.env, BigInt.asUintN(64, va + base)).catch(() => undefined));
      if (runqueues !== undefined && idleOff !== undefined) p.idle = await rd(runqueues + idleOff);
      // kernel/sched/sched.h struct rq: curr
      if (fromRq && p.current === undefined && runqueues !== undefined && currOff !== undefined) p.current = await rd(runqueues + currOff);
      p.stacks = await this.unwinder.cpuStacks(rd, base);
      this.perCpu.push(p);
    }
    if (this.perCpu.length === 0) this.warnings.push(warning('PERCPU_UNAVAILABLE', 'per-CPU data unreadable'));
  }

  /** Kernel text (_stext.._etext, init text, what the unwinder's data covers) or module text. */
  isText(ip: bigint): boolean {
    if (ip >= this.textStart && ip < this.textEnd) return true;
    if (this.initText && ip >= this.initText.start && ip < this.initText.end) return true;
    if (this.unwinder.coversText(ip)) return true;
    return this.modules.some((m) => ip >= m.start && ip < m.end);
  }

  /** The per-CPU current and idle tasks, for numbering and marking. */
  cpuTasks(): { cpu: number; current: bigint | undefined; idle: bigint | undefined }[] {
    return this.perCpu.map((p) => ({ cpu: p.cpu, current: p.current, idle: p.idle }));
  }

  /** A task of the task walk (tasks.ts) with what the unwinder needs: its stack, its saved stack pointer, and its CPU's role. */
  private taskInfo(e: TaskEntry): TaskInfo {
    const active = this.perCpu.find((c) => c.current === e.task);
    const idle = this.perCpu.find((c) => c.idle === e.task);
    return {
      task: e.task,
      pid: e.pid,
      tgid: e.tgid,
      ppid: e.ppid,
      comm: e.comm,
      state: e.state,
      cpu: e.cpu,
      activeCpu: active?.cpu ?? null,
      idleOf: idle?.cpu ?? (e.idle ? e.cpu : null),
      stackBase: e.object.ptr('stack'),
      threadSp: e.object.ptr(this.unwinder.threadSpPath),
    };
  }

  /**
   * Every task, as `ps` lists them (tasks.ts listTasks: the task lists, threads, each CPU's idle
   * task; bounded, cycle-checked). A broken list gives the tasks found and a warning.
   * @throws VmcoreError NO_SYMBOLS without `init_task`.
   */
  async tasks(): Promise<TaskInfo[]> {
    const r = await listTasks({ types: this.env.types, symbol: (n) => this.sym(n), perCpuOffsets: this.perCpu.map((p) => p.offset) });
    this.warnings.push(...r.warnings);
    const out: TaskInfo[] = [];
    for (const e of r.tasks) {
      try {
        out.push(this.taskInfo(e));
      } catch (err) {
        if (!isVmcoreError(err)) throw err;
        this.warnings.push(warning('TASK_UNREADABLE', `task at ${hex64(e.task)}: ${err.message}`));
      }
    }
    return out;
  }

  private registersFor(t: TaskInfo): CpuRegisters | undefined {
    const byPid = registersOfTask(this.env.cpus, t.pid);
    if (byPid) return byPid;
    if (t.activeCpu !== null) return registersOfCpu(this.env.cpus, t.activeCpu);
    return undefined;
  }

  /**
   * Unwind one task with the architecture's unwinder: its stack, its CPU's stacks when it runs,
   * the CPU's registers (running, or a note naming its pid) or its saved state. Never throws for
   * bad memory: the reason is in `stop` / `error`.
   */
  async backtrace(t: TaskInfo, opts: { maxFrames?: number } = {}): Promise<TaskBacktrace> {
    const stacks: StackRange[] = [this.unwinder.taskStack(t.stackBase)];
    const cpuData = t.activeCpu !== null ? this.perCpu.find((c) => c.cpu === t.activeCpu) : undefined;
    if (cpuData) stacks.push(...cpuData.stacks);
    const regs = t.activeCpu !== null || registersOfTask(this.env.cpus, t.pid) ? this.registersFor(t) : undefined;
    const r = await this.unwinder.unwind(t, regs, stacks, opts.maxFrames ? { maxFrames: opts.maxFrames } : {});
    // A task running on a CPU whose registers the dump lacks: its saved state is from its last
    // switch to it, not what it ran at the crash. Those frames are guesses ("?"), never a signature.
    const stale = t.activeCpu !== null && regs === undefined && r.frames.length > 0;
    if (stale) this.warnings.push(warning('REGISTERS_STALE', `pid ${t.pid} (${t.comm}) was running on CPU ${t.activeCpu}, but the dump holds no registers of that CPU: its frames start from the state saved at its last switch to it, not at the crash, and are marked as guesses`));
    return {
      task: t,
      arch: this.arch.name,
      frames: r.frames.map((f) => this.symbolize(stale ? { ...f, reliable: false } : f)),
      exceptionFrames: r.exceptionFrames,
      stop: r.stop,
      stopDetail: r.stopDetail,
      ...(r.user ? { user: r.user } : {}),
      start: r.start,
      ...(r.error !== undefined ? { error: r.error } : {}),
    };
  }

  /** The start address of the function holding `pc` (kallsyms), for crossing code without unwind data. */
  private functionStart(pc: bigint): bigint | undefined {
    const f = this.env.symbols.symbolize(pc);
    return f ? pc - BigInt(f.offset) : undefined;
  }

  /** Function name, offset and size of a frame; a return address is looked up at pc-1 (as %pB does). */
  symbolize(f: UnwindFrame): SymbolizedFrame {
    const s = this.env.symbols.symbolize(f.exact ? f.pc : f.pc - 1n);
    const mod = s?.module ?? this.modules.find((m) => f.pc >= m.start && f.pc < m.end)?.name ?? null;
    if (!s) return { ...f, function: null, offset: null, size: null, module: mod };
    const base = (f.exact ? f.pc : f.pc - 1n) - BigInt(s.offset);
    return { ...f, function: s.name, offset: Number(f.pc - base), size: s.size === undefined ? null : Number(s.size), module: mod };
  }
}


/** Options of {@link backtraceReport}. */
export interface BacktraceOptions {
  /** Only these pids (every thread of that pid number; idle tasks for 0). */
  pids?: readonly number[];
  /** Every task. Default: the panicking task only (or, without a known panic, every running task). */
  all?: boolean;
  /** pid of the task that panicked (from the log's caller id), if known. */
  panicPid?: number | null;
  /** CPU that panicked, if known. */
  panicCpu?: number | null;
  maxFrames?: number;
}

export interface BacktraceReport {
  tasks: TaskBacktrace[];
  /** The task address of the panicking task, when known. */
  panicTask: bigint | undefined;
  warnings: Warning[];
}

/**
 * Select tasks and unwind them: `pids`, or `all`, or by default the panicking task (the task
 * that logged the panic, else the current task of the panicking CPU), or, when the panic is not
 * known, every task running on a CPU.
 */
export async function backtraceReport(bt: Backtracer, opts: BacktraceOptions = {}): Promise<BacktraceReport> {
  const tasks = await bt.tasks();
  const cpus = bt.cpuTasks();
  let panicTask: bigint | undefined;
  if (opts.panicPid !== undefined && opts.panicPid !== null && opts.panicPid > 0) {
    panicTask = tasks.find((t) => t.pid === opts.panicPid && t.activeCpu !== null)?.task ?? tasks.find((t) => t.pid === opts.panicPid)?.task;
  }
  if (panicTask === undefined && opts.panicCpu !== undefined && opts.panicCpu !== null) panicTask = cpus.find((c) => c.cpu === opts.panicCpu)?.current;
  let chosen: TaskInfo[];
  if (opts.pids && opts.pids.length > 0) chosen = tasks.filter((t) => opts.pids!.includes(t.pid));
  else if (opts.all) chosen = tasks;
  else if (panicTask !== undefined) chosen = tasks.filter((t) => t.task === panicTask);
  else chosen = tasks.filter((t) => t.activeCpu !== null);
  const out: TaskBacktrace[] = [];
  for (const t of chosen) out.push(await bt.backtrace(t, opts.maxFrames ? { maxFrames: opts.maxFrames } : {}));
  return { tasks: out, panicTask, warnings: [...bt.warnings] };
}


/** `function+0xoff/0xsize [module]`, or the bare address. */
export function frameText(f: SymbolizedFrame): string {
  if (f.function === null) return hex64(f.pc);
  const size = f.size !== null ? `/0x${f.size.toString(16)}` : '';
  return `${f.function}+0x${(f.offset ?? 0).toString(16)}${size}${f.module ? ` [${f.module}]` : ''}`;
}

const STOP_TEXT: Record<StopReason, string> = {
  end_of_stack: 'end of stack',
  user_mode: 'entry from user mode',
  bad_orc_entry: 'bad ORC entry',
  no_unwind_info: 'no unwind information',
  unreadable: 'stack unreadable',
  off_stack: 'stack pointer off the stack',
  wrong_direction: 'stack pointer going the wrong way',
  bad_ip: 'return address not in kernel text',
  frame_limit: 'frame limit reached',
};

/** One task's backtrace as text, laid out like crash's `bt` (stack switches and pt_regs inline). */
export function formatTaskBacktrace(b: TaskBacktrace, panicTask?: bigint): string {
  const t = b.task;
  const cpu = t.activeCpu ?? t.cpu;
  const mark = t.task === panicTask ? '  (panic)' : t.activeCpu !== null ? '  (active)' : '';
  const out = [`PID: ${String(t.pid).padEnd(8)} TASK: ${t.task.toString(16)}  CPU: ${String(cpu).padEnd(4)} COMMAND: "${printable(t.comm)}"  STATE: ${t.state}${mark}`];
  if (b.error) out.push(`    (no backtrace: ${b.error})`);
  let stack = b.frames[0]?.stack;
  const byLevel = new Map<number, ExceptionFrame>();
  for (const e of b.exceptionFrames) if (e.address !== undefined) byLevel.set(e.level, e);
  for (const f of b.frames) {
    if (f.stack !== stack) {
      out.push(`--- <${stack === 'irq' ? 'IRQ' : stack === 'exception' ? `${f.stackName ?? 'exception'} exception` : stack ?? 'unknown'} stack> ---`);
      stack = f.stack;
    }
    const e = byLevel.get(f.level);
    if (e) out.push(formatAnyPtRegs(b.arch, e), `--- <${e.user ? 'user' : 'kernel'} mode pt_regs at ${e.address!.toString(16)}> ---`);
    out.push(` #${f.level} [${f.sp.toString(16)}] ${f.reliable ? '' : '? '}${frameText(f)}`);
  }
  const last = b.exceptionFrames[b.exceptionFrames.length - 1];
  if (b.stop === 'user_mode' && last && last.user) out.push(formatAnyPtRegs(b.arch, last));
  if (b.stop !== 'end_of_stack' && b.stop !== 'user_mode') out.push(`    (walk stopped: ${STOP_TEXT[b.stop]}: ${b.stopDetail})`);
  return out.join('\n');
}

/** One pt_regs by its architecture's printer (KernelArch.formatPtRegs). */
function formatAnyPtRegs(arch: string, e: ExceptionFrame): string {
  const a = kernelArch(arch);
  return a ? a.formatPtRegs(e) : '';
}

function regsToJSON(r: Readonly<Record<string, bigint | undefined>>): Record<string, string> {
  const o: Record<string, string> = {};
  for (const [k, v] of Object.entries(r)) if (typeof v === 'bigint') o[k] = hex64(v);
  return o;
}

/** The JSON form documented in README (`vmcore bt --json`). */
export function taskBacktraceToJSON(b: TaskBacktrace, panicTask?: bigint): Record<string, unknown> {
  const t = b.task;
  return {
    pid: t.pid,
    tgid: t.tgid,
    comm: t.comm,
    task: hex64(t.task),
    cpu: t.activeCpu ?? t.cpu,
    state: t.state,
    active: t.activeCpu !== null,
    panic: t.task === panicTask,
    start: b.start,
    frames: b.frames.map((f) => ({
      level: f.level,
      sp: hex64(f.sp),
      pc: hex64(f.pc),
      function: f.function,
      offset: f.offset,
      size: f.size,
      module: f.module,
      reliable: f.reliable,
      method: f.method,
      stack: f.stack,
    })),
    exception_frames: b.exceptionFrames
      .filter((e) => e.address !== undefined)
      .map((e) => ({ level: e.level, address: hex64(e.address!), user: e.user, partial: e.partial, regs: regsToJSON(e.regs) })),
    user: b.user ? regsToJSON(b.user) : null,
    stop: b.stop,
    stop_detail: b.stopDetail,
    error: b.error ?? null,
  };
}

/**
 * A Backtracer for an analysed dump: symbols from kallsyms (`kernel.symbols()`) unless
 * `opts.symbols` is given (a System.map, see system-map.ts), types from the vmlinux BTF.
 * Throws VmcoreError NO_SYMBOLS / NO_BTF when either is missing.
 */
export async function createBacktracer(kernel: KernelInfo, opts: { symbols?: KernelSymbolSource } = {}): Promise<Backtracer> {
  const symbols = opts.symbols ?? (await kernel.symbolsWithModules());
  const btf = await loadKernelBtf(opts.symbols ? { ...pickBtfKernel(kernel), symbols: async () => opts.symbols! } : kernel);
  const release = kernel.utsname?.release ?? kernel.vmcoreinfo?.get('OSRELEASE') ?? '';
  const modules = await kernel.modules().catch((e: unknown) => {
    if (!isVmcoreError(e)) throw e;
    return undefined;
  });
  // arm64: KERNELPACMASK, else every bit above VA_BITS (a kernel text address has them all set)
  const pacMask = kernelPacMask(kernel.vmcoreinfo);
  const pageSize = kernel.vmcoreinfo?.pageSize;
  // kernels without CONFIG_KALLSYMS_ALL: init_task and the per-CPU data found in memory
  const walkSymbols = await withTaskSymbols(symbols, (va, n) => kernel.readVirt(va, n), btf.types);
  const recovered = Object.values(walkSymbols.sources).some((s) => s !== 'kallsyms');
  const bt = await Backtracer.create({
    readVirt: (va, n) => kernel.readVirt(va, n),
    release,
    symbols: recovered ? walkSymbols : symbols,
    types: btf.types,
    cpus: kernel.cpus,
    ...(modules ? { modules } : {}),
    arch: kernel.arch,
    ...(pacMask !== undefined ? { pacMask } : {}),
    ...(pageSize !== undefined ? { pageSize } : {}),
  });
  if (modules) bt.warnings.push(...modules.warnings);
  // the modules list head (kernel.modules(): kallsyms, else found in the image) beside them
  const sources: Record<string, SymbolOrigin> = { ...walkSymbols.sources, ...(modules?.symbolSources ?? {}) };
  if (Object.values(sources).some((s) => s !== 'kallsyms')) bt.symbolSources = sources;
  bt.warnings.unshift(...walkSymbols.warnings);
  bt.warnings.unshift(...btf.warnings);
  // symbols the dump lost (kallsyms pages unreadable): their frames print without a name
  if (!opts.symbols) bt.warnings.unshift(...(await kernel.symbols()).warnings);
  return bt;
}

function pickBtfKernel(k: KernelInfo): BtfKernel {
  return { readVirt: (va, n) => k.readVirt(va, n), vmcoreinfo: k.vmcoreinfo };
}

/**
 * The faulting context of an oops: the first kernel-mode pt_regs on the task's stacks (the
 * exception or interrupt entry that interrupted the faulting code) and the first reliable frame
 * it gives, the function that faulted (or, for a soft lockup, the one the watchdog's hrtimer
 * interrupted). `context` is the stack that frame ran on: `task`, `irq` (interrupt context:
 * the per-CPU IRQ stack) or `exception`. Null when the walk crossed no kernel-mode pt_regs.
 */
export function faultingContext(b: TaskBacktrace): { level: number; ptRegs: bigint; frame: SymbolizedFrame; context: string } | null {
  // below panic(): an interrupt the CPU took in panic's own loop (arm64 takes timer interrupts
  // in its delay loop) is not the faulting context
  const panicLevel = b.frames.find((f) => f.function === 'panic')?.level ?? -1;
  const exc = b.exceptionFrames.find((e) => e.address !== undefined && !e.user && e.level > panicLevel);
  if (!exc) return null;
  const frame = b.frames.find((f) => f.level >= exc.level && f.reliable);
  if (!frame) return null;
  return { level: frame.level, ptRegs: exc.address!, frame, context: frame.stack ?? 'unknown' };
}

export interface PanicBacktrace {
  /** The task that panicked, its frames (JSON form) and how the walk ended. */
  backtrace: Record<string, unknown>;
  /** The oops line before the panic, when the log has one (its pt_regs trace is the chain). */
  oops: string | null;
  /** oopsKind() of the oops line. */
  oopsKind: string | null;
  /**
   * With an oops: the faulting frame (faultingContext: `{level, sp, pc, function, offset, size,
   * module, pt_regs}`) and the stack it ran on (`task`, `irq`, `exception`).
   */
  faulting: Record<string, unknown> | null;
  oopsContext: string | null;
  /** The frames the signature is taken from (from the oops's exception frame when there is one). */
  chain: string[];
  signature: string;
  reason: string;
}

/**
 * The panicking task's backtrace and the crash signature for `info` (see README "Crash
 * signature"). `logLines` is the kernel log text, one record per entry, in order. Null when the
 * panicking task is not known.
 */
export async function panicBacktrace(
  bt: Backtracer,
  panic: { message: string | null; task: number | null; cpu: number | null },
  logLines: readonly string[],
): Promise<PanicBacktrace | null> {
  const report = await backtraceReport(bt, { panicPid: panic.task, panicCpu: panic.cpu });
  if (report.panicTask === undefined) return null;
  const b = report.tasks.find((t) => t.task.task === report.panicTask);
  if (!b) return null;
  let oops: string | null = null;
  for (const l of logLines) {
    if (/Kernel panic - not syncing/.test(l)) break;
    const m = OOPS_RE.exec(l);
    if (m) {
      oops = m[0];
      break;
    }
  }
  let frames = b.frames;
  const fc = oops ? faultingContext(b) : null;
  // the faulting context: the frames from the first kernel-mode pt_regs on the stack
  if (fc) frames = b.frames.filter((f) => f.level >= fc.level);
  const chain = signatureChain(frames);
  const reason = oops ?? panic.message ?? '';
  const faulting = fc
    ? {
        level: fc.level,
        sp: hex64(fc.frame.sp),
        pc: hex64(fc.frame.pc),
        function: fc.frame.function,
        offset: fc.frame.offset,
        size: fc.frame.size,
        module: fc.frame.module,
        pt_regs: hex64(fc.ptRegs),
      }
    : null;
  return {
    backtrace: taskBacktraceToJSON(b, report.panicTask),
    oops,
    oopsKind: oops ? oopsKind(oops) : null,
    faulting,
    oopsContext: fc?.context ?? null,
    chain,
    reason,
    signature: crashSignature(reason, chain),
  };
}
