/**
 * excludedPages (src/core/kernel/pagefilter.ts) over a synthetic SPARSEMEM machine: the struct
 * pages of a section are read in one span, classified 512 records at a time, and give the same
 * runs as classifying every 512-record block on its own; an unreadable block costs its pages.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Vmcoreinfo } from '../../src/core/kernel/vmcoreinfo.js';
import { VmcoreError } from '../../src/core/errors.js';
import { collectExcluded, excludedPages, STRUCT_PAGE_BLOCK } from '../../src/core/kernel/pagefilter.js';
import { classifyStructPages, pageModel, type PageKind } from '../../src/core/kernel/pagetypes.js';
import type { Warning } from '../../src/core/warnings.js';

const S = 64;
const PER_SECTION = 1024; // SECTION_SIZE_BITS 22, 4 KiB pages
const SECTIONS = 4;
const MS = 0xffffffff83000000n; // mem_section: one root pointer
const ROOT = 0xffff888000100000n; // the root: 256 mem_section structs of 16 bytes
const VMEMMAP = 0xffffea0000000000n;

// Debian 6.1.0-56-cloud-amd64's struct page layout and flags, with a small section size
const VI = new Vmcoreinfo(`OSRELEASE=6.1.0-56-cloud-amd64
PAGESIZE=4096
SIZE(page)=64
OFFSET(page.flags)=0
OFFSET(page.mapping)=24
OFFSET(page._mapcount)=48
OFFSET(page.private)=40
OFFSET(page.compound_head)=8
OFFSET(page.compound_dtor)=16
OFFSET(page.compound_order)=17
LENGTH(zone.free_area)=11
NUMBER(PG_lru)=4
NUMBER(PG_private)=13
NUMBER(PG_swapcache)=10
NUMBER(PG_swapbacked)=19
NUMBER(PG_head_mask)=65536
NUMBER(PG_slab)=9
NUMBER(HUGETLB_PAGE_DTOR)=2
NUMBER(PAGE_BUDDY_MAPCOUNT_VALUE)=-129
NUMBER(PAGE_OFFLINE_MAPCOUNT_VALUE)=-257
SYMBOL(mem_section)=${MS.toString(16)}
LENGTH(mem_section)=1
SIZE(mem_section)=16
OFFSET(mem_section.section_mem_map)=0
NUMBER(SECTION_SIZE_BITS)=22
NUMBER(MAX_PHYSMEM_BITS)=30
`);

/** The struct pages of 4 sections: page cache, anonymous pages, free blocks, a THP, a compound head on a block's last record. */
function structPages(): Uint8Array {
  const n = PER_SECTION * SECTIONS;
  const buf = new Uint8Array(n * S);
  const dv = new DataView(buf.buffer);
  const LRU = 1 << 4, SWAPBACKED = 1 << 19, HEAD = 1 << 16;
  for (let pfn = 0; pfn < n; pfn++) {
    const p = pfn * S;
    dv.setUint32(p + 48, 0xffffffff, true);
    if (pfn % 7 === 0) {
      dv.setUint32(p, LRU, true);
      dv.setBigUint64(p + 24, 0xffff888001000000n, true);
    } else if (pfn % 11 === 0) {
      dv.setUint32(p, LRU | SWAPBACKED, true);
      dv.setBigUint64(p + 24, 0xffff888002000001n, true);
    }
  }
  const free = (pfn: number, order: number) => {
    for (let i = pfn; i < pfn + 2 ** order; i++) new Uint8Array(buf.buffer, i * S, S).fill(0);
    dv.setUint32(pfn * S + 48, ~0x80 >>> 0, true);
    dv.setBigUint64(pfn * S + 40, BigInt(order), true);
    for (let i = pfn + 1; i < pfn + 2 ** order; i++) dv.setUint32(i * S + 48, 0xffffffff, true);
  };
  const thp = (pfn: number, order: number) => {
    dv.setUint32(pfn * S, HEAD | LRU | SWAPBACKED, true);
    dv.setBigUint64(pfn * S + 24, 0xffff888002000001n, true);
    for (let i = pfn + 1; i < pfn + 2 ** order; i++) dv.setBigUint64(i * S + 8, VMEMMAP + BigInt(pfn * S) + 1n, true);
    buf[(pfn + 1) * S + 17] = order;
  };
  free(64, 6); // inside a block
  free(1024 + 256, 8);
  free(2048 + 512, 9); // the last block of section 2 wholly
  thp(600, 3);
  thp(510, 1); // head on record 510, its tail on 511: one block
  thp(3072 + 510, 1); // head on a block's last-but-one record
  dv.setUint32(1023 * S, HEAD | LRU, true); // head on a block's last record: order 0
  return buf;
}

