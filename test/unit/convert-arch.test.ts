/**
 * convert keeps the architecture of a QEMU arm64 kdump, whose header names the machine "Unknown":
 * the ELF it writes says EM_AARCH64 (183), found from the kernel's VMCOREINFO and CPU notes, so
 * the converted file is analysed as aarch64 again (before, it said EM_NONE and `info` could not
 * analyse it). Input: the excerpt of the real arm64 QEMU dump (test/fixtures/excerpts-arm64).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, openSync, readSync, closeSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { openDumpFiles } from '../../src/node/open.js';
import { convertDump } from '../../src/node/convert/index.js';
import { analyzeKernel } from '../../src/core/kernel/kernel.js';

const SRC = fileURLToPath(new URL('../../../test/fixtures/excerpts-arm64/direct-max-kaslr-1cpu-256M-vmci-panic.kdump', import.meta.url));

test('convert of a QEMU arm64 kdump ("Unknown" machine) to ELF writes e_machine EM_AARCH64 and stays analysable', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'vmcore-arch-'));
  try {
    const src = await openDumpFiles([SRC]);
    assert.equal(src.arch, 'Unknown');
    const out = join(dir, 'a.elf');
    try {
      await convertDump(src, out, { format: 'elf', threads: 0 });
    } finally {
      await src.close();
    }
    const fd = openSync(out, 'r');
    const h = Buffer.alloc(20);
    readSync(fd, h, 0, 20, 0);
    closeSync(fd);
    assert.equal(h.readUInt16LE(18), 183);
    const d = await openDumpFiles([out]);
    try {
      assert.equal(d.arch, 'aarch64');
      const k = await analyzeKernel(d);
      assert.equal(k.arch, 'aarch64');
      // the guest's own VMCOREINFO: PHYS_OFFSET 0x40000000
      assert.equal(k.physBase?.value, 0x40000000n);
    } finally {
      await d.close();
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('convert of a QEMU arm64 kdump (64 KiB blocks) writes the kernel\'s 4 KiB pages: block_size PAGESIZE, max_mapnr and pages in 4 KiB', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'vmcore-arch-'));
  try {
    const src = await openDumpFiles([SRC]);
    const out = join(dir, 'a.kdump');
    // the guest's init_uts_ns (truth.json: its vaddr; kimage_voffset 0xffffc94efe600000)
    const utsPhys = Number(0xffffc94f401c0840n - 0xffffc94efe600000n);
    let want: Uint8Array;
    let blocks = 0;
    try {
      for await (const r of src.pageRuns()) if (r.state === 'data' || r.state === 'zero') blocks += r.endPfn - r.startPfn;
      assert.equal(src.pageSize, 65536);
      want = (await src.readPhys(utsPhys, 390)).slice();
      await convertDump(src, out, { format: 'kdump', threads: 0 });
    } finally {
      await src.close();
    }
    const fd = openSync(out, 'r');
    const h = Buffer.alloc(464);
    readSync(fd, h, 0, 464, 0);
    closeSync(fd);
    // disk_dump_header: block_size (428) the guest's VMCOREINFO PAGESIZE=4096; max_mapnr (440)
    // the end of its System RAM 0x40000000-0x4fffffff (/proc/iomem on its console) in 4 KiB pages
    assert.equal(h.readInt32LE(428), 4096);
    assert.equal(h.readUInt32LE(440), 0x50000000 / 4096);
    const d = await openDumpFiles([out]);
    try {
      assert.equal(d.pageSize, 4096);
      assert.equal(d.maxPfn, 0x50000);
      assert.deepEqual(await d.readPhys(utsPhys, 390), want);
      // every block of the excerpt (data or zero), as 16 pages
      let data = 0;
      for await (const r of d.pageRuns()) if (r.state === 'data' || r.state === 'zero') data += r.endPfn - r.startPfn;
      assert.equal(data, blocks * 16);
      assert.ok(blocks > 0);
      const k = await analyzeKernel(d);
      assert.equal(k.utsname?.release, '6.1.0-56-cloud-arm64');
    } finally {
      await d.close();
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
