/**
 * systemMapForDump: a System.map is used for a dump only when it is that kernel's map. The lines
 * are the Debian 6.1.0-56-cloud-arm64 -dbg package's System.map; the VMCOREINFO values are the
 * ones the guest itself printed for the arm64 corpus case (KASLR on, KERNELOFFSET 494f36800000).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { systemMapForDump } from '../../src/core/kernel/system-map.js';
import { Vmcoreinfo } from '../../src/core/kernel/vmcoreinfo.js';
import { VmcoreError } from '../../src/core/errors.js';

const MAP = [
  'ffff800008010000 T _stext',
  'ffff8000083a0e60 T vfs_write',
  'ffff800008b9d474 T panic',
  'ffff80000938f000 T swapper_pg_dir',
  'ffff800009848360 d prb',
  'ffff8000099c0840 D init_uts_ns',
].join('\n');

const GUEST = new Vmcoreinfo(
  [
    'OSRELEASE=6.1.0-56-cloud-arm64',
    'SYMBOL(init_uts_ns)=ffffc94f401c0840',
    'SYMBOL(node_online_map)=ffffc94f4001f558',
    'SYMBOL(swapper_pg_dir)=ffffc94f3fb8f000',
    'SYMBOL(_stext)=ffffc94f3e810000',
    'SYMBOL(mem_section)=ffff00000ff5c380',
    'SYMBOL(prb)=ffffc94f40048360',
    'KERNELOFFSET=494f36800000',
  ].join('\n'),
);

function rejects(fn: () => unknown, field: string | undefined): void {
  assert.throws(fn, (e: unknown) => e instanceof VmcoreError && e.code === 'BAD_FIELD' && e.file === 'System.map' && e.field === field);
}

test('system map: the dumped kernel\'s map is shifted by KERNELOFFSET (panic at the guest\'s /proc/kallsyms address)', () => {
  const m = systemMapForDump(MAP, GUEST, 'System.map');
  assert.equal(m.addressOf('panic'), 0xffffc94f3f39d474n);
  assert.deepEqual(m.symbolize(0xffffc94f3f39d474n + 0x10n), { name: 'panic', offset: 0x10n, size: 0xffff80000938f000n - 0xffff800008b9d474n });
});

test('system map: Debian linux-image placeholder (no symbol) is refused, naming the file', () => {
  rejects(() => systemMapForDump('ffffffffffffffff B The real System.map is in the linux-image-<version>-dbg package\n', GUEST, 'System.map'), undefined);
});

test('system map: another kernel\'s map (one symbol moved) is refused, naming the symbol', () => {
  rejects(() => systemMapForDump(MAP.replace('ffff8000099c0840 D init_uts_ns', 'ffff8000099c1840 D init_uts_ns'), GUEST, 'System.map'), 'init_uts_ns');
});

test('system map: a map with none of the VMCOREINFO symbols is refused; without VMCOREINFO only the count is checked', () => {
  const other = 'ffffffff81000000 T startup_64\nffffffff81001000 T secondary_startup_64\n';
  rejects(() => systemMapForDump(other, GUEST, 'System.map'), '_stext');
  assert.equal(systemMapForDump(other, undefined, 'System.map').addressOf('startup_64'), 0xffffffff81000000n);
});

test('system map: a damaged KERNELOFFSET is not a crash (the map is then compared unshifted and refused)', () => {
  const bad = new Vmcoreinfo(GUEST.text.replace('KERNELOFFSET=494f36800000', 'KERNELOFFSET=zz'));
  rejects(() => systemMapForDump(MAP, bad, 'System.map'), '_stext');
});
