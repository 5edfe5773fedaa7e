/**
 * Worker threads started ahead of the work they will be given: a thread's start (a Node isolate
 * and its bundle: 0.1-0.3 s, more while the other core is busy) then overlaps what the calling
 * thread does first (loading the command, opening the dump, the kernel analysis). A prestarted
 * worker waits for its first message; unused, it does not keep the process alive (unref'd until
 * taken) and is ended by releasePrestarted.
 *
 * The spares live on `globalThis` under one symbol, so that the command's launcher
 * (src/cli/launch.ts, its own small bundle, run before the command's modules load) and the
 * command's modules (another bundle, or the library's modules) share them. This module imports
 * only Node: the launcher stays small.
 */
import { Worker, type WorkerOptions } from 'node:worker_threads';
import { workerUrl, type WorkerName } from './url.js';

/** Every worker of `name` starts with these options (prestarted or not): one place for both. */
export const WORKER_OPTIONS: Record<WorkerName, WorkerOptions> = {
  // small young generations: the codecs allocate one short-lived buffer per page, and a large
  // nursery per worker is what peak RSS is made of (hash's readers and triage alike)
  'compress-worker': { resourceLimits: { maxYoungGenerationSizeMb: 4 } },
  'read-worker': { resourceLimits: { maxYoungGenerationSizeMb: 4 } },
  'triage-worker': { resourceLimits: { maxYoungGenerationSizeMb: 4 } },
};

const KEY = Symbol.for('vmcore.prestartedWorkers');
type Spares = Record<WorkerName, Worker[]>;

function spares(): Spares {
  const g = globalThis as { [KEY]?: Spares };
  return (g[KEY] ??= { 'compress-worker': [], 'read-worker': [], 'triage-worker': [] });
}

/**
 * Make sure `n` (0..16) workers of `name` are waiting (prestarted now when fewer are); returns
 * how many wait. One that exits or fails before it is taken is dropped.
 */
export function prestartWorkers(name: WorkerName, n: number): number {
  const list = spares()[name];
  for (let i = list.length; i < Math.min(n, 16); i++) {
    const w = new Worker(workerUrl(name), WORKER_OPTIONS[name]);
    w.unref();
    const drop = () => {
      const k = list.indexOf(w);
      if (k >= 0) list.splice(k, 1);
    };
    w.once('exit', drop);
    w.once('error', drop);
    list.push(w);
  }
  return list.length;
}

/**
 * A worker of `name`: a prestarted one (its drop listeners removed, ref'd again), else a new
 * one. The caller owns it.
 */
export function takeWorker(name: WorkerName): Worker {
  const w = spares()[name].shift();
  if (!w) return new Worker(workerUrl(name), WORKER_OPTIONS[name]);
  w.removeAllListeners('exit');
  w.removeAllListeners('error');
  w.ref();
  return w;
}

/** End the prestarted workers of `name` that nothing took. */
export async function releasePrestarted(name: WorkerName): Promise<void> {
  await Promise.all(spares()[name].splice(0).map((w) => w.terminate()));
}
