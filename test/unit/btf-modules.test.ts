import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Btf } from '../../src/core/kernel/btf/btf.js';
import { KernelTypes } from '../../src/core/kernel/btf/reader.js';
import { loadModuleBtfs } from '../../src/core/kernel/btf/modules.js';
import { VmcoreError } from '../../src/core/errors.js';
import { BtfBuilder } from '../helpers/btf-builder.js';

const BASE = 0xffff888000000000n;

/** vmlinux types for the module walk: module {list, name, btf_data, btf_data_size}, btf_module {list, btf}, btf {data, data_size, name}. */
function vmlinux() {
  const b = new BtfBuilder();
  const uint = b.int('unsigned int', 4);
  const char = b.int('char', 1, { char: true });
  const idx = b.int('__ARRAY_SIZE_TYPE__', 4);
  const lhPtr = b.ptr(b.nextId + 1);
  const lh = b.struct('list_head', 16, [['next', lhPtr, 0], ['prev', lhPtr, 64]]);
  const name = b.array(char, idx, 56);
  const vp = b.ptr(0);
  b.struct('module', 96, [['state', uint, 0], ['list', lh, 64], ['name', name, 192], ['btf_data', vp, 640], ['btf_data_size', uint, 704]]);
  const btfPtr = b.ptr(b.nextId + 2);
  b.struct('btf_module', 24, [['list', lh, 0], ['btf', btfPtr, 128]]);
  b.struct('btf', 72, [['data', vp, 0], ['data_size', uint, 64], ['name', name, 128]]);
  return new Btf(b.build(), { label: 'vmlinux BTF' });
}

test('module BTF: split blobs from module.btf_data and from the kernel\'s btf_modules list; a bad blob is an error of that module only', async () => {
  const base = vmlinux();
  const split = (struct: string) => {
    const s = new BtfBuilder({ base: { typeCount: base.typeCount, strLen: base.strLen } });
    s.struct(struct, 4, [['x', 1, 0]]);
    return s.build();
  };
  const mem = new Uint8Array(0x10000);
  const dv = new DataView(mem.buffer);
  const put = (off: number, v: bigint) => dv.setBigUint64(off, v, true);
  const va = (off: number) => BASE + BigInt(off);
  // modules list head at 0x0: module A at 0x100 (btf_data set), module B at 0x200 (btf_data NULL)
  put(0x0, va(0x108)); put(0x8, va(0x208));
  put(0x108, va(0x208)); put(0x110, va(0x0));
  put(0x208, va(0x0)); put(0x210, va(0x108));
  mem.set(new TextEncoder().encode('alpha'), 0x100 + 24);
  mem.set(new TextEncoder().encode('beta'), 0x200 + 24);
  const a = split('alpha_state');
  mem.set(a, 0x1000);
  put(0x100 + 80, va(0x1000));
  dv.setUint32(0x100 + 88, a.length, true);
  // btf_modules head at 0x800: btf_module for beta at 0x900 -> btf at 0xa00; for gamma at 0x980 -> btf at 0xb00 (corrupt)
  put(0x800, va(0x900)); put(0x900, va(0x980)); put(0x980, va(0x800));
  put(0x900 + 16, va(0xa00)); put(0x980 + 16, va(0xb00));
  const bb = split('beta_state');
  mem.set(bb, 0x2000);
  put(0xa00, va(0x2000));
  dv.setUint32(0xa00 + 8, bb.length, true);
  mem.set(new TextEncoder().encode('beta'), 0xa00 + 16);
  mem.set(Uint8Array.of(1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20, 21, 22, 23, 24), 0x3000);
  put(0xb00, va(0x3000));
  dv.setUint32(0xb00 + 8, 24, true);
  mem.set(new TextEncoder().encode('gamma'), 0xb00 + 16);
  const readVirt = async (addr: bigint, len: number) => {
    const o = Number(addr - BASE);
    if (addr < BASE || o + len > mem.length) throw new VmcoreError('PAGE_NOT_PRESENT', `0x${addr.toString(16)}`, { offset: addr });
    return mem.slice(o, o + len);
  };
  const syms: Record<string, bigint> = { modules: va(0), btf_modules: va(0x800) };
  const r = await loadModuleBtfs(new KernelTypes(base, readVirt), (n) => syms[n]);
  // this struct module declares no memory layout: each module says so, nothing else is wrong
  assert.deepEqual(r.warnings, [
    { code: 'MODULE_UNREADABLE', text: 'module alpha: memory layout: field module.mem: struct module has neither mem[] nor core_layout' },
    { code: 'MODULE_UNREADABLE', text: 'module beta: memory layout: field module.mem: struct module has neither mem[] nor core_layout' },
  ]);
  assert.deepEqual(r.modules.map((m) => [m.name, m.source, m.size, m.error === undefined]), [
    ['alpha', 'module', a.length, true],
    ['beta', 'btf_modules', bb.length, true],
    ['gamma', 'btf_modules', 24, false],
  ]);
  assert.equal(r.modules[0]!.btf!.find('alpha_state'), base.typeCount);
  assert.equal(r.modules[1]!.btf!.find('beta_state'), base.typeCount);
  assert.equal(r.modules[1]!.btf!.find('module'), base.find('module'), 'base types through the split');
  assert.match(r.modules[2]!.error!, /BAD_MAGIC|not BTF/);
  // a loop in the modules list is bounded and reported
  put(0x208, va(0x108));
  const loop = await loadModuleBtfs(new KernelTypes(base, readVirt), (n) => syms[n]);
  assert.ok(loop.warnings.some((w) => w.code === 'LIST_DAMAGED' && /modules: the list loops/.test(w.text)), loop.warnings.map((x) => x.text).join('; '));
});
