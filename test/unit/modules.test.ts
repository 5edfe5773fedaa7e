/**
 * The module list (src/core/kernel/modules.ts) on synthetic kernels built in the test: struct
 * module in both layouts (6.4+ mem[] named by enum mod_mem_type, and core_layout/init_layout
 * before), each module's own kallsyms (Elf64_Sym symtab, strtab, typetab), and damaged lists
 * (a cycle, a pointer to nowhere, an unreadable symbol table); then the module symbols in the
 * symbol resolver (KernelSymbols.withModules) both ways.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Btf } from '../../src/core/kernel/btf/btf.js';
import { KernelTypes } from '../../src/core/kernel/btf/reader.js';
import { listModules, moduleSymbolTables } from '../../src/core/kernel/modules.js';
import { KERNEL_LIMITS } from '../../src/core/limits.js';
import { KernelSymbols } from '../../src/core/kernel/kallsyms.js';
import { symbolQuery } from '../../src/core/kernel/symquery.js';
import { Elf64_Sym } from '../../src/core/format/elf/structs.js';
import { VmcoreError } from '../../src/core/errors.js';
import { Backtracer, frameText } from '../../src/core/kernel/backtrace.js';
import { BtfBuilder } from '../helpers/btf-builder.js';

const BASE = 0xffffffffc0000000n;
const MOD_SIZE = 208;

/** vmlinux BTF with struct module in the 6.4+ (`mem`) or the older (`layout`) form. */
function vmlinuxBtf(layout: 'mem' | 'layout'): Btf {
  const b = new BtfBuilder();
  const uint = b.int('unsigned int', 4);
  const ulong = b.int('long unsigned int', 8);
  const char = b.int('char', 1, { char: true });
  const idx = b.int('__ARRAY_SIZE_TYPE__', 4);
  const vp = b.ptr(0);
  const charp = b.ptr(char);
  const lhPtr = b.ptr(b.nextId + 1);
  const lh = b.struct('list_head', 16, [['next', lhPtr, 0], ['prev', lhPtr, 64]]);
  const state = b.enum('module_state', 4, [['MODULE_STATE_LIVE', 0], ['MODULE_STATE_COMING', 1], ['MODULE_STATE_GOING', 2], ['MODULE_STATE_UNFORMED', 3]]);
  const name = b.array(char, idx, 56);
  const mk = b.struct('mod_kallsyms', 32, [['symtab', vp, 0], ['num_symtab', uint, 64], ['strtab', charp, 128], ['typetab', charp, 192]]);
  const mkp = b.ptr(mk);
  const members: [string, number, number][] = [['state', state, 0], ['list', lh, 64], ['name', name, 192]];
  if (layout === 'mem') {
    // the enum in an order of its own: the code must take the indexes from it
    b.enum('mod_mem_type', 4, [['MOD_TEXT', 0], ['MOD_DATA', 1], ['MOD_RODATA', 2], ['MOD_RO_AFTER_INIT', 3], ['MOD_INIT_TEXT', 4], ['MOD_INIT_DATA', 5], ['MOD_INIT_RODATA', 6], ['MOD_MEM_NUM_TYPES', 7]]);
    const mm = b.struct('module_memory', 16, [['base', vp, 0], ['size', uint, 64]]);
    members.push(['mem', b.array(mm, idx, 7), 640]);
  } else {
    const ml = b.struct('module_layout', 24, [['base', vp, 0], ['size', uint, 64], ['text_size', uint, 96], ['ro_size', uint, 128], ['ro_after_init_size', uint, 160]]);
    members.push(['core_layout', ml, 640], ['init_layout', ml, 832]);
  }
  members.push(['taints', ulong, 1536], ['kallsyms', mkp, 1600]);
  b.struct('module', MOD_SIZE, members);
  return new Btf(b.build(), { label: 'vmlinux BTF' });
}

/** A little kernel memory at BASE with helpers; `holes` are page offsets that are not present. */
class Mem {
  readonly bytes = new Uint8Array(0x20000);
  readonly dv = new DataView(this.bytes.buffer);
  readonly holes = new Set<number>();
  va = (off: number) => BASE + BigInt(off);
  u64 = (off: number, v: bigint) => this.dv.setBigUint64(off, v, true);
  u32 = (off: number, v: number) => this.dv.setUint32(off, v, true);
  str = (off: number, s: string) => this.bytes.set(new TextEncoder().encode(s + '\0'), off);
  readVirt = async (addr: bigint, len: number): Promise<Uint8Array> => {
    const o = Number(addr - BASE);
    if (addr < BASE || o + len > this.bytes.length) throw new VmcoreError('ADDRESS_TRANSLATION', `0x${addr.toString(16)} is not mapped`, { offset: addr });
    for (let p = o & ~0xfff; p < o + len; p += 0x1000) if (this.holes.has(p)) throw new VmcoreError('PAGE_NOT_PRESENT', `page at 0x${(BASE + BigInt(p)).toString(16)} is not in the dump`, { offset: addr });
    return this.bytes.slice(o, o + len);
  };
}