/** Kernel virtual memory of the synthetic machine; reads touching `bad` struct page pfns fail. */
function machine(mem: Uint8Array, bad: [number, number] = [0, 0]) {
  const root = new Uint8Array(4096);
  const rv = new DataView(root.buffer);
  for (let nr = 0; nr < SECTIONS; nr++) rv.setBigUint64(nr * 16, VMEMMAP + 2n, true); // mem_map − start_pfn × SIZE(page), HAS_MEM_MAP
  const ms = new Uint8Array(8);
  new DataView(ms.buffer).setBigUint64(0, ROOT, true);
  const reads: [bigint, number][] = [];
  const readVirt = async (va: bigint, length: number): Promise<Uint8Array> => {
    reads.push([va, length]);
    if (va === MS) return ms.slice(0, length);
    if (va === ROOT) return root.slice(0, length);
    const o = Number(va - VMEMMAP);
    if (o < 0 || o + length > mem.length) throw new VmcoreError('ADDRESS_TRANSLATION', `0x${va.toString(16)} not mapped`);
    if (o < bad[1] * S && o + length > bad[0] * S) throw new VmcoreError('PAGE_NOT_PRESENT', `struct pages at 0x${va.toString(16)} not in the dump`);
    return mem.slice(o, o + length);
  };
  return { k: { vmcoreinfo: VI, readVirt, littleEndian: true }, reads };
}

/** Every 512-record block classified on its own, runs of one kind merged: what excludedPages must yield. */
function blockByBlock(mem: Uint8Array, level: number, skip: [number, number] = [0, 0]) {
  const m = pageModel(VI);
  const runs: { startPfn: number; endPfn: number; kind: PageKind }[] = [];
  const cursor = { skipUntil: 0 };
  for (let pfn = 0; pfn < PER_SECTION * SECTIONS; pfn += STRUCT_PAGE_BLOCK) {
    if (pfn < skip[1] && pfn + STRUCT_PAGE_BLOCK > skip[0]) continue;
    if (pfn + STRUCT_PAGE_BLOCK <= cursor.skipUntil) continue;
    classifyStructPages(m, level, mem.subarray(pfn * S, (pfn + STRUCT_PAGE_BLOCK) * S), pfn, STRUCT_PAGE_BLOCK, cursor, (s, e, kind) => {
      const last = runs[runs.length - 1];
      if (last && last.kind === kind && last.endPfn === s) last.endPfn = e;
      else runs.push({ startPfn: s, endPfn: e, kind });
    });
  }
  return runs;
}

test('excludedPages reads a section of struct pages in one span and gives the runs of block-by-block classification', async () => {
  const mem = structPages();
  for (const level of [2, 8, 16, 31]) {
    const { k, reads } = machine(mem);
    const runs = await collectExcluded(excludedPages(k, 4096, level));
    assert.deepEqual(runs, blockByBlock(mem, level), `level ${level}`);
    const spans = reads.filter(([va]) => va !== MS && va !== ROOT);
    // one read a section; at level 16 and 31 section 2's last block is one free block, which the
    // span read covers too (it is not skipped: its start is read in the same span)
    assert.equal(spans.length, SECTIONS, `level ${level}: ${spans.length} reads of struct pages`);
    assert.ok(spans.every(([, n]) => n === PER_SECTION * S));
  }
  const runs = await collectExcluded(excludedPages(machine(mem).k, 4096, 31));
  assert.ok(runs.some((r) => r.startPfn === 2560 && r.endPfn === 3072 && r.kind === 'free'));
  assert.ok(runs.some((r) => r.startPfn <= 600 && r.endPfn >= 608 && r.kind === 'user'), 'the THP at 600 as a whole');
  assert.ok(!runs.some((r) => r.startPfn <= 1024 && r.endPfn > 1024 && r.startPfn === 1023), 'the head on a block end is order 0');
});

test('excludedPages: an unreadable struct page block costs its pages only, with a warning', async () => {
  const mem = structPages();
  const bad: [number, number] = [1536, 1540]; // inside section 1's second block
  const { k, reads } = machine(mem, bad);
  const warnings: Warning[] = [];
  const runs = await collectExcluded(excludedPages(k, 4096, 31, { onWarning: (w) => warnings.push(w) }));
  assert.deepEqual(runs, blockByBlock(mem, 31, [1536, 2048]));
  assert.equal(warnings.length, 1);
  assert.match(warnings[0]!.text, /struct pages of pfn 0x600-0x800 unreadable/);
  // section 1: its span fails, then its two blocks are read one by one
  assert.equal(reads.filter(([va]) => va !== MS && va !== ROOT).length, SECTIONS + 2);
  // the pages of the unreadable block are kept: none of its pfns is in a run
  assert.ok(!runs.some((r) => r.endPfn > 1536 && r.startPfn < 2048));
  assert.ok(runs.some((r) => r.startPfn >= 1024 && r.endPfn <= 1536), 'the readable block of section 1 is classified');
});

test('excludedPages refuses pfns in pages other than the kernel\'s PAGESIZE (QEMU\'s 64 KiB arm64 blocks classified none)', async () => {
  const { k } = machine(structPages());
  await assert.rejects(collectExcluded(excludedPages(k, 65536, 31)), (e: unknown) => {
    assert.ok(e instanceof VmcoreError);
    assert.equal(e.code, 'UNSUPPORTED');
    assert.equal(e.field, 'PAGESIZE');
    assert.match(e.message, /65536-byte pages, but the kernel's PAGESIZE is 4096/);
    return true;
  });
});
