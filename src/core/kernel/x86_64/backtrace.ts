/**
 * Kernel backtraces of an x86_64 dump without vmlinux: the ORC tables of the kernel image and of
 * each module read from memory, every task (task list, per-CPU idle tasks), the stacks a task may
 * be on (its task stack, and for a running task its CPU's IRQ stack and exception stacks), the
 * starting state (the CPU's registers for a running task, thread.sp's inactive_task_frame for a
 * sleeping one), then {@link unwind}.
 *
 * Facts and sources: the kernel's arch/x86/kernel/unwind_orc.c (tables, orc_find, unwind_start),
 * arch/x86/include/asm/switch_to.h (inactive_task_frame), arch/x86/kernel/irq_64.c
 * (hardirq_stack_ptr = top of the 16 KiB IRQ stack - 8), arch/x86/include/asm/cpu_entry_area.h
 * (cea_exception_stacks), fs/proc/array.c (task state letters). Structure offsets come from
 * BTF; symbols from a {@link KernelSymbolSource} (kallsyms).
 */
import { VmcoreError } from '../../errors.js';
import type { KernelTypes, KObject } from '../btf/reader.js';
import { loadKernelBtf, type BtfKernel } from '../btf/kernel-btf.js';
import type { KernelInfo } from '../kernel.js';
import { crashSignature, OOPS_RE, signatureChain } from '../signature.js';
import { registersOfCpu, registersOfTask, type CpuRegisters } from './cpu.js';
import { orcLayoutForRelease, orcLayoutFromBtf, OrcTable, OrcTables, type OrcLayout } from './orc.js';
import {
  cpuStart,
  inactiveTaskStart,
  INACTIVE_TASK_FRAME,
  unwind,
  type ExceptionFrame,
  type PtRegs,
  type StackRange,
  type StopReason,
  type UnwindFrame,
  type WalkStart,
} from './unwind.js';

/** Symbols by name and address (the kallsyms decoder provides this). */
export interface KernelSymbolSource {
  addressOf(name: string): bigint | undefined;
  /** The symbol containing `addr`: offset from its start, its size when known, its module. */
  symbolize(addr: bigint): { name: string; offset: bigint | number; size?: bigint | number | undefined; module?: string | undefined } | undefined;
}

export interface BacktraceEnv {
  readVirt(va: bigint, length: number): Promise<Uint8Array>;
  release: string;
  symbols: KernelSymbolSource;
  types: KernelTypes;
  cpus: readonly CpuRegisters[];
}

/** THREAD_SIZE on x86_64 (arch/x86/include/asm/page_64_types.h, KASAN doubles it). */
export const THREAD_SIZE = 0x4000n;
export const IRQ_STACK_SIZE = 0x4000n;
/** Bound on the task list walk. */
export const MAX_TASKS = 1 << 17;
const MAX_MODULES = 4096;
const MAX_ORC_ENTRIES = 4 << 20;

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
  frames: SymbolizedFrame[];
  exceptionFrames: ExceptionFrame[];
  stop: StopReason;
  stopDetail: string;
  user?: { rip: bigint; rsp: bigint };
  /** Where the starting state came from. */
  start: 'cpu registers' | 'inactive_task_frame' | 'none';
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

const hx = (v: bigint) => `0x${v.toString(16)}`;

/** Read a u64 (little-endian) at `va`. */
async function u64(env: { readVirt: BacktraceEnv['readVirt'] }, va: bigint): Promise<bigint> {
  const b = await env.readVirt(va, 8);
  return new DataView(b.buffer, b.byteOffset, 8).getBigUint64(0, true);
}

/** fs/proc/array.c: "RSDTtXZPI" indexed by fls(state & TASK_REPORT | exit_state), TASK_IDLE -> I. */
export function taskStateChar(state: bigint, exitState: bigint): string {
  const TASK_REPORT = 0x7fn;
  const TASK_IDLE = 0x402n;
  let s = (state & TASK_REPORT) | exitState;
  if (state === TASK_IDLE) s = 0x80n;
  let idx = 0;
  while (s > 0n) {
    idx++;
    s >>= 1n;
  }
  return 'RSDTtXZPI'[idx] ?? '?';
}

export class Backtracer {
  readonly warnings: string[] = [];
  orc: OrcTables | undefined;
  layout: OrcLayout | undefined;
  private perCpu: PerCpu[] = [];
  private modules: ModuleText[] = [];
  private textStart = 0n;
  private textEnd = 0n;
  private retFromFork: bigint[] = [];

