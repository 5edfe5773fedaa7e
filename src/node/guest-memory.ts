/**
 * A paused QEMU guest's memory as a random-access ELF "file", for the page classification of
 * `vmcore dump --qmp -d N`.
 *
 * QEMU's dump stream can be read only once, in physical-address order, and a page's struct page
 * usually lies far above it (vmemmap is allocated at the top of each node), so the stream alone
 * cannot say which pages to leave out when they pass. While QEMU writes the dump the guest is
 * stopped (run state save-vm) and QEMU's dump thread waits on the FIFO until vmcore reads on;
 * its monitor still answers. So, after the stream's headers and notes, vmcore reads what the
 * classification needs (page tables, VMCOREINFO, mem_section, the struct pages, and what `info`,
 * `dmesg` and `bt -a` read for the triage guard) with QMP `pmemsave` from the same stopped
 * memory, then reads the stream on and leaves the classified pages out.
 *
 * The ELF header, program headers and notes come from the stream (`ElfStreamInfo.headerPieces`);
 * a read inside a PT_LOAD's file range becomes `pmemsave` of the matching guest physical range
 * into a file in a private directory (mode 0700), read back and deleted at once. Reads go
 * through a bounded chunk cache.
 */
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { VmcoreError } from '../core/errors.js';
import type { ByteSource } from '../core/io/source.js';
import { CachedSource } from '../core/io/cached.js';
import type { QmpClient } from './qmp.js';
import type { ElfStreamInfo } from './stream/elf-stream.js';

/** Bytes per pmemsave (one cache chunk) and chunks kept: 32 MiB at most. */
const CHUNK = 128 << 10;
const CHUNKS = 256;

export interface GuestMemoryStats {
  /** pmemsave commands sent. */
  requests: number;
  /** Guest memory bytes read with them. */
  bytes: number;
}

class QmpElfSource implements ByteSource {
  readonly size: number;
  readonly stats: GuestMemoryStats = { requests: 0, bytes: 0 };
  private chain: Promise<unknown> = Promise.resolve();
  private seq = 0;

  constructor(
    private readonly qmp: QmpClient,
    private readonly info: ElfStreamInfo,
    private readonly dir: string,
    readonly name: string,
  ) {
    let end = 0;
    for (const p of info.headerPieces) end = Math.max(end, p.offset + p.bytes.length);
    for (const s of info.segments) if (s.filesz > 0) end = Math.max(end, s.offset + s.filesz);
    this.size = end;
  }

  async read(offset: number, length: number): Promise<Uint8Array> {
    const end = Math.min(this.size, offset + length);
    const out = new Uint8Array(Math.max(0, end - offset));
    for (const p of this.info.headerPieces) {
      const s = Math.max(offset, p.offset);
      const e = Math.min(end, p.offset + p.bytes.length);
      if (s < e) out.set(p.bytes.subarray(s - p.offset, e - p.offset), s - offset);
    }
    for (const sg of this.info.segments) {
      if (sg.filesz === 0) continue;
      const s = Math.max(offset, sg.offset);
      const e = Math.min(end, sg.offset + sg.filesz);
      if (s < e) out.set(await this.pmem(sg.paddr + (s - sg.offset), e - s), s - offset);
    }
    return out;
  }

  /** `size` bytes of guest physical memory at `paddr` (one pmemsave at a time). */
  private pmem(paddr: number, size: number): Promise<Uint8Array> {
    const run = async () => {
      const file = join(this.dir, `m${this.seq++}`);
      try {
        await this.qmp.execute('pmemsave', { val: paddr, size, filename: file }, { timeoutMs: 60000 });
        const b = await readFile(file);
        if (b.length !== size) {
          throw new VmcoreError('QMP', `pmemsave of 0x${paddr.toString(16)}+0x${size.toString(16)} gave ${b.length} bytes`, { file: this.qmp.target, offset: paddr });
        }
        this.stats.requests++;
        this.stats.bytes += size;
        return new Uint8Array(b.buffer, b.byteOffset, b.length);
      } finally {
        await rm(file, { force: true });
      }
    };
    const p = this.chain.then(run, run);
    this.chain = p.catch(() => undefined);
    return p;
  }
}

export interface GuestMemory {
  /** The ELF view (with its own chunk cache): hand it to openDump. */
  source: ByteSource;
  stats: GuestMemoryStats;
  close(): Promise<void>;
}

/**
 * The guest memory of the dump stream `info` as a random-access ELF source read through QMP.
 * Valid only while QEMU holds the guest stopped for that dump (between `dump-guest-memory` and
 * DUMP_COMPLETED): the stream and these reads then see the same memory.
 * @throws VmcoreError IO when the private directory cannot be made; reads throw QMP errors
 */
export async function qmpGuestMemory(qmp: QmpClient, info: ElfStreamInfo, name: string): Promise<GuestMemory> {
  let dir: string;
  try {
    dir = await mkdtemp(join(tmpdir(), 'vmcore-pmem-'));
  } catch (e) {
    throw new VmcoreError('IO', `cannot create a private directory for guest memory reads: ${(e as Error).message}`, { cause: e });
  }
  const raw = new QmpElfSource(qmp, info, dir, name);
  const cached = new CachedSource(raw, CHUNK, CHUNKS);
  const source: ByteSource = {
    name,
    size: raw.size,
    cached: true,
    read: (o, n) => cached.read(o, n),
  };
  return {
    source,
    stats: raw.stats,
    close: async () => {
      await cached.close();
      await rm(dir, { recursive: true, force: true });
    },
  };
}
