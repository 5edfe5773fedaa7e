/**
 * The flattened format (makedumpfile -F, QEMU's kdump-* output): a stream of records
 * {offset, size, bytes} that together form a kdump file. We index the records once (reading
 * only their 16-byte headers) and then serve random reads of the rebuilt file directly from
 * the flattened one: no rearranged copy is written. Bytes no record covers read as zeros
 * (what makedumpfile -R leaves in its sparse output).
 */
import { VmcoreError } from '../../errors.js';
import { readExact, type ByteSource } from '../../io/source.js';
import { FLAT_HEADER_SIZE, FLAT_SIGNATURE, FLAT_TYPE, FlatDataHeader, FlatHeader } from './structs.js';
import { latin1 } from '../../text.js';

export function isFlattened(head: Uint8Array): boolean {
  return head.length >= 16 && latin1(head.subarray(0, 16)) === FLAT_SIGNATURE + '\0\0\0\0';
}

/** Index of record pieces, sorted by logical offset, non-overlapping. */
interface Piece {
  logical: number;
  size: number;
  physical: number; // offset of the bytes in the flattened file
}

export class FlattenedSource implements ByteSource {
  readonly name: string;
  /** Logical size: the end of the highest record. */
  readonly size: number;
  /** Number of records in the stream. */
  readonly records: number;
  /** True when the stream ended without the end marker (cut short). */
  readonly truncated: boolean;
  private readonly logical: Float64Array;
  private readonly psize: Float64Array;
  private readonly physical: Float64Array;

  private constructor(
    private readonly inner: ByteSource,
    pieces: Piece[],
    records: number,
    truncated: boolean,
  ) {
    this.name = inner.name;
    this.records = records;
    this.truncated = truncated;
    this.logical = new Float64Array(pieces.map((p) => p.logical));
    this.psize = new Float64Array(pieces.map((p) => p.size));
    this.physical = new Float64Array(pieces.map((p) => p.physical));
    const last = pieces.length ? pieces[pieces.length - 1]! : undefined;
    this.size = last ? last.logical + last.size : 0;
  }

  static async open(inner: ByteSource): Promise<FlattenedSource> {
    const head = await readExact(inner, 0, 32, 'makedumpfile_header');
    const h = FlatHeader.read(head, 0, false, { file: inner.name });
    if (h.signature !== FLAT_SIGNATURE) throw new VmcoreError('BAD_MAGIC', 'not a flattened dump', { file: inner.name, offset: 0, field: 'signature' });
    if (h.type !== FLAT_TYPE) {
      throw new VmcoreError('UNSUPPORTED', `flattened header type ${h.type} (expected ${FLAT_TYPE})`, { file: inner.name, offset: 16, field: 'type' });
    }
    const pieces: Piece[] = [];
    let pos = FLAT_HEADER_SIZE;
    let records = 0;
    let truncated = true;
    // Read record headers through a 1 MiB window so indexing costs few reads.
    const WIN = 1 << 20;
    let win: Uint8Array = new Uint8Array(0);
    let winAt = 0;
    const header = async (at: number): Promise<Uint8Array | undefined> => {
      if (at + 16 > inner.size) return undefined;
      if (at < winAt || at + 16 > winAt + win.length) {
        winAt = at;
        win = await inner.read(at, Math.min(WIN, inner.size - at));
      }
      return win.subarray(at - winAt, at - winAt + 16);
    };
    for (;;) {
      const hb = await header(pos);
      if (!hb) break; // stream cut short
      const dh = FlatDataHeader.read(hb, 0, false, { file: inner.name, base: pos });
      if (dh.offset === -1n && dh.buf_size === -1n) {
        truncated = false;
        break;
      }
      if (dh.offset < 0n || dh.buf_size <= 0n || dh.offset > BigInt(Number.MAX_SAFE_INTEGER) || dh.buf_size > BigInt(1 << 30)) {
        throw new VmcoreError('BAD_FIELD', `bad flattened record (offset ${dh.offset}, size ${dh.buf_size})`, {
          file: inner.name,
          offset: pos,
          field: 'makedumpfile_data_header',
        });
      }
      const size = Number(dh.buf_size);
      const avail = Math.min(size, inner.size - (pos + 16));
      if (avail > 0) pieces.push({ logical: Number(dh.offset), size: avail, physical: pos + 16 });
      records++;
      if (avail < size) break; // record cut short
      pos += 16 + size;
    }
    return new FlattenedSource(inner, resolveOverlaps(pieces), records, truncated);
  }