  private constructor(readonly env: BacktraceEnv) {}

  /** Load the ORC tables, modules and per-CPU data. Never throws for bad memory: warnings say what is missing. */
  static async create(env: BacktraceEnv): Promise<Backtracer> {
    const bt = new Backtracer(env);
    await bt.init();
    return bt;
  }

  private sym(name: string): bigint | undefined {
    return this.env.symbols.addressOf(name);
  }

  private async init(): Promise<void> {
    const { types } = this.env;
    this.textStart = this.sym('_stext') ?? this.sym('_text') ?? 0n;
    this.textEnd = this.sym('_etext') ?? 0n;
    if (this.textEnd <= this.textStart) this.warnings.push('no _stext/_etext symbols: kernel text range unknown');
    this.retFromFork = ['ret_from_fork', 'ret_from_fork_asm'].map((n) => this.sym(n)).filter((v): v is bigint => v !== undefined);
    // ORC layout: BTF's struct orc_entry when present, else the release
    const orcId = types.btf.find('orc_entry');
    const fromBtf = orcId !== undefined ? orcLayoutFromBtf(types.btf.members(orcId)) : undefined;
    try {
      this.layout = fromBtf ?? orcLayoutForRelease(this.env.release);
    } catch (e) {
      this.warnings.push((e as Error).message);
    }
    await this.loadKernelOrc();
    await this.loadModules();
    await this.loadPerCpu();
  }

  private async loadKernelOrc(): Promise<void> {
    const ipStart = this.sym('__start_orc_unwind_ip');
    const ipStop = this.sym('__stop_orc_unwind_ip');
    const orcStart = this.sym('__start_orc_unwind');
    if (ipStart === undefined || ipStop === undefined || orcStart === undefined || !this.layout) {
      this.warnings.push('no ORC tables (__start_orc_unwind_ip, __stop_orc_unwind_ip, __start_orc_unwind): frame pointers and stack scan only');
      return;
    }
    const n = (ipStop - ipStart) / 4n;
    if (n <= 0n || n > BigInt(MAX_ORC_ENTRIES)) {
      this.warnings.push(`ORC IP table of ${n} entries at ${hx(ipStart)} is not plausible: frame pointers and stack scan only`);
      return;
    }
    try {
      const ips = await this.env.readVirt(ipStart, Number(n) * 4);
      const orcs = await this.env.readVirt(orcStart, Number(n) * 6);
      // the kernel's table also covers init text beyond _etext: take the IPs' own range
      const t = new OrcTable('vmlinux', ipStart, ips, orcs, this.layout, 0n, 0n);
      this.orc = new OrcTables([t]);
    } catch (e) {
      this.warnings.push(`kernel ORC tables unreadable: ${(e as Error).message}`);
    }
  }

  private async loadModules(): Promise<void> {
    const head = this.sym('modules');
    const { types } = this.env;
    if (head === undefined || types.btf.find('module') === undefined) return;
    const btf = types.btf;
    const modId = btf.need('module');
    const listOff = BigInt(btf.offsetOf('module', 'list'));
    const hasMem = btf.findMember(modId, 'mem') !== undefined;
    const hasOrc = btf.findMember(modId, 'arch') !== undefined && (() => {
      try {
        btf.offsetOf('module', 'arch.num_orcs');
        return true;
      } catch {
        return false;
      }
    })();
    const tables: OrcTable[] = [];
    let next = await u64(this.env, head).catch(() => head);
    const seen = new Set<bigint>();
    while (next !== head && !seen.has(next) && seen.size < MAX_MODULES) {
      seen.add(next);
      try {
        const m = await types.read(modId, next - listOff);
        const name = m.str('name');
        const base = hasMem ? m.ptr('mem[0].base') : m.ptr('core_layout.base');
        const size = BigInt(hasMem ? m.num('mem[0].size') : m.num('core_layout.text_size'));
        this.modules.push({ name, start: base, end: base + size });
        if (hasOrc && this.layout) {
          const num = m.num('arch.num_orcs');
          if (num > 0 && num < MAX_ORC_ENTRIES) {
            const ipAddr = m.ptr('arch.orc_unwind_ip');
            const orcAddr = m.ptr('arch.orc_unwind');
            const ips = await this.env.readVirt(ipAddr, num * 4);
            const orcs = await this.env.readVirt(orcAddr, num * 6);
            tables.push(new OrcTable(name, ipAddr, ips, orcs, this.layout, base, base + size));
          }
        }
        next = m.ptr('list.next');
      } catch (e) {
        this.warnings.push(`module list at ${hx(next)}: ${(e as Error).message}`);
        break;
      }
    }
    if (tables.length > 0 && this.orc) this.orc = new OrcTables([...this.orc.tables, ...tables]);
  }

