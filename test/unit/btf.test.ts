import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Btf, BtfKind } from '../../src/core/kernel/btf/btf.js';
import { KernelTypes, readBits, type Decoded } from '../../src/core/kernel/btf/reader.js';
import { VmcoreError } from '../../src/core/errors.js';
import { BtfBuilder } from '../helpers/btf-builder.js';

/** A kernel-like set of types; returns the builder and the ids. */
function kernelish(le = true) {
  const b = new BtfBuilder({ littleEndian: le });
  const int = b.int('int', 4, { signed: true });
  const uint = b.int('unsigned int', 4);
  const char = b.int('char', 1, { signed: true, char: true });
  const ulong = b.int('long unsigned int', 8);
  const pid_t = b.typedef('pid_t', int);
  const lhPtr = b.ptr(b.nextId + 1);
  const listHead = b.struct('list_head', 16, [['next', lhPtr, 0], ['prev', lhPtr, 64]]);
  const anonU = b.union('', 4, [['a', int, 0], ['b', uint, 0]]);
  const anonS = b.struct('', 8, [['inner_x', uint, 0], ['inner_y', uint, 32]]);
  const idx = b.int('__ARRAY_SIZE_TYPE__', 4);
  const comm = b.array(char, idx, 16);
  const state = b.enum('task_state', 4, [['RUNNING', 0], ['SLEEPING', 1], ['NEG', -1]], true);
  const taskPtr = b.ptr(b.nextId + 1);
  const task = b.struct('task', 80, [
    ['__state', uint, 0],
    ['', anonU, 32],
    ['tasks', listHead, 64],
    ['pid', pid_t, 192],
    ['flags', uint, 224, 3],
    ['f2', uint, 227, 5],
    ['comm', comm, 256],
    ['s', state, 384],
    ['', anonS, 416],
    ['parent', taskPtr, 512],
    ['counter', ulong, 576],
  ], true);
  assert.equal(task, taskPtr + 1);
  const constTask = b.const(task);
  const flex = b.struct('flex', 4, [['n', int, 0], ['data', b.array(int, idx, 0), 32]]);
  // bitfields without kind_flag: INT types carry their own bits and offset
  const int4 = b.int('int', 4, { signed: true, bits: 4 });
  const uint3at2 = b.int('unsigned int', 4, { bits: 3, offset: 2 });
  const old = b.struct('old_bits', 4, [['x', int4, 0], ['y', uint3at2, 4]]);
  return { b, int, uint, char, ulong, pid_t, listHead, lhPtr, anonU, anonS, comm, state, task, taskPtr, constTask, flex, old };
}

test('BTF header and type index; every type decodes; both byte orders', () => {
  for (const le of [true, false]) {
    const k = kernelish(le);
    const btf = new Btf(k.b.build());
    assert.equal(btf.littleEndian, le);
    assert.equal(btf.typeCount, k.b.nextId);
    assert.equal(btf.startId, 1);
    const task = btf.type(k.task);
    assert.equal(task.kind, BtfKind.STRUCT);
    assert.equal(task.name, 'task');
    assert.equal(task.size, 80);
    assert.equal(task.members!.length, 11);
    assert.deepEqual(task.members![4], { name: 'flags', type: k.uint, bitOffset: 224, bitSize: 3 });
    assert.equal(btf.type(0).kindName, 'UNKN');
    assert.deepEqual(btf.type(k.int).int, { signed: true, char: false, bool: false, offset: 0, bits: 32 });
    assert.deepEqual(btf.type(k.comm).array, { type: k.char, indexType: k.comm - 1, nelems: 16 });
    assert.deepEqual(btf.enumerators(k.state), [{ name: 'RUNNING', value: 0n }, { name: 'SLEEPING', value: 1n }, { name: 'NEG', value: -1n }]);
    assert.equal(btf.sizeOf(k.task), 80);
    assert.equal(btf.sizeOf(k.comm), 16);
    assert.equal(btf.sizeOf(k.taskPtr), 8);
    assert.equal(btf.sizeOf(k.pid_t), 4);
  }
});

