/**
 * Generic helpers over PhysicalMemory, shared by every format reader, plus an in-memory
 * implementation for tests and synthetic dumps.
 */
import { VmcoreError } from './errors.js';
import { isPresent, type PageRun, type PageState, type PhysicalMemory, type ReadPhysOptions } from './dump.js';

/** readPhys implemented on top of pageState/readPage (readers may use it directly). */
export async function readPhysGeneric(
  mem: PhysicalMemory,
  addr: number,
  length: number,
  opts: ReadPhysOptions = {},
  file?: string,
): Promise<Uint8Array> {
  if (!Number.isSafeInteger(addr) || !Number.isSafeInteger(length) || addr < 0 || length < 0) {
    throw new VmcoreError('OUT_OF_BOUNDS', `bad physical read 0x${addr.toString(16)} + ${length}`, { file });
  }
  if (length > 1 << 30) throw new VmcoreError('OUT_OF_BOUNDS', `physical read of ${length} bytes is too large (max 1 GiB)`, { file });
  // a caller's buffer is not zero: what is not a data page is cleared explicitly
  const reused = opts.into !== undefined && opts.into.length >= length;
  const out = reused ? opts.into!.subarray(0, length) : new Uint8Array(length);
  const ps = mem.pageSize;
  let done = 0;
  while (done < length) {
    const a = addr + done;
    const pfn = Math.floor(a / ps);
    const inPage = a - pfn * ps;
    const n = Math.min(ps - inPage, length - done);
    const st = pfn < mem.maxPfn ? await mem.pageState(pfn) : 'hole';
    if (isPresent(st)) {
      if (st === 'data') out.set((await mem.readPage(pfn)).subarray(inPage, inPage + n), done);
      else if (reused) out.fill(0, done, done + n);
    } else if (!opts.fillMissing) {
      // A page the reader counts as missing may be missing for a reason only it knows (a damaged
      // page descriptor, a bad compressed size): let it throw that error rather than guess.
      if (st === 'missing') await mem.readPage(pfn);
      throw notPresent(pfn, st, ps, file);
    } else if (reused) out.fill(0, done, done + n);
    done += n;
  }
  return out;
}

/** PAGE_NOT_PRESENT for page frame `pfn` (of `pageSize` bytes) in `state`, naming its physical address. */
export function notPresent(pfn: number, state: PageState, pageSize: number, file?: string): VmcoreError {
  const why: Record<PageState, string> = {
    data: 'present',
    zero: 'present',
    excluded: 'was excluded from the dump by its producer',
    missing: 'is missing from the file (incomplete dump)',
    hole: 'is not RAM in this dump',
  };
  return new VmcoreError('PAGE_NOT_PRESENT', `page frame 0x${pfn.toString(16)} (physical 0x${(pfn * pageSize).toString(16)}) ${why[state]}`, {
    file,
    field: `pfn 0x${pfn.toString(16)}`,
  });
}

export function isZeroPage(p: Uint8Array): boolean {
  // 8 bytes at a time where aligned; early exit on the first non-zero word
  if ((p.byteOffset & 7) === 0 && (p.length & 7) === 0) {
    const w = new Float64Array(p.buffer, p.byteOffset, p.length >> 3);
    for (let i = 0; i < w.length; i++) if (w[i] !== 0 || Object.is(w[i], -0)) return false;
    return true;
  }
  for (let i = 0; i < p.length; i++) if (p[i] !== 0) return false;
  return true;
}

/**
 * Sparse in-memory physical memory: pages given explicitly, everything else a hole (or the
 * state given in `states`). For tests and for building synthetic dumps.
 */
export class SparseMemory implements PhysicalMemory {
  readonly pages = new Map<number, Uint8Array>();
  readonly states = new Map<number, PageState>();
  constructor(
    readonly maxPfn: number,
    readonly pageSize = 4096,
  ) {}

  /** Set page `pfn` to `data` (padded with zeros to a page). */
  set(pfn: number, data: Uint8Array | string): this {
    const p = new Uint8Array(this.pageSize);
    p.set(typeof data === 'string' ? new TextEncoder().encode(data) : data.subarray(0, this.pageSize));
    this.pages.set(pfn, p);
    this.states.set(pfn, 'data');
    return this;
  }
  /** Write bytes at a physical address, creating pages as needed. */
  write(addr: number, data: Uint8Array): this {
    for (let i = 0; i < data.length; ) {
      const a = addr + i;
      const pfn = Math.floor(a / this.pageSize);
      const off = a % this.pageSize;
      let p = this.pages.get(pfn);
      if (!p) {
        p = new Uint8Array(this.pageSize);
        this.pages.set(pfn, p);
        this.states.set(pfn, 'data');
      }
      const n = Math.min(this.pageSize - off, data.length - i);
      p.set(data.subarray(i, i + n), off);
      i += n;
    }
    return this;
  }
  setState(pfn: number, s: PageState): this {
    this.states.set(pfn, s);
    return this;
  }
  async pageState(pfn: number): Promise<PageState> {
    return this.states.get(pfn) ?? 'hole';
  }
  async *pageRuns(start = 0, end = this.maxPfn): AsyncIterable<PageRun> {
    // iterate only over known pfns, filling gaps with holes
    const keys = [...this.states.keys()].filter((k) => k >= start && k < end).sort((a, b) => a - b);
    let cur: PageRun | undefined;
    let p = start;
    const push = function* (r: PageRun): Generator<PageRun> {
      if (cur && cur.state === r.state && cur.endPfn === r.startPfn) cur.endPfn = r.endPfn;
      else {
        if (cur) yield cur;
        cur = { ...r };
      }
    };
    for (const k of keys) {
      if (k > p) yield* push({ startPfn: p, endPfn: k, state: 'hole' });
      yield* push({ startPfn: k, endPfn: k + 1, state: this.states.get(k)! });
      p = k + 1;
    }
    if (p < end) yield* push({ startPfn: p, endPfn: end, state: 'hole' });
    if (cur) yield cur;
  }
  async readPage(pfn: number): Promise<Uint8Array> {
    const s = await this.pageState(pfn);
    if (s === 'zero') return new Uint8Array(this.pageSize);
    if (s !== 'data') throw notPresent(pfn, s, this.pageSize);
    return this.pages.get(pfn) ?? new Uint8Array(this.pageSize);
  }
  readPhys(addr: number, length: number, opts?: ReadPhysOptions): Promise<Uint8Array> {
    return readPhysGeneric(this, addr, length, opts);
  }
}
