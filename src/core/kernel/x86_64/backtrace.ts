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
import { isVmcoreError } from '../../errors.js';
import type { KernelTypes } from '../btf/reader.js';
import { listModules, type ModuleList } from '../modules.js';
import { readPerCpu } from '../percpu.js';
import { listTasks, type TaskEntry } from '../tasks.js';
import { loadKernelBtf, type BtfKernel } from '../btf/kernel-btf.js';
import type { KernelInfo } from '../kernel.js';
import { crashSignature, OOPS_RE, oopsKind, signatureChain } from '../signature.js';
import { registersOfCpu, registersOfTask, type CpuRegisters } from './cpu.js';
import { orcLayoutForRelease, orcLayoutFromBtf, OrcTable, OrcTables, type OrcLayout } from './orc.js';
import { unwindAarch64, PT_REGS_6_1, type Aarch64ExceptionFrame, type Aarch64PtRegsLayout, type Aarch64Regs } from '../aarch64/unwind.js';
import { aarch64UnwindStart } from '../aarch64/arch.js';
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
  /** The module list when already read (KernelInfo.modules()); else it is walked here. */
  modules?: ModuleList;
  /** 'x86_64' (default: ORC) or 'aarch64' (frame records, see ../aarch64/unwind.ts). */
  arch?: string;
  /** aarch64: NUMBER(KERNELPACMASK), the pointer-authentication bits of return addresses. */
  pacMask?: bigint;
  /** The kernel's page size (VMCOREINFO PAGESIZE): arm64's THREAD_SIZE is at least one page. */
  pageSize?: number;
}

/** THREAD_SIZE on x86_64 (arch/x86/include/asm/page_64_types.h, KASAN doubles it). */
export const THREAD_SIZE = 0x4000n;
export const IRQ_STACK_SIZE = 0x4000n;
/** arm64 OVERFLOW_STACK_SIZE (arch/arm64/include/asm/stacktrace.h: SZ_4K). */
export const AARCH64_OVERFLOW_STACK_SIZE = 0x1000n;
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
  exceptionFrames: (ExceptionFrame | Aarch64ExceptionFrame)[];
  stop: StopReason;
  stopDetail: string;
  /** The user-mode registers at the entry from user mode (x86_64: rip/rsp; aarch64: pc/sp). */
  user?: { rip: bigint; rsp: bigint } | { pc: bigint; sp: bigint };
  /** Where the starting state came from (aarch64 sleeping tasks: thread.cpu_context). */
  start: 'cpu registers' | 'inactive_task_frame' | 'cpu_context' | 'none';
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

export class Backtracer {
  readonly warnings: string[] = [];
  orc: OrcTables | undefined;
  layout: OrcLayout | undefined;
  private perCpu: PerCpu[] = [];
  private modules: ModuleText[] = [];
  private textStart = 0n;
  private textEnd = 0n;
  private retFromFork: bigint[] = [];
  private readonly aarch64: boolean;
  private initText: { start: bigint; end: bigint } | undefined;
  /** THREAD_SIZE and the IRQ stack size (x86_64: 16 KiB; aarch64: sizeof(union thread_union), at least 16 KiB and a page). */
  private threadSize = THREAD_SIZE;
  private ptRegs: Aarch64PtRegsLayout = PT_REGS_6_1;

  private constructor(readonly env: BacktraceEnv) {
    this.aarch64 = env.arch === 'aarch64';
  }

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
    const si = this.sym('_sinittext');
    const ei = this.sym('_einittext');
    if (si !== undefined && ei !== undefined && ei > si) this.initText = { start: si, end: ei };
    this.retFromFork = ['ret_from_fork', 'ret_from_fork_asm'].map((n) => this.sym(n)).filter((v): v is bigint => v !== undefined);
    if (this.aarch64) {
      this.initAarch64();
      await this.loadModules();
      await this.loadPerCpu();
      return;
    }
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

