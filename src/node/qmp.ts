/**
 * A QEMU Machine Protocol (QMP) client: unix socket or TCP `host:port`.
 *
 * Handles the greeting, capability negotiation (`qmp_capabilities`), matches responses to
 * commands by `id` (so several commands may be in flight), and delivers asynchronous events
 * (STOP, RESUME, DUMP_COMPLETED, ...) to listeners. Every failure is a VmcoreError with code
 * 'QMP': a refused command carries QEMU's error class and text, a closed connection fails every
 * pending command.
 */
import net from 'node:net';
import { EventEmitter } from 'node:events';
import { VmcoreError } from '../core/errors.js';

export interface QmpGreeting {
  QMP: { version: { qemu: { major: number; minor: number; micro: number }; package: string }; capabilities: string[] };
}

export interface QmpEvent {
  event: string;
  data?: Record<string, unknown>;
  timestamp?: { seconds: number; microseconds: number };
}

/** A command QEMU answered with an error object. */
export class QmpCommandError extends VmcoreError {
  readonly errorClass: string;
  readonly command: string;
  constructor(command: string, errorClass: string, desc: string, target: string) {
    super('QMP', `QEMU refused ${command}: ${desc} (${errorClass})`, { file: target });
    this.errorClass = errorClass;
    this.command = command;
  }
}

export type QmpTarget = { path: string } | { host: string; port: number };

/**
 * Parse a monitor address: `unix:PATH`, `tcp:HOST:PORT`, `HOST:PORT` (numeric port, no slash)
 * or a socket path.
 */
export function parseQmpTarget(spec: string): QmpTarget {
  if (spec.startsWith('unix:')) return { path: spec.slice(5) };
  let s = spec;
  if (s.startsWith('tcp:')) s = s.slice(4);
  const m = /^(\[[^\]]+\]|[^/:]*):(\d{1,5})$/.exec(s);
  if (m && !spec.startsWith('./')) {
    const port = Number(m[2]);
    if (port < 1 || port > 65535) throw new VmcoreError('USAGE', `bad TCP port in QMP address ${spec}`);
    const host = m[1]!.replace(/^\[|\]$/g, '') || 'localhost';
    return { host, port };
  }
  if (spec.startsWith('tcp:')) throw new VmcoreError('USAGE', `bad QMP address ${spec} (want tcp:HOST:PORT)`);
  return { path: spec };
}

export function describeTarget(t: QmpTarget): string {
  return 'path' in t ? t.path : `${t.host}:${t.port}`;
}

interface Pending {
  command: string;
  resolve: (v: unknown) => void;
  reject: (e: unknown) => void;
  timer?: NodeJS.Timeout;
}

/** Longest QMP line accepted (QEMU's own replies are far smaller). */
const MAX_LINE = 16 << 20;

export interface QmpConnectOptions {
  /** Connect + greeting + negotiation timeout, ms (default 10000). */
  timeoutMs?: number;
}

export class QmpClient extends EventEmitter {
  readonly target: string;
  greeting!: QmpGreeting;
  private sock: net.Socket;
  private buf = '';
  private nextId = 1;
  private pending = new Map<string, Pending>();
  private closedError: VmcoreError | undefined;
  private greetingWaiter: { resolve: (g: QmpGreeting) => void; reject: (e: unknown) => void } | undefined;

  private constructor(sock: net.Socket, target: string) {
    super();
    this.sock = sock;
    this.target = target;
    sock.setEncoding('utf8');
    sock.on('data', (d: string) => this.onData(d));
    sock.on('error', (e) => this.fail(new VmcoreError('QMP', `QMP connection error: ${e.message}`, { file: target, cause: e })));
    sock.on('close', () => this.fail(new VmcoreError('QMP', 'QEMU closed the QMP connection (did QEMU exit?)', { file: target })));
  }

