/**
 * A damaged page of the kallsyms tables costs the symbols it holds, not the table (issue 9,
 * item 4). Input: the real sample with the page descriptor of one table page set to size 0 and
 * flags 0. Truth: the same sample's intact table (every surviving symbol must be there, at the
 * same address, with the same name and type, and nothing else) and the table layout of
 * scripts/kallsyms.c: kallsyms_markers, the offset in kallsyms_names of every 256th
 * symbol, after kallsyms_names, read here from the intact dump to know which
 * blocks a page overlaps.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { BufferSource } from '../../src/core/io/source.js';
import { openDump } from '../../src/core/format/open.js';
import { nodeCodecs } from '../../src/node/codecs.js';
import { analyzeKernel } from '../../src/core/kernel/kernel.js';
import type { KernelSymbols } from '../../src/core/kernel/kallsyms.js';
import { symbolQuery } from '../../src/core/kernel/symquery.js';
import { sampleBytes, sampleWithDamagedDescs } from '../helpers/sample-variants.js';

const open = async (b: Uint8Array) => analyzeKernel(await openDump([new BufferSource(b, 'sample.kdump')], nodeCodecs()));
/** x86_64 kernel text mapping of the sample: phys_base 0 (the sample's proven value). */
const pfnOf = (va: bigint) => Number((va - 0xffffffff80000000n) >> 12n);

let intactP: Promise<{ syms: KernelSymbols; sym: (n: string) => bigint; markers: number[]; markersAt: bigint }> | undefined;
function intact() {
  intactP ??= (async () => {
    const k = await open(sampleBytes());
    const syms = await k.symbols();
    const sym = (n: string) => k.vmcoreinfo!.symbol(n)!;
    const m = Math.ceil(syms.count / 256);
    // this 6.1.192 carries the 6.2 layout: u32 kallsyms_markers, then kallsyms_seqs_of_names
    // (3 bytes a symbol, 8-aligned), then kallsyms_token_table
    const at = sym('kallsyms_token_table') - BigInt(((syms.count * 3 + 7) & ~7) + m * 4);
    const b = await k.readVirt(at, m * 4);
    const dv = new DataView(b.buffer, b.byteOffset, b.length);
    const markers = Array.from({ length: m }, (_, i) => dv.getUint32(i * 4, true));
    return { syms, sym, markers, markersAt: at };
  })();
  return intactP;
}

const row = (s: { address: bigint; type: string; name: string }) => `${s.address.toString(16)} ${s.type} ${s.name}`;

/** The damaged table must be the intact one less the symbols at `lostIdx`; lookups there unknown. */
function checkLoss(intactSyms: KernelSymbols, got: KernelSymbols, lostIdx: Set<number>, what: string) {
  const want = [...intactSyms].filter((_, i) => !lostIdx.has(i)).map(row);
  const have = [...got].map(row);
  assert.equal(have.length, want.length, `${what}: ${intactSyms.count - have.length} symbols lost, expected ${lostIdx.size}`);
  assert.deepEqual(have, want, `${what}: surviving symbols differ from the intact table`);
  const lostCount = got.lost.reduce((n, l) => n + l.count, 0);
  assert.equal(lostCount, lostIdx.size);
  // every lost symbol's address that no survivor shares answers "unknown", never a neighbour
  const kept = new Set(have.map((r) => r.split(' ')[0]));
  let unknown = 0;
  for (const i of lostIdx) {
    const s = intactSyms.at(i)!;
    if (kept.has(s.address.toString(16))) continue;
    assert.equal(got.symbolize(s.address), undefined, `${what}: ${s.name} at 0x${s.address.toString(16)} resolves to ${got.symbolize(s.address)?.name}`);
    assert.ok(got.lostAt(s.address), `${what}: 0x${s.address.toString(16)} not in a lost range`);
    assert.equal(got.addressOf(s.name) === s.address && intactSyms.lookup(s.name).length === 1, false, `${what}: lost ${s.name} still found by name`);
    unknown++;
  }
  assert.ok(unknown > lostIdx.size / 2, `${what}: only ${unknown} lost addresses checked`);
  // survivors resolve as in the intact table, except the size of one just before a loss
  let i = 0;
  for (const s of got) {
    if (i++ % 7 !== 0) continue;
    const a = got.symbolize(s.address);
    const b = intactSyms.symbolize(s.address);
    assert.deepEqual([a?.name, a?.address], [b?.name, b?.address], `${what}: 0x${s.address.toString(16)}`);
    if (a && b) assert.ok(a.size <= b.size || got.lost.some((l) => l.start > s.address && l.start <= s.address + a.size), `${what}: size of ${s.name}`);
  }
}

