/**
 * The memory digest: SHA-256 over, for each present page in ascending pfn order, the pfn as
 * 8-byte little-endian followed by the page's bytes. Present = `data` or `zero` (an ELF
 * PT_LOAD, zero tail included, or a set bit of the kdump dumpable bitmap). With `skipZero`,
 * all-zero pages are left out, so an ELF dump and a zero-excluding kdump of the same memory
 * give the same digest.
 */
import { sha256 } from '@noble/hashes/sha256';
import { bytesToHex } from '@noble/hashes/utils';
import { isPresent, splitUnreadable, type Dump, type PhysicalMemory } from './dump.js';
import { isZeroPage } from './memory.js';
import { VmcoreError } from './errors.js';

export interface Hasher {
  update(b: Uint8Array): unknown;
  digestHex(): string;
}

/**
 * What makes Hashers. `digestOf`, where the implementation has it, digests one buffer in one call
 * (hex), as `h = make(); h.update(b); h.digestHex()` would, without an object per digest: per-page
 * digests (pageDigests) take it.
 */
export type HasherFactory = (() => Hasher) & { digestOf?: (b: Uint8Array) => string };

/** One buffer's digest (hex) with `hasher`: its one-call form when it has one. */
export function digestOne(hasher: HasherFactory, b: Uint8Array): string {
  if (hasher.digestOf) return hasher.digestOf(b);
  const h = hasher();
  h.update(b);
  return h.digestHex();
}

/** SHA-256 in pure JS (@noble/hashes), for browsers and `hashMemory`'s default. */
export function portableSha256(): Hasher {
  const h = sha256.create();
  return { update: (b) => h.update(b), digestHex: () => bytesToHex(h.digest()) };
}

export interface MemoryDigest {
  sha256: string;
  /** Pages hashed. */
  pages: number;
  /** Present pages that are all zeros (hashed or, with skipZero, skipped). */
  zeroPages: number;
  /** Pages the dump should hold but does not (incomplete or truncated dump): not hashed. */
  missingPages: number;
  /** Pages whose kdump page descriptor is damaged (impossible size or flags): not hashed. As `info`'s `pages.damaged` (`splitUnreadable`). */
  damagedPages: number;
}

/**
 * The digest's one step, shared by every way of reading the pages (hashMemory, hashPageChunks,
 * the worker-thread hash of src/node/parallel-read.ts): feed each present page in ascending pfn
 * order; it counts zero pages, leaves them out with `skipZero`, and hashes (pfn as u64 LE, page).
 */
export class PageDigest {
  private readonly h: Hasher;
  private readonly pfnBuf = new Uint8Array(8);
  private readonly dv = new DataView(this.pfnBuf.buffer);
  /** Pages hashed. */
  pages = 0;
  /** Present pages that are all zeros. */
  zeroPages = 0;

  constructor(hasher: () => Hasher, private readonly skipZero: boolean) {
    this.h = hasher();
  }

  /** Feed page `pfn` (`knownZero`: the dump says it is a zero page, its bytes are not checked). */
  add(pfn: number, page: Uint8Array, knownZero = false): void {
    const zero = knownZero || isZeroPage(page);
    if (zero) this.zeroPages++;
    if (zero && this.skipZero) return;
    this.dv.setBigUint64(0, BigInt(pfn), true);
    this.h.update(this.pfnBuf);
    this.h.update(page);
    this.pages++;
  }

  /** The digest and its counts; the unreadable pages as the caller counted them (`unreadablePages`). */
  result(unreadable: { missing: number; damaged: number }): MemoryDigest {
    return { sha256: this.h.digestHex(), pages: this.pages, zeroPages: this.zeroPages, missingPages: unreadable.missing, damagedPages: unreadable.damaged };
  }
}

/**
 * The pages of `mem` the digest cannot read, as `info` counts them: `unreadable` pages the page
 * map calls 'missing', split into missing and damaged (`splitUnreadable`). Reads the page
 * descriptors (`details()`, kdump: 24 bytes a page) only when there are unreadable pages and
 * `mem` is a whole Dump; otherwise all are missing.
 */
