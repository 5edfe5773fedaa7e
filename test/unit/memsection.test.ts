/**
 * The mem_section layout from VMCOREINFO (src/core/kernel/memsection.ts): the sizes of real
 * kernels are accepted, implausible ones refused.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Vmcoreinfo } from '../../src/core/kernel/vmcoreinfo.js';
import { memSectionLayout } from '../../src/core/kernel/memsection.js';

function vi(length: number, maxPhys?: number): Vmcoreinfo {
  return new Vmcoreinfo([
    'SYMBOL(mem_section)=ffff888003a17000',
    `LENGTH(mem_section)=${length}`,
    'SIZE(mem_section)=16',
    'OFFSET(mem_section.section_mem_map)=0',
    'NUMBER(SECTION_SIZE_BITS)=27',
    ...(maxPhys === undefined ? [] : [`NUMBER(MAX_PHYSMEM_BITS)=${maxPhys}`]),
    '',
  ].join('\n'));
}

test('mem_section: 4-level paging (46 bits, the corpus kernels) has 2^11 roots of 256 sections', () => {
  const L = memSectionLayout(vi(2048, 46), 4096);
  assert.ok(L);
  assert.equal(L.extreme, true);
  assert.equal(L.perRoot, 256);
  assert.equal(L.pagesPerSection, 32768);
});

test('mem_section: 5-level paging (MAX_PHYSMEM_BITS 52) has 2^17 roots and is accepted', () => {
  const L = memSectionLayout(vi(1 << 17, 52), 4096);
  assert.ok(L, '2^17 roots of a 5-level kernel');
  assert.equal(L.extreme, true);
  assert.equal(L.roots, 131072);
  assert.equal(L.perRoot, 256);
});

test('mem_section: an array larger than the read cap is refused, not read', () => {
  assert.equal(memSectionLayout(vi(1 << 22, 52), 4096), undefined);
  // without SPARSEMEM_EXTREME every section is in the array: 2^21 × 16 bytes is past the cap
  assert.equal(memSectionLayout(vi(1 << 21, 48), 4096), undefined);
});
