/**
 * A dump seen with smaller page frames. QEMU writes aarch64 kdump files in 64 KiB blocks whatever
 * the guest's page size (target/arm/arch_dump.c sets page_size = 64 KiB; reference formats.md
 * §3.3), while crash, makedumpfile and libkdumpfile take the kdump block_size to be the kernel's
 * PAGESIZE and count max_mapnr and the bitmaps in those pages. Converting or fixing such a file
 * for them means writing it in the kernel's page size: this view splits every block into
 * `pageSize` frames with the block's state, reading each frame from the block it lies in.
 */
import { VmcoreError } from './errors.js';
import type { Dump, PageRun, PageState } from './dump.js';
import { dumpView } from './dump.js';
import { Vmcoreinfo } from './kernel/vmcoreinfo.js';

/**
 * `dump` in the kernel's page frames: its VMCOREINFO PAGESIZE (from `vmcoreinfo`, else the
 * dump's own VMCOREINFO note) when that is smaller than the dump's block size (QEMU's 64 KiB
 * arm64 blocks), else `dump` itself. What `convert` and `fix` write and classify, so that
 * block_size, max_mapnr, the bitmaps and the pfns of a dump level are the kernel's.
 * @throws VmcoreError BAD_FIELD when PAGESIZE does not divide the block size (withPageSize)
 */
export function inKernelPages(dump: Dump, vmcoreinfo?: Vmcoreinfo): Dump {
  const v = vmcoreinfo ?? (dump.vmcoreinfoText ? new Vmcoreinfo(dump.vmcoreinfoText) : undefined);
  const ps = v?.pageSize;
  return ps !== undefined && ps < dump.pageSize ? withPageSize(dump, ps) : dump;
}

/**
 * `dump` with page frames of `pageSize` bytes (a power of two that divides `dump.pageSize`).
 * Returns `dump` itself when the sizes are equal. Throws BAD_FIELD for any other size.
 */
export function withPageSize(dump: Dump, pageSize: number): Dump {
  if (pageSize === dump.pageSize) return dump;
  if (!Number.isInteger(pageSize) || pageSize < 512 || pageSize > dump.pageSize || dump.pageSize % pageSize !== 0 || (pageSize & (pageSize - 1)) !== 0) {
    throw new VmcoreError('BAD_FIELD', `page size ${pageSize} does not divide the dump's block size ${dump.pageSize}`, {
      ...(dump.files[0] ? { file: dump.files[0].name } : {}),
      field: 'PAGESIZE',
    });
  }
  const k = dump.pageSize / pageSize;
  const maxPfn = dump.maxPfn * k;
  return dumpView(dump, {
    pageSize,
    maxPfn,
    pageState(pfn: number): Promise<PageState> {
      return dump.pageState(Math.floor(pfn / k));
    },
    async *pageRuns(start = 0, end = maxPfn): AsyncIterable<PageRun> {
      for await (const r of dump.pageRuns(Math.floor(start / k), Math.ceil(end / k))) {
        const s = Math.max(start, r.startPfn * k);
        const e = Math.min(end, r.endPfn * k);
        if (s < e) yield { startPfn: s, endPfn: e, state: r.state };
      }
    },
    async readPage(pfn: number): Promise<Uint8Array> {
      const block = await dump.readPage(Math.floor(pfn / k));
      const off = (pfn % k) * pageSize;
      return block.subarray(off, off + pageSize);
    },
    readPhys: (addr, length, opts) => dump.readPhys(addr, length, opts),
  });
}
