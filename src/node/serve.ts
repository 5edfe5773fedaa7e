/**
 * `vmcore serve`: a small read-only HTTP server (node:http) for the web page and the named
 * dumps. Nothing else is reachable: the page's files are a fixed table read at start, each dump
 * is reachable only as /dumps/<index>/<its base name>, there is no directory listing and no
 * path is ever joined from a request. Dumps are served with single `Range` requests
 * (RFC 9110 §14), an ETag, and `If-Range`. Only GET and HEAD. Bound to loopback by default;
 * on loopback, requests whose Host header is not a loopback name are refused (DNS rebinding).
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { createReadStream, open as fsOpen, read as fsRead } from 'node:fs';
import { open, readdir, readFile, type FileHandle } from 'node:fs/promises';
import type { AddressInfo } from 'node:net';
import { basename, dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { VmcoreError } from '../core/errors.js';

/** The Content-Security-Policy of the page (also in its <meta>): scripts only from the page's own files, no inline code. */
export const PAGE_CSP =
  "default-src 'none'; script-src 'self'; worker-src 'self'; style-src 'self'; img-src 'self' data: blob:; connect-src 'self' http: https:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

export interface ServeOptions {
  /** Dump files to serve (paths). */
  dumps: string[];
  /** Default 127.0.0.1. */
  host?: string;
  /** Default 0 (any free port). */
  port?: number;
  /** Directory of the built page (default: dist/web of this package). */
  webDir?: string;
  /** Called for each request with its status (logging). */
  onRequest?: (method: string, url: string, status: number) => void;
}

export interface ServeHandle {
  url: string;
  server: Server;
  /** The URL of each dump, in order. */
  dumpUrls: string[];
  close(): Promise<void>;
}

interface DumpEntry {
  path: string;
  /** Opened once at start: a rename or symlink put in place of the path later reaches nothing else. */
  fh: FileHandle;
  route: string;
  size: number;
  etag: string;
}

const TYPES: Record<string, string> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.map': 'application/json',
  '.svg': 'image/svg+xml',
  '.png': 'image/png',
};

/** The built page's directory inside this package. */
export function defaultWebDir(): string {
  return resolve(dirname(fileURLToPath(import.meta.url)), '../../web');
}

function etagOf(st: { size: number; mtimeMs: number; ino: number }): string {
  return `"${st.size.toString(16)}-${Math.floor(st.mtimeMs * 1000).toString(16)}-${st.ino.toString(16)}"`;
}

const LOOPBACK = new Set(['127.0.0.1', 'localhost', '::1', '[::1]']);

function hostName(h: string): string {
  return h.startsWith('[') ? h.slice(0, h.indexOf(']') + 1) : h.replace(/:\d+$/, '');
}

/**
 * Starts the server. Throws VmcoreError IO when a dump cannot be read or the address is in
 * use, USAGE without dumps.
 */
