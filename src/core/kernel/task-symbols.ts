/**
 * The data symbols the task walk needs (init_task, the per-CPU runqueues, IRQ and overflow stacks)
 * found in the dump itself, for kernels whose kallsyms holds no data symbols
 * (CONFIG_KALLSYMS_ALL unset, as in Debian's arm64 cloud kernels), each proven by a check that
 * cannot pass by chance:
 *  - init_task: a task_struct (BTF layout) in the kernel image after __init_begin (arm64's
 *    vmlinux.lds.S puts .data, and init/init_task.c's init_task in it, after the init sections;
 *    _etext when __init_begin is unknown) whose comm is "swapper/0", whose pid is 0 and whose
 *    `tasks` list is consistent (every node's next->prev is the node) and closes back on it;
 *  - each CPU's runqueue: for the tasks of that list, task->se.cfs_rq->rq (or, without
 *    CONFIG_FAIR_GROUP_SCHED, the rq holding cfs_rq as its `cfs`), proven by rq->cpu being the
 *    task's CPU and rq->idle being a pid-0 task named "swapper/N" on CPU N (init_task for CPU 0).
 *    The per-CPU variables are placed by their offsets in BTF's `.data..percpu` DATASEC (offsets
 *    from __per_cpu_start, pahole's per-CPU VARs): the unit of CPU N starts at its runqueue's
 *    address minus runqueues' offset. The per-CPU symbols are given relative to __per_cpu_start
 *    and the per-CPU offsets as the units' addresses, so that symbol + offset is each CPU's copy,
 *    as include/linux/percpu-defs.h per_cpu_ptr computes it. They stay relative (never shown:
 *    `bt`, `ps` and `info` print only symbol + per-CPU offset, an absolute address, or what is
 *    read there): the absolute value would need __per_cpu_start, which such a kallsyms lacks and
 *    memory cannot prove, and it would name no readable memory, since arm64 links .data..percpu
 *    inside __init_begin..__init_end, which free_initmem unmaps after boot.
 * Sources: init/init_task.c, kernel/sched/sched.h (struct rq, struct cfs_rq), kernel/sched/core.c
 * init_idle (the idle task's name and CPU), mm/percpu.c setup_per_cpu_areas.
 */
import { hex64 } from '../hex.js';
import { warning, type Warning } from '../warnings.js';
import { isVmcoreError } from '../errors.js';
import { BtfKind } from './btf/format.js';
import type { KernelTypes } from './btf/reader.js';
import type { KernelSymbolSource } from './backtrace.js';

/** Where each recovered symbol came from. */
export type SymbolOrigin = 'kallsyms' | 'memory search (init_task)' | 'BTF .data..percpu + runqueue proof' | 'memory search (modules)';

export interface RecoveredTaskSymbols extends KernelSymbolSource {
  /** The per-CPU units' addresses, by CPU number (symbol + offset = that CPU's copy). */
  perCpuOffsets?: readonly bigint[];
  /** Where each symbol the task walk uses came from. */
  sources: Record<string, SymbolOrigin>;
  warnings: Warning[];
}

/** The names the task walk and the backtracer read; kallsyms is enough when it has these. */
const TASK_WALK = ['init_task', '__per_cpu_offset', 'runqueues'];
/** Bytes of the kernel image searched for init_task. */
const INIT_TASK_SEARCH = 64 << 20;
/** Read unit of the search (an unreadable one is read again page by page). */
const CHUNK = 1 << 20;
/** Tasks of the list looked at for runqueues, and the bound of the list walk. */
const MAX_LIST = 1 << 16;


/**
 * `symbols` itself when it names init_task, __per_cpu_offset and runqueues; else `symbols` with
 * init_task and the per-CPU variables found and proven in memory (see the file comment), and the
 * per-CPU offsets. What cannot be proven is left out with a warning; never throws for bad memory.
 * @param readVirt kernel virtual memory
 * @param types the kernel's BTF (task_struct, rq, cfs_rq layouts; the .data..percpu DATASEC)
 */
