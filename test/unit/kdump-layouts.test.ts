/**
 * kdump header layouts per architecture ABI: i386 (64-bit members 4-aligned), ARM EABI / MIPS /
 * PowerPC / s390 (8-aligned), 32- and 64-bit time_t, both byte orders. The real case is a file
 * makedumpfile wrote on 32-bit ARM (test/fixtures/cases/arm32-arm.kdump, with the right answer
 * in its expected.json, worked out from the format definition).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { BufferSource } from '../../src/core/io/source.js';
import { openDump } from '../../src/core/format/open.js';
import { nodeCodecs } from '../../src/node/codecs.js';
import { hashMemory } from '../../src/core/hash.js';
import { nodeSha256 } from '../../src/node/hash.js';
import { describeDump } from '../../src/core/info.js';
import { buildKdump, patternPage, PAGE, type KdumpSpec } from '../helpers/build.js';
import type { KdumpDump } from '../../src/core/format/kdump/reader.js';

const FIX = (f: string) => fileURLToPath(new URL(`../../../test/fixtures/cases/${f}`, import.meta.url));
const open = (b: Uint8Array, name = 'k.kdump') => openDump([new BufferSource(b, name)], nodeCodecs());

test('32-bit ARM kdump (EABI sub-header): 256 RAM pages, 240 dumped, VMCOREINFO, digest', async () => {
  const exp = JSON.parse(readFileSync(FIX('arm32-arm.kdump.expected.json'), 'utf8'));
  const d = (await open(new Uint8Array(readFileSync(FIX('arm32-arm.kdump'))), 'arm32-arm.kdump')) as KdumpDump;
  const r = await describeDump(d);
  assert.equal(r.pages.ram, exp.ram_pages);
  assert.equal(r.pages.dumped, exp.pages);
  assert.equal(r.pages.excluded, exp.excluded);
  assert.equal(d.maxPfn, exp.max_mapnr);
  assert.equal(d.vmcoreinfoText, exp.vmcoreinfo);
  assert.equal(r.physBase.header, exp.phys_base);
  const h = r.header as Record<string, unknown>;
  assert.equal(h.abi, 'ilp32');
  assert.equal(h.offset_note, exp.off_note);
  assert.equal(h.size_note, exp.size_note);
  assert.equal(h.offset_vmcoreinfo, exp.off_vmcoreinfo);
  assert.equal(h.size_vmcoreinfo, exp.size_vmcoreinfo);
  assert.match(String(h.layout_reason), /8-aligned.*machine "armv7l"/);
  assert.deepEqual(r.warnings, []);
  const all = await hashMemory(d, { hasher: nodeSha256 });
  assert.equal(all.sha256, exp.pages_sha256);
  assert.equal(all.pages, exp.pages);
  const nz = await hashMemory(d, { hasher: nodeSha256, skipZero: true });
  assert.equal(nz.sha256, exp.nonzero_sha256);
  assert.equal(nz.pages, exp.nonzero_pages);
});

const VMCI = 'OSRELEASE=5.15.0-test\nPAGESIZE=4096\n';
const spec = (s: Partial<KdumpSpec>): KdumpSpec => {
  const pages = new Map<number, Uint8Array>();
  for (const p of [0x40000, 0x40001, 0x40005, 0x40100]) pages.set(p, patternPage(p));
  pages.set(0x40002, new Uint8Array(PAGE));
  return { maxMapnr: 0x40200, pages, excluded: [0x40003], vmcoreinfo: VMCI, physBase: 0x40000000n, ...s };
};

// every 32-bit machine makedumpfile runs on, both time_t widths, both byte orders
const MACHINES: [string, 'i386' | 'ilp32'][] = [
  ['i686', 'i386'],
  ['i386', 'i386'],
  ['armv7l', 'ilp32'],
  ['armv5tel', 'ilp32'],
  ['mips', 'ilp32'],
  ['ppc', 'ilp32'],
  ['s390', 'ilp32'],
];
for (const [machine, abi] of MACHINES) {
  for (const time64 of [false, true]) {
    for (const le of [true, false]) {
      test(`${machine} (${abi}), ${time64 ? '64' : '32'}-bit time_t, ${le ? 'LE' : 'BE'}: pages, notes, VMCOREINFO, timestamp`, async () => {
        const want = await hashMemory(await open(buildKdump(spec({}))));
        const b = buildKdump(spec({ layout32: true, abi32: abi, time64, le, machine, timestampSec: 1700000000 }));
        const d = (await open(b)) as KdumpDump;
        const h = d.parts[0]!.h;
        assert.equal(h.abi, abi);
        assert.equal(h.time64, time64);
        assert.equal(d.littleEndian, le);
        assert.equal(h.timestampSec, 1700000000);
        assert.equal(d.maxPfn, 0x40200);
        assert.equal(d.vmcoreinfoText, VMCI);
        assert.equal(h.physBase, 0x40000000n);
        assert.deepEqual(d.warnings, []);
        const r = await describeDump(d);
        assert.equal(r.pages.ram, 6);
        assert.equal(r.pages.dumped, 5);
        assert.equal((await hashMemory(d)).sha256, want.sha256);
      });
    }
  }
}

test('a machine name that does not fit the file: the layout that fits, with a warning', async () => {
  // i386 layout written with an ARM machine name
  const d = (await open(buildKdump(spec({ layout32: true, abi32: 'i386', machine: 'armv7l' })))) as KdumpDump;
  assert.equal(d.parts[0]!.h.abi, 'i386');
  assert.equal(d.vmcoreinfoText, VMCI);
  assert.ok(d.warnings.some((w) => w.code === 'HEADER_LAYOUT_GUESSED' && /header layout: the 32-bit layout with 64-bit members 8-aligned .* of machine "armv7l" does not fit this file/.test(w.text)), d.warnings.map((x) => x.text).join('\n'));
});

test('a dump whose RAM comes out as 0 pages is never shown without a warning', async () => {
  const d = await open(buildKdump({ maxMapnr: 64, pages: new Map() }));
  const r = await describeDump(d);
  assert.equal(r.pages.ram, 0);
  assert.ok(r.warnings.some((w) => w.code === 'NO_MEMORY' && /0 RAM pages/.test(w.text)), r.warnings.map((x) => x.text).join('\n'));
});

test('a flattened stream without its end marker reads fully but warns that it may be truncated', async () => {
  const { flatten } = await import('../helpers/build.js');
  const file = buildKdump(spec({}));
  const flat = flatten(file, 3000);
  // the end marker is the last 16 bytes (offset -1, size -1)
  assert.deepEqual([...flat.subarray(flat.length - 16)], new Array(16).fill(0xff));
  const whole = await open(flat, 'ok.flat');
  assert.deepEqual(whole.warnings, []);
  const cut = await open(flat.subarray(0, flat.length - 16), 'cut.flat');
  assert.equal((await hashMemory(cut)).sha256, (await hashMemory(whole)).sha256);
  assert.ok(cut.warnings.some((w) => w.code === 'FILE_TRUNCATED' && /^cut\.flat: the flattened stream has no end marker after its \d+ records: it may be truncated/.test(w.text)), cut.warnings.map((x) => x.text).join('\n'));
});