  /** arm64: THREAD_SIZE from BTF's union thread_union, the pt_regs layout and frame_record_meta from BTF. */
  private initAarch64(): void {
    const btf = this.env.types.btf;
    const tu = btf.find('thread_union');
    const page = BigInt(this.env.pageSize ?? 4096);
    this.threadSize = tu !== undefined ? BigInt(btf.sizeOf(tu)) : page > 0x4000n ? page : 0x4000n;
    const pr = btf.find('pt_regs');
    if (pr === undefined) {
      this.warnings.push('no struct pt_regs in BTF: the layout of Linux 6.1 is assumed');
      return;
    }
    try {
      const layout: Aarch64PtRegsLayout = { size: btf.sizeOf(pr), stackframe: btf.offsetOf('pt_regs', 'stackframe') };
      if (btf.find('frame_record_meta') !== undefined) layout.metaType = btf.offsetOf('pt_regs', 'stackframe.type');
      this.ptRegs = layout;
    } catch (e) {
      this.warnings.push(`struct pt_regs: ${(e as Error).message}; the layout of Linux 6.1 is assumed`);
    }
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

  /** Each module's text ranges and ORC tables (`struct module.arch`), from the module list (modules.ts). */
  private async loadModules(): Promise<void> {
    const { types } = this.env;
    if (this.sym('modules') === undefined || types.btf.find('struct module') === undefined) return;
    let list = this.env.modules;
    if (!list) {
      try {
        list = await listModules(types, (n) => this.sym(n), { symbols: false });
      } catch (e) {
        if (!isVmcoreError(e)) throw e;
        this.warnings.push(`modules: ${e.message}`);
        return;
      }
      this.warnings.push(...list.warnings);
    }
    const hasOrc = (() => {
      try {
        types.btf.offsetOf('module', 'arch.num_orcs');
        return true;
      } catch {
        return false;
      }
    })();
    const tables: OrcTable[] = [];
    for (const m of list.modules) {
      const text = m.regions.filter((r) => r.name === 'text' || r.name === 'init_text');
      for (const r of text) this.modules.push({ name: m.name, start: r.start, end: r.start + BigInt(r.size) });
      const core = text.find((r) => r.name === 'text');
      if (!hasOrc || !this.layout || !core) continue;
      try {
        const num = m.object.num('arch.num_orcs');
        if (num > 0 && num < MAX_ORC_ENTRIES) {
          const ipAddr = m.object.ptr('arch.orc_unwind_ip');
          const orcAddr = m.object.ptr('arch.orc_unwind');
          const ips = await this.env.readVirt(ipAddr, num * 4);
          const orcs = await this.env.readVirt(orcAddr, num * 6);
          tables.push(new OrcTable(m.name, ipAddr, ips, orcs, this.layout, core.start, core.start + BigInt(core.size)));
        }
      } catch (e) {
        if (!isVmcoreError(e)) throw e;
        this.warnings.push(`module ${m.name}: ORC tables: ${e.message}`);
      }
    }
    if (tables.length > 0 && this.orc) this.orc = new OrcTables([...this.orc.tables, ...tables]);
  }

  /** Per-CPU offsets and current tasks (percpu.ts readPerCpu), with each CPU's idle task and IRQ and exception stacks. */
  private async loadPerCpu(): Promise<void> {
    const { types } = this.env;
    const btf = types.btf;
    if (this.sym('__per_cpu_offset') === undefined) {
      this.warnings.push('no __per_cpu_offset symbol: per-CPU current tasks and IRQ stacks unknown');
      return;
    }
    // arm64 keeps current in sp_el0: no per-CPU variable holds it, the runqueue's curr does
    const pc = await readPerCpu({ readVirt: this.env.readVirt }, this.env.symbols, { cpus: Math.max(1, this.env.cpus.length), types, ...(this.aarch64 ? { current: false } : {}) });
    this.warnings.push(...pc.warnings);
    const pcpuHot = this.sym('pcpu_hot');
    const off = (type: string, path: string): bigint | undefined => {
      try {
        return BigInt(btf.offsetOf(type, path));
      } catch {
        return undefined;
      }
    };
    const irqVar = pcpuHot !== undefined && off('pcpu_hot', 'hardirq_stack_ptr') !== undefined ? pcpuHot + off('pcpu_hot', 'hardirq_stack_ptr')! : this.sym('hardirq_stack_ptr');
    const runqueues = this.sym('runqueues');
    const idleOff = off('rq', 'idle');
    const currOff = off('rq', 'curr');
    const irqStackPtr = this.aarch64 ? this.sym('irq_stack_ptr') : undefined;
    const overflowStack = this.aarch64 ? this.sym('overflow_stack') : undefined;
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
    for (let cpu = 0; cpu < pc.offsets.length; cpu++) {
      const base = pc.offsets[cpu]!;
      const p: PerCpu = { cpu, offset: base, current: pc.currentTasks[cpu], idle: undefined, stacks: [] };
      const rd = async (va: bigint | undefined) => (va === undefined ? undefined : u64(this.env, BigInt.asUintN(64, va + base)).catch(() => undefined));
      if (runqueues !== undefined && idleOff !== undefined) p.idle = await rd(runqueues + idleOff);
      if (this.aarch64) {
        // kernel/sched/sched.h struct rq: curr; arch/arm64/kernel/irq.c: irq_stack_ptr is the base
        // of the IRQ_STACK_SIZE (= THREAD_SIZE) stack; overflow_stack is the per-CPU array itself
        if (p.current === undefined && runqueues !== undefined && currOff !== undefined) p.current = await rd(runqueues + currOff);
        const irq = await rd(irqStackPtr);
        if (irq !== undefined && irq !== 0n) p.stacks.push({ kind: 'irq', name: 'IRQ', start: irq, end: irq + this.threadSize });
        if (overflowStack !== undefined) {
          const o = BigInt.asUintN(64, overflowStack + base);
          p.stacks.push({ kind: 'exception', name: 'overflow', start: o, end: o + AARCH64_OVERFLOW_STACK_SIZE });
        }
        this.perCpu.push(p);
        continue;
      }
      const irq = await rd(irqVar);
      if (irq !== undefined && irq !== 0n) p.stacks.push({ kind: 'irq', name: 'IRQ', start: irq + 8n - IRQ_STACK_SIZE, end: irq + 8n });
      const cea = await rd(ceaVar);
      if (cea !== undefined && cea !== 0n) {
        for (const e of exc) p.stacks.push({ kind: 'exception', name: e.name, start: cea + e.off, end: cea + e.off + e.size });
      }
      this.perCpu.push(p);
    }
    if (this.perCpu.length === 0) this.warnings.push('per-CPU data unreadable');
  }

  isText(ip: bigint): boolean {
    if (ip >= this.textStart && ip < this.textEnd) return true;
    if (this.initText && ip >= this.initText.start && ip < this.initText.end) return true;
    if (this.orc?.tables[0]?.find(ip)) return true; // init and entry text the kernel table covers
    return this.modules.some((m) => ip >= m.start && ip < m.end);
  }

  /** The per-CPU current and idle tasks, for numbering and marking. */
  cpuTasks(): { cpu: number; current: bigint | undefined; idle: bigint | undefined }[] {
    return this.perCpu.map((p) => ({ cpu: p.cpu, current: p.current, idle: p.idle }));
  }

  /** A task of the task walk (tasks.ts) with what the unwinder needs: its stack, thread.sp, and its CPU's role. */
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
      threadSp: e.object.ptr(this.aarch64 ? 'thread.cpu_context.sp' : 'thread.sp'),
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
        this.warnings.push(`task at ${hx(e.task)}: ${err.message}`);
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

  /** Unwind one task. Never throws for bad memory: the reason is in `stop` / `error`. */
  async backtrace(t: TaskInfo, opts: { maxFrames?: number } = {}): Promise<TaskBacktrace> {
    if (this.aarch64) return this.backtraceAarch64(t, opts);
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
      // the saved frame (inactive_task_frame at thread.sp) is on the task's stack: name the stack
      const msg = `stack of task ${t.pid} at 0x${t.threadSp.toString(16)} (stack 0x${t.stackBase.toString(16)}): ${(e as Error).message}`;
      return { task: t, frames: [], exceptionFrames: [], stop: 'unreadable', stopDetail: msg, start: 'none', error: msg };
    }
    const r = await unwind(
      {
        read: this.env.readVirt,
        ...(this.orc ? { orc: this.orc } : {}),
        stacks,
        isText: (ip) => this.isText(ip),
        functionStart: (ip) => this.functionStart(ip),
        ...(opts.maxFrames ? { maxFrames: opts.maxFrames } : {}),
      },
      start,
    );
    return this.taskResult(t, r, how);
  }

