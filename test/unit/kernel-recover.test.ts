import { test } from 'node:test';
import assert from 'node:assert/strict';
import { recoverVmcoreinfo, validVmcoreinfoText } from '../../src/core/kernel/recover.js';
import { RecordingMemory } from '../../src/core/kernel/recording.js';
import { SparseMemory } from '../../src/core/memory.js';

const enc = new TextEncoder();
const TEXT = 'OSRELEASE=6.1.0-test\nPAGESIZE=4096\nSYMBOL(init_uts_ns)=ffffffff82a0c040\nNUMBER(phys_base)=6291456\n';

/** The kernel's note layout (append_elf_note + final_note), written byte by byte. */
function note(text: string, opts: { namesz?: number; type?: number; descsz?: number; terminator?: boolean } = {}): Uint8Array {
  const t = enc.encode(text);
  const pad = (t.length + 3) & ~3;
  const b = new Uint8Array(24 + pad + 12);
  const dv = new DataView(b.buffer);
  dv.setUint32(0, opts.namesz ?? 11, true);
  dv.setUint32(4, opts.descsz ?? t.length, true);
  dv.setUint32(8, opts.type ?? 0, true);
  b.set(enc.encode('VMCOREINFO'), 12);
  b.set(t, 24);
  if (opts.terminator === false) b.fill(0xaa, 24 + pad, 24 + pad + 12);
  return b;
}

test('text validation', () => {
  assert.ok(validVmcoreinfoText(enc.encode(TEXT)));
  assert.ok(validVmcoreinfoText(enc.encode(TEXT + 'CRASHTIME=1700000000')), 'last line CRASHTIME without newline');
  assert.ok(!validVmcoreinfoText(enc.encode(TEXT + 'SYMBOL(x)=ff')), 'cut line');
  assert.ok(!validVmcoreinfoText(enc.encode('OSRELEASE=6.1\u0001\n')), 'control byte');
  assert.ok(!validVmcoreinfoText(enc.encode('PAGESIZE=4096\n')), 'must start with OSRELEASE=');
});

test('finds the note and the raw text page, ranks, ignores decoys', async () => {
  const m = new SparseMemory(4096);
  m.set(0x100, note(TEXT)); // boot-time note, page-aligned
  m.set(0x200, TEXT); // vmcoreinfo_data page
  m.set(0x300, note(TEXT + 'CRASHTIME=1700000000\n')); // the crashed kernel's final copy
  // decoys
  m.set(0x400, note(TEXT, { type: 1 })); // wrong n_type
  m.set(0x401, note(TEXT, { descsz: 5000 })); // descsz too large
  m.set(0x402, note('OSRELEASE=6.1\u0007bad\n')); // non-printable
  m.set(0x403, 'xxOSRELEASE=6.1\n'); // not at page start
  m.set(0x404, note(TEXT, { namesz: 12 }));
  m.set(0x405, 'OSRELEASE=6.1.0-test\nPAGESIZE=40'); // text cut mid-line
  m.setState(0x500, 'excluded');
  m.setState(0x501, 'zero');
  const hits = await recoverVmcoreinfo(m);
  assert.deepEqual(hits.map((h) => [h.addr, h.form]), [
    [0x300000, 'note'],
    [0x100000, 'note'],
    [0x200000, 'text'],
  ]);
  assert.equal(hits[0]!.source, 'memory scan at 0x300000');
  assert.ok(hits[0]!.hasCrashTime && hits[0]!.terminated);
  assert.equal(hits[1]!.text, TEXT);
});

test('a note crossing into the next page and a note without terminator', async () => {
  let long = 'OSRELEASE=6.1.0-test\n';
  for (let i = 0; long.length + 34 <= 4096; i++) long += `SYMBOL(sym_${String(i).padStart(4, '0')})=ffffffff8${String(i).padStart(7, '0')}\n`;
  long += 'PAD=' + 'x'.repeat(4090 - long.length - 5) + '\n';
  assert.ok(long.length > 4096 - 24 && long.length <= 4096);
  const m = new SparseMemory(4096);
  m.write(0x10 * 4096, note(long));
  m.set(0x20, note(TEXT, { terminator: false }));
  const hits = await recoverVmcoreinfo(m);
  assert.equal(hits.length, 2);
  assert.equal(hits[0]!.text, long);
  assert.equal(hits[0]!.terminated, true);
  assert.equal(hits[1]!.terminated, false);
});

