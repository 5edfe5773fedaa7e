/** Small shared CLI helpers: number parsing, output, error reporting, exit codes. */
import { printable, printableText } from '../core/text.js';
import { hex64 } from '../core/hex.js';
import { writeFile } from 'node:fs/promises';
import { isVmcoreError, VmcoreError } from '../core/errors.js';
import type { Warning } from '../core/warnings.js';

/** Exit statuses: 0 ok, 1 error, 2 usage error, 130 interrupted (SIGINT), 143 terminated (SIGTERM), 141 stdout closed (as SIGPIPE). */
export const EXIT_ERROR = 1;
export const EXIT_USAGE = 2;
export const EXIT_INTERRUPTED = 130;
export const EXIT_PIPE = 141;
export const EXIT_TERMINATED = 143;

/** The signal that interrupted the command, if one did (its exit status follows it). */
let lastSignal: 'SIGINT' | 'SIGTERM' | undefined;

/** The exit status for an error thrown by a command. */
export function exitCodeOf(e: unknown): number {
  if (isClosedPipe(e)) return EXIT_PIPE;
  if (isVmcoreError(e) && e.code === 'USAGE') return EXIT_USAGE;
  if (isVmcoreError(e) && e.code === 'INTERRUPTED') return lastSignal === 'SIGTERM' ? EXIT_TERMINATED : EXIT_INTERRUPTED;
  return EXIT_ERROR;
}

/** A write to a pipe whose reader has gone (`| head`). */
export function isClosedPipe(e: unknown): boolean {
  const code = (e as NodeJS.ErrnoException | undefined)?.code;
  return code === 'EPIPE' || code === 'ERR_STREAM_DESTROYED';
}

/**
 * Process-wide conventions every command gets: a closed stdout ends the command quietly
 * with status 141 (what a shell reports for a tool killed by SIGPIPE, like `cat | head`);
 * SIGINT/SIGTERM end it with 130/143 unless the command handles the signal itself (convert
 * and dump remove or mark their partial output first, then exit with the same 130/143).
 */
export function installProcessConventions(): void {
  process.stdout.on('error', (e: NodeJS.ErrnoException) => {
    if (isClosedPipe(e)) process.exit(EXIT_PIPE);
    process.stderr.write(`vmcore: cannot write to stdout: ${e.message}\n`);
    process.exit(EXIT_ERROR);
  });
  for (const [sig, status] of [['SIGINT', EXIT_INTERRUPTED], ['SIGTERM', EXIT_TERMINATED]] as const) {
    process.on(sig, () => {
      lastSignal = sig;
      // a command's own handler (registered later) does its cleanup and ends with INTERRUPTED
      if (process.listenerCount(sig) > 1) return;
      process.exit(status);
    });
  }
}

/**
 * Ends the process with `process.exitCode` once the command is done, when what it wrote to
 * stdout and stderr has been handed to the system: Node's own teardown when the event loop
 * empties (freeing the heaps of the main and worker threads) cost ~25 ms after a filtering
 * convert, 3 % of it (bench/README.md, "Exit when done"). A stream that cannot drain (a closed
 * pipe) is not waited for.
 */
export async function exitWhenFlushed(): Promise<never> {
  for (const s of [process.stdout, process.stderr]) {
    if (s.writableLength === 0 || s.destroyed) continue;
    await new Promise<void>((resolve) => {
      s.once('drain', resolve);
      s.once('close', resolve);
      s.once('error', () => resolve());
    });
  }
  process.exit();
}

/** Write a whole output file; an existing file is kept unless `force` (error EXISTS). */
export async function writeOutputFile(path: string, data: Uint8Array | string, force?: boolean): Promise<void> {
  try {
    await writeFile(path, data, { flag: force ? 'w' : 'wx' });
  } catch (e) {
    const err = e as NodeJS.ErrnoException;
    if (err.code === 'EEXIST') throw new VmcoreError('EXISTS', 'output exists (use --force to overwrite it)', { file: path });
    throw new VmcoreError('IO', `cannot write: ${err.message}`, { file: path, cause: e });
  }
}

/** A count given on the command line (`--threads`, `--split`, a dump level): digits only. USAGE otherwise. */
export function parseCount(s: string, what: string): number {
  if (!/^\d+$/.test(s)) throw new VmcoreError('USAGE', `${what} wants a whole number from 0, got ${JSON.stringify(s)}`);
  return Number(s);
}

export function parseNumber(s: string, what: string): number {
  const t = s.trim().replace(/_/g, '');
  const m = /^(0x[0-9a-f]+|\d+)([kmgt]i?b?)?$/i.exec(t);
  if (!m) throw new VmcoreError('USAGE', `${what}: not a number: ${s}`);
  let v = Number(BigInt(m[1]!));
  const unit = (m[2] ?? '').toLowerCase()[0];
  const mult: Record<string, number> = { k: 1024, m: 1024 ** 2, g: 1024 ** 3, t: 1024 ** 4 };
  if (unit) v *= mult[unit]!;
  if (!Number.isSafeInteger(v)) throw new VmcoreError('USAGE', `${what}: ${s} is too large`);
  return v;
}