export async function serve(opts: ServeOptions): Promise<ServeHandle> {
  if (!opts.dumps.length) throw new VmcoreError('USAGE', 'serve needs at least one dump file');
  const host = opts.host ?? '127.0.0.1';
  const webDir = opts.webDir ?? defaultWebDir();
  const dumps: DumpEntry[] = [];
  const closeDumps = () => Promise.all(dumps.map((d) => d.fh.close().catch(() => undefined)));
  for (const [i, p] of opts.dumps.entries()) {
    let fh: FileHandle | undefined;
    let st;
    try {
      fh = await open(p, 'r');
      st = await fh.stat();
    } catch (e) {
      await fh?.close().catch(() => undefined);
      await closeDumps();
      throw new VmcoreError('IO', `cannot serve: ${(e as Error).message}`, { file: p });
    }
    if (!st.isFile()) {
      await fh.close().catch(() => undefined);
      await closeDumps();
      throw new VmcoreError('IO', 'cannot serve: not a regular file', { file: p });
    }
    dumps.push({ path: resolve(p), fh, route: `/dumps/${i}/${encodeURIComponent(basename(p))}`, size: st.size, etag: etagOf(st) });
  }
  // the page: a fixed table of files, read now
  const files = new Map<string, { type: string; body: Buffer }>();
  let names: string[] = [];
  try {
    names = await readdir(webDir);
  } catch {
    /* page not built: dumps are still served */
  }
  for (const n of names) {
    const ext = n.slice(n.lastIndexOf('.'));
    const type = TYPES[ext];
    if (type) files.set('/' + n, { type, body: await readFile(join(webDir, n)) });
  }
  const index = files.get('/index.html');
  if (index) {
    // the page opens the first named dump by itself: the list goes into a <meta>, not a script (CSP)
    const list = JSON.stringify(dumps.map((d) => ({ name: basename(d.path), url: d.route, size: d.size }))).replace(/&/g, '&amp;').replace(/"/g, '&quot;').replace(/</g, '&lt;');
    files.set('/', { type: index.type, body: Buffer.from(index.body.toString('utf8').replace('<meta name="vmcore-dumps" content="[]">', `<meta name="vmcore-dumps" content="${list}">`)) });
    files.delete('/index.html');
  }

  let boundPort = 0;
  const handle = async (req: IncomingMessage, res: ServerResponse): Promise<number> => {
    res.setHeader('X-Content-Type-Options', 'nosniff');
    res.setHeader('Referrer-Policy', 'no-referrer');
    res.setHeader('Cross-Origin-Resource-Policy', 'same-origin');
    const method = req.method ?? 'GET';
    if (method !== 'GET' && method !== 'HEAD') {
      res.writeHead(405, { Allow: 'GET, HEAD', 'Content-Type': 'text/plain' }).end('read-only\n');
      return 405;
    }
    if (LOOPBACK.has(host) && !LOOPBACK.has(hostName(req.headers.host ?? ''))) {
      res.writeHead(403, { 'Content-Type': 'text/plain' }).end('this server answers only to a loopback host name\n');
      return 403;
    }
    const path = (req.url ?? '/').replace(/[?#].*$/, '');
    const d = dumps.find((x) => x.route === path);
    if (d) return await sendDump(req, res, d, method === 'HEAD');
    const f = files.get(path);
    if (!f) {
      res.writeHead(404, { 'Content-Type': 'text/plain' }).end(path === '/' ? 'the web page is not built (npm run build:web)\n' : 'not found\n');
      return 404;
    }
    res.writeHead(200, {
      'Content-Type': f.type,
      'Content-Length': f.body.length,
      'Content-Security-Policy': PAGE_CSP,
      'Cache-Control': 'no-cache',
    });
    res.end(method === 'HEAD' ? undefined : f.body);
    return 200;
  };
  const server = createServer((req, res) => {
    handle(req, res).then(
      (status) => opts.onRequest?.(req.method ?? '', (req.url ?? '').slice(0, 200), status),
      () => {
        if (!res.headersSent) res.writeHead(500).end();
        else res.destroy();
        opts.onRequest?.(req.method ?? '', (req.url ?? '').slice(0, 200), 500);
      },
    );
  });
  await new Promise<void>((ok, fail) => {
    server.once('error', (e) => void closeDumps().then(() => fail(new VmcoreError('IO', `cannot listen on ${host}:${opts.port ?? 0}: ${e.message}`, { cause: e }))));
    server.listen(opts.port ?? 0, host, () => ok());
  });
  boundPort = (server.address() as AddressInfo).port;
  const h = host.includes(':') ? `[${host}]` : host;
  const url = `http://${h === '0.0.0.0' ? '127.0.0.1' : h}:${boundPort}/`;
  return {
    url,
    server,
    dumpUrls: dumps.map((d) => new URL(d.route, url).href),
    close: () =>
      new Promise<void>((r) => {
        server.closeAllConnections();
        server.close(() => void closeDumps().then(() => r()));
      }),
  };
}

/** Answers a dump request: 200 whole, 206 one range, 416 unsatisfiable or several ranges. */
async function sendDump(req: IncomingMessage, res: ServerResponse, entry: DumpEntry, head: boolean): Promise<number> {
  // size and ETag of the opened file as it is now: a file rewritten while a client reads it gets a
  // new ETag; the path is not looked up again (a symlink put in its place reaches nothing)
  const st = await entry.fh.stat();
  const d = { ...entry, size: st.size, etag: etagOf(st) };
  const common = { 'Accept-Ranges': 'bytes', ETag: d.etag, 'Cache-Control': 'no-cache', 'Content-Type': 'application/octet-stream' };
  const range = req.headers.range;
  const ifRange = req.headers['if-range'];
  let start = 0;
  let end = d.size - 1;
  let status = 200;
  if (range && (ifRange === undefined || ifRange === d.etag)) {
    const m = /^bytes=(\d*)-(\d*)$/.exec(range.trim());
    if (!m || (m[1] === '' && m[2] === '')) {
      res.writeHead(416, { ...common, 'Content-Range': `bytes */${d.size}` }).end();
      return 416;
    }
    if (m[1] === '') {
      start = Math.max(0, d.size - Number(m[2]));
    } else {
      start = Number(m[1]);
      if (m[2] !== '') end = Math.min(end, Number(m[2]));
    }
    if (!Number.isSafeInteger(start) || start >= d.size || end < start) {
      res.writeHead(416, { ...common, 'Content-Range': `bytes */${d.size}` }).end();
      return 416;
    }
    status = 206;
  }
  const len = d.size === 0 ? 0 : end - start + 1;
  res.writeHead(status, { ...common, 'Content-Length': len, ...(status === 206 ? { 'Content-Range': `bytes ${start}-${end}/${d.size}` } : {}) });
  if (head || len === 0) {
    res.end();
    return status;
  }
  // the stream must not close the shared descriptor when it ends or is destroyed (a client gone)
  const s = createReadStream('', { fd: entry.fh.fd, start, end, fs: { open: fsOpen, read: fsRead, close: (_fd: number, cb: (e: null) => void) => cb(null) } });
  s.on('error', () => res.destroy());
  res.on('close', () => s.destroy());
  s.pipe(res);
  return status;
}