  /** The start address of the function holding `pc` (kallsyms), for crossing code without unwind data. */
  private functionStart(pc: bigint): bigint | undefined {
    const f = this.env.symbols.symbolize(pc);
    return f ? pc - BigInt(f.offset) : undefined;
  }

  /** One task's backtrace from an unwinder's walk (either architecture's), its frames symbolized. */
  private taskResult(
    t: TaskInfo,
    r: { frames: readonly Parameters<Backtracer['symbolize']>[0][]; exceptionFrames: TaskBacktrace['exceptionFrames']; stop: TaskBacktrace['stop']; stopDetail: string; user?: TaskBacktrace['user'] },
    how: TaskBacktrace['start'],
  ): TaskBacktrace {
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

  /** arm64: frame records from the CPU's registers (running) or thread.cpu_context (sleeping). */
  private async backtraceAarch64(t: TaskInfo, opts: { maxFrames?: number }): Promise<TaskBacktrace> {
    const taskStack: StackRange = { kind: 'task', start: t.stackBase, end: t.stackBase + this.threadSize };
    const cpuData = t.activeCpu !== null ? this.perCpu.find((c) => c.cpu === t.activeCpu) : undefined;
    const stacks = [taskStack, ...(cpuData?.stacks ?? [])];
    const regs = t.activeCpu !== null || registersOfTask(this.env.cpus, t.pid) ? this.registersFor(t) : undefined;
    const u = regs ? aarch64UnwindStart(regs) : undefined;
    let how: TaskBacktrace['start'];
    let start: Parameters<typeof unwindAarch64>[1];
    try {
      if (u) {
        how = 'cpu registers';
        start = { pc: u.pc, sp: u.sp, fp: u.fp ?? 0n, fromRegisters: true, ...(u.regs['x30'] !== undefined ? { lr: u.regs['x30'] } : {}), ...(u.regs['pstate'] !== undefined ? { pstate: u.regs['pstate'] } : {}) };
      } else {
        // arch/arm64/include/asm/processor.h thread_saved_pc/fp/sp (cpu_switch_to saved them)
        const th = await this.env.types.read('task_struct', t.task);
        how = 'cpu_context';
        start = { pc: th.ptr('thread.cpu_context.pc'), sp: th.ptr('thread.cpu_context.sp'), fp: th.ptr('thread.cpu_context.fp'), fromRegisters: false };
      }
    } catch (e) {
      return { task: t, frames: [], exceptionFrames: [], stop: 'unreadable', stopDetail: (e as Error).message, start: 'none', error: (e as Error).message };
    }
    const r = await unwindAarch64(
      {
        read: this.env.readVirt,
        stacks,
        taskStack,
        isText: (pc) => this.isText(pc),
        functionStart: (pc) => this.functionStart(pc),
        layout: this.ptRegs,
        pacMask: this.env.pacMask ?? 0n,
        ...(opts.maxFrames ? { maxFrames: opts.maxFrames } : {}),
      },
      start,
    );
    return this.taskResult(t, r, how);
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
    if (e) out.push(formatAnyPtRegs(e), `--- <${e.user ? 'user' : 'kernel'} mode pt_regs at ${e.address!.toString(16)}> ---`);
    out.push(` #${f.level} [${f.sp.toString(16)}] ${f.reliable ? '' : '? '}${frameText(f)}`);
  }
  const last = b.exceptionFrames[b.exceptionFrames.length - 1];
  if (b.stop === 'user_mode' && last && last.user) out.push(formatAnyPtRegs(last));
  if (b.stop !== 'end_of_stack' && b.stop !== 'user_mode') out.push(`    (walk stopped: ${STOP_TEXT[b.stop]}: ${b.stopDetail})`);
  return out.join('\n');
}

/** arm64 pt_regs as the kernel's __show_regs lays them out (pc, lr, sp, pstate, then x29..x0). */
export function formatAarch64PtRegs(r: Aarch64Regs, indent = '    '): string {
  const lines = [`pc : ${h16(r['pc'])}  lr : ${h16(r['x30'])}`, `sp : ${h16(r['sp'])}  pstate: ${BigInt.asUintN(64, r['pstate'] ?? 0n).toString(16).padStart(8, '0')}`];
  for (let i = 29; i >= 0; i -= 3) {
    const cols: string[] = [];
    for (let j = i; j > i - 3 && j >= 0; j--) cols.push(`x${j}`.padEnd(3) + `: ${h16(r[`x${j}`])}`);
    lines.push(cols.join(' '));
  }
  return lines.map((l) => indent + l).join('\n');
}

function formatAnyPtRegs(e: ExceptionFrame | Aarch64ExceptionFrame): string {
  return 'pstate' in e.regs ? formatAarch64PtRegs(e.regs as Aarch64Regs) : formatPtRegs(e.regs as Partial<PtRegs>, e.partial);
}

function regsToJSON(r: Partial<PtRegs> | Aarch64Regs): Record<string, string> {
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
    user: !b.user ? null : 'pc' in b.user ? { pc: h0x(b.user.pc), sp: h0x(b.user.sp) } : { rip: h0x(b.user.rip), rsp: h0x(b.user.rsp) },
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
  const vaBits = kernel.vmcoreinfo?.number('VA_BITS');
  const pacMask = kernel.vmcoreinfo?.number('KERNELPACMASK') ?? (vaBits !== undefined && vaBits > 0n && vaBits < 64n ? BigInt.asUintN(64, -(1n << vaBits)) : undefined);
  const pageSize = kernel.vmcoreinfo?.pageSize;
  const bt = await Backtracer.create({
    readVirt: (va, n) => kernel.readVirt(va, n),
    release,
    symbols,
    types: btf.types,
    cpus: kernel.cpus,
    ...(modules ? { modules } : {}),
    arch: kernel.arch,
    ...(pacMask !== undefined ? { pacMask } : {}),
    ...(pageSize !== undefined ? { pageSize } : {}),
  });
  if (modules) bt.warnings.push(...modules.warnings);
  bt.warnings.unshift(...btf.warnings);
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
        sp: h0x(fc.frame.sp),
        pc: h0x(fc.frame.pc),
        function: fc.frame.function,
        offset: fc.frame.offset,
        size: fc.frame.size,
        module: fc.frame.module,
        pt_regs: h0x(fc.ptRegs),
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