test('every BTF kind of btf.rst: decoded fields', () => {
  const b = new BtfBuilder();
  const int = b.int('int', 4, { signed: true });
  const bool = b.int('_Bool', 1, { bool: true });
  const ptr = b.ptr(int);
  const arr = b.array(int, int, 3);
  const st = b.struct('s', 8, [['a', int, 0], ['b', int, 32]]);
  const un = b.union('u', 4, [['a', int, 0]]);
  const en = b.enum('e', 4, [['E0', 0], ['E1', 0xffffffff]]);
  const fwd = b.fwd('later', true);
  const td = b.typedef('myint', int);
  const vol = b.volatile(int);
  const cst = b.const(int);
  const rst = b.restrict(ptr);
  const proto = b.proto(int, [['x', int], ['', 0]]);
  const fn = b.func('f', proto, 2);
  const v = b.var('jiffies', int, 1);
  const ds = b.datasec('.data..percpu', 64, [[v, 8, 4]]);
  const fl = b.float('double', 8);
  const dt = b.declTag('user', st, 1);
  const tt = b.typeTag('rcu', int);
  const e64 = b.enum64('big', 8, [['HUGE', 0x1234567890n], ['MINUS', -2n]], true);
  const btf = new Btf(b.build());
  const k = (id: number) => btf.type(id).kindName;
  assert.deepEqual(
    [int, ptr, arr, st, un, en, fwd, td, vol, cst, rst, fn, proto, v, ds, fl, dt, tt, e64].map(k),
    ['INT', 'PTR', 'ARRAY', 'STRUCT', 'UNION', 'ENUM', 'FWD', 'TYPEDEF', 'VOLATILE', 'CONST', 'RESTRICT', 'FUNC', 'FUNC_PROTO', 'VAR', 'DATASEC', 'FLOAT', 'DECL_TAG', 'TYPE_TAG', 'ENUM64'],
  );
  assert.equal(btf.type(bool).int!.bool, true);
  assert.equal(btf.type(fwd).kindFlag, true);
  assert.equal(btf.type(fn).linkage, 2);
  assert.deepEqual(btf.type(proto).params, [{ name: 'x', type: int }, { name: '', type: 0 }]);
  assert.equal(btf.type(v).linkage, 1);
  assert.deepEqual(btf.type(ds).secinfo, [{ type: v, offset: 8, size: 4 }]);
  assert.equal(btf.type(fl).size, 8);
  assert.equal(btf.type(dt).componentIdx, 1);
  assert.equal(btf.type(tt).name, 'rcu');
  assert.deepEqual(btf.enumerators(e64), [{ name: 'HUGE', value: 0x1234567890n }, { name: 'MINUS', value: -2n }]);
  assert.equal(btf.enumerators(en)[1]!.value, 0xffffffffn, 'unsigned enum (kind_flag 0)');
  assert.equal(btf.resolve(tt), int);
  assert.equal(btf.resolve(td), int);
  assert.equal(btf.resolve(cst), int);
  assert.equal(btf.sizeOf(arr), 12);
  assert.equal(btf.sizeOf(v), 4);
  assert.equal(btf.typeName(fn), 'int f(int, ...)');
  assert.equal(btf.typeName(rst), 'int *restrict');
  assert.equal(btf.typeName(cst), 'const int');
  assert.equal(btf.typeName(fwd), 'union later');
  assert.equal(btf.enumValue('HUGE'), 0x1234567890n);
  assert.equal(btf.enumValue('E1', 'e'), 0xffffffffn);
  assert.equal(btf.enumValue('nope'), undefined);
});

