import { test } from 'node:test';
import assert from 'node:assert/strict';
import { BufferSource, CountingSource, type ByteSource } from '../../src/core/io/source.js';
import { openDump } from '../../src/core/format/open.js';
import { portableCodecs } from '../../src/core/codec/portable.js';
import { VmcoreError } from '../../src/core/errors.js';
import { hashMemory } from '../../src/core/hash.js';
import { ElfDump } from '../../src/core/format/elf/reader.js';
import { buildElf, note, patternPage, PAGE } from '../helpers/build.js';

const codecs = portableCodecs();
const open = (b: Uint8Array) => openDump([new BufferSource(b, 'test.elf')], codecs);

async function runs(d: { pageRuns(): AsyncIterable<{ startPfn: number; endPfn: number; state: string }> }) {
  const out: string[] = [];
  for await (const r of d.pageRuns()) out.push(`${r.startPfn}-${r.endPfn}:${r.state}`);
  return out;
}

test('ELF64 LE: PT_LOAD pages, zero tail, holes, notes', async () => {
  const p0 = patternPage(0x10);
  const p1 = patternPage(0x11);
  const vmci = new TextEncoder().encode('OSRELEASE=6.1.0-x\nPAGESIZE=4096\n');
  const elf = buildElf({
    segments: [{ paddr: 0x10 * PAGE, data: new Uint8Array([...p0, ...p1]), memsz: 4 * PAGE }],
    notes: new Uint8Array([...note('CORE', 1, new Uint8Array(336)), ...note('VMCOREINFO', 0, vmci)]),
  });
  const d = await open(elf);
  assert.equal(d.format, 'elf');
  assert.equal(d.arch, 'x86_64');
  assert.deepEqual(await runs(d), ['0-16:hole', '16-18:data', '18-20:zero']);
  assert.deepEqual(await d.readPage(0x11), p1);
  assert.deepEqual(await d.readPage(0x13), new Uint8Array(PAGE));
  assert.equal(d.vmcoreinfoText, 'OSRELEASE=6.1.0-x\nPAGESIZE=4096\n');
  assert.deepEqual(d.notes.map((n) => n.name), ['CORE', 'VMCOREINFO']);
  await assert.rejects(d.readPage(3), (e: VmcoreError) => e.code === 'PAGE_NOT_PRESENT' && /not RAM/.test(e.message));
  const bytes = await d.readPhys(0x11 * PAGE - 4, 8);
  assert.deepEqual(bytes, new Uint8Array([...p0.subarray(PAGE - 4), ...p1.subarray(0, 4)]));
  const r = await hashMemory(d);
  assert.equal(r.pages, 4);
  assert.equal(r.zeroPages, 2);
});

test('ELF32 big-endian and QEMU layout (section headers first, bogus e_ehsize)', async () => {
  const pg = patternPage(5);
  for (const spec of [
    { is64: false, le: false },
    { is64: true, le: true, qemuLayout: true },
  ]) {
    const d = await open(buildElf({ ...spec, segments: [{ paddr: 5 * PAGE, data: pg }] }));
    assert.equal(d.is64, spec.is64);
    assert.equal(d.littleEndian, spec.le);
    assert.deepEqual(await d.readPage(5), pg);
    if (spec.qemuLayout) assert.ok((await d.details()).producerHints.some((h) => h.code === 'bogus_ehsize' && h.text.startsWith('bogus e_ehsize')));
  }
});

test('overlapping PT_LOADs (kernel text inside RAM) read once, non-aligned ends', async () => {
  const ram = new Uint8Array(8 * PAGE);
  for (let i = 0; i < 8; i++) ram.set(patternPage(i), i * PAGE);
  const d = await open(
    buildElf({
      segments: [
        { paddr: 0, data: ram.subarray(0, 8 * PAGE - 100) }, // ends mid-page
        { paddr: 2 * PAGE, vaddr: 0xffffffff81000000n, data: ram.subarray(2 * PAGE, 4 * PAGE) },
      ],
    }),
  );
  assert.deepEqual(await runs(d), ['0-8:data']);
  const last = await d.readPage(7);
  assert.deepEqual(last.subarray(0, PAGE - 100), patternPage(7).subarray(0, PAGE - 100));
  assert.ok(last.subarray(PAGE - 100).every((x) => x === 0));
  assert.equal((await hashMemory(d)).pages, 8);
  const det = await d.details();
  assert.equal(det.segments?.[1]?.vaddr, 0xffffffff81000000n);
});

test('PN_XNUM: more than 65535 program headers', async () => {
  const n = 70000;
  const pg = patternPage(1);
  const segs = Array.from({ length: n }, (_, i) => ({ paddr: i * 2 * PAGE, data: i === n - 1 ? pg : new Uint8Array(0), memsz: PAGE }));
  const d = (await open(buildElf({ segments: segs }))) as ElfDump;
  assert.equal(d.layout.header.phnum, n);
  assert.deepEqual(await d.readPage((n - 1) * 2), pg);
  assert.equal(await d.pageState((n - 2) * 2), 'zero');
  assert.equal(await d.pageState((n - 2) * 2 + 1), 'hole');
});

