/**
 * The memory digest: SHA-256 over, for each present page in ascending pfn order, the pfn as
 * 8-byte little-endian followed by the page's bytes. Present = `data` or `zero` (an ELF
 * PT_LOAD, zero tail included, or a set bit of the kdump dumpable bitmap). With `skipZero`,
 * all-zero pages are left out, so an ELF dump and a zero-excluding kdump of the same memory
 * give the same digest.
 */
import { sha256 } from '@noble/hashes/sha256';
import { bytesToHex } from '@noble/hashes/utils';
import { isPresent, type PhysicalMemory } from './dump.js';
import { isZeroPage } from './memory.js';
import { VmcoreError } from './errors.js';

export interface Hasher {
  update(b: Uint8Array): unknown;
  digestHex(): string;
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
  /** Pages the dump should hold but does not (incomplete dump): not hashed. */
  missingPages: number;
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
 * @returns the hex digest and the counts of pages hashed, zero and missing (pages).
 * @throws the page read errors of `mem` (PAGE_DAMAGED, DECOMPRESS, IO, HTTP).
 */
export async function hashMemory(mem: PhysicalMemory, opts: HashOptions = {}): Promise<MemoryDigest> {
  const h = (opts.hasher ?? portableSha256)();
  const pfnBuf = new Uint8Array(8);
  const dv = new DataView(pfnBuf.buffer);
  const zero = new Uint8Array(mem.pageSize);
  let pages = 0;
  let zeroPages = 0;
  let missing = 0;
  let lastReport = 0;
  for await (const run of mem.pageRuns(0, mem.maxPfn)) {
    if (run.state === 'missing') missing += run.endPfn - run.startPfn;
    if (!isPresent(run.state)) continue;
    for (let pfn = run.startPfn; pfn < run.endPfn; pfn++) {
      let page: Uint8Array;
      let isZero: boolean;
      if (run.state === 'zero') {
        page = zero;
        isZero = true;
      } else {
        page = await mem.readPage(pfn);
        isZero = isZeroPage(page);
      }
      if (isZero) zeroPages++;
      if (isZero && opts.skipZero) continue;
      dv.setBigUint64(0, BigInt(pfn), true);
      h.update(pfnBuf);
      h.update(page);
      pages++;
      if (opts.onProgress && pfn - lastReport >= 65536) {
        lastReport = pfn;
        opts.onProgress(pfn, mem.maxPfn);
      }
    }
  }
  return { sha256: h.digestHex(), pages, zeroPages, missingPages: missing };
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
  const h = (opts.hasher ?? portableSha256)();
  const pfnBuf = new Uint8Array(8);
  const dv = new DataView(pfnBuf.buffer);
  let pages = 0;
  let zeroPages = 0;
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
    for (let i = 0; i < n; i++) {
      const page = c.data.subarray(i * pageSize, (i + 1) * pageSize);
      const isZero = isZeroPage(page);
      if (isZero) zeroPages++;
      if (isZero && opts.skipZero) continue;
      dv.setBigUint64(0, BigInt(c.startPfn + i), true);
      h.update(pfnBuf);
      h.update(page);
      pages++;
    }
    next = c.startPfn + n;
    seen += n;
    if (opts.onProgress && opts.totalPages && seen - lastReport >= 65536) {
      lastReport = seen;
      opts.onProgress(seen, opts.totalPages);
    }
  }
  return { sha256: h.digestHex(), pages, zeroPages, missingPages: 0 };
}