test('member paths: nested, anonymous members, arrays, bitfields, flexible arrays; offsetOf by name', () => {
  const k = kernelish();
  const btf = new Btf(k.b.build());
  assert.equal(btf.offsetOf('task', 'tasks.prev'), 16);
  assert.equal(btf.offsetOf('struct task', 'pid'), 24);
  assert.equal(btf.offsetOf('task', 'b'), 4, 'member of an anonymous union');
  assert.equal(btf.offsetOf('task', 'inner_y'), 56, 'member of an anonymous struct');
  assert.equal(btf.offsetOf('task', 'comm[3]'), 35);
  assert.deepEqual(btf.memberPath(k.task, 'f2'), { type: k.uint, bitOffset: 227, bitSize: 5 });
  assert.deepEqual(btf.memberPath(k.old, 'y'), { type: btf.memberPath(k.old, 'y').type, bitOffset: 6, bitSize: 3 }, 'INT bits without kind_flag');
  assert.equal(btf.memberPath(k.old, 'x').bitSize, 4);
  assert.equal(btf.sizeOf(k.flex), 4);
  assert.equal(btf.offsetOf('flex', 'data[5]'), 4 + 20, 'a flexible array may be indexed');
  assert.throws(() => btf.offsetOf('task', 'flags'), (e: VmcoreError) => e.code === 'BAD_FIELD' && /bitfield/.test(e.message));
  assert.throws(() => btf.offsetOf('task', 'nope'), (e: VmcoreError) => e.code === 'BAD_FIELD' && /has no member nope/.test(e.message));
  assert.throws(() => btf.offsetOf('task', 'comm[16]'), (e: VmcoreError) => e.code === 'BAD_FIELD' && /beyond 16/.test(e.message));
  assert.throws(() => btf.offsetOf('task', 'pid.x'), (e: VmcoreError) => e.code === 'BAD_FIELD');
  assert.throws(() => btf.offsetOf('no_such', 'x'), (e: VmcoreError) => e.code === 'BAD_FIELD' && /no type no_such/.test(e.message));
  assert.throws(() => btf.offsetOf('task', 'a b'), (e: VmcoreError) => e.code === 'BAD_FIELD' && /bad member path/.test(e.message));
});

test('names: struct/union/enum prefixes, typedef vs struct of the same name, FWD resolved to its definition', () => {
  const b = new BtfBuilder();
  const int = b.int('int', 4, { signed: true });
  const fwd = b.fwd('foo');
  const pfwd = b.ptr(fwd);
  const td = b.typedef('foo', int);
  const st = b.struct('foo', 4, [['x', int, 0]]);
  const un = b.union('foo', 4, [['y', int, 0]]);
  const en = b.enum('foo', 4, [['A', 1]]);
  const btf = new Btf(b.build());
  assert.equal(btf.find('foo'), st);
  assert.equal(btf.find('struct foo'), st);
  assert.equal(btf.find('union foo'), un);
  assert.equal(btf.find('enum foo'), en);
  assert.equal(btf.find('foo', [BtfKind.TYPEDEF]), td);
  assert.deepEqual(btf.findAll('foo').sort((a, c) => a - c), [fwd, td, st, un, en]);
  assert.equal(btf.resolve(fwd), st);
  assert.equal(btf.sizeOf(btf.type(pfwd).type!), 4);
  assert.equal(btf.find('bar'), undefined);
});

test('C declarations: pointers to arrays and functions, const pointers', () => {
  const b = new BtfBuilder();
  const int = b.int('int', 4, { signed: true });
  const char = b.int('char', 1, { char: true });
  const arr = b.array(char, int, 16);
  const parr = b.ptr(arr);
  const proto = b.proto(0, [['p', b.ptr(int)]]);
  const pfn = b.ptr(proto);
  const cptr = b.const(b.ptr(char));
  const pp = b.ptr(b.ptr(char));
  const btf = new Btf(b.build());
  assert.equal(btf.declare(arr, 'comm'), 'char comm[16]');
  assert.equal(btf.declare(parr, 'p'), 'char (*p)[16]');
  assert.equal(btf.declare(pfn, 'fn'), 'void (*fn)(int *)');
  assert.equal(btf.declare(cptr, 's'), 'char *const s');
  assert.equal(btf.declare(pp, 'argv'), 'char **argv');
});

test('split BTF: ids and strings continue after the base; base types usable from the split', () => {
  const k = kernelish();
  const base = new Btf(k.b.build(), { label: 'vmlinux BTF' });
  const s = new BtfBuilder({ base: { typeCount: base.typeCount, strLen: base.strLen } });
  const modPtr = s.ptr(k.task);
  const mod = s.struct('mod_state', 24, [['owner', modPtr, 0], ['list', k.listHead, 64], ['pid', k.pid_t, 192]]);
  const split = new Btf(s.build(), { base, label: 'BTF of module m' });
  assert.equal(split.startId, base.typeCount);
  assert.equal(mod, base.typeCount + 1);
  assert.equal(split.typeCount, base.typeCount + 2);
  assert.equal(split.type(mod).name, 'mod_state');
  assert.equal(split.type(k.task).name, 'task', 'base type through the split');
  assert.equal(split.offsetOf('mod_state', 'list.prev'), 16);
  assert.equal(split.find('task'), k.task);
  assert.equal(split.typeName(modPtr), 'struct task *');
  assert.equal(base.find('mod_state'), undefined, 'the base does not see split types');
  // a split blob alone is not parseable: its type ids point into the missing base
  assert.throws(() => new Btf(s.build()).type(mod), (e: VmcoreError) => e.code === 'BAD_FIELD' || e.code === 'OUT_OF_BOUNDS');
  // byte order must match
  const sBe = new BtfBuilder({ littleEndian: false, base: { typeCount: base.typeCount, strLen: base.strLen } });
  sBe.ptr(1);
  assert.throws(() => new Btf(sBe.build(), { base }), (e: VmcoreError) => e.code === 'BAD_FIELD' && /byte order/.test(e.message));
});

