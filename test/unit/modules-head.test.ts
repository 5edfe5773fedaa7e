/**
 * The `modules` list head found in the kernel image when kallsyms has no data symbols
 * (modules.ts findModulesHead), on a synthetic kernel built here: an image region searched from
 * its start, the struct modules elsewhere (the module area). Decoys that a weaker check would
 * take: a list whose entries are not modules, and one whose entries look like modules but whose
 * mkobj.mod does not point back; and the empty list, which cannot be told from any other.
 */
import type { Warning } from '../../src/core/warnings.js';
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Btf } from '../../src/core/kernel/btf/btf.js';
import { KernelTypes } from '../../src/core/kernel/btf/reader.js';
import { findModulesHead, listModules } from '../../src/core/kernel/modules.js';
import { VmcoreError } from '../../src/core/errors.js';
import { BtfBuilder } from '../helpers/btf-builder.js';

const IMAGE = 0xffffc94f40000000n; // the searched image data
const MODS = 0xffffc94f24000000n; // the module area
const SIZE = 0x10000;

/** struct module: state @0, list @8, name[56] @24, mkobj {kobj (64 bytes), mod @64} @80. */
function btf(): Btf {
  const b = new BtfBuilder();
  const char = b.int('char', 1, { char: true });
  const idx = b.int('__ARRAY_SIZE_TYPE__', 4);
  const vp = b.ptr(0);
  const lhPtr = b.ptr(b.nextId + 1);
  const lh = b.struct('list_head', 16, [['next', lhPtr, 0], ['prev', lhPtr, 64]]);
  const state = b.enum('module_state', 4, [['MODULE_STATE_LIVE', 0], ['MODULE_STATE_COMING', 1], ['MODULE_STATE_GOING', 2], ['MODULE_STATE_UNFORMED', 3]]);
  const kobj = b.struct('kobject', 64, [['name', vp, 0]]);
  const mk = b.struct('module_kobject', 72, [['kobj', kobj, 0], ['mod', vp, 512]]);
  b.struct('module', 256, [['state', state, 0], ['list', lh, 64], ['name', b.array(char, idx, 56), 192], ['mkobj', mk, 640]]);
  return new Btf(b.build(), { label: 'vmlinux BTF' });
}

/** Two mapped regions (image, module area); everything else is unmapped. */
class Mem {
  readonly image = new Uint8Array(SIZE);
  readonly mods = new Uint8Array(SIZE);
  private at(va: bigint): [Uint8Array, number] | undefined {
    if (va >= IMAGE && va < IMAGE + BigInt(SIZE)) return [this.image, Number(va - IMAGE)];
    if (va >= MODS && va < MODS + BigInt(SIZE)) return [this.mods, Number(va - MODS)];
    return undefined;
  }
  u64(va: bigint, v: bigint) {
    const [b, o] = this.at(va)!;
    new DataView(b.buffer).setBigUint64(o, v, true);
  }
  str(va: bigint, s: string) {
    const [b, o] = this.at(va)!;
    b.set(new TextEncoder().encode(s + '\0'), o);
  }
  readVirt = async (va: bigint, n: number): Promise<Uint8Array> => {
    const r = this.at(va);
    if (!r || r[1] + n > SIZE) throw new VmcoreError('ADDRESS_TRANSLATION', `0x${va.toString(16)} is not mapped`, { offset: va });
    return r[0].slice(r[1], r[1] + n);
  };
  /** A circular list from `head` through the `list` members of the modules at `mods`. */
  link(head: bigint, mods: bigint[]) {
    const nodes = [head, ...mods.map((m) => m + 8n)];
    for (let i = 0; i < nodes.length; i++) {
      this.u64(nodes[i]!, nodes[(i + 1) % nodes.length]!);
      this.u64(nodes[i]! + 8n, nodes[(i + nodes.length - 1) % nodes.length]!);
    }
  }
  module(at: bigint, name: string, o: { state?: number; self?: boolean } = {}) {
    this.u64(at, BigInt(o.state ?? 0));
    this.str(at + 24n, name);
    this.u64(at + 80n + 64n, o.self === false ? at + 0x1000n : at);
  }
}

const types = (m: Mem) => new KernelTypes(btf(), m.readVirt);

test('modules head: the list of struct modules whose mkobj.mod points back, past a list of non-modules and one of look-alikes', async () => {
  const m = new Mem();
  // decoy 1: a list whose entries are not struct modules (no name, state out of range)
  m.link(IMAGE + 0x100n, [MODS + 0x8000n]);
  m.u64(MODS + 0x8000n, 0x41414141n);
  // decoy 2: "modules" with names and states, but mkobj.mod does not point back
  m.module(MODS + 0x9000n, 'fake', { self: false });
  m.link(IMAGE + 0x200n, [MODS + 0x9000n]);
  // an empty list_head (points at itself) before the real one
  m.link(IMAGE + 0x300n, []);
  // the real list: two modules, the newest still coming (its mkobj not set up yet)
  m.module(MODS + 0x1000n, 'newest', { state: 1, self: false });
  m.module(MODS + 0x2000n, 'qemu_fw_cfg');
  m.link(IMAGE + 0x4c610n - 0x40000n, [MODS + 0x1000n, MODS + 0x2000n]);
  const warnings: Warning[] = [];
  const head = await findModulesHead(types(m), m.readVirt, IMAGE, warnings);
  assert.equal(head, IMAGE + 0xc610n);
  assert.deepEqual(warnings, []);
  const list = await listModules(types(m), (n) => (n === 'modules' ? head : undefined), { symbols: false });
  assert.deepEqual(list.modules.map((x) => [x.name, x.state]), [['newest', 'Loading'], ['qemu_fw_cfg', 'Live']]);
});

test('modules head: a chain that does not close, or a name without its NUL, is not taken', async () => {
  const m = new Mem();
  m.module(MODS + 0x1000n, 'a');
  m.module(MODS + 0x2000n, 'b');
  m.link(IMAGE + 0x800n, [MODS + 0x1000n, MODS + 0x2000n]);
  m.u64(MODS + 0x2000n + 8n, MODS + 0x3000n); // b.next goes elsewhere: the chain never returns
  m.module(MODS + 0x4000n, 'x'.repeat(56)); // 56 bytes, no NUL in name[56]
  m.link(IMAGE + 0x900n, [MODS + 0x4000n]);
  const warnings: Warning[] = [];
  assert.equal(await findModulesHead(types(m), m.readVirt, IMAGE, warnings), undefined);
  assert.ok(warnings.some((w) => w.code === 'SYMBOLS_UNAVAILABLE' && /no list_head of struct modules closing on itself/.test(w.text)), JSON.stringify(warnings));
});

test('modules head: no module loaded (the head points at itself) cannot be found, and the warning says why', async () => {
  const m = new Mem();
  m.link(IMAGE + 0x100n, []);
  const warnings: Warning[] = [];
  assert.equal(await findModulesHead(types(m), m.readVirt, IMAGE, warnings), undefined);
  assert.ok(warnings.some((w) => w.code === 'SYMBOLS_UNAVAILABLE' && /no module loaded, or the list is damaged/.test(w.text)), JSON.stringify(warnings));
});