  private async loadPerCpu(): Promise<void> {
    const { types } = this.env;
    const btf = types.btf;
    const offsets = this.sym('__per_cpu_offset');
    if (offsets === undefined) {
      this.warnings.push('no __per_cpu_offset symbol: per-CPU current tasks and IRQ stacks unknown');
      return;
    }
    const nrIds = this.sym('nr_cpu_ids');
    let n = 64;
    if (nrIds !== undefined) {
      try {
        const b = await this.env.readVirt(nrIds, 4);
        n = new DataView(b.buffer, b.byteOffset, 4).getUint32(0, true);
      } catch {
        /* keep 64 */
      }
    }
    n = Math.max(1, Math.min(n, 8192));
    const pcpuHot = this.sym('pcpu_hot');
    const off = (type: string, path: string): bigint | undefined => {
      try {
        return BigInt(btf.offsetOf(type, path));
      } catch {
        return undefined;
      }
    };
    const currentVar = pcpuHot !== undefined && off('pcpu_hot', 'current_task') !== undefined ? pcpuHot + off('pcpu_hot', 'current_task')! : this.sym('current_task');
    const irqVar = pcpuHot !== undefined && off('pcpu_hot', 'hardirq_stack_ptr') !== undefined ? pcpuHot + off('pcpu_hot', 'hardirq_stack_ptr')! : this.sym('hardirq_stack_ptr');
    const runqueues = this.sym('runqueues');
    const idleOff = off('rq', 'idle');
    const ceaVar = this.sym('cea_exception_stacks');
    const exc: { name: string; off: bigint; size: bigint }[] = [];
    const ceaId = btf.find('cea_exception_stacks');
    if (ceaId !== undefined) {
      for (const m of btf.members(ceaId)) {
        const mm = /^(\w+)_stack$/.exec(m.name);
        if (!mm) continue;
        exc.push({ name: mm[1]!, off: BigInt(m.bitOffset >> 3), size: BigInt(btf.sizeOf(m.type)) });
      }
    }
    for (let cpu = 0; cpu < n; cpu++) {
      let base: bigint;
      try {
        base = await u64(this.env, offsets + BigInt(cpu * 8));
      } catch {
        break;
      }
      if (cpu > 0 && base === 0n) break;
      const pc: PerCpu = { cpu, offset: base, current: undefined, idle: undefined, stacks: [] };
      const rd = async (va: bigint | undefined) => (va === undefined ? undefined : u64(this.env, BigInt.asUintN(64, va + base)).catch(() => undefined));
      pc.current = await rd(currentVar);
      if (runqueues !== undefined && idleOff !== undefined) pc.idle = await rd(runqueues + idleOff);
      const irq = await rd(irqVar);
      if (irq !== undefined && irq !== 0n) pc.stacks.push({ kind: 'irq', name: 'IRQ', start: irq + 8n - IRQ_STACK_SIZE, end: irq + 8n });
      const cea = await rd(ceaVar);
      if (cea !== undefined && cea !== 0n) {
        for (const e of exc) pc.stacks.push({ kind: 'exception', name: e.name, start: cea + e.off, end: cea + e.off + e.size });
      }
      this.perCpu.push(pc);
    }
    if (this.perCpu.length === 0) this.warnings.push('per-CPU data unreadable');
  }

  isText(ip: bigint): boolean {
    if (ip >= this.textStart && ip < this.textEnd) return true;
    if (this.orc?.tables[0]?.find(ip)) return true; // init and entry text the kernel table covers
    return this.modules.some((m) => ip >= m.start && ip < m.end);
  }

  /** The per-CPU current and idle tasks, for numbering and marking. */
  cpuTasks(): { cpu: number; current: bigint | undefined; idle: bigint | undefined }[] {
    return this.perCpu.map((p) => ({ cpu: p.cpu, current: p.current, idle: p.idle }));
  }