/** A readVirt over one buffer mapped at `va`. */
function memAt(va: bigint, buf: Uint8Array) {
  return async (a: bigint, len: number) => {
    const off = Number(a - va);
    if (a < va || off + len > buf.length) throw new VmcoreError('PAGE_NOT_PRESENT', `0x${a.toString(16)} not mapped`, { offset: a });
    return buf.slice(off, off + len);
  };
}

test('typed reader: scalars, enums, bitfields (both byte orders), strings, pointers, container_of, decode', async () => {
  for (const le of [true, false]) {
    const k = kernelish(le);
    const btf = new Btf(k.b.build());
    const base = 0xffff888000100000n;
    const buf = new Uint8Array(160);
    const dv = new DataView(buf.buffer);
    dv.setUint32(0, 0x402, le); // __state
    dv.setInt32(4, -5, le); // anonymous union a/b
    dv.setBigUint64(8, base + 80n + 8n, le); // tasks.next -> second task's tasks
    dv.setBigUint64(16, base + 8n, le);
    dv.setInt32(24, 1234, le); // pid
    // bits 224..231 (byte 28): flags:3 = 5, f2:5 = 19
    buf[28] = le ? (5 | (19 << 3)) : ((5 << 5) | 19);
    buf.set(new TextEncoder().encode('swapper/0'), 32);
    dv.setInt32(48, -1, le); // s = NEG
    dv.setUint32(52, 7, le);
    dv.setUint32(56, 9, le);
    dv.setBigUint64(64, base + 80n, le); // parent
    dv.setBigUint64(72, 0xfedcba9876543210n, le);
    buf.set(new TextEncoder().encode('kthreadd'), 80 + 32);
    dv.setInt32(80 + 24, 2, le);
    const kt = new KernelTypes(btf, memAt(base, buf));
    const t = await kt.read('task', base);
    assert.equal(t.int('__state'), 0x402n);
    assert.equal(t.int('a'), -5n);
    assert.equal(t.int('b'), 0xfffffffbn);
    assert.equal(t.num('pid'), 1234);
    assert.equal(t.int('flags'), 5n, `flags, ${le ? 'LE' : 'BE'}`);
    assert.equal(t.int('f2'), 19n, `f2, ${le ? 'LE' : 'BE'}`);
    assert.equal(t.str('comm'), 'swapper/0');
    assert.equal(t.int('s'), -1n);
    assert.equal(t.int('inner_y'), 9n);
    assert.equal(t.ptr('tasks.next'), base + 88n);
    assert.equal(t.int('counter'), 0xfedcba9876543210n);
    const parent = await t.deref('parent');
    assert.equal(parent.str('comm'), 'kthreadd');
    assert.equal(parent.address, base + 80n);
    const viaList = await kt.containerOf(t.ptr('tasks.next'), 'task', 'tasks');
    assert.equal(viaList.num('pid'), 2);
    assert.equal(t.member('tasks').address, base + 8n);
    const d = t.decode() as Extract<Decoded, { members: unknown }>;
    assert.ok(d.kind === 'struct');
    const m = (name: string) => d.members.find((x) => x.name === name)!.value;
    assert.deepEqual(m('s'), { kind: 'enum', type: 'enum task_state', value: -1n, name: 'NEG' });
    assert.equal((m('f2') as { value: bigint }).value, 19n);
    assert.equal(m('comm').kind, 'chars');
    assert.equal(m('parent').kind, 'ptr');
    const shallow = t.decode({ depth: 1 }) as Extract<Decoded, { members: unknown }>;
    assert.equal(shallow.members.find((x) => x.name === 'tasks')!.value.kind, 'elided');
    // bitfields without kind_flag
    const ob = new Uint8Array(4);
    ob[0] = le ? (0xa | (5 << 6)) & 0xff : 0;
    ob[1] = le ? (5 << 6) >> 8 : 0;
    if (le) {
      const old = await new KernelTypes(btf, memAt(base, ob)).read(k.old, base);
      assert.equal(old.int('x'), -6n, 'signed 4-bit 0xa');
      assert.equal(old.int('y'), 5n);
    }
    await assert.rejects(kt.read('task', base + 4096n), (e: VmcoreError) => e.code === 'PAGE_NOT_PRESENT');
    assert.throws(() => t.int('tasks'), (e: VmcoreError) => e.code === 'BAD_FIELD');
  }
});

