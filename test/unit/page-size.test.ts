/**
 * The page size comes from the kernel (VMCOREINFO PAGESIZE), not 4096. Input: an ELF vmcore of
 * an aarch64 kernel with 64 KiB pages (test/fixtures/cases/arm64-64k.elf.zst, right answer in
 * arm64-64k.expected.json): its page frames are 64 KiB, and converting it to kdump uses 64 KiB
 * blocks, as makedumpfile does.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { decompress } from 'fzstd';
import { BufferSource } from '../../src/core/io/source.js';
import { openDump } from '../../src/core/format/open.js';
import { openDumpFiles } from '../../src/node/open.js';
import { nodeCodecs } from '../../src/node/codecs.js';
import { hashMemory } from '../../src/core/hash.js';
import { nodeSha256 } from '../../src/node/hash.js';
import { convertDump } from '../../src/node/convert/index.js';
import { kernelPageSize } from '../../src/core/format/elf/reader.js';
import { VmcoreError } from '../../src/core/errors.js';

const FIX = (f: string) => fileURLToPath(new URL(`../../../test/fixtures/cases/${f}`, import.meta.url));
const exp = JSON.parse(readFileSync(FIX('arm64-64k.expected.json'), 'utf8'));
const elf = () => decompress(new Uint8Array(readFileSync(FIX('arm64-64k.elf.zst'))));

test('ELF vmcore of a 64 KiB-page kernel: 64 KiB page frames, the digest of its 35 pages', async () => {
  const d = await openDump([new BufferSource(elf(), 'arm64-64k.elf')], nodeCodecs());
  assert.equal(d.pageSize, exp.kernel_page_size);
  const h = await hashMemory(d, { hasher: nodeSha256 });
  assert.equal(h.pages, exp.pages_64k);
  assert.equal(h.sha256, exp.sha256_64k_pages);
  // a page-not-present error names the physical address in 64 KiB frames
  await assert.rejects(d.readPage(0x4020), (e: VmcoreError) => e.code === 'PAGE_NOT_PRESENT' && /physical 0x40200000/.test(e.message));
});

for (const codec of ['zlib', 'none'] as const) {
  test(`converted to kdump (${codec}): block_size 65536, max_mapnr 0x8001, 35 descriptors, same digest`, async () => {
    const dir = mkdtempSync(join(tmpdir(), 'vmcore-64k-'));
    try {
      const src = await openDump([new BufferSource(elf(), 'arm64-64k.elf')], nodeCodecs());
      const out = join(dir, 'a.kdump');
      await convertDump(src, out, { codec, threads: 0 });
      const k = await openDumpFiles([out]);
      try {
        const det = await k.details();
        assert.equal(det.header.block_size, 65536);
        assert.equal(det.header.max_mapnr_64, 0x8001);
        assert.equal(det.header.descriptors, 35);
        assert.equal(k.pageSize, 65536);
        assert.equal((await hashMemory(k, { hasher: nodeSha256 })).sha256, exp.sha256_64k_pages);
      } finally {
        await k.close();
      }
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
}

test('kernelPageSize: VMCOREINFO PAGESIZE, 4096 without it, implausible values ignored with a warning', () => {
  assert.deepEqual(kernelPageSize('OSRELEASE=6.1\nPAGESIZE=16384\n'), { pageSize: 16384 });
  assert.deepEqual(kernelPageSize(undefined), { pageSize: 4096 });
  assert.deepEqual(kernelPageSize('OSRELEASE=6.1\n'), { pageSize: 4096 });
  for (const bad of ['12345', '0', '2048', '2097152']) {
    const r = kernelPageSize(`PAGESIZE=${bad}\n`);
    assert.equal(r.pageSize, 4096);
    assert.equal(r.warning?.code, 'PAGESIZE_INVALID');
    assert.match(r.warning!.text, new RegExp(`PAGESIZE=${bad} is not a page size`));
  }
});