test('truncated file: missing pages are reported, the rest reads', async () => {
  const data = new Uint8Array(4 * PAGE);
  for (let i = 0; i < 4; i++) data.set(patternPage(i), i * PAGE);
  const full = buildElf({ segments: [{ paddr: 0, data }] });
  const cut = full.subarray(0, full.length - 2 * PAGE - 10);
  const d = await open(cut);
  assert.deepEqual(await runs(d), ['0-1:data', '1-4:missing']);
  assert.ok(d.warnings.some((w) => w.code === 'FILE_TRUNCATED' && /truncated/.test(w.text)));
  const r = await hashMemory(d);
  assert.equal(r.pages, 1);
  assert.equal(r.missingPages, 3);
});

test('bad input gives typed errors naming file, offset and field', async () => {
  const good = buildElf({ segments: [{ paddr: 0, data: patternPage(0) }] });
  // buildElf writes no notes here, so program header 0 (at 64) is the PT_LOAD
  const dv = (b: Uint8Array) => new DataView(b.buffer);
  const cases: [string, (b: Uint8Array) => void, string, RegExp][] = [
    ['class', (b) => (b[4] = 9), 'BAD_FIELD', /EI_CLASS/],
    ['type', (b) => (b[16] = 2), 'UNSUPPORTED', /ET_CORE/],
    ['phnum', (b) => dv(b).setUint16(56, 60000, true), 'TRUNCATED', /e_phnum/],
    ['phentsize', (b) => dv(b).setUint16(54, 40, true), 'BAD_FIELD', /e_phentsize/],
    ['filesz>memsz', (b) => dv(b).setBigUint64(64 + 40, 1n, true), 'BAD_FIELD', /p_filesz/],
    ['p_offset beyond 2^53', (b) => dv(b).setBigUint64(64 + 8, 1n << 60n, true), 'OUT_OF_BOUNDS', /p_offset/],
  ];
  for (const [name, mut, code, field] of cases) {
    const b = good.slice();
    mut(b);
    await assert.rejects(open(b), (e: unknown) => {
      assert.ok(e instanceof VmcoreError, `${name}: ${String(e)}`);
      assert.equal(e.code, code, `${name}: ${e.message}`);
      assert.match(e.message, field);
      assert.match(e.message, /^test\.elf: /);
      return true;
    });
  }
  await assert.rejects(open(new Uint8Array([0x7f, 0x45, 0x4c, 0x46])), (e: VmcoreError) => e.code === 'TRUNCATED');
  await assert.rejects(open(new TextEncoder().encode('QEVM\0\0\0\x03')), (e: VmcoreError) => e.code === 'UNSUPPORTED' && /savevm/.test(e.message));
});

/** A 5 GiB "file" whose bytes are computed, to test offsets and addresses above 4 GiB. */
class VirtualSource implements ByteSource {
  constructor(
    readonly name: string,
    readonly size: number,
    private readonly head: Uint8Array,
  ) {}
  async read(offset: number, length: number): Promise<Uint8Array> {
    const end = Math.min(this.size, offset + length);
    const out = new Uint8Array(end - offset);
    if (offset < this.head.length) out.set(this.head.subarray(offset, Math.min(this.head.length, end)));
    for (let i = Math.max(offset, this.head.length); i < end; i += 4096) {
      // page-aligned stamp: the file offset, so we can check which bytes were read
      const at = i - offset;
      if (at + 8 <= out.length && i % 4096 === 0) new DataView(out.buffer).setBigUint64(at, BigInt(i), true);
    }
    return out;
  }
}

test('offsets and physical addresses above 4 GiB; reading one page does not read the file', async () => {
  const size = 5 * 2 ** 30;
  const head = buildElf({ segments: [{ paddr: 2 ** 32, data: new Uint8Array(0), memsz: 0, offset: 4096 }] });
  // patch the PT_LOAD to cover 5 GiB - 4096 bytes of the virtual file at physical 4 GiB
  const dv = new DataView(head.buffer);
  dv.setBigUint64(64 + 32, BigInt(size - 4096), true);
  dv.setBigUint64(64 + 40, BigInt(size - 4096), true);
  const src = new CountingSource(new VirtualSource('big.elf', size, head.subarray(0, 4096)));
  const d = await openDump([src], codecs);
  const before = src.bytes;
  const pfn = 2 ** 32 / PAGE + (2 ** 32 + 12345 * PAGE) / PAGE; // 4 GiB + (4 GiB + 12345 pages)
  const page = await d.readPage(pfn);
  const expectOffset = 4096 + (pfn - 2 ** 20) * PAGE;
  assert.equal(new DataView(page.buffer, page.byteOffset).getBigUint64(0, true), BigInt(expectOffset));
  assert.ok(expectOffset > 2 ** 32);
  assert.ok(src.bytes - before <= 1 << 20, `read ${src.bytes - before} bytes for one page`);
});