  /** Read one task_struct into a TaskInfo. Throws a VmcoreError when unreadable. */
  async taskInfo(task: bigint): Promise<TaskInfo> {
    const t = await this.env.types.read('task_struct', task);
    const stateField = t.btf.findMember(t.typeId, '__state') ? '__state' : 'state';
    const parent = t.ptr('real_parent');
    let ppid = 0;
    if (parent !== 0n && parent !== task) {
      try {
        const pidOff = BigInt(t.btf.offsetOf('task_struct', 'pid'));
        const b = await this.env.readVirt(parent + pidOff, 4);
        ppid = new DataView(b.buffer, b.byteOffset, 4).getInt32(0, true);
      } catch {
        ppid = -1;
      }
    }
    let cpu = -1;
    for (const p of ['thread_info.cpu', 'cpu', 'wake_cpu']) {
      try {
        cpu = t.num(p);
        break;
      } catch {
        /* next */
      }
    }
    const active = this.perCpu.find((c) => c.current === task);
    const idle = this.perCpu.find((c) => c.idle === task);
    return {
      task,
      pid: t.num('pid'),
      tgid: t.num('tgid'),
      ppid,
      comm: t.str('comm'),
      state: taskStateChar(BigInt.asUintN(32, t.int(stateField)), BigInt.asUintN(32, t.int('exit_state'))),
      cpu,
      activeCpu: active?.cpu ?? null,
      idleOf: idle?.cpu ?? null,
      stackBase: t.ptr('stack'),
      threadSp: t.ptr('thread.sp'),
    };
  }

  /**
   * Every task: init_task's task list (processes) with each one's threads, then the idle tasks
   * of the other CPUs, in that order. Bounded by MAX_TASKS; a broken list ends the walk with a
   * warning and the tasks found so far.
   */
  async tasks(): Promise<TaskInfo[]> {
    const { types } = this.env;
    const btf = types.btf;
    const init = this.sym('init_task');
    if (init === undefined) throw new VmcoreError('BAD_FIELD', 'no init_task symbol: cannot list tasks', { field: 'init_task' });
    const tasksOff = BigInt(btf.offsetOf('task_struct', 'tasks'));
    const tid = btf.need('task_struct');
    const threadList: { head: (t: KObject) => bigint; memberOff: bigint } | undefined = btf.findMember(tid, 'thread_node')
      ? { head: (t) => t.ptr('signal') + BigInt(btf.offsetOf('signal_struct', 'thread_head')), memberOff: BigInt(btf.offsetOf('task_struct', 'thread_node')) }
      : btf.findMember(tid, 'thread_group')
        ? { head: (t) => t.address + BigInt(btf.offsetOf('task_struct', 'thread_group')), memberOff: BigInt(btf.offsetOf('task_struct', 'thread_group')) }
        : undefined;
    const out: TaskInfo[] = [];
    const seen = new Set<bigint>();
    const add = async (addr: bigint) => {
      if (seen.has(addr) || seen.size >= MAX_TASKS) return;
      seen.add(addr);
      try {
        out.push(await this.taskInfo(addr));
      } catch (e) {
        this.warnings.push(`task at ${hx(addr)}: ${(e as Error).message}`);
      }
    };
    let p = init;
    for (let i = 0; i < MAX_TASKS; i++) {
      await add(p);
      // threads of this process
      if (threadList) {
        try {
          const t = await types.read(tid, p);
          const head = threadList.head(t);
          let n = await u64(this.env, head);
          for (let j = 0; j < MAX_TASKS && n !== head; j++) {
            const th = n - threadList.memberOff;
            if (seen.has(th) && th !== p) break;
            if (th !== p) await add(th);
            n = await u64(this.env, n);
          }
        } catch (e) {
          this.warnings.push(`threads of task ${hx(p)}: ${(e as Error).message}`);
        }
      }
      let next: bigint;
      try {
        next = (await u64(this.env, p + tasksOff)) - tasksOff;
      } catch (e) {
        this.warnings.push(`task list broken after ${hx(p)}: ${(e as Error).message}`);
        break;
      }
      if (next === init) break;
      if (seen.has(next)) {
        this.warnings.push(`task list loops at ${hx(next)}`);
        break;
      }
      p = next;
    }
    for (const c of this.perCpu) if (c.idle !== undefined && c.idle !== 0n) await add(c.idle);
    return out;
  }

  private registersFor(t: TaskInfo): CpuRegisters | undefined {
    const byPid = registersOfTask(this.env.cpus, t.pid);
    if (byPid) return byPid;
    if (t.activeCpu !== null) return registersOfCpu(this.env.cpus, t.activeCpu);
    return undefined;
  }