test('old kernels: a 4-byte-aligned note inside a page (deep pass)', async () => {
  const m = new SparseMemory(64);
  const p = new Uint8Array(4096);
  p.set(note(TEXT), 0x7c4);
  m.set(5, p);
  const hits = await recoverVmcoreinfo(m);
  assert.equal(hits.length, 1);
  assert.equal(hits[0]!.addr, 5 * 4096 + 0x7c4);
  assert.equal((await recoverVmcoreinfo(m, { deep: false })).length, 0);
});

test('the scan is not recorded; only the pages kept are', async () => {
  const m = new SparseMemory(1024);
  for (let p = 0; p < 1024; p++) m.set(p, `page ${p}`);
  m.set(700, note(TEXT));
  const rec = new RecordingMemory(m);
  const hits = await recoverVmcoreinfo(rec);
  assert.equal(hits.length, 1);
  assert.deepEqual(rec.pfns(), [700]);
});

test('an ELF dump is scanned in blocks of contiguous pages, with the same result as page by page', async () => {
  const { buildElf } = await import('../helpers/build.js');
  const { ElfDump } = await import('../../src/core/format/elf/reader.js');
  const { BufferSource } = await import('../../src/core/io/source.js');
  const PAGE = 4096;
  // 600 pages in one PT_LOAD (a block of 256 and a partial one) and 40 in a second one
  const seg = (n: number, base: number, hit?: number) => {
    const d = new Uint8Array(n * PAGE);
    for (let p = 0; p < n; p++) d.set(enc.encode(`page ${base + p}`), p * PAGE);
    if (hit !== undefined) d.set(note(TEXT), (hit - base) * PAGE);
    return d;
  };
  const elf = buildElf({ segments: [{ paddr: 0, data: seg(600, 0, 300) }, { paddr: 1000 * PAGE, data: seg(40, 1000, 1030) }] });
  const dump = await ElfDump.open(new BufferSource(elf));
  const block = await dump.readPageBlock(256, 256);
  assert.equal(block?.length, 256 * PAGE);
  assert.equal(new TextDecoder().decode(block!.subarray(0, 8)), 'page 256');
  assert.equal(await dump.readPageBlock(590, 20), undefined, 'runs past the PT_LOAD: page by page');
  let pageReads = 0;
  let blockReads = 0;
  const counting = {
    pageSize: dump.pageSize,
    maxPfn: dump.maxPfn,
    pageState: (p: number) => dump.pageState(p),
    pageRuns: (s?: number, e?: number) => dump.pageRuns(s, e),
    readPhys: (a: number, l: number, o?: { fillMissing?: boolean }) => dump.readPhys(a, l, o),
    readPage: (p: number) => (pageReads++, dump.readPage(p)),
  };
  const withBlocks = { ...counting, readPageBlock: (p: number, n: number) => (blockReads++, dump.readPageBlock(p, n)) };
  const a = await recoverVmcoreinfo(counting);
  const paged = pageReads;
  pageReads = 0;
  const b = await recoverVmcoreinfo(withBlocks);
  assert.deepEqual(b, a);
  assert.deepEqual(b.map((h) => h.addr), [300 * PAGE, 1030 * PAGE]);
  assert.equal(paged, 640);
  assert.equal(blockReads, 4, '256 + 256 + 88 pages, then 40');
  assert.equal(pageReads, 0);
  // a block that fails is read page by page: the damaged page alone is lost
  const failing = {
    ...counting,
    readPageBlock: async () => {
      throw new Error('block read failed');
    },
  };
  pageReads = 0;
  assert.deepEqual(await recoverVmcoreinfo(failing), a);
  assert.equal(pageReads, 640);
});