test('readBits: little- and big-endian bit numbering', () => {
  assert.equal(readBits(Uint8Array.of(0b10110100), 2, 3, true), 0b101n);
  assert.equal(readBits(Uint8Array.of(0b10110100), 2, 3, false), 0b110n);
  assert.equal(readBits(Uint8Array.of(0xff, 0x01), 7, 2, true), 0b11n);
  assert.equal(readBits(Uint8Array.of(0x01, 0x80), 7, 2, false), 0b11n);
  assert.throws(() => readBits(Uint8Array.of(0), 4, 8, true), (e: VmcoreError) => e.code === 'OUT_OF_BOUNDS');
});

test('corrupt BTF: typed errors naming the field', () => {
  const k = kernelish();
  const good = k.b.build();
  const err = (blob: Uint8Array, code: string, re: RegExp) =>
    assert.throws(() => { const b = new Btf(blob, { label: 'vmlinux BTF', file: 'x.vmcore' }); for (let i = 0; i < b.typeCount; i++) b.type(i); }, (e: VmcoreError) => {
      assert.ok(e instanceof VmcoreError, String(e));
      assert.equal(e.code, code, e.message);
      assert.match(e.message, re);
      assert.equal(e.file, 'x.vmcore');
      return true;
    });
  err(good.subarray(0, 10), 'TRUNCATED', /header needs 24/);
  err(k.b.build({ magic: 0x1234 }), 'BAD_MAGIC', /not BTF/);
  err(k.b.build({ version: 2 }), 'UNSUPPORTED', /version 2/);
  err(k.b.build({ hdr_len: 8 }), 'OUT_OF_BOUNDS', /hdr_len/);
  err(good.subarray(0, good.length - 5), 'TRUNCATED', /string section/);
  err(k.b.build({ type_len: 0x7fffffff }), 'TRUNCATED', /type section/);
  err(k.b.build({ type_off: 2 }), 'BAD_FIELD', /aligned|overlap/);
  // a record that overruns the type section
  const cut = new BtfBuilder();
  cut.int('int', 4);
  cut.struct('s', 8, [['a', 1, 0], ['b', 1, 32]]);
  const cb = cut.build();
  const typeLen = new DataView(cb.buffer).getUint32(12, true);
  err(cut.build({ type_len: typeLen - 4, str_off: typeLen }), 'TRUNCATED', /overruns the type section/);
  // unknown kind
  const uk = new BtfBuilder();
  uk.add(25, 'x', 0, false, 0);
  err(uk.build(), 'BAD_FIELD', /unknown kind 25/);
  // type id beyond the table
  const bad = new BtfBuilder();
  bad.ptr(99);
  err(bad.build(), 'BAD_FIELD', /type id 99 does not exist/);
  // string offset beyond the section
  const bs = new BtfBuilder();
  bs.add(1, 'int', 0, false, 4, [32]);
  const bsb = bs.build();
  new DataView(bsb.buffer).setUint32(24, 5000, true);
  err(bsb, 'OUT_OF_BOUNDS', /string offset 5000/);
  // an INT whose bits exceed its size
  const bi = new BtfBuilder();
  bi.int('int', 4, { bits: 40 });
  err(bi.build(), 'BAD_FIELD', /INT of size 4 with 40 bits/);
});

