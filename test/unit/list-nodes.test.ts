/**
 * listNodes (src/core/kernel/modules.ts): a circular list_head list with one node on a lost
 * page costs that node; the nodes after it are read backwards from the head.
 */
import { type Warning } from '../../src/core/warnings.js';
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { VmcoreError } from '../../src/core/errors.js';
import { listNodes } from '../../src/core/kernel/modules.js';
import type { KernelTypes } from '../../src/core/kernel/btf/reader.js';

/** A list head at 0x1000 and `n` nodes at 0x2000 + i * 0x100; `lost` nodes are unreadable. */
function list(n: number, lost: Set<number>, opts: { nullNext?: number } = {}): KernelTypes {
  const head = 0x1000n;
  const node = (i: number) => (i < 0 || i >= n ? head : 0x2000n + BigInt(i) * 0x100n);
  const mem = new Map<bigint, bigint>();
  mem.set(head, node(0));
  mem.set(head + 8n, node(n - 1));
  for (let i = 0; i < n; i++) {
    mem.set(node(i), opts.nullNext === i ? 0n : node(i + 1));
    mem.set(node(i) + 8n, i === 0 ? head : node(i - 1));
  }
  const lostAt = new Set([...lost].map(node));
  return {
    btf: { littleEndian: true },
    readVirt: async (va: bigint, len: number) => {
      const base = va - (va % 0x100n);
      if (lostAt.has(base)) throw new VmcoreError('PAGE_DAMAGED', `page of ${va.toString(16)} damaged`);
      const v = mem.get(va);
      if (v === undefined || len !== 8) throw new VmcoreError('ADDRESS_TRANSLATION', `no ${va.toString(16)}`);
      const b = new Uint8Array(8);
      new DataView(b.buffer).setBigUint64(0, v, true);
      return b;
    },
  } as unknown as KernelTypes;
}

const nodes = (idx: number[]) => idx.map((i) => 0x2000n + BigInt(i) * 0x100n);

test('listNodes: an intact list in order, no warning', async () => {
  const w: Warning[] = [];
  assert.deepEqual(await listNodes(list(5, new Set()), 0x1000n, 'modules', w), nodes([0, 1, 2, 3, 4]));
  assert.deepEqual(w, []);
});

test('listNodes: one unreadable node costs that node; the rest come back through prev, in order', async () => {
  const w: Warning[] = [];
  assert.deepEqual(await listNodes(list(6, new Set([2])), 0x1000n, 'modules', w), nodes([0, 1, 3, 4, 5]));
  assert.equal(w.length, 2);
  assert.equal(w[0]?.code, 'LIST_DAMAGED');
  assert.match(w[0]!.text, /modules: the node at 0x0*2200 cannot be read/);
  assert.equal(w[1]?.code, 'LIST_DAMAGED');
  assert.match(w[1]!.text, /3 more read backwards/);
});

test('listNodes: a NULL next pointer costs nothing when the prev chain is whole', async () => {
  const w: Warning[] = [];
  assert.deepEqual(await listNodes(list(4, new Set(), { nullNext: 1 }), 0x1000n, 'modules', w), nodes([0, 1, 2, 3]));
  assert.equal(w[0]?.code, 'LIST_DAMAGED');
  assert.match(w[0]!.text, /NULL next pointer/);
});

test('listNodes: two lost nodes cost the nodes between them too', async () => {
  const w: Warning[] = [];
  assert.deepEqual(await listNodes(list(7, new Set([1, 4])), 0x1000n, 'modules', w), nodes([0, 5, 6]));
});