interface ModSpec {
  at: number;
  name: string;
  state: number;
  taints: bigint;
  /** [start offset, size] per mem[] index (6.4+) or core/init [base, size, text_size] (older). */
  text: [number, number];
  data: [number, number];
  /** symbols: name, offset from BASE, type letter, st_shndx */
  syms: [string, number, string, number?][];
  /** where its kallsyms structures go */
  ks: number;
}

/** Link the modules after the head at offset 0 (list order as given) and write each one. */
function writeModules(m: Mem, layout: 'mem' | 'layout', mods: ModSpec[]): void {
  const nodes = [0, ...mods.map((x) => x.at + 8)];
  for (let i = 0; i < nodes.length; i++) {
    m.u64(nodes[i]!, m.va(nodes[(i + 1) % nodes.length]!));
    m.u64(nodes[i]! + 8, m.va(nodes[(i + nodes.length - 1) % nodes.length]!));
  }
  for (const x of mods) {
    m.u32(x.at, x.state);
    m.str(x.at + 24, x.name);
    if (layout === 'mem') {
      m.u64(x.at + 80, m.va(x.text[0])); m.u32(x.at + 88, x.text[1]);
      m.u64(x.at + 96, m.va(x.data[0])); m.u32(x.at + 104, x.data[1]);
    } else {
      // core_layout: one allocation, text first
      m.u64(x.at + 80, m.va(x.text[0])); m.u32(x.at + 88, x.text[1] + x.data[1]); m.u32(x.at + 92, x.text[1]);
    }
    m.u64(x.at + 192, x.taints);
    m.u64(x.at + 200, m.va(x.ks));
    // mod_kallsyms at ks, symtab at ks+0x100, strtab at ks+0x800, typetab at ks+0xc00
    const n = x.syms.length + 1;
    m.u64(x.ks, m.va(x.ks + 0x100)); m.u32(x.ks + 8, n); m.u64(x.ks + 16, m.va(x.ks + 0x800)); m.u64(x.ks + 24, m.va(x.ks + 0xc00));
    let str = 1;
    x.syms.forEach(([name, off, type, shndx], i) => {
      m.bytes.set(Elf64_Sym.encode({ st_name: str, st_info: 0x12, st_shndx: shndx ?? 1, st_value: m.va(off) }, true), x.ks + 0x100 + (i + 1) * 24);
      m.str(x.ks + 0x800 + str, name);
      str += name.length + 1;
      m.bytes[x.ks + 0xc00 + i + 1] = type.charCodeAt(0);
    });
  }
}

const alpha = (): ModSpec => ({
  at: 0x100, name: 'alpha', state: 0, taints: (1n << 12n) | (1n << 13n), text: [0x4000, 0x1000], data: [0x5000, 0x800], ks: 0x8000,
  syms: [['a_init', 0x4000, 't'], ['a_func', 0x4100, 'T'], ['shared_name', 0x4200, 't'], ['a_undef', 0, 'U', 0], ['a_var', 0x5010, 'd']],
});
const beta = (): ModSpec => ({
  at: 0x400, name: 'beta', state: 1, taints: 0n, text: [0x6000, 0x1000], data: [0x7000, 0x1000], ks: 0xa000,
  syms: [['b_func', 0x6000, 't'], ['shared_name', 0x6800, 't']],
});

