/**
 * Writers and convertDump on small synthetic inputs: every output is read back with the
 * format readers and compared page by page with the generator (not with our own writer).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, readdir, readFile, rm, writeFile, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createHash } from 'node:crypto';
import { SparseMemory } from '../../src/core/memory.js';
import type { Dump, FormatDetails, PageRun } from '../../src/core/dump.js';
import type { ElfNote } from '../../src/core/format/elf/notes.js';
import { VmcoreError } from '../../src/core/errors.js';
import { PfnBitmap, KdumpLayout } from '../../src/core/format/kdump/writer.js';
import { planElfSegments } from '../../src/core/format/elf/writer.js';
import { convertDump, defaultConvertThreads, FEW_PAGES, splitParts, type PageStreamInput } from '../../src/node/convert/index.js';
import { openDumpFiles } from '../../src/node/open.js';
import type { KdumpDump } from '../../src/core/format/kdump/reader.js';
import { nodeCodecs } from '../../src/node/codecs.js';
import { nativeAddon } from '../../src/node/native.js';

const PS = 4096;
const GiB = 1 << 30;

/** Deterministic page content of several kinds (text-like, binary, random, zero). */
function pageFor(pfn: number): Uint8Array | undefined {
  const k = pfn % 7;
  if (k === 3) return undefined; // zero page
  const p = new Uint8Array(PS);
  if (k === 0) p.set(new TextEncoder().encode(`page ${pfn} `.repeat(200)).subarray(0, PS));
  else if (k === 5) {
    let x = pfn * 2654435761;
    for (let i = 0; i < PS; i++) {
      x = (x ^ (x << 13)) >>> 0;
      x = (x ^ (x >>> 17)) >>> 0;
      x = (x ^ (x << 5)) >>> 0;
      p[i] = x & 0xff;
    }
  } else {
    for (let i = 0; i < PS; i += 8) p[i] = (pfn + i) & 0xff;
    p[0] = 1;
  }
  return p;
}

const VMCI = 'OSRELEASE=6.1.0-test\nPAGESIZE=4096\nNUMBER(phys_base)=-534773760\nCRASHTIME=1700000000\n';
const NOTES: ElfNote[] = [
  { name: 'CORE', type: 1, desc: new Uint8Array(336).fill(7) },
  { name: 'VMCOREINFO', type: 0, desc: new TextEncoder().encode(VMCI) },
];

/** A Dump over SparseMemory: RAM at [0, 2 MiB), a hole, [4 GiB - 1 MiB, 4 GiB + 2 MiB), an excluded run. */
function syntheticDump(): { dump: Dump; expected: Map<number, Uint8Array | undefined> } {
  const ranges: [number, number][] = [
    [0, 512],
    [GiB * 4 / PS - 256, GiB * 4 / PS + 512],
  ];
  const maxPfn = ranges[1]![1];
  const mem = new SparseMemory(maxPfn, PS);
  const expected = new Map<number, Uint8Array | undefined>();
  for (const [s, e] of ranges) {
    for (let p = s; p < e; p++) {
      if (p >= 300 && p < 310) {
        mem.setState(p, 'excluded');
        continue;
      }
      // a long zero run inside the high range (ELF splits there)
      const d = p >= ranges[1]![0] + 10 && p < ranges[1]![0] + 400 ? undefined : pageFor(p);
      if (d) mem.set(p, d);
      else mem.setState(p, 'zero');
      expected.set(p, d);
    }
  }
  const dump: Dump = {
    pageSize: PS,
    maxPfn,
    pageState: (p) => mem.pageState(p),
    pageRuns: (s?: number, e?: number): AsyncIterable<PageRun> => mem.pageRuns(s, e),
    readPage: (p) => mem.readPage(p),
    readPhys: (a, l, o) => mem.readPhys(a, l, o),
    format: 'elf',
    variant: 'synthetic',
    files: [{ name: 'synthetic', size: 0 }],
    arch: 'x86_64',
    littleEndian: true,
    is64: true,
    notes: NOTES,
    vmcoreinfoText: VMCI,
    warnings: [],
    details: async (): Promise<FormatDetails> => ({ header: {}, producerHints: [] }),
    close: async () => undefined,
  };
  return { dump, expected };
}

function digest(pages: Map<number, Uint8Array | undefined>, skipZero: boolean): string {
  const h = createHash('sha256');
  const pfnb = Buffer.alloc(8);
  for (const pfn of [...pages.keys()].sort((a, b) => a - b)) {
    const d = pages.get(pfn) ?? new Uint8Array(PS);
    if (skipZero && !pages.get(pfn)) continue;
    pfnb.writeBigUInt64LE(BigInt(pfn));
    h.update(pfnb);
    h.update(d);
  }
  return h.digest('hex');
}

async function readBack(files: string[], skipZero: boolean): Promise<{ sha: string; dump: Dump; states: Map<string, number> }> {
  const d = await openDumpFiles(files);
  const h = createHash('sha256');
  const pfnb = Buffer.alloc(8);
  const states = new Map<string, number>();
  for await (const r of d.pageRuns(0, d.maxPfn)) {
    states.set(r.state, (states.get(r.state) ?? 0) + r.endPfn - r.startPfn);
    if (r.state !== 'data' && r.state !== 'zero') continue;
    for (let p = r.startPfn; p < r.endPfn; p++) {
      const page = r.state === 'zero' ? new Uint8Array(PS) : await d.readPage(p);
      if (skipZero && page.every((b) => b === 0)) continue;
      pfnb.writeBigUInt64LE(BigInt(p));
      h.update(pfnb);
      h.update(page);
    }
  }
  return { sha: h.digest('hex'), dump: d, states };
}

async function tmp(): Promise<string> {
  return mkdtemp(join(tmpdir(), 'vmcore-convert-'));
}

