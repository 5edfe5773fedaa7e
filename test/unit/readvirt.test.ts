/**
 * readVirtMapped (src/core/kernel/arch.ts), the kernel virtual read of both translators: one
 * translation per mapping, one physical read per physically contiguous piece, the bytes of
 * each piece where they belong.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readVirtMapped, type VirtMapping } from '../../src/core/kernel/arch.js';
import { SparseMemory } from '../../src/core/memory.js';
import { isVmcoreError } from '../../src/core/errors.js';

const VA = 0xffffea0000000000n;

/** 16 pages of physical memory, page p filled with byte p + 1; readPhys calls recorded. */
function memory() {
  const mem = new SparseMemory(16);
  for (let p = 0; p < 16; p++) mem.set(p, new Uint8Array(4096).fill(p + 1));
  const reads: [number, number][] = [];
  const readPhys = mem.readPhys.bind(mem);
  mem.readPhys = (addr: number, length: number, opts?: { fillMissing?: boolean }) => {
    reads.push([addr, length]);
    return readPhys(addr, length, opts);
  };
  return { mem, reads };
}

test('readVirtMapped: a read inside one large mapping is translated once and read once', async () => {
  const { mem, reads } = memory();
  const asked: bigint[] = [];
  // a 32 KiB mapping of VA .. VA+32K at physical page 4
  const at = async (va: bigint): Promise<VirtMapping> => {
    asked.push(va);
    const o = Number(va - VA);
    return { pa: 4 * 4096 + o, span: 8 * 4096 - o };
  };
  const b = await readVirtMapped(mem, VA + 0x800n, 5 * 4096, at);
  assert.deepEqual(asked, [VA + 0x800n]);
  assert.deepEqual(reads, [[4 * 4096 + 0x800, 5 * 4096]]);
  assert.equal(b.length, 5 * 4096);
  assert.equal(b[0], 5);
  assert.equal(b[4096 - 0x800], 6);
  assert.equal(b[b.length - 1], 10);
});

test('readVirtMapped: 4 KiB mappings, contiguous ones read together, the others apart', async () => {
  const { mem, reads } = memory();
  // virtual pages 0, 1, 2, 3 -> physical 7, 8, 2, 3
  const phys = [7, 8, 2, 3];
  const at = async (va: bigint): Promise<VirtMapping> => {
    const o = Number(va - VA);
    return { pa: phys[Math.floor(o / 4096)]! * 4096 + (o % 4096), span: 4096 - (o % 4096) };
  };
  const b = await readVirtMapped(mem, VA + 0x10n, 4 * 4096 - 0x20, at);
  assert.deepEqual(reads, [
    [7 * 4096 + 0x10, 2 * 4096 - 0x10],
    [2 * 4096, 2 * 4096 - 0x10],
  ]);
  assert.deepEqual([b[0], b[4096 - 0x10], b[2 * 4096 - 0x10], b[3 * 4096 - 0x10], b[b.length - 1]], [8, 9, 3, 4, 4]);
});

test('readVirtMapped: a length over 1 GiB is refused, an unmapped address throws what the translation throws', async () => {
  const { mem } = memory();
  await assert.rejects(readVirtMapped(mem, VA, 2 ** 31, async () => ({ pa: 0, span: 4096 })), (e: unknown) => isVmcoreError(e) && e.code === 'OUT_OF_BOUNDS');
  const at = async (va: bigint): Promise<VirtMapping> => {
    if (va >= VA + 4096n) throw new Error('unmapped');
    return { pa: 0, span: 4096 - Number(va - VA) };
  };
  await assert.rejects(readVirtMapped(mem, VA, 8192, at), /unmapped/);
  assert.equal((await readVirtMapped(mem, VA, 0, at)).length, 0);
});