test('mod: the modules list in the 6.4+ layout (mem[] by enum mod_mem_type): base, size, state, taint letters, symbols', async () => {
  const m = new Mem();
  writeModules(m, 'mem', [alpha(), beta()]);
  const types = new KernelTypes(vmlinuxBtf('mem'), m.readVirt);
  const r = await listModules(types, (n) => (n === 'modules' ? m.va(0) : undefined));
  assert.deepEqual(r.warnings, []);
  assert.deepEqual(
    r.modules.map((x) => [x.name, x.module, x.base, x.size, x.state, x.taint, x.symbols?.length]),
    [
      ['alpha', m.va(0x100), m.va(0x4000), 0x1800, 'Live', 'OE', 4],
      ['beta', m.va(0x400), m.va(0x6000), 0x2000, 'Loading', '', 2],
    ],
  );
  assert.deepEqual(r.modules[0]!.regions.map((x) => [x.name, x.start, x.size]), [['text', m.va(0x4000), 0x1000], ['data', m.va(0x5000), 0x800]]);
  // sizes: to the next symbol, else the end of the region (kernel/module/kallsyms.c)
  assert.deepEqual(r.modules[0]!.symbols!.map((s) => [s.name, s.type, s.size, s.module]), [
    ['a_init', 't', 0x100n, 'alpha'], ['a_func', 'T', 0x100n, 'alpha'], ['shared_name', 't', 0xe00n, 'alpha'], ['a_var', 'd', 0x7f0n, 'alpha'],
  ]);
});

test('mod: the older layout (core_layout: text then data in one allocation)', async () => {
  const m = new Mem();
  const a = alpha();
  a.data = [0x5000, 0x800];
  writeModules(m, 'layout', [a]);
  const r = await listModules(new KernelTypes(vmlinuxBtf('layout'), m.readVirt), (n) => (n === 'modules' ? m.va(0) : undefined));
  assert.deepEqual(r.warnings, []);
  const x = r.modules[0]!;
  assert.deepEqual([x.name, x.base, x.size], ['alpha', m.va(0x4000), 0x1800]);
  assert.deepEqual(x.regions.map((g) => [g.name, g.start, g.size]), [['text', m.va(0x4000), 0x1000], ['data', m.va(0x5000), 0x800]]);
  assert.equal(x.symbols!.length, 4);
});

test('mod: a cycle ends the walk with a warning; past a pointer to nowhere or a NULL next the modules after it are read back from the head', async () => {
  const m = new Mem();
  writeModules(m, 'mem', [alpha(), beta()]);
  const types = new KernelTypes(vmlinuxBtf('mem'), m.readVirt);
  const sym = (n: string) => (n === 'modules' ? m.va(0) : undefined);
  // beta.list.next -> alpha.list: never back to the head
  m.u64(0x408, m.va(0x108));
  const cyc = await listModules(types, sym);
  assert.deepEqual(cyc.modules.map((x) => x.name), ['alpha', 'beta']);
  assert.ok(cyc.warnings.some((w) => w.code === 'LIST_DAMAGED' && /modules: the list loops at 0xffffffffc0000108/.test(w.text)), cyc.warnings.map((x) => x.text).join('; '));
  // alpha.list.next -> an unmapped address
  m.u64(0x108, 0xffffffffdead0000n);
  const bad = await listModules(types, sym);
  assert.deepEqual(bad.modules.map((x) => x.name), ['alpha', 'beta']);
  assert.ok(bad.warnings.some((w) => w.code === 'LIST_DAMAGED' && /modules: the node at 0xffffffffdead0000 cannot be read/.test(w.text)), bad.warnings.map((x) => x.text).join('; '));
  assert.ok(bad.warnings.some((w) => w.code === 'LIST_DAMAGED' && /modules: 1 more read backwards from the head/.test(w.text)), bad.warnings.map((x) => x.text).join('; '));
  // a NULL next pointer
  m.u64(0x108, 0n);
  const nul = await listModules(types, sym);
  assert.deepEqual(nul.modules.map((x) => x.name), ['alpha', 'beta']);
  assert.ok(nul.warnings.some((w) => w.code === 'LIST_DAMAGED' && /NULL next pointer/.test(w.text)), nul.warnings.map((x) => x.text).join('; '));
  // a list of itself: bounded by the hard cap, or the cycle check, never a hang
  m.u64(0x108, m.va(0x108));
  const self = await listModules(types, sym);
  assert.deepEqual(self.modules.map((x) => x.name), ['alpha']);
});

