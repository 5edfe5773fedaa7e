/** Page-frame ranges ([startPfn, endPfn), ascending, disjoint) as the conversion plans with them. */
import type { ConvertInput, PageStreamInput, PfnRange } from './types.js';

/** True for a sequential page stream, false for a random-access Dump. */
export function isStream(i: ConvertInput): i is PageStreamInput {
  return (i as PageStreamInput).kind === 'stream';
}

/** Append [s, e) to `list`, merging with the last range when they touch. */
export function pushRange(list: PfnRange[], s: number, e: number): void {
  const last = list[list.length - 1];
  if (last && last.endPfn === s) last.endPfn = e;
  else list.push({ startPfn: s, endPfn: e });
}

/** The ranges cut at `end`. */
export function clipRanges(ranges: readonly PfnRange[], end: number): PfnRange[] {
  return ranges.filter((r) => r.startPfn < end).map((r) => ({ startPfn: r.startPfn, endPfn: Math.min(r.endPfn, end) }));
}

/** Pages of `ranges` within [lo, hi). */
export function countIn(ranges: readonly PfnRange[], lo: number, hi: number): number {
  let n = 0;
  for (const r of ranges) n += Math.max(0, Math.min(r.endPfn, hi) - Math.max(r.startPfn, lo));
  return n;
}