export function parseBigint(s: string, what: string): bigint {
  const t = s.trim();
  try {
    if (/^-?\d+$/.test(t)) return BigInt.asUintN(64, BigInt(t));
    if (/^0x[0-9a-f]{1,16}$/i.test(t)) return BigInt(t);
  } catch {
    /* fallthrough */
  }
  throw new VmcoreError('USAGE', `${what}: not a 64-bit number: ${s}`);
}

export function humanBytes(n: number): string {
  const u = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let i = 0;
  let v = n;
  while (v >= 1024 && i < u.length - 1) {
    v /= 1024;
    i++;
  }
  return `${i ? v.toFixed(1) : v} ${u[i]}`;
}

/** Terminal-safe text (src/core/text.ts), for the commands' messages and reports. */
export { printable, printableText };

/**
 * Write the data of a command to stdout. A string is text for a terminal: control characters
 * other than tab and newline (ESC sequences, CR, BEL, DEL, C1) are written as \xNN, so that a
 * string from a hostile dump (a machine name, a task's comm, a module name) cannot move the cursor
 * or forge lines. Bytes (`Uint8Array`) are written as they are; so is text written with
 * {@link writeStdoutRaw} (JSON, whose encoder escapes control characters itself, and dmesg's
 * makedumpfile-compatible escaping).
 */
export function writeStdout(data: Uint8Array | string): Promise<void> {
  return writeStdoutRaw(typeof data === 'string' ? printableText(data) : data);
}

/** Write to stdout as is; resolves when written (rejects with the stream's error, e.g. EPIPE). */
export function writeStdoutRaw(data: Uint8Array | string): Promise<void> {
  return new Promise((resolve, reject) => {
    process.stdout.write(data, (err) => (err ? reject(err) : resolve()));
  });
}

/**
 * Print warnings as every command does in text mode: one `warning: TEXT` line each on stderr
 * (messages; stdout holds the data alone). `--json` carries them in `warnings[]` instead.
 */
export function printWarnings(ws: Iterable<Warning>): void {
  for (const w of ws) process.stderr.write(`warning: ${printable(w.text)}\n`);
}

export function printJson(v: unknown): Promise<void> {
  return writeStdoutRaw(jsonText(v) + '\n');
}

/**
 * `v` as JSON text (bigints as hex, `indent` spaces; none when 0), with DEL, the C1 controls
 * (U+0080-U+009F, e.g. U+009B, the one-character CSI some terminals obey) and the bidirectional
 * formatting characters written as \uXXXX: JSON.stringify leaves them raw, and they appear only
 * inside strings, where the escape is the same value.
 */
export function jsonText(v: unknown, indent = 2): string {
  return JSON.stringify(v, (_k, x) => (typeof x === 'bigint' ? hex64(x) : x), indent || undefined).replace(UNSAFE_IN_JSON, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`);
}
// eslint-disable-next-line no-control-regex
const UNSAFE_IN_JSON = /[\u007f-\u009f\u200e\u200f\u202a-\u202e\u2066-\u2069]/g;

const HEX_BYTE = Array.from({ length: 256 }, (_, x) => x.toString(16).padStart(2, '0'));
const ASCII_BYTE = Array.from({ length: 256 }, (_, x) => (x >= 0x20 && x < 0x7f ? String.fromCharCode(x) : '.'));

/**
 * The hex dump of `b` (16 bytes a line: address from `base`, hex, printable ASCII) in pieces of
 * at most `lines` lines each, so that a large read is written as it is formatted: the whole dump
 * of 128 MiB as one string passed V8's string length limit after 3 GB of memory.
 */
export function* hexdumpChunks(b: Uint8Array, base: number | bigint, lines = 4096): Generator<string> {
  const start = BigInt(base);
  for (let c = 0; c < b.length; c += lines * 16) {
    let out = '';
    for (let i = c; i < Math.min(b.length, c + lines * 16); i += 16) {
      const n = Math.min(16, b.length - i);
      let hex = '';
      let asc = '';
      for (let k = 0; k < n; k++) {
        hex += (k ? ' ' : '') + HEX_BYTE[b[i + k]!]!;
        asc += ASCII_BYTE[b[i + k]!]!;
      }
      out += `${(start + BigInt(i)).toString(16).padStart(12, '0')}  ${hex.padEnd(47)}  |${asc}|\n`;
    }
    yield out;
  }
}

/**
 * A progress bar on stderr, drawn only when stderr is a terminal (and not with --quiet/--json):
 * `update(done, total)` in any unit, `stop()` when done. Without a terminal it does nothing.
 */
export async function progressBar(label: string, enabled: boolean): Promise<{ update(done: number, total: number): void; stop(): void }> {
  if (!enabled || !process.stderr.isTTY) return { update: () => undefined, stop: () => undefined };
  const { SingleBar, Presets } = await import('cli-progress');
  const bar = new SingleBar({ format: ` ${label} [{bar}] {percentage}% | ETA {eta_formatted}`, hideCursor: true, stream: process.stderr, etaBuffer: 50 }, Presets.shades_classic);
  let started = false;
  return {
    update(done, total) {
      if (!started) {
        started = true;
        bar.start(total, 0);
      }
      bar.update(Math.min(done, total));
    },
    stop() {
      if (started) bar.stop();
    },
  };
}
