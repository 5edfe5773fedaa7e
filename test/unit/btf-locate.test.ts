import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import assert from 'node:assert/strict';
import { loadVmlinuxBtf, plausibleBtfHeader } from '../../src/core/kernel/btf/locate.js';
import { KernelTypes } from '../../src/core/kernel/btf/reader.js';
import { VmcoreError } from '../../src/core/errors.js';
import { openDumpFiles } from '../../src/node/open.js';
import { analyzeKernel } from '../../src/core/kernel/kernel.js';
import { BtfBuilder } from '../helpers/btf-builder.js';

const STEXT = 0xffffffff81000000n;

function blob(le = true, withTask = true): Uint8Array {
  const b = new BtfBuilder({ littleEndian: le });
  const int = b.int('int', 4, { signed: true });
  b.struct(withTask ? 'task_struct' : 'bpf_map', 8, [['pid', int, 0], ['tgid', int, 32]]);
  return b.build();
}

/** A fake kernel image of `size` bytes at STEXT with `parts` placed at offsets; readVirt fails outside it. */
function image(size: number, parts: [number, Uint8Array][]) {
  const img = new Uint8Array(size);
  for (const [off, p] of parts) img.set(p, off);
  return async (va: bigint, len: number) => {
    const off = Number(va - STEXT);
    if (va < STEXT || off + len > size) throw new VmcoreError('PAGE_NOT_PRESENT', `0x${va.toString(16)}`, { offset: va });
    return img.slice(off, off + len);
  };
}

test('vmlinux BTF from __start_BTF/__stop_BTF', async () => {
  const b = blob();
  const readVirt = image(3 << 20, [[0x200123, b]]);
  const syms: Record<string, bigint> = { __start_BTF: STEXT + 0x200123n, __stop_BTF: STEXT + 0x200123n + BigInt(b.length) };
  const r = await loadVmlinuxBtf({ readVirt, symbol: (n) => syms[n], stext: STEXT });
  assert.equal(r.source, 'symbols');
  assert.equal(r.address, STEXT + 0x200123n);
  assert.equal(r.size, b.length);
  assert.equal(r.btf.offsetOf('task_struct', 'tgid'), 4);
});

test('vmlinux BTF by scanning the kernel image: unaligned, across a chunk edge, big-endian, skipping BTF of other objects', async () => {
  for (const le of [true, false]) {
    const other = blob(le, false);
    const b = blob(le);
    const at = (1 << 20) - 7; // header straddles the first 1 MiB chunk
    const readVirt = image(3 << 20, [[0x1000, other], [at, b]]);
    const r = await loadVmlinuxBtf({ readVirt, stext: STEXT });
    assert.equal(r.source, 'scan');
    assert.equal(r.address, STEXT + BigInt(at));
    assert.equal(r.btf.littleEndian, le);
    assert.ok(r.btf.find('task_struct') !== undefined);
  }
});

test('vmlinux BTF: wrong symbols fall back to the scan with a warning; nothing found is NO_BTF naming what was tried', async () => {
  const b = blob();
  const readVirt = image(2 << 20, [[0x5000, b]]);
  const syms: Record<string, bigint> = { __start_BTF: STEXT + 0x100n, __stop_BTF: STEXT + 0x200n };
  const r = await loadVmlinuxBtf({ readVirt, symbol: (n) => syms[n], stext: STEXT });
  assert.equal(r.source, 'scan');
  assert.ok(r.warnings.some((w) => w.code === 'BTF_NOT_FOUND_HERE' && /__start_BTF/.test(w.text)), r.warnings.map((x) => x.text).join('; '));
  await assert.rejects(loadVmlinuxBtf({ readVirt: image(2 << 20, []), stext: STEXT, file: 'd.vmcore' }), (e: VmcoreError) => {
    assert.equal(e.code, 'NO_BTF');
    assert.match(e.message, /no __start_BTF\/__stop_BTF symbols; scan of 128 MiB after _stext/);
    assert.equal(e.file, 'd.vmcore');
    return true;
  });
  await assert.rejects(loadVmlinuxBtf({ readVirt: image(1 << 20, []) }), (e: VmcoreError) => e.code === 'NO_BTF' && /no _stext/.test(e.message));
});

test('plausibleBtfHeader rejects magic alone', () => {
  const b = blob();
  assert.equal(plausibleBtfHeader(b, 0), b.length);
  const x = b.slice();
  x[4] = 99; // hdr_len
  assert.equal(plausibleBtfHeader(x, 0), 0);
  assert.equal(plausibleBtfHeader(Uint8Array.of(0x9f, 0xeb, 1, 0), 0), 0);
});

// The bundled sample: a Debian 6.1.0-56 guest without KASLR. __start_BTF/__stop_BTF and init_task
// from `nm` of that kernel's -dbg vmlinux (linux-image-6.1.0-56-cloud-amd64-dbg).
const SAMPLE = fileURLToPath(new URL('../../../samples/seabios-128M.md-c-d31.kdump', import.meta.url));
const START_BTF = 0xffffffff82438070n;
const STOP_BTF = 0xffffffff82825e2an;
const INIT_TASK = 0xffffffff82a1aa40n;

test('real dump: vmlinux BTF of Debian 6.1 found by symbols and by the scan, same blob; init_task read through it', async () => {
  const dump = await openDumpFiles([SAMPLE]);
  try {
    const k = await analyzeKernel(dump);
    const syms: Record<string, bigint> = { __start_BTF: START_BTF, __stop_BTF: STOP_BTF };
    const bySym = await loadVmlinuxBtf({ readVirt: k.readVirt, symbol: (n) => syms[n] });
    assert.equal(bySym.size, 4119994);
    const byScan = await loadVmlinuxBtf({ readVirt: k.readVirt, stext: k.vmcoreinfo!.symbol('_stext')! });
    assert.equal(byScan.address, START_BTF);
    assert.equal(byScan.size, bySym.size);
    assert.equal(byScan.btf.typeCount, bySym.btf.typeCount);
    const btf = bySym.btf;
    // offsets agree with VMCOREINFO's OFFSET() entries written by the same kernel
    for (const [t, f] of [['page', 'mapping'], ['page', '_refcount'], ['printk_ringbuffer', 'text_data_ring'], ['pglist_data', 'node_spanned_pages'], ['zone', 'free_area']] as const) {
      assert.equal(btf.offsetOf(t, f), k.vmcoreinfo!.offset(`${t}.${f}`), `${t}.${f}`);
    }
    assert.equal(btf.sizeOf(btf.need('page')), 64);
    const kt = new KernelTypes(btf, k.readVirt);
    const init = await kt.read('task_struct', INIT_TASK);
    assert.equal(init.str('comm'), 'swapper/0');
    assert.equal(init.num('pid'), 0);
    const next = await kt.containerOf(init.ptr('tasks.next'), 'task_struct', 'tasks');
    assert.equal(next.num('pid'), 1);
    assert.equal((await next.deref('real_parent')).address, INIT_TASK);
  } finally {
    await dump.close?.();
  }
});