test('mod: an unreadable symbol table costs that module its symbols only; a hostile count is refused', async () => {
  const m = new Mem();
  writeModules(m, 'mem', [alpha(), beta()]);
  const types = new KernelTypes(vmlinuxBtf('mem'), m.readVirt);
  const sym = (n: string) => (n === 'modules' ? m.va(0) : undefined);
  m.holes.add(0x8000); // alpha's mod_kallsyms and symtab
  const r = await listModules(types, sym);
  assert.deepEqual(r.modules.map((x) => [x.name, x.symbols?.length]), [['alpha', undefined], ['beta', 2]]);
  assert.match(r.modules[0]!.symbolsError!, /not in the dump/);
  m.holes.clear();
  m.u32(0xa000 + 8, KERNEL_LIMITS.maxModuleSymbols + 1);
  const h = await listModules(types, sym);
  assert.match(h.modules[1]!.symbolsError!, /num_symtab = 262145 is implausible/);
  assert.equal(h.modules[0]!.symbols!.length, 4);
  // no `modules` symbol: a typed error
  await assert.rejects(listModules(types, () => undefined), (e: unknown) => e instanceof VmcoreError && e.code === 'NO_SYMBOLS');
});

test('module symbols in the resolver: address -> name+off [module], module:name and module-only names -> address', async () => {
  const m = new Mem();
  writeModules(m, 'mem', [alpha(), beta()]);
  const list = await listModules(new KernelTypes(vmlinuxBtf('mem'), m.readVirt), (n) => (n === 'modules' ? m.va(0) : undefined));
  const kernel = new KernelSymbols(
    { addresses: BigUint64Array.of(0xffffffff81000000n, 0xffffffff81000100n, 0xffffffff81000200n, 0xffffffff82000000n), names: ['_stext', 'shared_name', 'k_func', '_end'], types: 'TTTB' },
    'VMCOREINFO',
    'relative',
  );
  const syms = kernel.withModules(moduleSymbolTables(list));
  assert.equal(syms.count, 4, 'the kernel table is unchanged');
  assert.equal(syms.moduleSymbolCount, 6);
  const s = syms.symbolize(m.va(0x4110))!;
  assert.deepEqual([s.name, s.offset, s.size, s.module], ['a_func', 0x10n, 0x100n, 'alpha']);
  assert.equal(syms.symbolize(m.va(0x6900))!.module, 'beta');
  assert.equal(syms.symbolize(0xffffffff81000210n)!.name, 'k_func');
  assert.equal(syms.symbolize(m.va(0x3000)), undefined, 'outside every module and the kernel');
  // names: kernel first; a module's own with module:name; a name only modules have
  assert.deepEqual(syms.lookup('shared_name').map((x) => x.address), [0xffffffff81000100n]);
  assert.deepEqual(syms.lookup('beta:shared_name').map((x) => x.address), [m.va(0x6800)]);
  assert.deepEqual(syms.lookup('b_func').map((x) => [x.address, x.module]), [[m.va(0x6000), 'beta']]);
  assert.equal(syms.addressOf('alpha:a_func'), m.va(0x4100));
  assert.equal(syms.addressOf('a_func'), undefined, 'plain addressOf stays with the kernel');
  assert.deepEqual(symbolQuery(syms, '0x' + m.va(0x4105).toString(16)), [
    { query: '0x' + m.va(0x4105).toString(16), name: 'a_func', address: '0x' + m.va(0x4100).toString(16), offset: '0x5', size: '0x100', type: 'T', module: 'alpha' },
  ]);
  // the kernel's table alone does not answer for module addresses
  assert.equal(kernel.symbolize(m.va(0x4110)), undefined);
});

test('bt: a frame in a module is labelled name+0xoff/0xsize [module], as the kernel prints it', async () => {
  const m = new Mem();
  writeModules(m, 'mem', [alpha(), beta()]);
  const types = new KernelTypes(vmlinuxBtf('mem'), m.readVirt);
  const list = await listModules(types, (n) => (n === 'modules' ? m.va(0) : undefined));
  const kernel = new KernelSymbols(
    { addresses: BigUint64Array.of(0xffffffff81000000n, 0xffffffff81000200n, 0xffffffff82000000n), names: ['_stext', 'k_func', '_end'], types: 'TTB' },
    'VMCOREINFO',
    'relative',
  );
  const bt = await Backtracer.create({ readVirt: m.readVirt, release: '6.12.0', symbols: kernel.withModules(moduleSymbolTables(list)), types, cpus: [] });
  // a return address: looked up at pc-1, the offset printed from pc (as %pB does)
  const f = bt.symbolize({ level: 1, sp: 0n, pc: m.va(0x4120), reliable: true, method: 'orc', exact: false, stack: 'task' });
  assert.equal(frameText(f), 'a_func+0x20/0x100 [alpha]');
  assert.equal(frameText(bt.symbolize({ level: 0, sp: 0n, pc: 0xffffffff81000210n, reliable: true, method: 'orc', exact: true, stack: 'task' })), 'k_func+0x10/0xfffe00');
});