  /** Unwind one task. Never throws for bad memory: the reason is in `stop` / `error`. */
  async backtrace(t: TaskInfo, opts: { maxFrames?: number } = {}): Promise<TaskBacktrace> {
    const stacks: StackRange[] = [{ kind: 'task', start: t.stackBase, end: t.stackBase + THREAD_SIZE }];
    const cpuData = t.activeCpu !== null ? this.perCpu.find((c) => c.cpu === t.activeCpu) : undefined;
    if (cpuData) stacks.push(...cpuData.stacks);
    const regs = t.activeCpu !== null || registersOfTask(this.env.cpus, t.pid) ? this.registersFor(t) : undefined;
    let start: WalkStart;
    let how: TaskBacktrace['start'];
    try {
      if (regs && regs.rip !== undefined && regs.rsp !== undefined) {
        start = cpuStart(toPtRegs(regs) as Partial<PtRegs> & { ip: bigint; sp: bigint });
        how = 'cpu registers';
      } else {
        const f = this.inactiveFrameLayout();
        start = await inactiveTaskStart(this.env.readVirt, t.threadSp, f, this.retFromFork);
        how = 'inactive_task_frame';
      }
    } catch (e) {
      return { task: t, frames: [], exceptionFrames: [], stop: 'unreadable', stopDetail: (e as Error).message, start: 'none', error: (e as Error).message };
    }
    const r = await unwind(
      {
        read: this.env.readVirt,
        ...(this.orc ? { orc: this.orc } : {}),
        stacks,
        isText: (ip) => this.isText(ip),
        functionStart: (ip) => {
          const f = this.env.symbols.symbolize(ip);
          return f ? ip - BigInt(f.offset) : undefined;
        },
        ...(opts.maxFrames ? { maxFrames: opts.maxFrames } : {}),
      },
      start,
    );
    return {
      task: t,
      frames: r.frames.map((f) => this.symbolize(f)),
      exceptionFrames: r.exceptionFrames,
      stop: r.stop,
      stopDetail: r.stopDetail,
      ...(r.user ? { user: r.user } : {}),
      start: how,
    };
  }

