/**
 * Worker threads a command line shows the command will need, started before the command's
 * modules load (launch.ts): for `convert` with a dump level that classifies pages (any of bits
 * 2-16) from local files, the thread that triages the input for the filter's guard
 * (src/node/convert/filter.ts). Its start then overlaps the ~0.1 s the command takes to load and
 * the time it takes to open the dump and analyse the kernel.
 *
 * A guess from the words alone, kept small (this module loads before the option parser): a wrong
 * guess costs a thread that waits unused and does not keep the process alive (prestart.ts), never
 * a different result: the command decides again from its parsed options and starts its own
 * thread when none waits.
 */
import { availableParallelism } from 'node:os';
import { prestartWorkers } from '../node/workers/prestart.js';

/** makedumpfile's page-type bits of a dump level (2 cache, 4 cache with private, 8 user, 16 free): core/kernel/pagetypes.ts DL_PAGE_TYPES. */
const PAGE_TYPE_BITS = 30;

/**
 * The dump level `args` (the words after the program name) give `vmcore convert`, when they
 * are a convert from local files that filters by page type (the triage thread is then
 * needed); else undefined. Recognises the command as the parser does: `convert`, makedumpfile's
 * `--reassemble` habit (main.ts), after `--debug`; the level as `-d N`, `-dN`, `-ld N` (short
 * flags grouped), `--dump-level N` and `--dump-level=N`.
 */
export function filteringLevel(args: readonly string[]): number | undefined {
  let i = 0;
  while (args[i] === '--debug') i++;
  if (args[i] !== 'convert' && args[i] !== '--reassemble') return undefined;
  let level: number | undefined;
  for (let k = i + 1; k < args.length; k++) {
    const a = args[k]!;
    if (a === '--') break;
    let value: string | undefined;
    const short = /^-[A-Za-z]*d(.*)$/.exec(a);
    if (a === '--dump-level') value = args[++k];
    else if (a.startsWith('--dump-level=')) value = a.slice('--dump-level='.length);
    else if (short && !a.startsWith('--')) value = short[1] !== '' ? short[1] : args[++k];
    else if (a === '-R' || a === '-' || a === '--no-kernel' || /^https?:\/\//i.test(a)) return undefined;
    else if (a === '--threads' && args[k + 1] === '0') return undefined;
    else if (a === '--threads=0') return undefined;
    if (value !== undefined && /^\d+$/.test(value)) level = Number(value);
  }
  return level !== undefined && (level & PAGE_TYPE_BITS) !== 0 ? level : undefined;
}

/** Prestart what `args` show the command will need on another thread (see filteringLevel); nothing on one CPU. */
export function prestartFor(args: readonly string[]): void {
  if (filteringLevel(args) !== undefined && availableParallelism() > 1) prestartWorkers('triage-worker', 1);
}
