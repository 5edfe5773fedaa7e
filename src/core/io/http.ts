/**
 * HTTP(S) byte source: reads a dump where it lives with `Range` requests (RFC 9110 §14), so a
 * multi-GiB dump on a crash server or in object storage (presigned S3/GCS/Azure URLs are plain
 * HTTPS) is never downloaded whole. Portable: it only needs `fetch` (Node 18+, browsers).
 *
 * - Block cache: the file is read in aligned blocks (default 64 KiB) kept in an LRU
 *   (default 512 blocks = 32 MiB), so memory is bounded by blockSize × cacheBlocks.
 * - Coalescing: the missing neighbouring blocks of one read are fetched with one request, and
 *   concurrent reads of the same block share one request. Sequential reading fetches ahead
 *   (doubling up to maxCoalesce blocks).
 * - A limit on requests in flight (default 4).
 * - Retries with exponential backoff (and jitter) for transient failures: network errors,
 *   connections dropped mid-body, timeouts, 408, 429, 5xx. Other statuses fail at once.
 * - Consistency: the first response's strong ETag (else Last-Modified) is sent as `If-Range`
 *   with every later request. A server whose file changed then answers 200 with the new file,
 *   which is an `HTTP` error ("changed"), never mixed data. ETag and total size of every 206
 *   are also compared with the first one.
 * - A server that ignores `Range` (answers 200 with the whole file) is an `HTTP` error; the
 *   body is cancelled, never downloaded.
 *
 * In a browser, a cross-origin server must allow the `Range` and `If-Range` request headers
 * and expose `Content-Range` and `ETag` (CORS); `vmcore serve` does.
 */
import { VmcoreError } from '../errors.js';
import { LruCache } from './lru.js';
import type { ByteSource } from './source.js';

export interface HttpSourceOptions {
  /** The fetch implementation (default: the global one). */
  fetch?: typeof fetch;
  /** Extra request headers (e.g. Authorization). */
  headers?: Record<string, string>;
  /** Block size in bytes: the unit of requests and of the cache (default 64 KiB). */
  blockSize?: number;
  /** Blocks kept in the cache (default 512). */
  cacheBlocks?: number;
  /** Most blocks fetched by one coalesced request (default 64). */
  maxCoalesce?: number;
  /** Requests in flight at once (default 4). */
  maxParallel?: number;
  /** Retries of a transient failure before giving up (default 4). */
  retries?: number;
  /** First backoff delay in ms, doubled at each retry, capped at 8 s (default 250). */
  backoffMs?: number;
  /**
   * Longest wait for the server without a byte, in ms (default 30000): for the answer's headers
   * and between pieces of its body, so a slow but steady transfer is never cut, and a server that
   * stalls is given up after this long (then retried).
   */
  timeoutMs?: number;
}

/** What an HttpSource has cost so far. */
export interface HttpStats {
  /** HTTP requests sent (retries included). */
  requests: number;
  /** Body bytes received. */
  bytesFetched: number;
  /** Requests repeated after a transient failure. */
  retries: number;
  /** Blocks served from the cache. */
  cacheHits: number;
}

/** True when `s` looks like an http:// or https:// URL. */
export function isHttpUrl(s: string): boolean {
  return /^https?:\/\//i.test(s);
}

