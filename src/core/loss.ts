/**
 * One unreadable page is a local loss, not a failure of the whole analysis. This is the one rule
 * every analysis (dmesg, VMCOREINFO recovery, phys_base proof, symbols, backtraces) applies:
 * read, or record the loss with a warning and go on with what the rest of the dump holds.
 */
import { warning, type Warning } from './warnings.js';
import { VmcoreError, isVmcoreError, type ErrorCode } from './errors.js';

/**
 * Error codes that mean "this page (or this address) cannot be read", as opposed to a broken
 * file structure or a bug: the page is not in the dump (excluded, missing, a hole), its
 * descriptor is damaged, its data does not decompress, or the address does not translate.
 */
export const PAGE_LOSS_CODES: readonly ErrorCode[] = ['PAGE_NOT_PRESENT', 'PAGE_DAMAGED', 'DECOMPRESS', 'ADDRESS_TRANSLATION'];

/** Whether `e` is the loss of one page or address (see PAGE_LOSS_CODES). */
export function isPageLoss(e: unknown): e is VmcoreError {
  return isVmcoreError(e) && PAGE_LOSS_CODES.includes(e.code);
}

/**
 * Collects page losses of one analysis: `read` runs a read and returns its result, or records
 * the loss and returns undefined; any other error propagates. `warnings()` summarises the
 * losses in one line per kind of read (at most `maxListed` addresses named each).
 */
export class LossLog {
  private readonly byWhat = new Map<string, { count: number; first: string[] }>();

  constructor(private readonly maxListed = 4) {}

  async read<T>(what: string, read: () => Promise<T>): Promise<T | undefined> {
    try {
      return await read();
    } catch (e) {
      if (!isPageLoss(e)) throw e;
      this.record(what, e);
      return undefined;
    }
  }

  /** Record a loss raised elsewhere (`e` must satisfy isPageLoss). */
  record(what: string, e: VmcoreError): void {
    let l = this.byWhat.get(what);
    if (!l) this.byWhat.set(what, (l = { count: 0, first: [] }));
    l.count++;
    if (l.first.length < this.maxListed) l.first.push(e.message);
  }

  get count(): number {
    let n = 0;
    for (const l of this.byWhat.values()) n += l.count;
    return n;
  }

  warnings(): Warning[] {
    return [...this.byWhat].map(
      ([what, l]) => warning('MEMORY_UNREADABLE', `${what}: ${l.count} unreadable ${l.count === 1 ? 'read' : 'reads'} skipped (${l.first.join('; ')}${l.count > l.first.length ? '; …' : ''})`),
    );
  }
}

/** Bytes of a range read page by page: what could be read, and the byte ranges that could not. */
export interface PartialBytes {
  /** The range's bytes; those inside `lost` are zero. */
  bytes: Uint8Array;
  /** Unreadable byte ranges [start, end) relative to the range's start, ascending, merged, each with its first page's error. */
  lost: { start: number; end: number; error: VmcoreError }[];
}

/**
 * Read `length` bytes at `address` through `read`, keeping what can be read: the range is read at
 * once, and when a page of it cannot be read (isPageLoss), again in `chunk`-byte pieces aligned
 * to `chunk` (4096, the smallest page of every architecture, so that one lost page costs that
 * page), recording the pieces that fail. Other errors propagate. Memory: one buffer of `length`.
 */
export async function readWithLosses(read: (address: bigint, length: number) => Promise<Uint8Array>, address: bigint, length: number, chunk = 4096): Promise<PartialBytes> {
  try {
    return { bytes: await read(address, length), lost: [] };
  } catch (e) {
    if (!isPageLoss(e)) throw e;
  }
  const bytes = new Uint8Array(length);
  const lost: PartialBytes['lost'] = [];
  const c = BigInt(chunk);
  for (let n = 0; n < length; ) {
    const len = Math.min(length - n, chunk - Number((address + BigInt(n)) % c));
    try {
      bytes.set(await read(address + BigInt(n), len), n);
    } catch (e) {
      if (!isPageLoss(e)) throw e;
      const last = lost[lost.length - 1];
      if (last && last.end === n) last.end = n + len;
      else lost.push({ start: n, end: n + len, error: e });
    }
    n += len;
  }
  return { bytes, lost };
}

/** Whether [start, end) overlaps one of `lost` (see PartialBytes). */
export function overlapsLoss(lost: PartialBytes['lost'], start: number, end: number): PartialBytes['lost'][number] | undefined {
  return lost.find((l) => l.start < end && start < l.end);
}
