/**
 * Typed errors. Every error raised while reading untrusted input carries a stable `code`,
 * the file it concerns, the byte offset and the structure field, so that programs can act on
 * it and users can find the bad byte.
 */
import { hex } from './hex.js';
export type ErrorCode =
  | 'BAD_MAGIC' // not a format we know
  | 'UNSUPPORTED' // a known format, but a variant or version we do not handle
  | 'TRUNCATED' // the file ends before a structure it declares
  | 'OUT_OF_BOUNDS' // a size or offset points outside the file or beyond a sane limit
  | 'BAD_FIELD' // a field holds an impossible value
  | 'DECOMPRESS' // a page or chunk does not decompress to its declared size
  | 'CODEC_UNAVAILABLE' // the codec is not available in this build / environment
  | 'PAGE_NOT_PRESENT' // a read touched a page that is not in the dump
  | 'PAGE_DAMAGED' // a page's descriptor is damaged: that page is lost, the others are not
  | 'ADDRESS_TRANSLATION' // a virtual address does not translate
  | 'NO_VMCOREINFO' // the job needs VMCOREINFO and none could be found
  | 'NO_BTF' // the job needs kernel types (BTF) and none could be found
  | 'NO_SYMBOLS' // the job needs the kernel's symbol table (kallsyms) and it could not be found
  | 'NO_TASK' // no task has the pid asked for
  | 'EXISTS' // output exists and --force was not given
  | 'IO' // an operating-system I/O error
  | 'HTTP' // an HTTP server refused a read, ignored Range, or the file changed while it was read
  | 'INTERRUPTED' // the user or a signal stopped the job
  | 'USAGE' // bad arguments
  | 'NOT_SEEKABLE' // the job needs a seekable file and was given a pipe or standard input
  | 'QMP' // the QEMU monitor refused or failed
  | 'TRIAGE'; // page filtering would lose what the analysis of the dump needs

export interface ErrorDetails {
  file?: string | undefined;
  /** A byte offset in the file. */
  offset?: number | bigint | undefined;
  /** A memory address (kernel virtual or physical, as the message says), never a file offset. */
  address?: number | bigint | undefined;
  field?: string | undefined;
  cause?: unknown;
}

export class VmcoreError extends Error {
  readonly code: ErrorCode;
  readonly file?: string;
  readonly offset?: number | bigint;
  readonly address?: number | bigint;
  readonly field?: string;

  constructor(code: ErrorCode, message: string, details: ErrorDetails = {}) {
    super(formatMessage(message, details), details.cause !== undefined ? { cause: details.cause } : undefined);
    this.name = 'VmcoreError';
    this.code = code;
    if (details.file !== undefined) this.file = details.file;
    if (details.offset !== undefined) this.offset = details.offset;
    if (details.address !== undefined) this.address = details.address;
    if (details.field !== undefined) this.field = details.field;
  }

  /** Plain-object form, survives structured clone (worker threads) and JSON. */
  toJSON(): Record<string, unknown> {
    return {
      code: this.code,
      message: this.message,
      file: this.file,
      offset: this.offset === undefined ? undefined : hex(this.offset),
      address: this.address === undefined ? undefined : hex(this.address),
      field: this.field,
    };
  }

  static fromJSON(o: { code: ErrorCode; message: string; file?: string; field?: string }): VmcoreError {
    const e = new VmcoreError(o.code, '', {});
    e.message = o.message;
    return Object.assign(e, { file: o.file, field: o.field });
  }
}


function formatMessage(message: string, d: ErrorDetails): string {
  const where: string[] = [];
  if (d.file !== undefined) where.push(d.file);
  if (d.offset !== undefined) where.push(`offset ${hex(d.offset)}`);
  if (d.address !== undefined) where.push(`address ${hex(d.address)}`);
  if (d.field !== undefined) where.push(`field ${d.field}`);
  return where.length ? `${where.join(': ')}: ${message}` : message;
}

export function isVmcoreError(e: unknown): e is VmcoreError {
  return e instanceof VmcoreError;
}

/** Throws OUT_OF_BOUNDS unless `value` is a safe non-negative integer not above `max`. */
export function checkRange(
  value: number | bigint,
  max: number,
  field: string,
  details: ErrorDetails = {},
): number {
  const n = typeof value === 'bigint' ? (value <= BigInt(Number.MAX_SAFE_INTEGER) && value >= 0n ? Number(value) : -1) : value;
  if (!Number.isSafeInteger(n) || n < 0 || n > max) {
    throw new VmcoreError('OUT_OF_BOUNDS', `${field} = ${value.toString()} is out of range (max ${max})`, {
      ...details,
      field,
    });
  }
  return n;
}
