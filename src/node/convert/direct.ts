/**
 * Fast input path for plain ELF files: read whole batches straight from the file into the
 * batch buffer using the PT_LOAD table (one pread per batch), instead of page-by-page
 * `readPhys`. Used only when the dump is a single, non-flattened ELF file whose size matches;
 * anything it cannot serve in one piece falls back to `readPhys`.
 */
import { readSync } from 'node:fs';
import { open, type FileHandle } from 'node:fs/promises';
import type { Dump } from '../../core/dump.js';
import { VmcoreError } from '../../core/errors.js';

interface Seg {
  paddr: number;
  offset: number;
  filesz: number;
  memsz: number;
}

export class DirectElfReader {
  private constructor(
    private readonly fh: FileHandle,
    private readonly segs: Seg[],
    private readonly name: string,
  ) {}

  static async open(dump: Dump): Promise<DirectElfReader | undefined> {
    if (dump.format !== 'elf' || dump.files.length !== 1 || /flat/i.test(dump.variant)) return undefined;
    const f = dump.files[0]!;
    const d = await dump.details({ codecs: 'none' });
    if (!d.segments?.length) return undefined;
    let fh: FileHandle;
    try {
      fh = await open(f.name, 'r');
    } catch {
      return undefined;
    }
    const st = await fh.stat();
    if (!st.isFile() || st.size !== f.size) {
      await fh.close();
      return undefined;
    }
    const segs = d.segments.filter((s) => s.offset + s.filesz <= st.size).map((s) => ({ paddr: s.paddr, offset: s.offset, filesz: s.filesz, memsz: s.memsz }));
    return new DirectElfReader(fh, segs, f.name);
  }

  /** The descriptor of the open file (valid on every thread of the process until close()). */
  get fd(): number {
    return this.fh.fd;
  }

  /**
   * Where [addr, addr + length) is in the file: its byte offset when one segment holds all of
   * it in the file (none of it beyond p_filesz), else undefined.
   */
  locate(addr: number, length: number): number | undefined {
    const s = this.segs.find((g) => addr >= g.paddr && addr < g.paddr + g.memsz);
    if (!s || addr + length > s.paddr + Math.min(s.memsz, s.filesz)) return undefined;
    return s.offset + (addr - s.paddr);
  }

  /** Fill `dst` with [addr, addr + dst.length); false if no single segment covers it. */
  async read(addr: number, dst: Uint8Array): Promise<boolean> {
    const end = addr + dst.length;
    const s = this.segs.find((g) => addr >= g.paddr && addr < g.paddr + g.memsz);
    if (!s || end > s.paddr + s.memsz) return false;
    const rel = addr - s.paddr;
    const fileLen = Math.max(0, Math.min(dst.length, s.filesz - rel));
    let got = 0;
    while (got < fileLen) {
      // synchronous pread(2), as FileSource.readInto (no thread-pool hops)
      const bytesRead = readSync(this.fh.fd, dst, got, fileLen - got, s.offset + rel + got);
      if (bytesRead <= 0) throw new VmcoreError('TRUNCATED', 'file ends inside a PT_LOAD', { file: this.name, offset: s.offset + rel + got });
      got += bytesRead;
    }
    if (fileLen < dst.length) dst.fill(0, fileLen);
    return true;
  }

  close(): Promise<void> {
    return this.fh.close();
  }
}