  private inactiveFrameLayout(): { bp: number; retAddr: number; size: number } {
    const btf = this.env.types.btf;
    const id = btf.find('inactive_task_frame');
    if (id === undefined) return INACTIVE_TASK_FRAME;
    try {
      return { bp: btf.offsetOf('inactive_task_frame', 'bp'), retAddr: btf.offsetOf('inactive_task_frame', 'ret_addr'), size: btf.sizeOf(id) };
    } catch {
      return INACTIVE_TASK_FRAME;
    }
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

/** CPU note registers as pt_regs names. */
export function toPtRegs(c: CpuRegisters): Partial<PtRegs> {
  const r: Partial<PtRegs> = {};
  const map: [keyof PtRegs, keyof CpuRegisters][] = [
    ['r15', 'r15'], ['r14', 'r14'], ['r13', 'r13'], ['r12', 'r12'], ['bp', 'rbp'], ['bx', 'rbx'], ['r11', 'r11'], ['r10', 'r10'],
    ['r9', 'r9'], ['r8', 'r8'], ['ax', 'rax'], ['cx', 'rcx'], ['dx', 'rdx'], ['si', 'rsi'], ['di', 'rdi'], ['orig_ax', 'origRax'],
    ['ip', 'rip'], ['cs', 'cs'], ['flags', 'rflags'], ['sp', 'rsp'], ['ss', 'ss'],
  ];
  for (const [p, c2] of map) {
    const v = c[c2];
    if (typeof v === 'bigint') r[p] = v;
  }
  return r;
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
  warnings: string[];
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

const h16 = (v: bigint | undefined) => BigInt.asUintN(64, v ?? 0n).toString(16).padStart(16, '0');
const h0x = (v: bigint) => `0x${BigInt.asUintN(64, v).toString(16)}`;

/** pt_regs as crash prints them (RIP/RSP/RFLAGS, then the general registers, ORIG_RAX, CS, SS). */
export function formatPtRegs(r: Partial<PtRegs>, partial: boolean, indent = '    '): string {
  const cs = BigInt.asUintN(16, r.cs ?? 0n).toString(16).padStart(4, '0');
  const ss = BigInt.asUintN(16, r.ss ?? 0n).toString(16).padStart(4, '0');
  const lines = [`RIP: ${h16(r.ip)}  RSP: ${h16(r.sp)}  RFLAGS: ${BigInt.asUintN(64, r.flags ?? 0n).toString(16).padStart(8, '0')}`];
  if (!partial) {
    lines.push(
      `RAX: ${h16(r.ax)}  RBX: ${h16(r.bx)}  RCX: ${h16(r.cx)}`,
      `RDX: ${h16(r.dx)}  RSI: ${h16(r.si)}  RDI: ${h16(r.di)}`,
      `RBP: ${h16(r.bp)}   R8: ${h16(r.r8)}   R9: ${h16(r.r9)}`,
      `R10: ${h16(r.r10)}  R11: ${h16(r.r11)}  R12: ${h16(r.r12)}`,
      `R13: ${h16(r.r13)}  R14: ${h16(r.r14)}  R15: ${h16(r.r15)}`,
      `ORIG_RAX: ${h16(r.orig_ax)}  CS: ${cs}  SS: ${ss}`,
    );
  } else lines.push(`CS: ${cs}  SS: ${ss}  (partial pt_regs: IRET frame only)`);
  return lines.map((l) => indent + l).join('\n');
}

/** `function+0xoff/0xsize [module]`, or the bare address. */
export function frameText(f: SymbolizedFrame): string {
  if (f.function === null) return h0x(f.pc);
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
  const out = [`PID: ${String(t.pid).padEnd(8)} TASK: ${t.task.toString(16)}  CPU: ${String(cpu).padEnd(4)} COMMAND: "${t.comm}"  STATE: ${t.state}${mark}`];
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
    if (e) out.push(formatPtRegs(e.regs, e.partial), `--- <${e.user ? 'user' : 'kernel'} mode pt_regs at ${e.address!.toString(16)}> ---`);
    out.push(` #${f.level} [${f.sp.toString(16)}] ${f.reliable ? '' : '? '}${frameText(f)}`);
  }
  const last = b.exceptionFrames[b.exceptionFrames.length - 1];
  if (b.stop === 'user_mode' && last && last.user) out.push(formatPtRegs(last.regs, last.partial));
  if (b.stop !== 'end_of_stack' && b.stop !== 'user_mode') out.push(`    (walk stopped: ${STOP_TEXT[b.stop]}: ${b.stopDetail})`);
  return out.join('\n');
}

function regsToJSON(r: Partial<PtRegs>): Record<string, string> {
  const o: Record<string, string> = {};
  for (const [k, v] of Object.entries(r)) if (typeof v === 'bigint') o[k] = h0x(v);
  return o;
}

/** The JSON form documented in README (`vmcore bt --json`). */
export function taskBacktraceToJSON(b: TaskBacktrace, panicTask?: bigint): Record<string, unknown> {
  const t = b.task;
  return {
    pid: t.pid,
    tgid: t.tgid,
    comm: t.comm,
    task: h0x(t.task),
    cpu: t.activeCpu ?? t.cpu,
    state: t.state,
    active: t.activeCpu !== null,
    panic: t.task === panicTask,
    start: b.start,
    frames: b.frames.map((f) => ({
      level: f.level,
      sp: h0x(f.sp),
      pc: h0x(f.pc),
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
      .map((e) => ({ level: e.level, address: h0x(e.address!), user: e.user, partial: e.partial, regs: regsToJSON(e.regs) })),
    user: b.user ? { rip: h0x(b.user.rip), rsp: h0x(b.user.rsp) } : null,
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
  const bt = await Backtracer.create({ readVirt: (va, n) => kernel.readVirt(va, n), release, symbols, types: btf.types, cpus: kernel.cpus });
  bt.warnings.unshift(...btf.warnings);
  return bt;
}

function pickBtfKernel(k: KernelInfo): BtfKernel {
  return { readVirt: (va, n) => k.readVirt(va, n), vmcoreinfo: k.vmcoreinfo };
}

export interface PanicBacktrace {
  /** The task that panicked, its frames (JSON form) and how the walk ended. */
  backtrace: Record<string, unknown>;
  /** The oops line before the panic, when the log has one (its pt_regs trace is the chain). */
  oops: string | null;
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
  if (oops) {
    // the faulting context: the frames from the first kernel-mode pt_regs on the stack
    const exc = b.exceptionFrames.find((e) => e.address !== undefined && !e.user);
    if (exc) frames = b.frames.filter((f) => f.level >= exc.level);
  }
  const chain = signatureChain(frames);
  const reason = oops ?? panic.message ?? '';
  return { backtrace: taskBacktraceToJSON(b, report.panicTask), oops, chain, reason, signature: crashSignature(reason, chain) };
}
