/**
 * The task list of a dump, read through the kernel's own BTF: every process on `init_task.tasks`,
 * every thread of each (the thread group), and each CPU's idle task, with the fields `ps` shows.
 *
 * Facts from the kernel sources:
 *  - processes are linked on `init_task.tasks` (kernel/fork.c copy_process: pid 0 idle tasks
 *    are never added); threads on `signal->thread_head` through `task->thread_node` (3.14+), or on
 *    `task->thread_group` (removed in 6.7);
 *  - the state letter is fs/proc/array.c `task_state_to_char()`, from include/linux/sched.h
 *    `__task_state_index()`: (state | exit_state) & TASK_REPORT, TASK_IDLE reported as `I`,
 *    TASK_RTLOCK_WAIT and TASK_FROZEN reported as `D`, then fls() into "RSDTtXZPI". The field is
 *    `__state` since 5.14, `state` before. The bit values are those of 4.14 and later;
 *  - each CPU's idle task and running task are `rq->idle` and `rq->curr` of the per-CPU
 *    `runqueues` (kernel/sched/sched.h), at `__per_cpu_offset[cpu]` + the per-CPU symbol.
 *
 * Every list walk is bounded (by `nr_threads` plus slack, and a hard cap) and detects cycles; a
 * task that cannot be read ends its list with a warning, and the answer is partial.
 */
import { hex } from '../hex.js';
import { warning, type Warning } from '../warnings.js';
import { VmcoreError, isVmcoreError } from '../errors.js';
import { isPageLoss } from '../loss.js';
import { KObject, type KernelTypes } from './btf/reader.js';
import { readPerCpu } from './percpu.js';
import { KERNEL_LIMITS } from '../limits.js';

export interface TaskEntry {
  pid: number;
  tgid: number;
  ppid: number;
  cpu: number;
  /** task_state_to_char(). */
  state: string;
  comm: string;
  /** Address of the task_struct. */
  task: bigint;
  /** Running on its CPU at the time of the dump (rq->curr). */
  active: boolean;
  /** The task that panicked. */
  panic: boolean;
  /** A kernel thread (no mm). */
  kthread: boolean;
  /** The idle task of CPU `cpu` (pid 0). */
  idle: boolean;
  /** The task_struct as read (for further members, e.g. the stack and thread.sp of `bt`). */
  object: KObject;
}

export interface TaskList {
  tasks: TaskEntry[];
  warnings: Warning[];
  /** The kernel's nr_threads, when readable. */
  nrThreads: number | undefined;
  /** Per-CPU running task (rq->curr), by CPU number, when the runqueues were readable. */
  current: (bigint | undefined)[];
}

export interface TaskWalkInput {
  types: KernelTypes;
  /** Kernel symbol resolver (kallsyms): init_task, nr_threads, runqueues, __per_cpu_offset, nr_cpu_ids. */
  symbol: (name: string) => bigint | undefined;
  /** Per-CPU offsets (`__per_cpu_offset[]`), when already known; else read from the symbol. */
  perCpuOffsets?: readonly bigint[];
  /** The panic's CPU and the pid of the task that logged it, when known. */
  panic?: { cpu: number | null; task: number | null };
  /** Hard cap on tasks visited (default 1 << 20). */
  maxTasks?: number;
}

/** Bits of include/linux/sched.h (4.14+). */
const TASK_REPORT = 0x7f;
const TASK_UNINTERRUPTIBLE = 0x2;
const TASK_NOLOAD = 0x400;
const TASK_IDLE = TASK_UNINTERRUPTIBLE | TASK_NOLOAD;
const TASK_REPORT_IDLE = TASK_REPORT + 1;
const TASK_RTLOCK_WAIT = 0x1000;
const TASK_FROZEN = 0x8000;
const STATE_CHARS = 'RSDTtXZPI';

/** fs/proc/array.c task_state_to_char(): the letter `ps` shows for `state` | `exitState`. */
export function taskStateChar(state: number, exitState: number): string {
  let s = (state | exitState) & TASK_REPORT;
  if ((state & TASK_IDLE) === TASK_IDLE) s = TASK_REPORT_IDLE;
  if (state & TASK_RTLOCK_WAIT || state & TASK_FROZEN) s = TASK_UNINTERRUPTIBLE;
  const idx = s === 0 ? 0 : 32 - Math.clz32(s); // fls()
  return STATE_CHARS[idx] ?? '?';
}

const MAX_TASKS = KERNEL_LIMITS.maxTasks;