/** fn in a fresh temporary directory, removed afterwards. */
async function withTmp(fn: (dir: string) => Promise<void>): Promise<void> {
  const dir = await tmp();
  try {
    await fn(dir);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

test('PfnBitmap setRange/count/keepOnly agree with a naive bit loop', () => {
  const bm = new PfnBitmap(1000);
  const naive = new Array<boolean>(1000).fill(false);
  for (const [s, e] of [[3, 17], [64, 64], [100, 260], [999, 1000], [250, 300]] as const) {
    bm.setRange(s, e);
    for (let p = s; p < e; p++) naive[p] = true;
  }
  for (let p = 0; p < 1000; p++) assert.equal(bm.get(p), naive[p], `pfn ${p}`);
  assert.equal(bm.count(0, 1000), naive.filter(Boolean).length);
  assert.equal(bm.count(5, 120), naive.slice(5, 120).filter(Boolean).length);
  bm.keepOnly(10, 255);
  for (let p = 0; p < 1000; p++) assert.equal(bm.get(p), naive[p]! && p >= 10 && p < 255, `keepOnly pfn ${p}`);
  // LSB first: pfn 3 is bit 3 of byte 0
  const b = new PfnBitmap(16);
  b.set(3);
  b.set(9);
  assert.deepEqual([...b.bytes], [0x08, 0x02]);
});

test('kdump layout matches what makedumpfile 1.7.2 wrote for the same notes (128 MiB guest)', () => {
  // Values from makedumpfile's own header of the corpus file md-c-d31.kdump (max_mapnr 32768,
  // a 4088-byte note blob whose VMCOREINFO descriptor is 3246 bytes at blob offset 840).
  const notes: ElfNote[] = [
    { name: 'CORE', type: 1, desc: new Uint8Array(336) },
    { name: 'QEMU', type: 0, desc: new Uint8Array(440) },
    { name: 'VMCOREINFO', type: 0, desc: new Uint8Array(3246) },
  ];
  const l = new KdumpLayout({ pageSize: 4096, maxPfn: 32768, is64: true, littleEndian: true, notes, numDumpable: 15374, sharedZeroPage: true });
  assert.equal(l.noteOffset, 4200);
  assert.equal(l.noteBlob.length, 4088);
  assert.equal(l.subHdrSize, 2);
  assert.equal(l.bitmapBlocks, 2);
  assert.equal(l.vmcoreinfoOffset, 5040);
  assert.equal(l.vmcoreinfoSize, 3246);
  assert.equal(l.descOffset, (1 + 2 + 2) * 4096);
  assert.equal(l.dataOffset, 5 * 4096 + 24 * 15374);
});

test('planElfSegments splits at long zero runs and drops leading ones', () => {
  const segs = planElfSegments(
    [{ startPfn: 0, endPfn: 1000 }, { startPfn: 2000, endPfn: 2100 }],
    [{ startPfn: 0, endPfn: 5 }, { startPfn: 100, endPfn: 110 }, { startPfn: 500, endPfn: 900 }, { startPfn: 2050, endPfn: 2100 }],
    256,
  );
  assert.deepEqual(segs, [
    { startPfn: 5, pages: 495 },
    { startPfn: 900, pages: 100 },
    { startPfn: 2000, pages: 100 },
  ]);
});

test('splitParts gives each file about the same number of present pages', () => {
  const parts = splitParts([{ startPfn: 10, endPfn: 20 }, { startPfn: 100, endPfn: 120 }], 200, 3);
  // exact cuts at 20 and 110, rounded up to 64-pfn words (crash counts a part's bits per word)
  assert.deepEqual(parts, [
    { startPfn: 0, endPfn: 64 },
    { startPfn: 64, endPfn: 128 },
    { startPfn: 128, endPfn: 200 },
  ]);
  const big = splitParts([{ startPfn: 0, endPfn: 32768 }], 32768, 3);
  assert.deepEqual(big.map((p) => p.endPfn - p.startPfn), [10944, 10944, 10880]);
  for (const p of big) assert.equal(p.startPfn % 64, 0);
});

const codecs = (['zlib', 'lzo', 'snappy', 'zstd'] as const).filter((c) => nodeCodecs().get(c)?.compress);

test('kdump output with every codec, -d 0 and -d 1, holds the same pages (range above 4 GiB, hole, excluded run)', async () => {
  const dir = await tmp();
  try {
    const { dump, expected } = syntheticDump();
    const want = digest(expected, false);
    const cases = [...codecs.map((c) => [c, 1] as const), ['none', 0] as const, ['lzo', 0] as const];
    for (const [codec, dumpLevel] of cases) {
      {
        const out = join(dir, `o-${codec}-${dumpLevel}.kdump`);
        const s = await convertDump(dump, out, { codec, dumpLevel, threads: codec === 'zlib' ? 1 : 0 });
        assert.equal(s.pages.total, expected.size);
        assert.equal(s.pages.excluded, 10);
        const zeros = [...expected.values()].filter((v) => !v).length;
        if (dumpLevel === 1) assert.equal(s.pages.zero, zeros);
        const r = await readBack([out], false);
        try {
          assert.equal(r.sha, want, `${codec} -d ${dumpLevel}`);
          assert.equal(r.states.get('excluded'), 10);
          const d = await r.dump.details();
          assert.equal(d.headerPhysBase, 0xffffffffe0200000n); // NUMBER(phys_base) from VMCOREINFO, decimal
          assert.equal(d.utsname?.release, '6.1.0-test');
          assert.equal(d.timestamp, 1700000000);
          assert.equal(r.dump.vmcoreinfoText, VMCI);
          assert.deepEqual(r.dump.notes.map((n) => n.name), [...NOTES.map((n) => n.name), 'VMCORE']); // the source's notes and the producer note
        } finally {
          await r.dump.close();
        }
      }
    }
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test('kdump input: its stored pages are decompressed by the workers (and inline), same pages in every codec; a damaged page is named as before', async () => {
  const dir = await tmp();
  try {
    const { dump, expected } = syntheticDump();
    const want = digest(expected, false);
    for (const inCodec of codecs) {
      const src = join(dir, `in-${inCodec}.kdump`);
      await convertDump(dump, src, { codec: inCodec, dumpLevel: 1, threads: 0 });
      const k = (await openDumpFiles([src])) as KdumpDump;
      try {
        // the batches go out in their stored form: the first data run is read in one piece
        const first = expected.keys().next().value as number;
        const st = await k.storedPages(first, 64);
        assert.ok(st && st.codes.length === 64 && st.blob.length > 0, `${inCodec}: stored pages of pfn 0x${first.toString(16)}`);
        // read into a caller's buffer (what the hash workers do): the same bytes, no new buffer
        const scratch = new Uint8Array(64 * PS * 2 + 65536).fill(0xa5);
        const st2 = await k.storedPages(first, 64, { buffer: () => scratch });
        assert.ok(st2 && st2.blob.buffer === scratch.buffer && st2.blob.byteOffset === 0, `${inCodec}: blob read into the scratch buffer`);
        assert.deepEqual(st2.blob, new Uint8Array(st.blob));
        assert.deepEqual([st2.codes, st2.offsets, st2.sizes], [st.codes, st.offsets, st.sizes]);
        for (const outCodec of codecs.filter((c) => c !== inCodec).slice(0, 2)) {
          for (const threads of [0, 2]) {
            const out = join(dir, `o-${inCodec}-${outCodec}-${threads}.kdump`);
            const s = await convertDump(k, out, { codec: outCodec, dumpLevel: 1, threads });
            assert.equal(s.pages.total, expected.size);
            const r = await readBack([out], false);
            await r.dump.close();
            assert.equal(r.sha, want, `${inCodec} -> ${outCodec}, ${threads} threads`);
          }
        }
      } finally {
        await k.close();
      }
    }
    // one compressed page made undecodable (decoded on a worker, or inline with 0 threads):
    // the batch is read again page by page, which names it
    for (const codec of codecs.filter((c) => c === 'zlib' || c === 'zstd')) {
      const src = join(dir, `in-${codec}.kdump`);
      const k = (await openDumpFiles([src])) as KdumpDump;
      let victim: { pfn: number; offset: number; size: number } | undefined;
      for (const [pfn, page] of expected) {
        const d = page && (await k.parts[0]!.desc(pfn));
        if (d && d.flags !== 0 && d.size > 16) {
          victim = { pfn, offset: d.offset, size: d.size };
          break;
        }
      }
      await k.close();
      assert.ok(victim, `a ${codec}-compressed page`);
      const bytes = await readFile(src);
      bytes.fill(0xff, victim.offset, victim.offset + victim.size);
      const bad = join(dir, `bad-${codec}.kdump`);
      await writeFile(bad, bytes);
      for (const threads of [0, 2]) {
        const d = await openDumpFiles([bad]);
        try {
          await assert.rejects(convertDump(d, join(dir, `x-${codec}-${threads}.kdump`), { codec: 'lzo', dumpLevel: 1, threads }), (e: unknown) => {
            assert.ok(e instanceof VmcoreError && e.code === 'DECOMPRESS', String(e));
            assert.match(e.message, new RegExp(`pfn 0x${victim!.pfn.toString(16)}\\b`));
            return true;
          });
        } finally {
          await d.close();
        }
      }
    }
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test('flattened, split and ELF outputs hold the same pages', async () => {
  const dir = await tmp();
  try {
    const { dump, expected } = syntheticDump();
    const want = digest(expected, false);
    const wantNz = digest(expected, true);
    // flattened (makedumpfile -F), read back directly
    const flat = join(dir, 'f.kdump');
    await convertDump(dump, flat, { codec: 'zlib', dumpLevel: 1, flatten: true, threads: 1 });
    const head = await readFile(flat);
    assert.equal(head.subarray(0, 16).toString('latin1'), 'makedumpfile\0\0\0\0');
    let r = await readBack([flat], false);
    assert.equal(r.sha, want);
    await r.dump.close();
    // split set of 3
    const sp = join(dir, 's.kdump');
    const s = await convertDump(dump, sp, { codec: 'lzo', dumpLevel: 1, split: 3, threads: 0 });
    assert.equal(s.outputs.length, 3);
    r = await readBack([1, 2, 3].map((i) => `${sp}.${i}`), false);
    assert.equal(r.sha, want);
    await r.dump.close();
    // every part carries the whole machine's dumpable bitmap, as makedumpfile --split writes it
    // (crash and makedumpfile --reassemble read it so); only the descriptors are per part
    const bitmap2 = async (f: string) => {
      const b = await readFile(f);
      const dv = new DataView(b.buffer, b.byteOffset);
      const bs = dv.getInt32(428, true);
      const subHdr = dv.getInt32(432, true);
      const blocks = dv.getUint32(436, true);
      const half = (blocks * bs) / 2;
      return b.subarray((1 + subHdr) * bs + half, (1 + subHdr) * bs + 2 * half);
    };
    const bms = await Promise.all([1, 2, 3].map((i) => bitmap2(`${sp}.${i}`)));
    const whole = join(dir, 'whole.kdump');
    await convertDump(dump, whole, { codec: 'lzo', dumpLevel: 1, threads: 0 });
    const wholeBm = await bitmap2(whole);
    for (const b of bms) assert.ok(Buffer.compare(b, wholeBm) === 0, 'part bitmap2 = whole bitmap2');
    // ELF -d 0: everything; -d 1: zero pages cost nothing (equal with zero pages skipped)
    const e0 = join(dir, 'e0.elf');
    await convertDump(dump, e0, { format: 'elf', dumpLevel: 0, threads: 0 });
    r = await readBack([e0], false);
    assert.equal(r.sha, want);
    await r.dump.close();
    const e1 = join(dir, 'e1.elf');
    await convertDump(dump, e1, { format: 'elf', dumpLevel: 1, threads: 1 });
    r = await readBack([e1], true);
    assert.equal(r.sha, wantNz);
    const segs = (await r.dump.details()).segments ?? [];
    await r.dump.close();
    const st0 = await stat(e0);
    const st1 = await stat(e1);
    assert.ok(st1.blocks * 512 < st0.blocks * 512, 'zero pages take no disk space');
    // the 390-page zero run above 4 GiB splits a PT_LOAD; PT_LOADs at/above 4 GiB exist
    assert.ok(segs.some((g) => g.paddr >= 4 * GiB));
    const mid = 4 * GiB - 256 * PS + 200 * PS; // inside the zero run
    assert.ok(!segs.some((g) => g.paddr <= mid && g.paddr + g.memsz > mid), 'no PT_LOAD over the long zero run');
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test('a sequential page stream converts in one pass (kdump and ELF), with page filtering and a memory-model end', async () => {
  const dir = await tmp();
  try {
    const ranges = [
      { startPfn: 16, endPfn: 300 },
      { startPfn: 1 << 20, endPfn: (1 << 20) + 100 },
    ];
    const expected = new Map<number, Uint8Array | undefined>();
    for (const r of ranges) for (let p = r.startPfn; p < r.endPfn; p++) expected.set(p, pageFor(p));
    let reads = 0;
    const mk = (): PageStreamInput => ({
      kind: 'stream',
      name: 'fifo',
      pageSize: PS,
      arch: 'x86_64',
      is64: true,
      littleEndian: true,
      notes: NOTES,
      vmcoreinfoText: VMCI,
      ranges,
      pages: (async function* () {
        for (const r of ranges) {
          // odd chunk sizes (37 pages) to exercise re-batching
          for (let p = r.startPfn; p < r.endPfn; p += 37) {
            const n = Math.min(37, r.endPfn - p);
            const b = new Uint8Array(n * PS);
            for (let i = 0; i < n; i++) {
              const d = pageFor(p + i);
              if (d) b.set(d, i * PS);
            }
            reads++;
            yield { startPfn: p, data: b };
          }
        }
      })(),
    });
    const k = join(dir, 'k.kdump');
    await convertDump(mk(), k, { codec: codecs.includes('zstd') ? 'zstd' : 'zlib', dumpLevel: 1, threads: 1 });
    let r = await readBack([k], false);
    assert.equal(r.sha, digest(expected, false));
    await r.dump.close();
    const before = reads;
    const e = join(dir, 'k.elf');
    await convertDump(mk(), e, { format: 'elf', dumpLevel: 1, threads: 0 });
    assert.equal(reads - before, before, 'one pass over the stream');
    r = await readBack([e], true);
    assert.equal(r.sha, digest(expected, true));
    await r.dump.close();
    // page filtering on the stream: the classified runs (inside a chunk, across chunk and range
    // ends) and the pages from maxPfn on are dropped as they pass; the rest is written as given
    const exclude = [
      { startPfn: 20, endPfn: 21, kind: 'free' as const },
      { startPfn: 50, endPfn: 90, kind: 'cache' as const },
      { startPfn: 290, endPfn: (1 << 20) + 3, kind: 'user' as const },
    ];
    const maxPfn = (1 << 20) + 60;
    const kept = new Map([...expected].filter(([p]) => !exclude.some((x) => x.startPfn <= p && p < x.endPfn) && p < maxPfn));
    for (const format of ['kdump', 'elf'] as const) {
      const f = join(dir, `f.${format}`);
      const sum = await convertDump(mk(), f, { format, dumpLevel: 31, exclude, maxPfn, threads: 0 });
      assert.equal(sum.filtered?.cache, 40);
      assert.equal(sum.filtered?.user, 13);
      assert.equal(sum.pages.total, kept.size);
      r = await readBack([f], format === 'elf');
      assert.equal(r.sha, digest(kept, format === 'elf'), format);
      assert.equal(await r.dump.pageState(50), format === 'elf' ? 'hole' : 'excluded');
      assert.equal(r.dump.maxPfn, maxPfn);
      await r.dump.close();
    }
    // a stream that does not match its declared ranges is rejected, and no file is left
    const bad = mk();
    bad.ranges = [{ startPfn: 16, endPfn: 400 }];
    await assert.rejects(convertDump(bad, join(dir, 'bad.kdump'), { threads: 0 }), (err: unknown) => err instanceof VmcoreError);
    assert.ok(!(await readdir(dir)).some((f) => f.includes('bad')), 'temporary file removed');
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test('safety: no overwrite without force, unsupported dump levels rejected, failures leave nothing or an incomplete-marked file', async () => {
  const dir = await tmp();
  try {
    const { dump } = syntheticDump();
    const out = join(dir, 'x.kdump');
    await writeFile(out, 'keep me');
    await assert.rejects(convertDump(dump, out, { threads: 0 }), (e: unknown) => e instanceof VmcoreError && e.code === 'EXISTS');
    assert.equal(await readFile(out, 'utf8'), 'keep me');
    await assert.rejects(convertDump(dump, join(dir, 'y.kdump'), { dumpLevel: 31 }), (e: unknown) => e instanceof VmcoreError && e.code === 'USAGE' && /dump level 31/.test(e.message));
    // abort half-way: without keep, nothing is left
    const ac = new AbortController();
    let n = 0;
    const onProgress = () => {
      if (++n === 2) ac.abort();
    };
    await assert.rejects(convertDump(dump, join(dir, 'z.kdump'), { threads: 0, batchPages: 64, signal: ac.signal, onProgress }), (e: unknown) => e instanceof VmcoreError && e.code === 'INTERRUPTED');
    assert.deepEqual((await readdir(dir)).sort(), ['x.kdump']);
    // with keepIncomplete, the file is kept and flagged incomplete (status bit 0x8)
    const ac2 = new AbortController();
    n = 0;
    await assert.rejects(
      convertDump(dump, join(dir, 'k.kdump'), { codec: 'lzo', threads: 0, batchPages: 64, signal: ac2.signal, keepIncomplete: true, onProgress: () => void (++n === 2 && ac2.abort()) }),
      (e: unknown) => e instanceof VmcoreError,
    );
    const kept = await readFile(join(dir, 'k.kdump'));
    assert.equal(kept.subarray(0, 8).toString('latin1'), 'KDUMP   ');
    assert.equal(kept.readUInt32LE(424) & 0x8, 0x8);
    const d = await openDumpFiles([join(dir, 'k.kdump')]);
    try {
      const first = await d.readPage(0);
      assert.deepEqual(first, pageFor(0));
    } finally {
      await d.close();
    }
    // ELF: e_flags bit 0, and what the file claims is what was written (no zero-filled tail)
    const ac3 = new AbortController();
    n = 0;
    await assert.rejects(
      convertDump(dump, join(dir, 'k.elf'), { format: 'elf', threads: 0, batchPages: 64, signal: ac3.signal, keepIncomplete: true, onProgress: () => void (++n === 3 && ac3.abort()) }),
      (e: unknown) => e instanceof VmcoreError,
    );
    const ke = await readFile(join(dir, 'k.elf'));
    assert.equal(ke.readUInt32LE(48) & 1, 1, 'e_flags incomplete');
    const de = await openDumpFiles([join(dir, 'k.elf')]);
    try {
      let present = 0;
      for await (const r of de.pageRuns(0, de.maxPfn)) {
        if (r.state !== 'data' && r.state !== 'zero') continue;
        for (let p = r.startPfn; p < r.endPfn; p++, present++) assert.ok(Buffer.from(await de.readPage(p)).equals(pageFor(p) ?? new Uint8Array(PS)), `pfn ${p}`);
      }
      assert.ok(present > 0 && present < 192 + 10, `only the written pages are claimed (${present})`);
    } finally {
      await de.close();
    }
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test('32-bit sources give ELF32 and i386-layout kdump output', async () => {
  const dir = await tmp();
  try {
    const { dump, expected } = syntheticDump();
    // keep the memory below 4 GiB for a 32-bit machine
    // (500, not 512: a 32-bit header with max_mapnr 512 also parses as a 64-bit one whose
    // block_size, at the same offset, is 512)
    const low = new Map([...expected].filter(([p]) => p < 500));
    const d32: Dump = { ...dump, maxPfn: 500, is64: false, arch: 'i386', pageRuns: (s?: number, e?: number) => dump.pageRuns(s ?? 0, Math.min(e ?? 500, 500)) };
    const e = join(dir, 'x.elf');
    await convertDump(d32, e, { format: 'elf', dumpLevel: 0, threads: 0 });
    const head = await readFile(e);
    assert.equal(head[4], 1, 'ELFCLASS32');
    assert.equal(head.readUInt16LE(18), 3, 'EM_386');
    let r = await readBack([e], false);
    assert.equal(r.sha, digest(low, false));
    await r.dump.close();
    const k = join(dir, 'x.kdump');
    await convertDump(d32, k, { codec: 'zlib', dumpLevel: 1, threads: 0 });
    const kh = await readFile(k);
    assert.equal(kh.readInt32LE(416), 4096, 'i386 header: block_size at 416');
    r = await readBack([k], false);
    assert.equal(r.sha, digest(low, false));
    await r.dump.close();
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test('maxPfn leaves out the pages above the kernel\'s memory model and lowers max_mapnr (kdump and ELF)', async () => {
  const dir = await tmp();
  try {
    const { dump, expected } = syntheticDump();
    const low = new Map([...expected].filter(([p]) => p < 512));
    for (const format of ['kdump', 'elf'] as const) {
      const out = join(dir, `low.${format}`);
      const s = await convertDump(dump, out, { format, codec: format === 'elf' ? 'none' : 'zlib', dumpLevel: 0, threads: 0, maxPfn: 512 });
      assert.ok(s.warnings.some((w) => w.code === 'PAGES_BEYOND_MEMORY_MODEL' && /^768 pages at and above pfn 0x200 /.test(w.text)), s.warnings.map((x) => x.text).join('; '));
      const r = await readBack([out], false);
      assert.equal(r.sha, digest(low, false), format);
      if (format === 'kdump') assert.equal(r.dump.maxPfn, 512);
      assert.equal(await r.dump.pageState(GiB * 4 / PS), 'hole');
      await r.dump.close();
    }
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test('bounded in-flight window: results consumed in push order, at most `limit` pending, a rejection surfaces in its turn', async () => {
  const { InFlight } = await import('../../src/core/inflight.js');
  const seen: number[] = [];
  let maxPending = 0;
  const w = new InFlight<number>(3, (v) => {
    seen.push(v);
  });
  for (let i = 0; i < 10; i++) {
    // later pushes resolve sooner: order must still be push order
    await w.push(new Promise((r) => setTimeout(() => r(i), 10 - i)));
    maxPending = Math.max(maxPending, w.size);
  }
  await w.drain();
  assert.deepEqual(seen, [0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
  assert.equal(maxPending, 2, 'push returns once fewer than the limit are pending');
  const bad = new InFlight<number>(2, () => undefined);
  await bad.push(Promise.reject(new Error('batch 0 failed')));
  await assert.rejects(bad.push(Promise.resolve(1)), /batch 0 failed/);
});

test('a kdump input stored in the output codec: the workers write its stored pages as they are at every dump level (same pages, zero pages found, damage named)', async () => {
  if (!nodeCodecs().get('lzo')?.decompressInto) return assert.fail('the lzo binding (decompressInto) is part of the installation');
  const { passStoredBatch } = await import('../../src/node/workers/page-codec.js');
  const codec = (n: Parameters<ReturnType<typeof nodeCodecs>['get']>[0]) => nodeCodecs().get(n);
  const compressWith = (name: 'lzo' | 'zstd') => (page: Uint8Array, o: Uint8Array, pos: number) => {
    const r = nodeCodecs().get(name)!.compress!(page, 1);
    if (r.length >= PS) return -1;
    o.set(r, pos);
    return r.length;
  };
  const dir = await tmp();
  try {
    const { expected } = syntheticDump();
    const exclude = [
      { startPfn: 20, endPfn: 21, kind: 'free' as const },
      { startPfn: 50, endPfn: 90, kind: 'cache' as const },
      { startPfn: 400, endPfn: (1 << 20) - 100, kind: 'user' as const },
    ];
    const kept = new Map([...expected].filter(([p]) => !exclude.some((x) => x.startPfn <= p && p < x.endPfn)));
    // the reference: the same filter over the synthetic dump, every page compressed by the writer
    const ref = join(dir, 'ref.kdump');
    const rs = await convertDump(syntheticDump().dump, ref, { codec: 'lzo', dumpLevel: 31, exclude, threads: 0 });
    assert.ok(rs.pages.zero > 0 && rs.pages.compressed > 0 && rs.pages.raw > 0);
    // level 0 stores zero pages compressed, level 1 as the shared zero page
    for (const level of [0, 1]) {
      const inp = join(dir, `in${level}.kdump`);
      await convertDump(syntheticDump().dump, inp, { codec: 'lzo', dumpLevel: level, threads: 0 });
      const d = (await openDumpFiles([inp])) as KdumpDump;
      try {
        // one batch of pfns 0-15 (pages 3 and 10 zero, 5 and 12 random: stored raw)
        const st = await d.storedPages(0, 16);
        assert.ok(st, 'stored form of pfns 0-15');
        assert.equal(st.fileCodec, 'lzo', 'the header names lzo');
        const cfg = { codec: 'lzo' as const, pageSize: PS, detectZero: true, passStored: true };
        const out = new Uint8Array(16 * PS);
        const b = passStoredBatch(st, out, cfg, () => assert.fail('nothing is compressed again'), new Uint8Array(PS), codec);
        assert.ok(!('bad' in b));
        assert.deepEqual([...b.kinds].map((k, i) => (k === 0) === !pageFor(i)), new Array(16).fill(true), 'zero pages found (kind 0) and only those');
        assert.deepEqual([5, 12].map((i) => b.kinds[i]), [1, 1], 'the raw pages of an lzo file stay raw');
        let off = 0;
        for (let i = 0; i < 16; i++) {
          if (!b.sizes[i]) continue;
          assert.ok(Buffer.from(out.subarray(off, off + b.sizes[i]!)).equals(st.blob.subarray(st.offsets[i]!, st.offsets[i]! + st.sizes[i]!)), `pfn ${i}: the stored bytes`);
          off += b.sizes[i]!;
        }
        assert.equal(off, b.dataLen);
        // another output codec: every non-zero page is compressed again, from its decoded bytes
        let calls = 0;
        const zc = compressWith('zstd');
        const z = passStoredBatch(st, new Uint8Array(16 * PS), { ...cfg, codec: 'zstd' }, (p, o, at) => (calls++, zc(p, o, at)), new Uint8Array(PS), codec);
        assert.ok(!('bad' in z));
        assert.equal(calls, 14, 'another codec: the 14 non-zero pages compressed');
        // end to end at dump levels 0, 1 and 31, with and without worker threads: the same pages
        // as the synthetic dump (at 31: as the reference), the same zero pages
        for (const dl of [0, 1, 31]) {
          for (const threads of [0, 2]) {
            const o = join(dir, `out${level}-${dl}-${threads}.kdump`);
            const s = await convertDump(d, o, { codec: 'lzo', dumpLevel: dl, ...(dl === 31 ? { exclude } : {}), threads });
            const r = await readBack([o], dl >= 1);
            assert.equal(r.sha, digest(dl === 31 ? kept : expected, dl >= 1), `input level ${level}, output level ${dl}, ${threads} threads: pages`);
            if (dl === 31) {
              assert.deepEqual([s.pages.total, s.pages.zero, s.pages.compressed, s.pages.raw], [rs.pages.total, rs.pages.zero, rs.pages.compressed, rs.pages.raw], `level ${level}: page counts`);
              assert.equal(r.states.get('zero'), rs.pages.zero);
            }
            await r.dump.close();
          }
        }
      } finally {
        await d.close();
      }
    }
    // a mixed batch: the shared zero page, a raw page, an lzo page, a zlib page, a raw zero page
    const pages = [undefined, pageFor(1)!, pageFor(2)!, pageFor(4)!, new Uint8Array(PS)];
    const lzoPage = nodeCodecs().get('lzo')!.compress!(pages[2]!);
    const zlibPage = nodeCodecs().get('zlib')!.compress!(pages[3]!, 1);
    const parts = [new Uint8Array(0), pages[1]!, lzoPage, zlibPage, pages[4]!];
    const offsets = new Uint32Array(5);
    const sizes = new Uint32Array(5);
    let at = 0;
    for (let i = 0; i < 5; i++) {
      offsets[i] = at;
      sizes[i] = parts[i]!.length;
      at += parts[i]!.length;
    }
    const blob = new Uint8Array(at);
    for (let i = 0; i < 5; i++) blob.set(parts[i]!, offsets[i]!);
    const mixed = { codes: Uint8Array.from([0, 1, 3, 2, 1]), offsets, sizes, blob };
    for (const [fileCodec, detectZero] of [[undefined, true], ['lzo', true], ['zlib', false]] as const) {
      const out = new Uint8Array(5 * PS);
      const r = passStoredBatch({ ...mixed, ...(fileCodec ? { fileCodec } : {}) }, out, { codec: 'lzo', pageSize: PS, detectZero, passStored: true }, compressWith('lzo'), new Uint8Array(PS), codec);
      assert.ok(!('bad' in r));
      const what = `file codec ${fileCodec}, detectZero ${detectZero}`;
      // the raw page is compressed unless the file's own codec left it raw
      assert.deepEqual([...r.kinds], detectZero ? [0, fileCodec === 'lzo' ? 1 : 2, 2, 2, 0] : [2, 2, 2, 2, 2], what);
      let pos = 0;
      for (let i = 0; i < 5; i++) {
        const n = r.sizes[i]!;
        if (r.kinds[i] === 0) continue;
        const bytes = out.subarray(pos, pos + n);
        const page = r.kinds[i] === 1 ? bytes : nodeCodecs().get('lzo')!.decompress(bytes, PS);
        assert.ok(Buffer.from(page).equals(pages[i] ?? new Uint8Array(PS)), `${what}: page ${i}`);
        if (i === 2) assert.ok(Buffer.from(bytes).equals(lzoPage), `${what}: the lzo page as stored`);
        pos += n;
      }
      assert.equal(pos, r.dataLen);
    }
    // a damaged stored page is not copied: its batch is read again page by page, which names it
    const inp = join(dir, 'in0.kdump');
    const d = (await openDumpFiles([inp])) as KdumpDump;
    const desc = await d.parts[0]!.desc(1);
    await d.close();
    assert.ok(desc && desc.size > 8);
    const bytes = await readFile(inp);
    bytes.fill(0xff, desc.offset, desc.offset + desc.size);
    await writeFile(inp, bytes);
    const dd = (await openDumpFiles([inp])) as KdumpDump;
    try {
      const st = await dd.storedPages(0, 16);
      assert.ok(st);
      assert.deepEqual(passStoredBatch(st, new Uint8Array(16 * PS), { codec: 'lzo', pageSize: PS, detectZero: true, passStored: true }, compressWith('lzo'), new Uint8Array(PS), codec), { bad: 1 }, 'the damaged page does not decode');
      for (const threads of [0, 2]) {
        for (const dl of [1, 31]) {
          await assert.rejects(
            convertDump(dd, join(dir, 'dmg.kdump'), { codec: 'lzo', dumpLevel: dl, ...(dl === 31 ? { exclude } : {}), threads, force: true }),
            (e: unknown) => e instanceof VmcoreError && /pfn 0x1\b/.test(e.message),
            `${threads} threads, level ${dl}`,
          );
        }
      }
    } finally {
      await dd.close();
    }
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test('default threads: none when the pages to write are few (FEW_PAGES), one per core otherwise', () =>
  withTmp(async (dir) => {
    const { dump } = syntheticDump();
    assert.equal((await convertDump(dump, join(dir, 'few.kdump'), { codec: 'zlib', dumpLevel: 1 })).threads, 0);
    assert.equal((await convertDump(dump, join(dir, 'two.kdump'), { codec: 'zlib', dumpLevel: 1, threads: 2 })).threads, 2, 'asked: kept');
    // FEW_PAGES / 8 + 1 pages to compress: workers; the same pages passed on as stored: none
    const n = FEW_PAGES / 8 + 1;
    const mem = new SparseMemory(n, PS);
    for (let p = 0; p < n; p++) mem.set(p, pageFor(p % 50) ?? new Uint8Array(PS).fill(9));
    const big: Dump = { ...dump, maxPfn: n, pageState: (p) => mem.pageState(p), pageRuns: (s?: number, e?: number) => mem.pageRuns(s, e), readPage: (p) => mem.readPage(p), readPhys: (a, l, o) => mem.readPhys(a, l, o) };
    const k = join(dir, 'big.lzo.kdump');
    assert.equal((await convertDump(big, k, { codec: 'lzo', dumpLevel: 1 })).threads, defaultConvertThreads());
    const kd = await openDumpFiles([k]);
    try {
      assert.equal((await convertDump(kd, join(dir, 'same.kdump'), { codec: 'lzo', dumpLevel: 1 })).threads, 0, 'lzo pages passed on as stored');
      assert.equal((await convertDump(kd, join(dir, 'other.kdump'), { codec: 'zlib', dumpLevel: 1 })).threads, defaultConvertThreads(), 'recompressed');
    } finally {
      await kd.close();
    }
  }));

test('--level: the range of the implementation that compresses (zlib itself 1..9, libdeflate 1..12), a usage error before anything is written', () =>
  withTmp(async (dir) => {
    const { dump } = syntheticDump();
    await assert.rejects(convertDump(dump, join(dir, 'a.kdump'), { codec: 'zlib', level: 10, noNative: true, threads: 0 }), (e: unknown) => e instanceof VmcoreError && e.code === 'USAGE' && /--level 10 is out of range for zlib with node:zlib \(1\.\.9\)/.test(e.message));
    assert.deepEqual(await readdir(dir), []);
    const s = await convertDump(dump, join(dir, 'b.kdump'), { codec: 'zlib', level: 9, noNative: true, threads: 0 });
    assert.ok(s.pages.compressed > 0);
    const a = nativeAddon();
    if (a?.zlibImpl?.startsWith('libdeflate')) assert.ok((await convertDump(dump, join(dir, 'c.kdump'), { codec: 'zlib', level: 12, threads: 0 })).pages.compressed > 0);
    await assert.rejects(convertDump(dump, join(dir, 'd.kdump'), { codec: 'zstd', level: 23, threads: 0 }), (e: unknown) => e instanceof VmcoreError && e.code === 'USAGE' && /\(1\.\.22\)/.test(e.message));
    for (const codec of ['lzo', 'snappy', 'none'] as const)
      await assert.rejects(convertDump(dump, join(dir, `e-${codec}.kdump`), { codec, level: 5, threads: 0 }), (e: unknown) => e instanceof VmcoreError && e.code === 'USAGE' && /--level applies to zlib and zstd/.test(e.message), codec);
  }));

test('pages the input lacks: left out of every output format, each marked incomplete, never taken for filtering', async () => {
  await withTmp(async (dir) => {
    const { celfOutput } = await import('../../src/node/convert/celf.js');
    // a kdump input cut short inside its page data: the pages whose data is gone are missing
    const whole = join(dir, 'whole.kdump');
    const { dump, expected } = syntheticDump();
    await convertDump(dump, whole, { codec: 'none', dumpLevel: 1, threads: 0 });
    const bytes = await readFile(whole);
    const k = (await openDumpFiles([whole])) as KdumpDump;
    const last = [...expected.keys()].filter((p) => expected.get(p)).pop()!;
    const cutAt = (await k.parts[0]!.desc(last - 40))!.offset;
    await k.close();
    const cut = join(dir, 'cut.kdump');
    await writeFile(cut, bytes.subarray(0, cutAt));
    const lost = [...expected.keys()].filter((p) => expected.get(p) && p >= last - 40).length;
    assert.ok(lost > 20, `${lost} pages lost`);

    // the whole input: no mark
    const clean = join(dir, 'clean.kdump');
    const w = await openDumpFiles([whole]);
    await convertDump(w, clean, { codec: 'lzo', dumpLevel: 1, threads: 0 });
    await w.close();
    const c = await openDumpFiles([clean]);
    assert.ok(!c.warnings.some((w) => w.code === 'MARKED_INCOMPLETE'));
    await c.close();

    const outputs: [string, Parameters<typeof convertDump>[2]][] = [
      ['out.kdump', { codec: 'lzo', dumpLevel: 1, threads: 0 }],
      ['out.elf', { format: 'elf', dumpLevel: 1, threads: 0 }],
      ['out.celf', { dumpLevel: 1, threads: 0, outputFormat: celfOutput({ threads: 0 }) }],
    ];
    for (const [name, opts] of outputs) {
      const input = await openDumpFiles([cut]);
      const out = join(dir, name);
      const s = await convertDump(input, out, opts);
      await input.close();
      assert.equal(s.pages.missing, lost, name);
      assert.ok(s.warnings.some((w) => /written as excluded/.test(w.text)), `${name}: the loss is a warning`);
      // (ELF leaves long zero runs out: compare the pages that are not zero)
      const r = await readBack([out], true);
      try {
        assert.ok(r.dump.warnings.some((w) => w.code === 'MARKED_INCOMPLETE'), `${name}: its reader says the dump is incomplete: ${r.dump.warnings.map((w) => w.code).join(',')}`);
        const kept = new Map([...expected].filter(([p, d]) => !(d && p >= last - 40)));
        assert.equal(r.sha, digest(kept, true), `${name}: every page the input delivered, the same`);
        // celf names the lost pages missing; kdump and ELF can only leave them out
        if (name.endsWith('.celf')) assert.equal(r.states.get('missing'), lost, `${name}: missing ranges`);
      } finally {
        await r.dump.close();
      }
    }
    // the mark itself: kdump header status (byte 424, DUMP_DH_COMPRESSED_INCOMPLETE 0x8), ELF e_flags bit 0 (byte 48)
    assert.equal((await readFile(join(dir, 'out.kdump'))).readInt32LE(424) & 0x8, 0x8);
    assert.equal((await readFile(join(dir, 'out.elf'))).readUInt32LE(48) & 1, 1);
    assert.equal((await readFile(clean)).readInt32LE(424) & 0x8, 0);
  });
});

test('ELF input: the compressing threads read the pages from the file themselves; a batch they cannot read is read again by the main thread', { skip: nativeAddon()?.compressFilePages ? false : 'the native addon is not built with compressFilePages' }, async () => {
  const { DirectElfReader } = await import('../../src/node/convert/direct.js');
  await withTmp(async (dir) => {
    const { dump, expected } = syntheticDump();
    const elf = join(dir, 'in.elf');
    await convertDump(dump, elf, { format: 'elf', dumpLevel: 0, threads: 0 });
    const want = digest(expected, true);
    const proto = DirectElfReader.prototype as unknown as { locate(addr: number, len: number): number | undefined };
    const locate = proto.locate;
    let calls = 0;
    try {
      // every batch is located in the file; the first is placed past its end (a file cut short
      // while it was converted): the worker's read fails, the main thread's read succeeds
      proto.locate = function (addr: number, len: number) {
        const at = locate.call(this, addr, len);
        return at === undefined ? at : calls++ === 0 ? 2 ** 40 : at;
      };
      for (const threads of [0, 2]) {
        for (const codec of ['lzo', 'zlib'] as const) {
          calls = 0;
          const out = join(dir, `out-${codec}-${threads}.kdump`);
          const input = await openDumpFiles([elf]);
          const s = await convertDump(input, out, { codec, dumpLevel: 1, threads });
          await input.close();
          assert.ok(calls > 1, `${codec}, ${threads} threads: batches read by the compressing thread (${calls})`);
          assert.equal(s.pages.total, expected.size);
          const r = await readBack([out], true);
          await r.dump.close();
          assert.equal(r.sha, want, `${codec}, ${threads} threads`);
        }
      }
    } finally {
      proto.locate = locate;
    }
  });
});

test('a full disk under --keep-incomplete: the kept ELF and kdump files have their headers and read back marked incomplete with the pages they hold', async () => {
  const { ElfFormat, KdumpFormat } = await import('../../src/node/convert/formats.js');
  const { fullDiskSink, fillUntilFull, wholePlan } = await import('../helpers/full-disk.js');
  const N = 4096; // 16 MiB of pages
  const LIMIT = 6 << 20; // the disk holds 6 MiB
  const page = (pfn: number) => new Uint8Array(PS).fill((pfn % 251) + 1);
  for (const [name, make] of [
    ['elf', () => new ElfFormat({ dumpLevel: 0 })],
    ['kdump', () => new KdumpFormat({ codec: 'none', level: 1, dumpLevel: 0 })],
  ] as const) {
    const sink = fullDiskSink(name, LIMIT);
    const fmt = make();
    await fmt.begin(wholePlan(N, PS, { notes: NOTES, vmcoreinfoText: VMCI }), sink);
    assert.match(String(await fillUntilFull(fmt, N, PS, page)), /no space left/, name);
    const end = await fmt.finish({ incomplete: true });
    const dir = await tmp();
    const f = join(dir, `full.${name}`);
    const bytes = sink.bytes();
    await writeFile(f, bytes.length >= end ? bytes : Buffer.concat([bytes, new Uint8Array(end - bytes.length)]));
    const d = await openDumpFiles([f]);
    try {
      assert.ok(d.warnings.some((w) => w.code === 'MARKED_INCOMPLETE'), `${name}: ${d.warnings.map((w) => w.code).join()}`);
      let kept = 0;
      for await (const r of d.pageRuns(0, N)) {
        if (r.state !== 'data') continue;
        for (let p = r.startPfn; p < r.endPfn; p++, kept++) assert.deepEqual(new Uint8Array(await d.readPage(p)), page(p), `${name} pfn ${p}`);
      }
      assert.ok(kept > 256 && kept < LIMIT / PS, `${name}: ${kept} pages kept`);
    } finally {
      await d.close();
      await rm(dir, { recursive: true, force: true });
    }
  }
});
