/** Messages between the page and its worker. */
import type { PageState } from '../src/core/dump.js';
import type { TaskInfo } from '../src/core/kernel/backtrace.js';
import type { Warning } from '../src/core/warnings.js';
export type ToWorker =
  | { type: 'open'; file?: File; url?: string }
  | { type: 'hex'; space: 'phys' | 'virt'; addr: string; length: number }
  /** The backtrace of one task (its task_struct address, 0x…). */
  | { type: 'bt'; task: string };

/** One loaded module, as `vmcore mod` prints it. */
export interface ModuleRow {
  name: string;
  /** The struct module address, 0x…. */
  module: string;
  /** Start of its text, 0x…. */
  base: string;
  size: number;
  state: string;
  taint: string;
  /** Its own symbols read, or null with `symbolsError`. */
  symbols: number | null;
  symbolsError: string | null;
}

/** One row of the task list (`vmcore ps` / `bt -a` terms): a TaskInfo that survives postMessage (the task address as hex). */
export type TaskRow = Pick<TaskInfo, 'pid' | 'tgid' | 'ppid' | 'comm' | 'state' | 'cpu' | 'activeCpu'> & { task: string; panic: boolean };

export interface FetchedStats {
  requests: number;
  bytesFetched: number;
  retries: number;
  cacheHits: number;
  size: number;
}

export type FromWorker =
  | { type: 'progress'; step: string; fraction: number }
  | { type: 'report'; report: unknown; ms: number; fetched: FetchedStats | null }
  | { type: 'log'; ts: string[]; level: number[]; text: string[]; warnings: Warning[] }
  /** counts: pages per state of the whole walk (exact, before runs are merged for the map). */
  | { type: 'map'; starts: Float64Array; ends: Float64Array; states: Uint8Array; maxPfn: number; pageSize: number; counts: Record<PageState, number> }
  | { type: 'hex'; space: 'phys' | 'virt'; addr: string; bytes: Uint8Array }
  | { type: 'fetched'; fetched: FetchedStats }
  /** The loaded modules (`vmcore mod` terms), or why there are none. */
  | { type: 'modules'; modules: ModuleRow[]; warnings: Warning[]; error: string | null }
  /** The task list, or why there is none. */
  | { type: 'tasks'; tasks: TaskRow[]; warnings: Warning[]; error: string | null }
  /** A backtrace as `vmcore bt` prints it; `panic` for the panicking task's, shown in the panic section. */
  | { type: 'bt'; task: string | null; text: string; panic: boolean; error: string | null }
  | { type: 'error'; code: string; message: string }
  | { type: 'hexError'; code: string; message: string };
