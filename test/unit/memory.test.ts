import { test } from 'node:test';
import assert from 'node:assert/strict';
import { SparseMemory } from '../../src/core/memory.js';
import { VmcoreError } from '../../src/core/errors.js';

test('a page that is not in the dump is named by its physical address in the dump page size (64 KiB pages)', async () => {
  const mem = new SparseMemory(8, 65536);
  mem.set(1, 'x');
  mem.states.set(3, 'excluded');
  await assert.rejects(mem.readPhys(3 * 65536 + 10, 4), (e) => e instanceof VmcoreError && e.code === 'PAGE_NOT_PRESENT' && /page frame 0x3 \(physical 0x30000\) was excluded/.test(e.message));
  await assert.rejects(mem.readPage(5), (e) => e instanceof VmcoreError && /page frame 0x5 \(physical 0x50000\)/.test(e.message));
  assert.equal((await mem.readPhys(65536, 1))[0], 0x78);
});