  async read(offset: number, length: number): Promise<Uint8Array> {
    const end = Math.min(this.size, offset + length);
    if (offset >= end) return new Uint8Array(0);
    // Fast path: one piece covers the whole range.
    let i = this.find(offset);
    if (i >= 0 && this.logical[i]! <= offset && offset + (end - offset) <= this.logical[i]! + this.psize[i]!) {
      return this.inner.read(this.physical[i]! + (offset - this.logical[i]!), end - offset);
    }
    const out = new Uint8Array(end - offset);
    if (i < 0) i = 0;
    for (; i < this.logical.length; i++) {
      const ls = this.logical[i]!;
      const le = ls + this.psize[i]!;
      if (ls >= end) break;
      if (le <= offset) continue;
      const s = Math.max(ls, offset);
      const e = Math.min(le, end);
      const b = await this.inner.read(this.physical[i]! + (s - ls), e - s);
      out.set(b, s - offset);
    }
    return out;
  }

  async close(): Promise<void> {
    await this.inner.close?.();
  }

  /** Index of the last piece starting at or before `offset` (-1 if none). */
  private find(offset: number): number {
    let lo = 0;
    let hi = this.logical.length - 1;
    let ans = -1;
    while (lo <= hi) {
      const mid = (lo + hi) >> 1;
      if (this.logical[mid]! <= offset) {
        ans = mid;
        lo = mid + 1;
      } else hi = mid - 1;
    }
    return ans;
  }
}

/**
 * Records may overwrite earlier ones (a header rewritten at the end); the later record wins,
 * as with makedumpfile -R. Returns sorted, non-overlapping pieces.
 */
function resolveOverlaps(pieces: Piece[]): Piece[] {
  const order = pieces.map((p, i) => ({ ...p, i }));
  order.sort((a, b) => a.logical - b.logical || a.i - b.i);
  let overlap = false;
  for (let k = 1; k < order.length; k++) {
    const prev = order[k - 1]!;
    if (order[k]!.logical < prev.logical + prev.size) {
      overlap = true;
      break;
    }
  }
  if (!overlap) return order;
  // Slow path: walk records newest first, keep only bytes no newer record covered.
  const covered: { s: number; e: number }[] = []; // sorted, disjoint
  const out: Piece[] = [];
  for (let k = pieces.length - 1; k >= 0; k--) {
    const p = pieces[k]!;
    let s = p.logical;
    const e = p.logical + p.size;
    // find first covered interval ending after s
    let lo = 0;
    let hi = covered.length;
    while (lo < hi) {
      const m = (lo + hi) >> 1;
      if (covered[m]!.e <= s) lo = m + 1;
      else hi = m;
    }
    let j = lo;
    while (s < e) {
      const c = covered[j];
      const gapEnd = c && c.s < e ? c.s : e;
      if (gapEnd > s) out.push({ logical: s, size: gapEnd - s, physical: p.physical + (s - p.logical) });
      if (!c || c.s >= e) break;
      s = Math.max(s, c.e);
      j++;
    }
    // merge [p.logical, e) into covered
    let a = p.logical;
    let b = e;
    let first = lo;
    while (first > 0 && covered[first - 1]!.e >= a) first--;
    let last = first;
    while (last < covered.length && covered[last]!.s <= b) {
      a = Math.min(a, covered[last]!.s);
      b = Math.max(b, covered[last]!.e);
      last++;
    }
    covered.splice(first, last - first, { s: a, e: b });
  }
  out.sort((x, y) => x.logical - y.logical);
  return out;
}
