/**
 * A full disk for the output formats' tests: an in-memory output file on a device of `limit`
 * bytes in 4 KiB blocks. Writes into blocks the file already has always succeed; a write that
 * needs new blocks fails with ENOSPC (as FileSink reports it) once `limit` bytes of blocks are
 * taken; truncate gives blocks back. And the pages that fill it: `fillUntilFull` writes raw pages
 * 0..n-1 through an output format in batches of 256 until a write fails.
 */
import { PAGE_RAW } from '../../src/core/format/batch.js';
import type { ConvertPlan, OutputFormat } from '../../src/node/convert/types.js';
import { ioError, type OutputSink } from '../../src/node/convert/sinks.js';

const BLOCK = 4096;

export interface FullDiskSink extends OutputSink {
  truncate(size: number): Promise<void>;
  /** The file's bytes (its size: the furthest byte written, or where it was cut). */
  bytes(): Uint8Array;
}

export function fullDiskSink(name: string, limit: number): FullDiskSink {
  const blocks = new Set<number>();
  let file = new Uint8Array(0);
  let size = 0;
  return {
    name,
    bytesOut: 0,
    async write(offset, bytes) {
      const need: number[] = [];
      for (let b = Math.floor(offset / BLOCK); b * BLOCK < offset + bytes.length; b++) if (!blocks.has(b)) need.push(b);
      if ((blocks.size + need.length) * BLOCK > limit) throw ioError(Object.assign(new Error('ENOSPC: no space left on device'), { code: 'ENOSPC' }), name, `writing ${bytes.length} bytes`);
      for (const b of need) blocks.add(b);
      if (offset + bytes.length > file.length) {
        const f = new Uint8Array(Math.max(offset + bytes.length, file.length * 2));
        f.set(file);
        file = f;
      }
      file.set(bytes, offset);
      size = Math.max(size, offset + bytes.length);
    },
    async zeros() {},
    async finish() {},
    async abort() {},
    async truncate(n) {
      size = n;
      file.fill(0, n);
      for (const b of [...blocks]) if (b * BLOCK >= n) blocks.delete(b);
    },
    bytes: () => file.subarray(0, size),
  };
}

/** Raw pages 0..n-1 (`page(pfn)`) through `fmt`, 256 at a time, until a write fails: that error (undefined if none). */
export async function fillUntilFull(fmt: OutputFormat, n: number, pageSize: number, page: (pfn: number) => Uint8Array): Promise<unknown> {
  try {
    for (let s = 0; s < n; s += 256) {
      const count = Math.min(256, n - s);
      const data = new Uint8Array(count * pageSize);
      for (let i = 0; i < count; i++) data.set(page(s + i), i * pageSize);
      await fmt.writeBatch({ startPfn: s, count, kinds: new Uint8Array(count).fill(PAGE_RAW), sizes: new Uint32Array(count).fill(pageSize), data });
    }
  } catch (e) {
    return e;
  }
  return undefined;
}

/** The plan of a whole x86_64 machine of `n` pages, every one present (ConvertPlan for an output format's begin). */
export function wholePlan(n: number, pageSize: number, extra: Partial<ConvertPlan> = {}): ConvertPlan {
  return {
    pageSize,
    maxPfn: n,
    arch: 'x86_64',
    is64: true,
    littleEndian: true,
    notes: [],
    vmcoreinfoText: undefined,
    ram: [{ startPfn: 0, endPfn: n }],
    present: [{ startPfn: 0, endPfn: n }],
    header: { utsname: { sysname: 'Linux', nodename: 'x', release: '6.1.0-test', version: '#1', machine: 'x86_64', domainname: '' }, timestampSec: 0, nrCpus: 1, physBase: 0n, dumpLevel: 0 } as unknown as ConvertPlan['header'],
    codec: 'none',
    dumpLevel: 0,
    ...extra,
  };
}
