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