test('kallsyms: a damaged page of kallsyms_names costs the 256-symbol blocks it overlaps, named in a warning; every other symbol as before', async () => {
  const { syms, sym, markers, markersAt } = await intact();
  const names = sym('kallsyms_names');
  assert.equal(markers[0], 0);
  for (let b = 1; b < markers.length; b++) assert.ok(markers[b]! > markers[b - 1]!, 'kallsyms_markers increase');
  const page = 0xffffffff82200000n;
  assert.ok(page > names && page + 4096n < sym('kallsyms_token_table'));
  const po = Number(page - names);
  const namesEnd = Number(markersAt - names);
  assert.ok(markers[markers.length - 1]! < namesEnd);
  const lost = new Set<number>();
  for (let b = 0; b < markers.length; b++) {
    const end = b + 1 < markers.length ? markers[b + 1]! : namesEnd;
    if (markers[b]! < po + 4096 && end > po) for (let i = b * 256; i < Math.min(syms.count, b * 256 + 256); i++) lost.add(i);
  }
  assert.ok(lost.size >= 256 && lost.size % 256 === 0, `${lost.size} symbols in the blocks overlapping the page`);
  const k = await open(sampleWithDamagedDescs([pfnOf(page)]));
  const got = await k.symbols();
  checkLoss(syms, got, lost, 'kallsyms_names');
  assert.equal(got.warnings.length, 1, JSON.stringify(got.warnings));
  assert.equal(got.warnings[0]?.code, 'SYMBOLS_DAMAGED');
  assert.match(got.warnings[0]!.text, new RegExp(`^kallsyms_names: 0xffffffff82200000\\.\\.0xffffffff82201000 cannot be read \\(.*pfn 0x2200 is damaged.*\\); ${lost.size} of ${syms.count} symbols lost`));
  // `sym` on an address whose symbol was lost: no answer, not the neighbour that survived
  const lostSym = syms.at([...lost][100]!)!;
  assert.equal(symbolQuery(got, '0x' + lostSym.address.toString(16))[0]!.name, null);
  assert.deepEqual(symbolQuery(got, 'panic'), symbolQuery(syms, 'panic'));
});

test('kallsyms: a damaged page of kallsyms_offsets costs the 1024 symbols whose entries it holds; every other symbol as before', async () => {
  const { syms, sym } = await intact();
  const offsets = sym('kallsyms_offsets');
  const page = 0xffffffff82130000n;
  const first = Number(page - offsets) / 4;
  assert.ok(Number.isInteger(first) && first > 0 && first + 1024 < syms.count);
  const lost = new Set(Array.from({ length: 1024 }, (_, i) => first + i));
  const got = await (await open(sampleWithDamagedDescs([pfnOf(page)]))).symbols();
  checkLoss(syms, got, lost, 'kallsyms_offsets');
  assert.equal(got.warnings.length, 1, JSON.stringify(got.warnings));
  assert.equal(got.warnings[0]?.code, 'SYMBOLS_DAMAGED');
  assert.match(got.warnings[0]!.text, /^kallsyms_offsets: 0xffffffff82130000\.\.0xffffffff82131000 cannot be read \(.*pfn 0x2130 is damaged.*\); 1024 of \d+ symbols lost/);
  // an address between the last survivor before the loss and the first after it is unknown:
  // the lost symbols' addresses are not known, any of them may hold it
  const before = syms.at(first - 1)!;
  const after = syms.at(first + 1024)!;
  assert.equal(got.symbolize(before.address)?.name, syms.symbolize(before.address)?.name);
  assert.equal(got.symbolize(before.address + 1n), undefined);
  assert.equal(got.symbolize(after.address - 1n), undefined);
  assert.equal(got.symbolize(after.address)?.name, syms.symbolize(after.address)?.name);
});

test('kallsyms: damaged pages of both tables add up; the token table page (with kallsyms_markers) is a typed error naming it', async () => {
  const { syms } = await intact();
  const got = await (await open(sampleWithDamagedDescs([0x2200, 0x2130]))).symbols();
  const a = await (await open(sampleWithDamagedDescs([0x2200]))).symbols();
  const b = await (await open(sampleWithDamagedDescs([0x2130]))).symbols();
  const inA = new Set([...a].map(row));
  const inB = new Set([...b].map(row));
  assert.deepEqual([...got].map(row), [...syms].map(row).filter((r) => inA.has(r) && inB.has(r)));
  assert.equal(got.warnings.length, 2);
  const tok = await open(sampleWithDamagedDescs([0x22c9]));
  await assert.rejects(tok.symbols(), (e: Error & { code?: string; field?: string }) => e.code === 'PAGE_DAMAGED' && e.field === 'kallsyms_token_table' && /pfn 0x22c9/.test(e.message));
});
