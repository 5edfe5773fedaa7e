/** Open dump files from paths or http(s) URLs (Node). */
import { openDump } from '../core/format/open.js';
import type { Dump } from '../core/dump.js';
import type { CodecRegistry } from '../core/codec/types.js';
import type { ByteSource } from '../core/io/source.js';
import { HttpSource, isHttpUrl, type HttpSourceOptions } from '../core/io/http.js';
import { FileSource } from './file-source.js';
import { nodeCodecs } from './codecs.js';

export interface OpenDumpFilesOptions {
  codecs?: CodecRegistry;
  /** Options of the HTTP range source used for http:// and https:// names. */
  http?: HttpSourceOptions;
  /** Receives the opened byte sources (e.g. to read HttpSource.stats afterwards). */
  sources?: ByteSource[];
}

/**
 * Opens a dump from file paths or http(s) URLs (read with Range requests, see HttpSource);
 * several names are one split set. Throws VmcoreError (IO for a file that cannot be opened,
 * HTTP for a server that refuses, and the format errors of openDump).
 */
export async function openDumpFiles(paths: string[], opts: OpenDumpFilesOptions = {}): Promise<Dump> {
  const sources: ByteSource[] = [];
  try {
    for (const p of paths) sources.push(isHttpUrl(p) ? await HttpSource.open(p, opts.http) : await FileSource.open(p));
    opts.sources?.push(...sources);
    return await openDump(sources, opts.codecs ?? nodeCodecs());
  } catch (e) {
    for (const s of sources) await s.close?.().catch(() => undefined);
    throw e;
  }
}

/** Bytes fetched over HTTP by the sources of one command, for --stats and --json. */
export interface FetchStats {
  /** Bytes of HTTP bodies received. */
  bytesFetched: number;
  /** Total size of the remote files. */
  remoteBytes: number;
  /** HTTP requests sent, retries included. */
  requests: number;
  retries: number;
}

/** Sums the HttpSource statistics of `sources`; null when none is remote. */
export function fetchStats(sources: ByteSource[]): FetchStats | null {
  const http = sources.filter((s): s is HttpSource => s instanceof HttpSource);
  if (!http.length) return null;
  const r: FetchStats = { bytesFetched: 0, remoteBytes: 0, requests: 0, retries: 0 };
  for (const s of http) {
    r.bytesFetched += s.stats.bytesFetched;
    r.remoteBytes += s.size;
    r.requests += s.stats.requests;
    r.retries += s.stats.retries;
  }
  return r;
}