  /** Connect, read the greeting and enter command mode. */
  static async connect(spec: string | QmpTarget, opts: QmpConnectOptions = {}): Promise<QmpClient> {
    const target = typeof spec === 'string' ? parseQmpTarget(spec) : spec;
    const name = describeTarget(target);
    const timeoutMs = opts.timeoutMs ?? 10000;
    const sock = await new Promise<net.Socket>((resolve, reject) => {
      const s = 'path' in target ? net.createConnection({ path: target.path }) : net.createConnection({ host: target.host, port: target.port });
      const t = setTimeout(() => {
        s.destroy();
        reject(new VmcoreError('QMP', `timed out connecting to QMP at ${name}`, { file: name }));
      }, timeoutMs);
      s.once('connect', () => {
        clearTimeout(t);
        s.removeAllListeners('error');
        resolve(s);
      });
      s.once('error', (e: NodeJS.ErrnoException) => {
        clearTimeout(t);
        const why =
          e.code === 'ENOENT' ? 'no such socket' : e.code === 'ECONNREFUSED' ? 'connection refused (is QEMU running with -qmp?)' : e.message;
        reject(new VmcoreError('QMP', `cannot connect to QMP at ${name}: ${why}`, { file: name, cause: e }));
      });
    });
    const c = new QmpClient(sock, name);
    const greeting = new Promise<QmpGreeting>((resolve, reject) => (c.greetingWaiter = { resolve, reject }));
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new VmcoreError('QMP', `no QMP greeting from ${name} (another client connected?)`, { file: name })), timeoutMs);
    });
    try {
      c.greeting = await Promise.race([greeting, timeout]);
      await c.execute('qmp_capabilities', undefined, { timeoutMs });
    } catch (e) {
      c.close();
      throw e;
    } finally {
      clearTimeout(timer);
    }
    return c;
  }

  get closed(): boolean {
    return this.closedError !== undefined;
  }

  /** Run a command; resolves with its `return` value, rejects with QmpCommandError or a connection error. */
  execute<T = unknown>(command: string, args?: Record<string, unknown>, opts: { timeoutMs?: number } = {}): Promise<T> {
    if (this.closedError) return Promise.reject(this.closedError);
    const id = `vmcore-${this.nextId++}`;
    const msg: Record<string, unknown> = { execute: command, id };
    if (args !== undefined) msg.arguments = args;
    return new Promise<T>((resolve, reject) => {
      const p: Pending = { command, resolve: resolve as (v: unknown) => void, reject };
      if (opts.timeoutMs !== undefined) {
        p.timer = setTimeout(() => {
          this.pending.delete(id);
          reject(new VmcoreError('QMP', `QEMU did not answer ${command} within ${opts.timeoutMs} ms`, { file: this.target }));
        }, opts.timeoutMs);
      }
      this.pending.set(id, p);
      this.sock.write(JSON.stringify(msg) + '\n');
    });
  }

  /**
   * Wait for the next event named `name` (and matching `filter`). Register before triggering
   * the action that causes it, or pass the promise around: events are not buffered.
   */
  waitEvent(name: string, opts: { timeoutMs?: number; filter?: (e: QmpEvent) => boolean; signal?: AbortSignal } = {}): Promise<QmpEvent> {
    if (this.closedError) return Promise.reject(this.closedError);
    return new Promise<QmpEvent>((resolve, reject) => {
      let timer: NodeJS.Timeout | undefined;
      const cleanup = () => {
        this.off('event', onEvent);
        this.off('closed', onClose);
        opts.signal?.removeEventListener('abort', onAbort);
        if (timer) clearTimeout(timer);
      };
      const onEvent = (e: QmpEvent) => {
        if (e.event !== name || (opts.filter && !opts.filter(e))) return;
        cleanup();
        resolve(e);
      };
      const onClose = (err: VmcoreError) => {
        cleanup();
        reject(err);
      };
      const onAbort = () => {
        cleanup();
        reject(new VmcoreError('INTERRUPTED', `stopped waiting for ${name}`));
      };
      this.on('event', onEvent);
      this.on('closed', onClose);
      opts.signal?.addEventListener('abort', onAbort);
      if (opts.timeoutMs !== undefined) {
        timer = setTimeout(() => {
          cleanup();
          reject(new VmcoreError('QMP', `no ${name} event from QEMU within ${opts.timeoutMs} ms`, { file: this.target }));
        }, opts.timeoutMs);
      }
    });
  }

  close(): void {
    if (!this.closedError) this.fail(new VmcoreError('QMP', 'QMP connection closed', { file: this.target }), true);
    this.sock.destroy();
  }

  private onData(d: string): void {
    this.buf += d;
    let nl: number;
    while ((nl = this.buf.indexOf('\n')) >= 0) {
      const line = this.buf.slice(0, nl).trim();
      this.buf = this.buf.slice(nl + 1);
      if (line) this.onLine(line);
    }
    if (this.buf.length > MAX_LINE) {
      this.fail(new VmcoreError('QMP', `QMP message longer than ${MAX_LINE} bytes`, { file: this.target }));
      this.sock.destroy();
    }
  }

  private onLine(line: string): void {
    let msg: Record<string, unknown>;
    try {
      msg = JSON.parse(line) as Record<string, unknown>;
    } catch {
      this.fail(new VmcoreError('QMP', `QEMU sent something that is not JSON: ${line.slice(0, 80)}`, { file: this.target }));
      this.sock.destroy();
      return;
    }
    if (msg === null || typeof msg !== 'object') return;
    if ('QMP' in msg) {
      this.greetingWaiter?.resolve(msg as unknown as QmpGreeting);
      this.greetingWaiter = undefined;
      return;
    }
    if (typeof msg.event === 'string') {
      this.emit('event', msg as unknown as QmpEvent);
      return;
    }
    const id = typeof msg.id === 'string' ? msg.id : undefined;
    const p = id !== undefined ? this.pending.get(id) : undefined;
    if (!p || id === undefined) return; // an answer to nobody (e.g. after a timeout)
    this.pending.delete(id);
    if (p.timer) clearTimeout(p.timer);
    if ('error' in msg) {
      const err = (msg.error ?? {}) as { class?: string; desc?: string };
      p.reject(new QmpCommandError(p.command, String(err.class ?? 'GenericError'), String(err.desc ?? 'unknown error'), this.target));
    } else {
      p.resolve(msg.return);
    }
  }

  private fail(err: VmcoreError, quiet = false): void {
    if (this.closedError) return;
    this.closedError = err;
    for (const p of this.pending.values()) {
      if (p.timer) clearTimeout(p.timer);
      p.reject(err);
    }
    this.pending.clear();
    this.greetingWaiter?.reject(err);
    this.greetingWaiter = undefined;
    if (!quiet || this.listenerCount('closed') > 0) this.emit('closed', err);
  }
}

export interface QmpStatus {
  status: string;
  running: boolean;
  singlestep?: boolean;
}

export interface QmpDumpStatus {
  status: 'none' | 'active' | 'completed' | 'failed';
  completed: number;
  total: number;
}
