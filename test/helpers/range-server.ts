/**
 * A local HTTP server for tests of the range source that counts what it sends and misbehaves
 * on demand: drops connections mid-body, answers 503, ignores Range (200 with the whole
 * file), and changes the file (new content and ETag) while a client reads it.
 */
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';

export interface RangeServer {
  url: string;
  /** Body bytes written to clients. */
  bytesSent: number;
  requests: number;
  /** Most requests being answered at one time. */
  maxConcurrent: number;
  /** Range headers seen, in order. */
  ranges: string[];
  ifRanges: (string | undefined)[];
  /** Drop the connection halfway through the body of the next N range answers. */
  dropNext: number;
  /** Answer the next N requests with 503. */
  fail503Next: number;
  /** Send the headers and half of the body of every range answer, then nothing (the connection stays open). */
  stall: boolean;
  /** Send each range answer's body in this many pieces, `trickleMs` apart (slow but steady). */
  trickle: number;
  trickleMs: number;
  /** Answer every request with 200 and the whole file. */
  ignoreRange: boolean;
  /** Send no ETag nor Last-Modified. */
  noValidator: boolean;
  /** Delay of each answer in ms. */
  delayMs: number;
  /** Replace the file: new bytes and a new ETag. */
  change(data: Uint8Array): void;
  close(): Promise<void>;
}

/**
 * A file served without being held in memory (e.g. a multi-GiB synthetic dump whose bytes are
 * computed on demand): what the server needs of a Uint8Array.
 */
export interface ServedFile {
  readonly length: number;
  subarray(start: number, end: number): Uint8Array;
}

export async function startRangeServer(initial: Uint8Array | ServedFile, status404Path = '/missing'): Promise<RangeServer> {
  let data = initial;
  let version = 1;
  let concurrent = 0;
  const etag = () => `"v${version}-${data.length}"`;
  const s: RangeServer = {
    url: '',
    bytesSent: 0,
    requests: 0,
    maxConcurrent: 0,
    ranges: [],
    ifRanges: [],
    dropNext: 0,
    fail503Next: 0,
    stall: false,
    trickle: 0,
    trickleMs: 0,
    ignoreRange: false,
    noValidator: false,
    delayMs: 0,
    change(d) {
      data = d;
      version++;
    },
    close: () =>
      new Promise((r) => {
        for (const x of stalled) x.destroy();
        server.close(() => r());
        server.closeAllConnections();
      }),
  };
  const handle = async (req: IncomingMessage, res: ServerResponse) => {
    s.requests++;
    concurrent++;
    s.maxConcurrent = Math.max(s.maxConcurrent, concurrent);
    res.on('close', () => concurrent--);
    if (s.delayMs) await new Promise((r) => setTimeout(r, s.delayMs));
    if (req.url?.startsWith(status404Path)) {
      res.writeHead(404).end('not found');
      return;
    }
    if (s.fail503Next > 0) {
      s.fail503Next--;
      res.writeHead(503).end('busy');
      return;
    }
    const range = req.headers.range;
    const ifRange = req.headers['if-range'] as string | undefined;
    s.ranges.push(range ?? '');
    s.ifRanges.push(ifRange);
    const validators: Record<string, string> = s.noValidator ? {} : { ETag: etag() };
    const m = range ? /^bytes=(\d+)-(\d+)$/.exec(range) : null;
    if (s.ignoreRange || !m || (ifRange !== undefined && ifRange !== etag())) {
      res.writeHead(200, { 'Content-Length': data.length, ...validators });
      s.bytesSent += data.length;
      res.end(data.subarray(0, data.length));
      return;
    }
    const start = Number(m[1]);
    const end = Math.min(Number(m[2]), data.length - 1);
    if (start >= data.length) {
      res.writeHead(416, { 'Content-Range': `bytes */${data.length}` }).end();
      return;
    }
    const body = data.subarray(start, end + 1);
    res.writeHead(206, { 'Content-Range': `bytes ${start}-${end}/${data.length}`, 'Content-Length': body.length, ...validators });
    if (s.dropNext > 0) {
      s.dropNext--;
      const half = body.subarray(0, body.length >> 1);
      s.bytesSent += half.length;
      res.write(half, () => res.destroy());
      return;
    }
    if (s.stall) {
      const half = body.subarray(0, body.length >> 1);
      s.bytesSent += half.length;
      res.write(half);
      stalled.push(res);
      return;
    }
    if (s.trickle > 1) {
      const n = s.trickle;
      const piece = Math.ceil(body.length / n);
      for (let i = 0; i < n; i++) {
        const part = body.subarray(i * piece, Math.min(body.length, (i + 1) * piece));
        s.bytesSent += part.length;
        if (i === n - 1) res.end(part);
        else {
          res.write(part);
          await new Promise((r) => setTimeout(r, s.trickleMs));
        }
      }
      return;
    }
    s.bytesSent += body.length;
    res.end(body);
  };
  const stalled: import('node:http').ServerResponse[] = [];
  const server = createServer((req, res) => void handle(req, res));
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  s.url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  return s;
}
