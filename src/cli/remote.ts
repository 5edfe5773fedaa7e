/** Remote dumps on the command line: `--stats` and the `fetch` JSON key for http(s) inputs. */
import type { ByteSource } from '../core/io/source.js';
import { fetchStats, type FetchStats } from '../node/open.js';
import { humanBytes } from './util.js';

/** The `--stats` option of every command that reads dumps: `.option(...STATS_OPTION)`. */
export const STATS_OPTION = ['--stats', 'print on standard error how much of a remote (http/https) dump was fetched'] as const;

/** The `fetch` JSON value: bytes and requests spent on http(s) inputs, or null for local files. */
export function fetchJson(sources: ByteSource[]): (FetchStats & { fraction: number }) | null {
  const s = fetchStats(sources);
  return s && { ...s, fraction: s.remoteBytes ? Number((s.bytesFetched / s.remoteBytes).toFixed(6)) : 0 };
}

/** With --stats, prints one line on stderr (nothing for local files). */
export function printStats(sources: ByteSource[], o: { stats?: boolean }): void {
  if (!o.stats) return;
  const s = fetchStats(sources);
  if (!s) {
    process.stderr.write('stats: no remote input, nothing fetched\n');
    return;
  }
  const pct = s.remoteBytes ? ((100 * s.bytesFetched) / s.remoteBytes).toFixed(2) : '0';
  process.stderr.write(`stats: fetched ${humanBytes(s.bytesFetched)} (${s.bytesFetched} bytes, ${pct}% of ${humanBytes(s.remoteBytes)}) in ${s.requests} HTTP requests${s.retries ? `, ${s.retries} retried` : ''}\n`);
}
