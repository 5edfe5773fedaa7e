/**
 * How many worker threads a job runs. More threads than cores only add memory (each is a V8
 * isolate with its own heap, ~15-60 MiB) and switching: `hash --threads 999` reached 14 GiB of
 * RSS on a 2-core machine. A request above THREADS_PER_CORE per core is lowered to that, with a
 * warning.
 */
import { availableParallelism } from 'node:os';
import { warning, type Warning } from '../core/warnings.js';

/** Requested threads above this many per core are lowered to it. */
export const THREADS_PER_CORE = 4;

/** The default: one per core, 1..16. */
export function defaultThreads(): number {
  return Math.max(1, Math.min(availableParallelism(), 16));
}

/**
 * `requested` threads (an integer >= 0, already validated by the caller), or, above
 * THREADS_PER_CORE per core, that limit, with a THREADS_LIMITED warning in `warnings`.
 */
export function limitThreads(requested: number, warnings: Warning[]): number {
  const max = THREADS_PER_CORE * Math.max(1, availableParallelism());
  if (requested <= max) return requested;
  warnings.push(warning('THREADS_LIMITED', `--threads ${requested} is more than ${THREADS_PER_CORE} per core on this machine (${availableParallelism()} cores): using ${max}`));
  return max;
}