export async function withTaskSymbols(symbols: KernelSymbolSource | { addressOf(name: string): bigint | undefined }, readVirt: (va: bigint, n: number) => Promise<Uint8Array>, types: KernelTypes): Promise<RecoveredTaskSymbols> {
  const sources: Record<string, SymbolOrigin> = {};
  const warnings: Warning[] = [];
  const extra = new Map<string, bigint>();
  let perCpuOffsets: bigint[] | undefined;
  const result = (): RecoveredTaskSymbols => ({
    addressOf: (n) => symbols.addressOf(n) ?? extra.get(n),
    symbolize: (a) => ('symbolize' in symbols ? symbols.symbolize(a) : undefined),
    ...(perCpuOffsets ? { perCpuOffsets } : {}),
    sources,
    warnings,
  });
  for (const n of TASK_WALK) if (symbols.addressOf(n) !== undefined) sources[n] = 'kallsyms';
  if (TASK_WALK.every((n) => sources[n] === 'kallsyms')) return result();
  const btf = types.btf;
  let initTask = symbols.addressOf('init_task');
  if (initTask === undefined) {
    const from = symbols.addressOf('__init_begin') ?? symbols.addressOf('_etext');
    if (from === undefined) {
      warnings.push(warning('SYMBOLS_UNAVAILABLE', 'init_task: no kallsyms symbol, and neither __init_begin nor _etext to search from'));
      return result();
    }
    initTask = await findInitTask(readVirt, types, from, warnings);
    if (initTask === undefined) return result();
    extra.set('init_task', initTask);
    sources['init_task'] = 'memory search (init_task)';
  }
  if (symbols.addressOf('__per_cpu_offset') !== undefined && symbols.addressOf('runqueues') !== undefined) return result();
  // the per-CPU variables' offsets from __per_cpu_start
  const sec = btf.findAll('.data..percpu', [BtfKind.DATASEC])[0];
  if (sec === undefined) {
    warnings.push(warning('PERCPU_UNAVAILABLE', 'per-CPU data: no __per_cpu_offset symbol and no .data..percpu section in BTF'));
    return result();
  }
  const vars = new Map<string, bigint>();
  for (const s of btf.type(sec).secinfo ?? []) vars.set(btf.type(s.type).name, BigInt(s.offset));
  const rqOff = vars.get('runqueues');
  if (rqOff === undefined) {
    warnings.push(warning('PERCPU_UNAVAILABLE', 'per-CPU data: no runqueues in BTF .data..percpu'));
    return result();
  }
  const units = await findRunqueues(types, initTask, warnings);
  const n = units.findIndex((u) => u === undefined);
  const count = n < 0 ? units.length : n;
  if (count === 0) return result();
  if (count < units.length) warnings.push(warning('PERCPU_UNAVAILABLE', `per-CPU data: CPU ${count}'s runqueue not proven; CPUs from ${count} on left out`));
  perCpuOffsets = units.slice(0, count).map((rq) => BigInt.asUintN(64, rq! - rqOff));
  for (const [name, off] of vars) {
    if (symbols.addressOf(name) !== undefined) continue;
    extra.set(name, off);
    if (name === 'runqueues' || name === 'irq_stack_ptr' || name === 'overflow_stack') sources[name] = 'BTF .data..percpu + runqueue proof';
  }
  sources['__per_cpu_offset'] = 'BTF .data..percpu + runqueue proof';
  return result();
}

/** Search the kernel image from `from` for init_task (see the file comment). */
async function findInitTask(readVirt: (va: bigint, n: number) => Promise<Uint8Array>, types: KernelTypes, from: bigint, warnings: Warning[]): Promise<bigint | undefined> {
  const btf = types.btf;
  let commOff: number;
  let tasksOff: number;
  try {
    commOff = btf.offsetOf('task_struct', 'comm');
    tasksOff = btf.offsetOf('task_struct', 'tasks');
  } catch (e) {
    warnings.push(warning('TASK_UNREADABLE', `init_task: ${(e as Error).message}`));
    return undefined;
  }
  const needle = new TextEncoder().encode('swapper/0\0');
  const start = from & ~0xfffn;
  const search = async (va: bigint, b: Uint8Array, limit: number): Promise<bigint | undefined> => {
    for (let i = b.indexOf(needle[0]!); i >= 0 && i < limit; i = b.indexOf(needle[0]!, i + 1)) {
      let hit = true;
      for (let j = 1; j < needle.length && hit; j++) hit = b[i + j] === needle[j];
      if (!hit) continue;
      const cand = va + BigInt(i - commOff);
      if (await isInitTask(readVirt, types, cand, BigInt(tasksOff))) return cand;
    }
    return undefined;
  };
  for (let off = 0; off < INIT_TASK_SEARCH; off += CHUNK) {
    const va = start + BigInt(off);
    let found: bigint | undefined;
    try {
      const b = await readVirt(va, CHUNK + needle.length).catch(() => readVirt(va, CHUNK));
      found = await search(va, b, CHUNK);
    } catch {
      // a hole (arm64 unmaps the freed init sections; a filtered or damaged page): page by page
      for (let p = 0; p < CHUNK && found === undefined; p += 4096) {
        const b = await readVirt(va + BigInt(p), 4096).catch(() => undefined);
        if (b) found = await search(va + BigInt(p), b, 4096);
      }
    }
    if (found !== undefined) return found;
  }
  warnings.push(warning('TASK_UNREADABLE', `init_task: no task_struct named swapper/0 whose task list closes on itself in ${INIT_TASK_SEARCH >> 20} MiB from ${hex64(from)}`));
  return undefined;
}

