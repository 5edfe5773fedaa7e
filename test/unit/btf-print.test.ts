import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Btf } from '../../src/core/kernel/btf/btf.js';
import { KernelTypes } from '../../src/core/kernel/btf/reader.js';
import { cString, decodedToJson, formatLayout, formatStruct } from '../../src/core/kernel/btf/print.js';
import { BtfBuilder } from '../helpers/btf-builder.js';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '../../..');
const CLI = join(ROOT, 'dist/src/cli/vmcore.js');
const SAMPLE = join(ROOT, 'samples/seabios-128M.md-c-d31.kdump');

test('cString: gdb escapes, trailing NUL dropped, runs crossing the limit printed whole', () => {
  assert.equal(cString(new TextEncoder().encode('init\0\0\0\0')), '"init\\000\\000\\000"');
  assert.equal(cString(Uint8Array.of(0x7f, 10, 34, 92, 39, 0xff)), '"\\177\\n\\"\\\\\'\\377"');
  assert.equal(cString(new Uint8Array(0)), '""');
  // a digit right after an octal escape is escaped too (gdb: "\311\060", crash's task_struct
  // __padding of a real 6.1 guest); after a plain char or a short escape it is not
  assert.equal(cString(Uint8Array.of(0xc9, 0x30, 0x31, 0x7b, 0x30)), '"\\311\\060\\061{0"');
  assert.equal(cString(Uint8Array.of(10, 0x30)), '"\\n0"');
  // the limit is checked between runs of one char: the run that crosses it is printed whole
  const long = new Uint8Array(300).fill(0x41);
  long.fill(0x42, 0, 5);
  assert.equal(cString(long, 3), '"BBBBB"...');
  long[150] = 0x43;
  assert.equal(cString(long, 6), '"BBBBB' + 'A'.repeat(145) + '"...');
  const mixed = Uint8Array.from({ length: 300 }, (_, i) => 0x61 + (i % 2));
  assert.equal(cString(mixed), '"' + 'ab'.repeat(128) + '"...');
});

test('formatStruct: crash layout of nested structs, anonymous unions, arrays of structs, chars, enums, bools, empty structs', async () => {
  const b = new BtfBuilder();
  const int = b.int('int', 4, { signed: true });
  const u8 = b.int('unsigned char', 1);
  const bool = b.int('_Bool', 1, { bool: true });
  const char = b.int('char', 1, { signed: true, char: true });
  const idx = b.int('__ARRAY_SIZE_TYPE__', 4);
  const lhPtr = b.ptr(b.nextId + 1);
  const lh = b.struct('list_head', 16, [['next', lhPtr, 0], ['prev', lhPtr, 64]]);
  const anon = b.union('', 4, [['u_flags', int, 0], ['a_flags', int, 0]]);
  const en = b.enum('st', 4, [['TT_NONE', 0], ['TT_X', 1]]);
  const empty = b.struct('kmap_ctrl', 0, []);
  const t = b.struct('t', 72, [
    ['x', int, 0], ['', anon, 32], ['l', b.array(lh, idx, 2), 64], ['comm', b.array(char, idx, 8), 320],
    ['c', u8, 384], ['ok', bool, 392], ['e', en, 416], ['k', empty, 448], ['nums', b.array(int, idx, 3), 448],
  ]);
  const btf = new Btf(b.build());
  const buf = new Uint8Array(72);
  const dv = new DataView(buf.buffer);
  dv.setInt32(0, -3, true);
  dv.setInt32(4, 48, true);
  dv.setBigUint64(8, 0xffff888000001000n, true);
  buf.set(new TextEncoder().encode('sh'), 40);
  buf[48] = 1;
  buf[49] = 1;
  dv.setInt32(52, 1, true);
  dv.setInt32(60, 7, true);
  const kt = new KernelTypes(btf, async () => buf);
  const o = await kt.read(t, 0xffff888000002000n);
  const text = formatStruct(o.decode(), { symbolize: (a) => (a === 0xffff888000001000n ? 'sym+8' : undefined) });
  assert.equal(text, [
    'struct t {',
    '  x = -3,',
    '  {',
    '    u_flags = 48,',
    '    a_flags = 48',
    '  },',
    '  l = {{',
    '      next = 0xffff888000001000 <sym+8>,',
    '      prev = 0x0',
    '    }, {',
    '      next = 0x0,',
    '      prev = 0x0',
    '    }},',
    '  comm = "sh\\000\\000\\000\\000\\000",',
    "  c = 1 '\\001',",
    '  ok = true,',
    '  e = TT_X,',
    '  k = {<No data fields>},',
    '  nums = {0, 7, 0}',
    '}',
    '',
  ].join('\n'));
  assert.deepEqual(decodedToJson(o.decode()), {
    x: -3, u_flags: 48, a_flags: 48,
    l: [{ next: '0xffff888000001000', prev: '0x0' }, { next: '0x0', prev: '0x0' }],
    comm: 'sh', c: 1, ok: true, e: 'TT_X', k: {}, nums: [0, 7, 0],
  });
  const layout = formatLayout(btf, t);
  assert.match(layout, /^struct t \{\n {5}\[0\] int x;\n {9}union \{\n {5}\[4\] {5}int u_flags;/);
  assert.match(layout, /\[8\] struct list_head l\[2\];/);
  assert.match(layout, /SIZE: 72\n$/);
  assert.match(formatLayout(btf, t, 0xffff888000002000n), /\[ffff888000002028\] char comm\[8\];/);
});

function cli(...args: string[]) {
  return spawnSync(process.execPath, [CLI, ...args], { encoding: 'utf8', maxBuffer: 64 << 20 });
}

// init_task of the sample's kernel (Debian 6.1.0-56, no KASLR), from nm of its -dbg vmlinux
test('vmcore struct on the real sample: init_task printed from the dump\'s BTF; members, -o and --json', () => {
  const r = cli('struct', SAMPLE, 'task_struct.pid,comm,tasks', 'ffffffff82a1aa40');
  assert.equal(r.status, 0, r.stderr);
  assert.match(r.stdout, /^ {2}pid = 0,\n {2}comm = "swapper\/0\\000\\000\\000\\000\\000\\000",\n {2}tasks = \{\n {4}next = 0xffff888003ded090,/);
  const j = cli('struct', SAMPLE, 'task_struct', '0xffffffff82a1aa40', '--json', '--depth', '2');
  assert.equal(j.status, 0, j.stderr);
  const v = JSON.parse(j.stdout) as { type: string; address: string; size: number; value: Record<string, unknown> };
  assert.equal(v.type, 'struct task_struct');
  assert.equal(v.address, '0xffffffff82a1aa40');
  assert.equal(v.size, 9728);
  assert.equal(v.value['comm'], 'swapper/0');
  assert.equal(v.value['pid'], 0);
  const lay = cli('struct', SAMPLE, 'task_struct', '-o');
  assert.equal(lay.status, 0, lay.stderr);
  assert.match(lay.stdout, /\[2976\] char comm\[16\];/);
  assert.match(lay.stdout, /SIZE: 9728/);
  const bad = cli('struct', SAMPLE, 'no_such_type', 'ffffffff82a1aa40');
  assert.equal(bad.status, 1);
  assert.match(bad.stderr, /BAD_FIELD.*no type no_such_type/);
  assert.equal(cli('struct', SAMPLE, 'task_struct').status, 2, 'no ADDR and no -o is a usage error');
});