/**
 * Walk every task of the dump.
 * @param input the kernel's types (`loadKernelBtf(kernel).types`) and a symbol resolver
 *   (`(await kernel.symbols()).addressOf`).
 * @returns processes, threads and each CPU's idle task (`ps`), with the warnings of a partial walk.
 * @throws VmcoreError NO_SYMBOLS when `init_task` is unknown, PAGE_NOT_PRESENT when it cannot be
 *   read (nothing to list), BAD_FIELD when the BTF has no task_struct; everything else becomes a
 *   warning with a partial list.
 */
export async function listTasks(input: TaskWalkInput): Promise<TaskList> {
  const { types, symbol } = input;
  const btf = types.btf;
  const warnings: Warning[] = [];
  const initTask = symbol('init_task');
  if (initTask === undefined) {
    throw new VmcoreError('NO_SYMBOLS', 'the task list needs the symbol init_task (kallsyms)', { field: 'init_task' });
  }
  const tsId = btf.need('task_struct');
  const has = (path: string) => {
    try {
      btf.memberPath(tsId, path);
      return true;
    } catch {
      return false;
    }
  };
  const stateField = has('__state') ? '__state' : 'state';
  const cpuField = has('thread_info.cpu') ? 'thread_info.cpu' : has('cpu') ? 'cpu' : undefined;
  const useThreadNode = has('thread_node') && btf.find('signal_struct') !== undefined && (() => {
    try {
      btf.memberPath(btf.need('signal_struct'), 'thread_head');
      return true;
    } catch {
      return false;
    }
  })();
  const tasksOff = BigInt(btf.offsetOf('task_struct', 'tasks'));
  const threadOff = BigInt(btf.offsetOf('task_struct', useThreadNode ? 'thread_node' : 'thread_group'));

  let nrThreads: number | undefined;
  const nrSym = symbol('nr_threads');
  if (nrSym !== undefined) {
    try {
      const b = await types.readVirt(nrSym, 4);
      nrThreads = new DataView(b.buffer, b.byteOffset, 4).getInt32(0, btf.littleEndian);
    } catch (e) {
      if (!isVmcoreError(e)) throw e;
      warnings.push(warning('MEMORY_UNREADABLE', `nr_threads: ${e.message}`));
    }
  }
  const cap = Math.min(input.maxTasks ?? MAX_TASKS, nrThreads !== undefined && nrThreads >= 0 ? nrThreads * 2 + 1024 : MAX_TASKS);

  const seen = new Map<bigint, KObject>();
  const order: bigint[] = [];
  const readTask = async (va: bigint): Promise<KObject | undefined> => {
    const hit = seen.get(va);
    if (hit) return hit;
    let t: KObject;
    try {
      t = await types.read(tsId, va);
    } catch (e) {
      if (!isPageLoss(e)) {
        if (!isVmcoreError(e)) throw e;
        warnings.push(warning('TASK_UNREADABLE', `task_struct at ${hex(va)}: ${e.message}`));
        return undefined;
      }
      // sizeof(task_struct) in BTF counts the largest FPU state; the slab object is often
      // smaller, so its tail may lie in the next objects' pages. The readable prefix is kept
      // when it holds the members a task entry needs (the walk's list nodes and the ps fields).
      const prefix = await readPrefix(va, btf.sizeOf(tsId));
      t = new KObject(types, tsId, va, prefix);
      if (prefix.length < needed) {
        warnings.push(warning('TASK_UNREADABLE', `task_struct at ${hex(va)}: ${e.message}`));
        return undefined;
      }
      warnings.push(warning('TASK_UNREADABLE', `task_struct at ${hex(va)}: only the first ${prefix.length} of ${btf.sizeOf(tsId)} bytes are readable (${e.message}); listed from them`));
    }
    seen.set(va, t);
    order.push(va);
    return t;
  };
  /** The readable bytes of [va, va + size), page by page, up to the first that cannot be read. */
  const readPrefix = async (va: bigint, size: number): Promise<Uint8Array> => {
    const parts: Uint8Array[] = [];
    let n = 0;
    while (n < size) {
      const len = Math.min(size - n, 4096 - Number((va + BigInt(n)) % 4096n));
      try {
        parts.push(await types.readVirt(va + BigInt(n), len));
      } catch (e) {
        if (!isPageLoss(e)) throw e;
        break;
      }
      n += len;
    }
    const out = new Uint8Array(n);
    let o = 0;
    for (const p of parts) {
      out.set(p, o);
      o += p.length;
    }
    return out;
  };
  // the end of the members a task entry reads (everything before `thread`, the last member)
  const needed = Math.max(
    ...['pid', 'tgid', 'comm', 'real_parent', 'mm', 'exit_state', stateField, 'tasks', 'signal', useThreadNode ? 'thread_node' : 'thread_group', ...(cpuField ? [cpuField] : [])].map(
      (m) => btf.offsetOf('task_struct', m) + 16,
    ),
  );

  /**
   * Follow a circular list from `head` (the list_head's address), visiting entry addresses
   * (entry = node - off). A task that cannot be read is left out with a warning and the walk
   * goes on through its list node; a node whose `next` cannot be read ends the forward walk, and
   * the rest of the list is walked backwards from the head through `prev` (list_head: next,
   * prev) up to the nodes already seen, so that one unreadable page costs the tasks in it.
   */
  const walk = async (head: bigint, off: bigint, what: string, visit: (entry: bigint) => Promise<boolean>): Promise<void> => {
    const nodes = new Set<bigint>();
    const step = async (node: bigint): Promise<boolean> => {
      if (seen.size >= cap) {
        warnings.push(warning('LIST_DAMAGED', `${what}: more than ${cap} tasks${nrThreads !== undefined ? ` (nr_threads is ${nrThreads})` : ''}; stopped`));
        return false;
      }
      nodes.add(node);
      const entry = BigInt.asUintN(64, node - off);
      if (!(await visit(entry))) warnings.push(warning('TASK_UNREADABLE', `${what}: the task at ${hex(entry)} cannot be read; left out`));
      return true;
    };
    let next: bigint | undefined;
    try {
      next = await readPtr(types, head);
    } catch (e) {
      if (!isVmcoreError(e)) throw e;
      warnings.push(warning('LIST_DAMAGED', `${what}: list head at ${hex(head)}: ${e.message}`));
    }
    while (next !== undefined && next !== head) {
      if (nodes.has(next)) {
        warnings.push(warning('LIST_DAMAGED', `${what}: the list loops at ${hex(next)} without returning to its head; stopped`));
        return;
      }
      if (!(await step(next))) return;
      try {
        next = await readPtr(types, next);
      } catch (e) {
        if (!isVmcoreError(e)) throw e;
        warnings.push(warning('LIST_DAMAGED', `${what}: list node at ${hex(next)}: ${e.message}; the rest of the list is walked backwards from its head`));
        next = undefined;
      }
    }
    if (next === head) return;
    // backwards from the head, up to a node the forward walk reached
    const back: bigint[] = [];
    const backSeen = new Set<bigint>();
    let prev: bigint;
    try {
      prev = await readPtr(types, head + 8n);
    } catch (e) {
      if (!isVmcoreError(e)) throw e;
      warnings.push(warning('LIST_DAMAGED', `${what}: list head at ${hex(head)}: ${e.message}; the tasks after the unreadable node are lost`));
      return;
    }
    while (prev !== head && !nodes.has(prev)) {
      if (backSeen.has(prev) || nodes.size + back.length >= cap) {
        warnings.push(warning('LIST_DAMAGED', `${what}: the backward walk loops or exceeds ${cap} tasks at ${hex(prev)}; stopped`));
        break;
      }
      backSeen.add(prev);
      back.push(prev);
      try {
        prev = await readPtr(types, prev + 8n);
      } catch (e) {
        if (!isVmcoreError(e)) throw e;
        warnings.push(warning('LIST_DAMAGED', `${what}: list node at ${hex(prev)} (walking backwards): ${e.message}; the tasks between it and the forward walk's end are lost`));
        break;
      }
    }
    for (const node of back.reverse()) if (!(await step(node))) return;
  };

  const init = await readTask(initTask);
  if (!init) {
    throw new VmcoreError('PAGE_NOT_PRESENT', `init_task at ${hex(initTask)}, the head of the task list, cannot be read: ${warnings[warnings.length - 1]?.text ?? ''}`, {
      offset: initTask,
      field: 'init_task',
    });
  }
  const leaders: bigint[] = [initTask];
  await walk(initTask + tasksOff, tasksOff, 'init_task.tasks', async (entry) => {
    const t = await readTask(entry);
    if (!t) return false;
    leaders.push(entry);
    return true;
  });
  for (const leader of leaders) {
    const t = seen.get(leader)!;
    if (useThreadNode) {
      const sig = t.ptr('signal');
      if (sig === 0n) continue;
      const headOff = BigInt(btf.offsetOf('signal_struct', 'thread_head'));
      await walk(sig + headOff, threadOff, `threads of ${hex(leader)}`, async (entry) => (await readTask(entry)) !== undefined);
    } else {
      await walk(leader + threadOff, threadOff, `threads of ${hex(leader)}`, async (entry) => (await readTask(entry)) !== undefined);
    }
  }

  // per-CPU runqueues: idle and current tasks
  const current: (bigint | undefined)[] = [];
  const idle: { cpu: number; task: bigint }[] = [];
  const rqSym = symbol('runqueues');
  let offsets = input.perCpuOffsets;
  if (!offsets) {
    const pc = await readPerCpu({ readVirt: types.readVirt }, { addressOf: symbol }, { types, current: false });
    warnings.push(...pc.warnings);
    offsets = pc.offsets;
  }
  if (rqSym !== undefined && offsets.length > 0 && btf.find('rq') !== undefined) {
    for (let cpu = 0; cpu < offsets.length; cpu++) {
      const rqVa = BigInt.asUintN(64, rqSym + offsets[cpu]!);
      try {
        const rq = await types.read('rq', rqVa);
        current[cpu] = rq.ptr('curr');
        idle.push({ cpu, task: rq.ptr('idle') });
      } catch (e) {
        if (!isVmcoreError(e)) throw e;
        warnings.push(warning('PERCPU_UNAVAILABLE', `runqueue of CPU ${cpu} at ${hex(rqVa)}: ${e.message}`));
      }
    }
  } else {
    warnings.push(warning('PERCPU_UNAVAILABLE', 'per-CPU runqueues unavailable (symbols runqueues/__per_cpu_offset): running and idle tasks of other CPUs not shown'));
  }

  const entries: TaskEntry[] = [];
  const toEntry = (va: bigint, t: KObject, isIdle: boolean, idleCpu?: number): TaskEntry | undefined => {
    try {
      const state = Number(BigInt.asUintN(32, t.int(stateField)));
      const exitState = Number(BigInt.asUintN(32, t.int('exit_state')));
      let ppid = 0;
      const parent = t.ptr('real_parent');
      const p = seen.get(parent);
      if (p) ppid = p.num('pid');
      const cpu = idleCpu ?? (cpuField ? t.num(cpuField) : 0);
      return {
        pid: t.num('pid'),
        tgid: t.num('tgid'),
        ppid,
        cpu,
        state: taskStateChar(state, exitState),
        comm: t.str('comm'),
        task: va,
        active: current[cpu] === va,
        panic: false,
        kthread: t.ptr('mm') === 0n,
        idle: isIdle,
        object: t,
      };
    } catch (e) {
      if (!isVmcoreError(e)) throw e;
      warnings.push(warning('TASK_UNREADABLE', `task_struct at ${hex(va)}: ${e.message}`));
      return undefined;
    }
  };
  // idle tasks first, by CPU (init_task is CPU 0's)
  const idleSet = new Set<bigint>();
  if (idle.length === 0) idle.push({ cpu: 0, task: initTask });
  for (const { cpu, task } of idle) {
    const t = task === initTask ? init : await readTask(task);
    if (!t) continue;
    idleSet.add(task);
    const e = toEntry(task, t, true, cpu);
    if (e) entries.push(e);
  }
  for (const va of order) {
    if (idleSet.has(va)) continue;
    if (va === initTask) continue;
    const e = toEntry(va, seen.get(va)!, false);
    if (e) entries.push(e);
  }
  // running tasks that the lists did not reach
  for (let cpu = 0; cpu < current.length; cpu++) {
    const c = current[cpu];
    if (c === undefined || c === 0n || entries.some((x) => x.task === c)) continue;
    const t = await readTask(c);
    if (!t) continue;
    warnings.push(warning('TASKS_MISMATCH', `the running task of CPU ${cpu} (${hex(c)}) is not on the task lists`));
    const e = toEntry(c, t, false);
    if (e) entries.push(e);
  }

  // the panic: the task that logged it, else the task running on the panic's CPU
  const pn = input.panic;
  if (pn) {
    let hit: TaskEntry | undefined;
    if (pn.task !== null) hit = entries.find((e) => e.pid === pn.task && e.active) ?? entries.find((e) => e.pid === pn.task && !e.idle);
    if (!hit && pn.cpu !== null) hit = entries.find((e) => e.active && e.cpu === pn.cpu);
    if (hit) hit.panic = true;
  }
  entries.sort((a, b) => (a.idle !== b.idle ? (a.idle ? -1 : 1) : a.pid - b.pid || a.cpu - b.cpu));
  const counted = entries.filter((e) => !e.idle).length;
  if (nrThreads !== undefined && counted !== nrThreads) {
    warnings.push(warning('TASKS_MISMATCH', `found ${counted} tasks, the kernel's nr_threads says ${nrThreads}`));
  }
  return { tasks: entries, warnings, nrThreads, current };
}

async function readPtr(types: KernelTypes, va: bigint): Promise<bigint> {
  const b = await types.readVirt(va, 8);
  return new DataView(b.buffer, b.byteOffset, 8).getBigUint64(0, types.btf.littleEndian);
}