/** The URL without query and fragment: presigned URLs carry credentials there, and names end up in messages. */
export function redactUrl(url: string): string {
  try {
    const u = new URL(url);
    return `${u.protocol}//${u.host}${u.pathname}${u.search ? '?…' : ''}`;
  } catch {
    return url.replace(/[?#].*$/, '?…');
  }
}

class Transient extends Error {}

/** Error codes of a fetch failure that no retry changes: the name does not exist, the certificate is not accepted. */
const PERMANENT_CODES = new Set([
  'ENOTFOUND',
  'ERR_INVALID_URL',
  'CERT_HAS_EXPIRED',
  'CERT_NOT_YET_VALID',
  'DEPTH_ZERO_SELF_SIGNED_CERT',
  'SELF_SIGNED_CERT_IN_CHAIN',
  'UNABLE_TO_VERIFY_LEAF_SIGNATURE',
  'UNABLE_TO_GET_ISSUER_CERT_LOCALLY',
  'ERR_TLS_CERT_ALTNAME_INVALID',
]);

/**
 * A fetch() rejection that another attempt cannot change: Node's fetch (undici) names its cause
 * (`cause.code`, or "bad port" for the ports the Fetch standard blocks); a browser's TypeError
 * says nothing, and is retried.
 */
export function permanentFetchFailure(e: unknown): boolean {
  const cause = (e as { cause?: { code?: unknown; message?: unknown } } | undefined)?.cause;
  if (typeof cause?.code === 'string' && PERMANENT_CODES.has(cause.code)) return true;
  return typeof cause?.message === 'string' && /^bad port$/i.test(cause.message);
}

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/** Parses `bytes a-b/total` (total may be `*`) or `bytes *\/total`. */
function parseContentRange(v: string | null): { start: number; end: number; total: number | null } | { unsatisfied: number } | null {
  if (!v) return null;
  let m = /^\s*bytes\s+(\d+)-(\d+)\/(\d+|\*)\s*$/i.exec(v);
  if (m) {
    const start = Number(m[1]);
    const end = Number(m[2]);
    const total = m[3] === '*' ? null : Number(m[3]);
    if (![start, end].every(Number.isSafeInteger) || end < start || (total !== null && (!Number.isSafeInteger(total) || end >= total))) return null;
    return { start, end, total };
  }
  m = /^\s*bytes\s+\*\/(\d+)\s*$/i.exec(v);
  if (m && Number.isSafeInteger(Number(m[1]))) return { unsatisfied: Number(m[1]) };
  return null;
}

export class HttpSource implements ByteSource {
  /** The HTTP source caches itself: openDump adds no read-ahead cache over it. */
  readonly cached = true;
  readonly stats: HttpStats = { requests: 0, bytesFetched: 0, retries: 0, cacheHits: 0 };
  /** Why the server was given up (a request used up its retries), or undefined. */
  private gone: string | undefined;
  private readonly cache: LruCache<number, Uint8Array>;
  private readonly inflight = new Map<number, Promise<Uint8Array>>();
  private active = 0;
  private seqNext = -1;
  private streak = 0;
  private readonly waiting: (() => void)[] = [];
  private readonly o: Required<Omit<HttpSourceOptions, 'fetch' | 'headers'>> & { fetch: typeof fetch; headers: Record<string, string> };

  private constructor(
    readonly url: string,
    readonly name: string,
    public size: number,
    opts: HttpSourceOptions,
    /** Strong ETag or Last-Modified of the first response, sent as If-Range. */
    private validator: string | null = null,
    private etag: string | null = null,
  ) {
    this.o = {
      fetch: opts.fetch ?? ((...a: Parameters<typeof fetch>) => globalThis.fetch(...a)),
      headers: opts.headers ?? {},
      blockSize: opts.blockSize ?? 64 << 10,
      cacheBlocks: opts.cacheBlocks ?? 512,
      maxCoalesce: opts.maxCoalesce ?? 64,
      maxParallel: opts.maxParallel ?? 4,
      retries: opts.retries ?? 4,
      backoffMs: opts.backoffMs ?? 250,
      timeoutMs: opts.timeoutMs ?? 30000,
    };
    if (!(this.o.blockSize >= 512 && this.o.blockSize <= 64 << 20) || !(this.o.maxParallel >= 1) || !(this.o.cacheBlocks >= 1) || !(this.o.maxCoalesce >= 1)) {
      throw new VmcoreError('USAGE', 'HTTP source: bad block size, cache size, coalescing or parallel limit');
    }
    this.cache = new LruCache(this.o.cacheBlocks);
  }

  /**
   * Opens `url`: one `GET` of the first block with `Range: bytes=0-…` gives the size (from
   * `Content-Range`), the ETag and the first block. Throws VmcoreError `HTTP` when the server
   * refuses (with the status), ignores Range (200), or gives no size; `IO` when it cannot be
   * reached after the retries.
   */
  static async open(url: string, opts: HttpSourceOptions = {}): Promise<HttpSource> {
    const s = new HttpSource(url, redactUrl(url), 0, opts);
    const B = s.o.blockSize;
    const first = await s.request(0, B, true);
    s.size = first.total;
    if (first.data.length) s.cache.set(0, first.data);
    return s;
  }

  async read(offset: number, length: number): Promise<Uint8Array> {
    const end = Math.min(this.size, offset + length);
    if (!(offset < end)) return new Uint8Array(0);
    const B = this.o.blockSize;
    const b0 = Math.floor(offset / B);
    const b1 = Math.floor((end - 1) / B);
    const parts: Promise<Uint8Array>[] = [];
    let runStart = -1;
    const flush = (upto: number) => {
      // fetch the blocks [runStart, upto) as one request, shared by every block of the run
      if (runStart < 0) return;
      const rs = runStart;
      const p = this.fetchBlocks(rs, upto);
      for (let i = rs; i < upto; i++) {
        const bp = p.then((blocks) => blocks[i - rs]!);
        bp.catch(() => undefined);
        this.inflight.set(i, bp);
        bp.finally(() => this.inflight.get(i) === bp && this.inflight.delete(i)).catch(() => undefined);
        if (i <= b1) parts[i - b0] = bp;
      }
      runStart = -1;
    };
    // sequential reading (hash, convert): fetch ahead, doubling up to maxCoalesce blocks
    this.streak = b0 === this.seqNext || b0 + 1 === this.seqNext ? this.streak + 1 : 0;
    this.seqNext = b1 + 1;
    for (let i = b0; i <= b1; i++) {
      const c = this.cache.get(i);
      const f = c ? undefined : this.inflight.get(i);
      if (c || f) {
        flush(i);
        if (c) this.stats.cacheHits++;
        parts[i - b0] = c ? Promise.resolve(c) : f!;
      } else {
        if (runStart < 0) runStart = i;
        if (i + 1 - runStart >= this.o.maxCoalesce) flush(i + 1);
      }
    }
    let upto = b1 + 1;
    if (runStart >= 0 && this.streak >= 2) {
      const nBlocks = Math.ceil(this.size / B);
      const limit = Math.min(nBlocks, runStart + this.o.maxCoalesce, upto + 2 ** Math.min(this.streak, 20));
      while (upto < limit && !this.cache.has(upto) && !this.inflight.has(upto)) upto++;
    }
    flush(upto);
    const blocks = await Promise.all(parts);
    if (blocks.length === 1) {
      const o = offset - b0 * B;
      return blocks[0]!.subarray(o, o + (end - offset));
    }
    const out = new Uint8Array(end - offset);
    for (let i = 0; i < blocks.length; i++) {
      const bs = (b0 + i) * B;
      const from = Math.max(offset, bs) - bs;
      const to = Math.min(end, bs + B) - bs;
      out.set(blocks[i]!.subarray(from, to), bs + from - offset);
    }
    return out;
  }

  async close(): Promise<void> {
    this.cache.clear();
  }

  /** Fetches blocks [first, last) with one request and caches them. */
  private async fetchBlocks(first: number, last: number): Promise<Uint8Array[]> {
    const B = this.o.blockSize;
    const start = first * B;
    const want = Math.min(this.size, last * B) - start;
    const { data } = await this.request(start, want, false);
    const blocks: Uint8Array[] = [];
    for (let i = first; i < last; i++) {
      // copy, so that one cached block does not keep the whole response alive after eviction
      const b = last - first === 1 ? data : data.slice((i - first) * B, (i - first + 1) * B);
      this.cache.set(i, b);
      blocks.push(b);
    }
    return blocks;
  }

  private async acquire(): Promise<void> {
    if (this.active < this.o.maxParallel) {
      this.active++;
      return;
    }
    await new Promise<void>((r) => this.waiting.push(r));
  }
  private release(): void {
    const next = this.waiting.shift();
    if (next) next();
    else this.active--;
  }

  /** One range request with retries. `probe`: the first request, which learns size and validator. */
  private async request(start: number, length: number, probe: boolean): Promise<{ data: Uint8Array; total: number }> {
    // once a request has used up its retries the server is taken as gone: every later read fails
    // at once instead of waiting through the same retries again (a stalled server is not a hang)
    if (this.gone) throw new VmcoreError('IO', `${this.gone}; no further requests are sent`, { file: this.name, offset: start, field: 'HTTP GET' });
    for (let attempt = 0; ; attempt++) {
      await this.acquire();
      try {
        return await this.requestOnce(start, length, probe);
      } catch (e) {
        if (!(e instanceof Transient) || attempt >= this.o.retries) {
          if (e instanceof Transient) {
            this.gone = `${e.message} (gave up after ${attempt + 1} attempts)`;
            throw new VmcoreError('IO', this.gone, { file: this.name, offset: start, field: 'HTTP GET' });
          }
          throw e;
        }
      } finally {
        this.release();
      }
      this.stats.retries++;
      const delay = Math.min(8000, this.o.backoffMs * 2 ** attempt);
      await sleep(delay / 2 + Math.random() * (delay / 2));
    }
  }

  /** One request under the idle timeout (timeoutMs without a byte aborts it). */
  private async requestOnce(start: number, length: number, probe: boolean): Promise<{ data: Uint8Array; total: number }> {
    const ac = new AbortController();
    const ms = this.o.timeoutMs;
    let timer: ReturnType<typeof setTimeout> | undefined;
    const touch = () => {
      if (timer !== undefined) clearTimeout(timer);
      timer = setTimeout(() => ac.abort(new Error(`no data from the server for ${ms} ms`)), ms);
    };
    touch();
    try {
      return await this.requestIdle(start, length, probe, ac.signal, touch);
    } finally {
      if (timer !== undefined) clearTimeout(timer);
    }
  }

  private async requestIdle(start: number, length: number, probe: boolean, signal: AbortSignal, touch: () => void): Promise<{ data: Uint8Array; total: number }> {
    const end = start + length - 1;
    const headers: Record<string, string> = { ...this.o.headers, Range: `bytes=${start}-${end}`, 'Accept-Encoding': 'identity' };
    if (!probe && this.validator) headers['If-Range'] = this.validator;
    const err = (msg: string) => new VmcoreError('HTTP', msg, { file: this.name, offset: start, field: 'HTTP GET' });
    this.stats.requests++;
    let res: Response;
    try {
      res = await this.o.fetch(this.url, { headers, signal, redirect: 'follow' });
      touch();
    } catch (e) {
      if (signal.aborted && signal.reason instanceof Error) throw new Transient(`cannot fetch: ${signal.reason.message}`);
      const msg = `cannot fetch: ${(e as Error)?.message ?? String(e)}${(e as { cause?: Error })?.cause?.message ? ` (${(e as { cause: Error }).cause.message})` : ''}`;
      // what another attempt cannot change is said at once (a wrong name or port, a bad certificate)
      if (permanentFetchFailure(e)) {
        this.gone = msg;
        throw new VmcoreError('IO', msg, { file: this.name, offset: start, field: 'HTTP GET' });
      }
      throw new Transient(msg);
    }
    const cancel = () => res.body?.cancel().catch(() => undefined);
    if (res.status === 408 || res.status === 429 || res.status >= 500) {
      await cancel();
      throw new Transient(`HTTP ${res.status} ${res.statusText}`);
    }
    if (res.status === 200) {
      await cancel();
      if (probe) {
        const n = res.headers.get('content-length');
        throw err(`the server ignored the Range request (it answered 200 with the whole file${n ? `, ${n} bytes` : ''}); vmcore reads only the parts of a dump it needs and does not download whole files: serve the dump from a server with Range support (nginx, Apache, S3/GCS/Azure, or vmcore serve; python3 -m http.server has none)`);
      }
      throw err(`the file changed on the server while it was being read (If-Range ${this.validator ?? '(no validator)'} no longer matches, the server sent the new file); open it again`);
    }
    if (res.status === 416 && probe) {
      const cr = parseContentRange(res.headers.get('content-range'));
      await cancel();
      if (cr && 'unsatisfied' in cr && cr.unsatisfied === 0) return { data: new Uint8Array(0), total: 0 };
      throw err('the server answered 416 (range not satisfiable) for the first bytes of the file');
    }
    if (res.status !== 206) {
      await cancel();
      throw err(`HTTP ${res.status} ${res.statusText}`.trim());
    }
    const cr = parseContentRange(res.headers.get('content-range'));
    if (!cr || 'unsatisfied' in cr) {
      await cancel();
      throw err(`206 answer without a usable Content-Range (${res.headers.get('content-range') ?? 'none'})${probe ? '; a cross-origin server must expose Content-Range' : ''}`);
    }
    const etag = res.headers.get('etag');
    if (probe) {
      if (cr.total === null) {
        await cancel();
        throw err('the server does not say the file size (Content-Range total is *)');
      }
      this.etag = etag;
      const lm = res.headers.get('last-modified');
      this.validator = etag && !etag.startsWith('W/') ? etag : lm;
    } else {
      const changed = (cr.total !== null && cr.total !== this.size) || (this.etag !== null && etag !== null && etag !== this.etag);
      if (changed) {
        await cancel();
        throw err(`the file changed on the server while it was being read (size ${cr.total ?? '?'} was ${this.size}, ETag ${etag ?? 'none'} was ${this.etag ?? 'none'}); open it again`);
      }
    }
    const total = cr.total ?? this.size;
    const expectEnd = Math.min(end, total - 1);
    if (cr.start !== start || cr.end !== expectEnd) {
      await cancel();
      throw err(`the server sent bytes ${cr.start}-${cr.end} for a request of ${start}-${expectEnd}`);
    }
    const want = expectEnd - start + 1;
    const data = new Uint8Array(want);
    let got = 0;
    try {
      if (res.body) {
        const reader = res.body.getReader();
        for (;;) {
          const { done, value } = await reader.read();
          if (done) break;
          touch();
          if (got + value.length > want) {
            await reader.cancel().catch(() => undefined);
            throw new Transient(`long body: more than the ${want} bytes of the range`);
          }
          data.set(value, got);
          got += value.length;
        }
      }
    } catch (e) {
      if (e instanceof Transient) throw e;
      const why = signal.aborted && signal.reason instanceof Error ? signal.reason.message : ((e as Error)?.message ?? String(e));
      throw new Transient(`connection lost while reading the body: ${why}`);
    } finally {
      this.stats.bytesFetched += got;
    }
    if (got !== want) throw new Transient(`short body: ${got} of ${want} bytes`);
    return { data, total };
  }
}
