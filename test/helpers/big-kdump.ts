/**
 * A multi-GiB synthetic kdump whose page data is computed on demand, for tests of how much of
 * a dump a command fetches over HTTP. Only the metadata (headers, both bitmaps, one 24-byte
 * descriptor per dumped page) is held in memory; every stored page is the same lzo-compressed
 * pattern page, placed at a fixed stride as a real dump's pages of that compressed size would be.
 *
 * Memory: 5 GiB of physical address space (4 KiB pages), 4 GiB of it RAM like a PC's
 * [0, 640 KiB) + [1 MiB, 3 GiB) + [4 GiB, 5 GiB); of every 128 RAM pages 16 are excluded, 16
 * are shared zero pages and 96 stored: a 1.6 GB file, like the 4 GiB guest dump of bench/.
 */
import { KdumpLayout, KdumpPagePlacer, PfnBitmap, encodeKdumpHeader, encodeKdumpSubHeader } from '../../src/core/format/kdump/writer.js';
import { PageDescTable } from '../../src/core/format/kdump/structs.js';
import { compressPage, patternPage } from './build.js';
import type { ServedFile } from './range-server.js';

export const BIG_PAGE = 4096;
const RAM: [number, number][] = [
  [0, 0xa0],
  [0x100, 0xc0000],
  [0x100000, 0x140000],
];
/** Bytes between two stored pages: a typical lzo-compressed page of a real guest. */
const STRIDE = 2048;

export type BigState = 'excluded' | 'zero' | 'data';
export const bigStateOf = (pfn: number): BigState => (['data', 'data', 'data', 'data', 'data', 'data', 'zero', 'excluded'] as const)[(pfn >> 4) & 7]!;

export interface BigKdump {
  file: ServedFile;
  expect: { ram: number; dumped: number; data: number; zeroShared: number; excluded: number; descriptorBytes: number };
}

/** The content of every stored page: 512 bytes of pattern, then zeros. */
export function storedPage(): Uint8Array {
  const p = new Uint8Array(BIG_PAGE);
  p.set(patternPage(1).subarray(0, 512));
  return p;
}

export function bigKdump(): BigKdump {
  const maxPfn = RAM[RAM.length - 1]![1];
  const ram = new PfnBitmap(maxPfn);
  const dumpable = new PfnBitmap(maxPfn);
  const expect = { ram: 0, dumped: 0, data: 0, zeroShared: 0, excluded: 0, descriptorBytes: 0 };
  for (const [s, e] of RAM) {
    ram.setRange(s, e);
    for (let p = s; p < e; p++) {
      expect.ram++;
      const st = bigStateOf(p);
      if (st === 'excluded') expect.excluded++;
      else {
        dumpable.set(p);
        expect.dumped++;
        if (st === 'zero') expect.zeroShared++;
        else expect.data++;
      }
    }
  }
  const layout = new KdumpLayout({ pageSize: BIG_PAGE, maxPfn, is64: true, littleEndian: true, notes: [], numDumpable: expect.dumped, sharedZeroPage: true });
  const info = { utsname: { sysname: '', nodename: '', release: '', version: '', machine: 'x86_64', domainname: '' }, timestampSec: 0, codec: 'lzo' as const, nrCpus: 1, physBase: 0n, dumpLevel: 1 };
  const zeroOffset = new KdumpPagePlacer(layout, 'lzo').zeroPage()!.offset;
  const page = compressPage('lzo', storedPage());
  if (page.flags === 0 || page.data.length > STRIDE) throw new Error('the pattern page does not compress into a stride');
  const firstData = layout.dataOffset + BIG_PAGE;
  const descs = PageDescTable.alloc(expect.dumped, true);
  let i = 0;
  let k = 0;
  for (const [s, e] of RAM) {
    for (let p = s; p < e; p++) {
      const st = bigStateOf(p);
      if (st === 'excluded') continue;
      if (st === 'zero') descs.set(i++, zeroOffset, BIG_PAGE, 0);
      else descs.set(i++, firstData + STRIDE * k++, page.data.length, page.flags);
    }
  }
  expect.descriptorBytes = descs.bytes.length;
  const meta = new Uint8Array(layout.dataOffset + BIG_PAGE); // headers, bitmaps, descriptors, zero page
  meta.set(encodeKdumpHeader(layout, info), 0);
  meta.set(encodeKdumpSubHeader(layout, info), BIG_PAGE);
  meta.set(ram.bytes, layout.bitmap1Offset);
  meta.set(dumpable.bytes, layout.bitmap2Offset);
  meta.set(descs.bytes, layout.descOffset);
  const length = firstData + STRIDE * k;
  const file: ServedFile = {
    length,
    subarray(start: number, end: number): Uint8Array {
      const out = new Uint8Array(Math.max(0, Math.min(end, length) - start));
      for (let o = start; o < start + out.length; ) {
        if (o < meta.length) {
          const n = Math.min(meta.length - o, start + out.length - o);
          out.set(meta.subarray(o, o + n), o - start);
          o += n;
          continue;
        }
        const slot = Math.floor((o - firstData) / STRIDE);
        const at = o - firstData - slot * STRIDE;
        const n = Math.min(STRIDE - at, start + out.length - o);
        if (at < page.data.length) out.set(page.data.subarray(at, Math.min(page.data.length, at + n)), o - start);
        o += n;
      }
      return out;
    },
  };
  return { file, expect };
}
