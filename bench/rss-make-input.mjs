#!/usr/bin/env node
// A sparse synthetic kdump of a machine with GIB GiB of RAM, for the memory benchmark
// (bench/rss.sh; not part of the test suite). Build first (npm run build).
//   node bench/rss-make-input.mjs OUT.kdump GIB [DATA_MIB=256] [CODEC=lzo]
// The dump looks like `makedumpfile -d 31` of a large machine: max_mapnr covers all GIB GiB
// (both bitmaps at full size), every page is RAM, and most of it is excluded. DATA_MIB of pages
// (the same amount whatever the size, so the reader's work stays comparable) are stored,
// spread evenly over the whole pfn range in runs of 256 pages (1 MiB), each run followed by
// 256 zero pages (dumpable, stored as the shared zero page, as `-d 1` writes them). Page
// contents are deterministic: text-like words with the pfn written in, and one run in eight
// of pseudo-random bytes. Written by vmcore's own converter from an in-memory Dump, so the
// file is only as large as its stored pages, descriptors and bitmaps (~2 x GIB/32 MiB).
import { createHash } from 'node:crypto';
import { convertDump } from '../dist/src/node/convert/index.js';

const [out, gibArg, dataArg, codecArg] = process.argv.slice(2);
if (!out || !gibArg) throw new Error('usage: rss-make-input.mjs OUT.kdump GIB [DATA_MIB=256] [CODEC=lzo]');
const PS = 4096;
const RUN = 256;
const maxPfn = Math.round(Number(gibArg) * 2 ** 30 / PS);
const dataPages = Math.min(Math.round(Number(dataArg ?? 256) * 2 ** 20 / PS), Math.floor(maxPfn / 2));
const runs = Math.max(1, Math.floor(dataPages / RUN));
const stride = Math.floor(maxPfn / runs); // one data run and one zero run every `stride` pfns
if (stride < 2 * RUN) throw new Error(`${gibArg} GiB is too small for ${runs} runs of data and zero pages`);

/** Runs of [start, end, state] over [0, maxPfn), ascending. */
const layout = [];
for (let i = 0; i < runs; i++) {
  const s = i * stride;
  layout.push([s, s + RUN, 'data'], [s + RUN, s + 2 * RUN, 'zero']);
  const e = i === runs - 1 ? maxPfn : (i + 1) * stride;
  if (s + 2 * RUN < e) layout.push([s + 2 * RUN, e, 'excluded']);
}

// a 4 MiB pool of text-like bytes; pages are cut from it at pseudo-random offsets
const words = 'the of and to in is that for it as with was on be by this page memory kernel task struct lock node zone free list slab cache inode dentry file map'.split(' ');
const pool = new Uint8Array(4 << 20);
{
  let seed = 12345;
  let o = 0;
  while (o < pool.length) {
    seed = (seed * 1103515245 + 12345) >>> 0;
    const w = words[(seed >>> 8) % words.length] + ((seed & 7) === 0 ? `${seed % 100000}\n` : ' ');
    for (let k = 0; k < w.length && o < pool.length; k++) pool[o++] = w.charCodeAt(k);
  }
}
function fillPage(pfn, dst) {
  let seed = (pfn * 2654435761) >>> 0;
  seed = (seed * 1103515245 + 12345) >>> 0;
  if (Math.floor(pfn / stride) % 8 === 7) {
    const dv = new DataView(dst.buffer, dst.byteOffset, PS);
    for (let i = 0; i < PS; i += 4) dv.setUint32(i, (seed = (seed * 1103515245 + 12345) >>> 0));
  } else {
    const at = seed % (pool.length - PS);
    dst.set(pool.subarray(at, at + PS));
  }
  new DataView(dst.buffer, dst.byteOffset, PS).setUint32(8, pfn, true); // no two pages equal
}

function stateOf(pfn) {
  if (pfn < 0 || pfn >= maxPfn) return 'hole';
  const o = pfn % stride;
  if (pfn >= runs * stride) return 'excluded';
  return o < RUN ? 'data' : o < 2 * RUN ? 'zero' : 'excluded';
}

function readPhys(addr, length) {
  const out = new Uint8Array(length);
  const page = new Uint8Array(PS);
  for (let a = addr; a < addr + length; ) {
    const pfn = Math.floor(a / PS);
    const off = a - pfn * PS;
    const n = Math.min(PS - off, addr + length - a);
    if (stateOf(pfn) === 'data') {
      fillPage(pfn, page);
      out.set(page.subarray(off, off + n), a - addr);
    }
    a += n;
  }
  return out;
}

const VMCI = `OSRELEASE=6.1.0-rss-bench\nPAGESIZE=${PS}\nNUMBER(phys_base)=0\n`;
const dump = {
  pageSize: PS,
  maxPfn,
  pageState: async (p) => stateOf(p),
  async *pageRuns(s = 0, e = maxPfn) {
    for (const [rs, re, st] of layout) {
      const a = Math.max(s, rs);
      const b = Math.min(e, re);
      if (a < b) yield { startPfn: a, endPfn: b, state: st };
    }
  },
  readPage: async (p) => readPhys(p * PS, PS),
  readPhys: async (a, l) => readPhys(a, l),
  format: 'elf',
  variant: 'synthetic',
  files: [{ name: 'synthetic', size: 0 }],
  arch: 'x86_64',
  littleEndian: true,
  is64: true,
  notes: [{ name: 'VMCOREINFO', type: 0, desc: new TextEncoder().encode(VMCI) }],
  vmcoreinfoText: VMCI,
  warnings: [],
  details: async () => ({ header: {}, producerHints: [] }),
  close: async () => undefined,
};

const t0 = Date.now();
const s = await convertDump(dump, out, { codec: codecArg ?? 'lzo', dumpLevel: 1, kernel: false, force: true });
// the digest `vmcore hash` must print for the file (pfn as 8 bytes LE, then the page)
const h = createHash('sha256');
const pfnb = Buffer.alloc(8);
const zero = new Uint8Array(PS);
const page = new Uint8Array(PS);
for (const [rs, re, st] of layout) {
  if (st === 'excluded') continue;
  for (let p = rs; p < re; p++) {
    pfnb.writeBigUInt64LE(BigInt(p));
    h.update(pfnb);
    if (st === 'data') fillPage(p, page);
    h.update(st === 'data' ? page : zero);
  }
}
console.log(JSON.stringify({ file: out, gib: Number(gibArg), maxPfn, dataPages: runs * RUN, zeroPages: runs * RUN, pages: s.pages.total, bytes: s.bytesOut, sha256: h.digest('hex'), seconds: (Date.now() - t0) / 1000 }));