async function u64(readVirt: (va: bigint, n: number) => Promise<Uint8Array>, va: bigint): Promise<bigint> {
  const b = await readVirt(va, 8);
  return new DataView(b.buffer, b.byteOffset, 8).getBigUint64(0, true);
}

/** pid 0 and a `tasks` list whose every next->prev is the node, back at the candidate. */
async function isInitTask(readVirt: (va: bigint, n: number) => Promise<Uint8Array>, types: KernelTypes, cand: bigint, tasksOff: bigint): Promise<boolean> {
  try {
    const t = await types.read('task_struct', cand);
    if (t.num('pid') !== 0) return false;
    const head = cand + tasksOff;
    let node = head;
    for (let i = 0; i < MAX_LIST; i++) {
      const next = await u64(readVirt, node);
      if ((await u64(readVirt, next + 8n)) !== node) return false;
      if (next === head) return i > 0;
      node = next;
    }
    return false;
  } catch (e) {
    if (!isVmcoreError(e)) throw e;
    return false;
  }
}

/** Each CPU's proven runqueue address (undefined where none of the tasks proves it), by CPU number. */
async function findRunqueues(types: KernelTypes, initTask: bigint, warnings: Warning[]): Promise<(bigint | undefined)[]> {
  const btf = types.btf;
  const has = (type: string, path: string) => {
    try {
      btf.offsetOf(type, path);
      return true;
    } catch {
      return false;
    }
  };
  const cpuField = has('task_struct', 'thread_info.cpu') ? 'thread_info.cpu' : has('task_struct', 'cpu') ? 'cpu' : undefined;
  if (cpuField === undefined || !has('task_struct', 'se.cfs_rq') || !has('rq', 'cpu') || !has('rq', 'idle')) {
    warnings.push(warning('LAYOUT_ASSUMED', 'per-CPU data: task_struct.se.cfs_rq, the task\'s CPU or rq.cpu/rq.idle missing from BTF'));
    return [];
  }
  const cfsRqRq = has('cfs_rq', 'rq');
  const rqCfs = BigInt(btf.offsetOf('rq', 'cfs'));
  const tasksOff = BigInt(btf.offsetOf('task_struct', 'tasks'));
  const rqs: (bigint | undefined)[] = [];
  const tried = new Set<bigint>();
  let node = initTask;
  for (let i = 0; i < MAX_LIST; i++) {
    try {
      const t = await types.read('task_struct', node);
      const cpu = t.num(cpuField);
      const cfsRq = t.ptr('se.cfs_rq');
      if (cpu >= 0 && cpu < 8192 && rqs[cpu] === undefined && cfsRq !== 0n) {
        try {
          const rq = cfsRqRq ? (await types.read('cfs_rq', cfsRq)).ptr('rq') : cfsRq - rqCfs;
          if (!tried.has(rq)) {
            tried.add(rq);
            const r = await types.read('rq', rq);
            if (r.num('cpu') === cpu) {
              const idle = r.ptr('idle');
              const it = await types.read('task_struct', idle);
              if (it.num('pid') === 0 && it.str('comm') === `swapper/${cpu}` && it.num(cpuField) === cpu && (cpu !== 0 || idle === initTask)) rqs[cpu] = rq;
            }
          }
        } catch (e) {
          if (!isVmcoreError(e)) throw e; // not this task's runqueue: another task may prove it
        }
      }
      const next = t.ptr('tasks.next') - tasksOff;
      if (next === initTask) break;
      node = next;
    } catch (e) {
      if (!isVmcoreError(e)) throw e;
      warnings.push(warning('PERCPU_UNAVAILABLE', `per-CPU data: task at ${hex64(node)}: ${e.message}`));
      break;
    }
  }
  return Array.from({ length: rqs.length }, (_, i) => rqs[i]);
}