export async function unreadablePages(mem: PhysicalMemory & Partial<Pick<Dump, 'details'>>, unreadable: number): Promise<{ missing: number; damaged: number }> {
  if (unreadable === 0 || !mem.details) return { missing: unreadable, damaged: 0 };
  return splitUnreadable(unreadable, (await mem.details()).codecs);
}

export interface HashOptions {
  skipZero?: boolean;
  hasher?: () => Hasher;
  onProgress?: (pfnDone: number, maxPfn: number) => void;
}

/**
 * The memory digest of a dump: SHA-256 over (pfn as 8 bytes little-endian, page bytes) of every
 * present page in pfn order, zero pages included unless `skipZero`. Two dumps of the same memory
 * in any format give the same digest (`vmcore hash`).
 * @param mem any physical memory (an opened dump).
 * @param opts `hasher` (default `portableSha256`; `nodeSha256` in Node is faster), `skipZero`,
 *   `onProgress(pfnDone, maxPfn)`.
 * @returns the hex digest and the counts of pages hashed, zero, missing and damaged (pages; the
 *   last two are not hashed, see `unreadablePages`).
 * @throws the page read errors of `mem` (PAGE_DAMAGED, DECOMPRESS, IO, HTTP).
 */
export async function hashMemory(mem: PhysicalMemory & Partial<Pick<Dump, 'details'>>, opts: HashOptions = {}): Promise<MemoryDigest> {
  const d = new PageDigest(opts.hasher ?? portableSha256, !!opts.skipZero);
  const zero = new Uint8Array(mem.pageSize);
  let missing = 0;
  let lastReport = 0;
  for await (const run of mem.pageRuns(0, mem.maxPfn)) {
    if (run.state === 'missing') missing += run.endPfn - run.startPfn;
    if (!isPresent(run.state)) continue;
    for (let pfn = run.startPfn; pfn < run.endPfn; pfn++) {
      if (run.state === 'zero') d.add(pfn, zero, true);
      else d.add(pfn, await mem.readPage(pfn));
      if (opts.onProgress && pfn - lastReport >= 65536) {
        lastReport = pfn;
        opts.onProgress(pfn, mem.maxPfn);
      }
    }
  }
  return d.result(await unreadablePages(mem, missing));
}

/**
 * The memory digest of pages that arrive once, in order (a dump read from a pipe): `chunks`
 * holds whole pages of `pageSize` bytes from `startPfn` on, in strictly ascending pfn order
 * (the digest's order). Gives the same digest as `hashMemory` over the same memory. Throws
 * BAD_FIELD when a chunk is not whole pages or goes back in pfn order (an ELF whose segments
 * are not in physical order in the file cannot be hashed in one pass).
 */
export async function hashPageChunks(
  chunks: AsyncIterable<{ startPfn: number; data: Uint8Array }>,
  pageSize: number,
  opts: HashOptions & { name?: string; totalPages?: number } = {},
): Promise<MemoryDigest> {
  const d = new PageDigest(opts.hasher ?? portableSha256, !!opts.skipZero);
  let seen = 0;
  let next = 0;
  let lastReport = 0;
  for await (const c of chunks) {
    if (c.data.length % pageSize !== 0) throw new VmcoreError('BAD_FIELD', `a chunk of ${c.data.length} bytes is not whole pages`, { file: opts.name });
    if (c.startPfn < next) {
      throw new VmcoreError('BAD_FIELD', `pages go back from pfn 0x${(next - 1).toString(16)} to 0x${c.startPfn.toString(16)}: the digest needs ascending pfn order, which one pass over this stream does not give; hash the saved file`, {
        file: opts.name,
      });
    }
    const n = c.data.length / pageSize;
    for (let i = 0; i < n; i++) d.add(c.startPfn + i, c.data.subarray(i * pageSize, (i + 1) * pageSize));
    next = c.startPfn + n;
    seen += n;
    if (opts.onProgress && opts.totalPages && seen - lastReport >= 65536) {
      lastReport = seen;
      opts.onProgress(seen, opts.totalPages);
    }
  }
  return d.result({ missing: 0, damaged: 0 });
}