test('corrupt BTF: a typedef loop and a self-containing array are bounded', () => {
  const b = new BtfBuilder();
  const t1 = b.nextId;
  b.typedef('a', t1 + 1);
  b.typedef('b', t1);
  const arr = b.nextId;
  b.array(arr, arr, 2);
  const p1 = b.ptr(b.nextId + 1);
  b.ptr(p1);
  const btf = new Btf(b.build());
  assert.throws(() => btf.resolve(t1), (e: VmcoreError) => e.code === 'BAD_FIELD' && /loop/.test(e.message));
  assert.throws(() => btf.sizeOf(arr), (e: VmcoreError) => e.code === 'BAD_FIELD' || e.code === 'OUT_OF_BOUNDS');
  assert.match(btf.typeName(p1), /loop/);
  assert.equal(btf.sizeOf(p1), 8);
});

test('mutated BTF: every byte flip and truncation gives a result or a VmcoreError, quickly', () => {
  const k = kernelish();
  const good = k.b.build();
  let seed = 12345;
  const rnd = () => ((seed = (seed * 1103515245 + 12345) >>> 0) / 2 ** 32);
  const t0 = Date.now();
  for (let n = 0; n < 2000; n++) {
    const blob = good.slice(0, n % 7 === 0 ? Math.floor(rnd() * good.length) : good.length);
    for (let f = 0; f < 3; f++) if (blob.length) blob[Math.floor(rnd() * blob.length)] = Math.floor(rnd() * 256);
    try {
      const btf = new Btf(blob);
      for (let i = 0; i < btf.typeCount; i++) {
        try {
          btf.type(i);
          btf.sizeOf(i);
          btf.typeName(i);
          const t = btf.type(btf.resolve(i));
          if (t.members) for (const m of t.members) if (m.name) btf.memberPath(i, m.name);
        } catch (e) {
          if (!(e instanceof VmcoreError)) throw e;
        }
      }
    } catch (e) {
      if (!(e instanceof VmcoreError)) throw e;
    }
  }
  assert.ok(Date.now() - t0 < 20000);
});

// The damaged-page kind (issue 9, item 4) as a mutation: random unreadable ranges of a blob,
// zeroed and passed as `lost`. Each must give a Btf or a typed error; every type it gives must be
// the intact blob's type of the same id (names in a lost range aside), and a lost one PAGE_DAMAGED.
test('BTF with unreadable ranges: every type given is the intact one of the same id, or a typed loss', () => {
  const good = kernelish().b.build();
  const intact = new Btf(good);
  const strip = (t: ReturnType<Btf['type']>) =>
    JSON.stringify({ ...t, name: undefined, members: t.members?.map((m) => ({ ...m, name: undefined })), enumerators: t.enumerators?.map((e) => ({ ...e, name: undefined, value: String(e.value) })), params: t.params?.map((p) => ({ ...p, name: undefined })) });
  let seed = 4242;
  const rnd = () => ((seed = (seed * 1103515245 + 12345) >>> 0) / 2 ** 32);
  let given = 0;
  let lostTypes = 0;
  for (let n = 0; n < 1500; n++) {
    const start = 24 + Math.floor(rnd() * (good.length - 24));
    const end = Math.min(good.length, start + 4 + Math.floor(rnd() * 96));
    const blob = good.slice();
    blob.fill(0, start, end);
    let btf: Btf;
    try {
      btf = new Btf(blob, { lost: [{ start, end, reason: `bytes ${start}..${end}` }] });
    } catch (e) {
      if (!(e instanceof VmcoreError)) throw e;
      continue;
    }
    for (let id = 1; id < intact.typeCount; id++) {
      let t;
      try {
        t = btf.type(id);
      } catch (e) {
        if (!(e instanceof VmcoreError)) throw e;
        assert.equal(e.code, 'PAGE_DAMAGED', `range ${start}..${end}, type ${id}: ${e.message}`);
        lostTypes++;
        continue;
      }
      const want = intact.type(id);
      assert.equal(strip(t), strip(want), `range ${start}..${end}, type ${id}`);
      if (!t.name.startsWith('?lost-name@')) assert.equal(t.name, want.name, `range ${start}..${end}, type ${id}`);
      given++;
    }
  }
  assert.ok(given > 1000 && lostTypes > 100, `${given} types given, ${lostTypes} lost`);
});
