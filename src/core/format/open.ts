/**
 * Open any supported dump from byte sources, recognising the format by content (never by
 * file name): ELF (and compressed ELF), kdump-compressed, flattened kdump, split sets.
 */
import { warning, type Warning } from '../warnings.js';
import { VmcoreError } from '../errors.js';
import type { ByteSource } from '../io/source.js';
import type { CodecRegistry } from '../codec/types.js';
import type { Dump } from '../dump.js';
import { ElfDump, isElf } from './elf/reader.js';
import { KdumpDump, isKdump } from './kdump/reader.js';
import { FlattenedSource, isFlattened } from './kdump/flattened.js';
import { isCelf, openCelf } from './celf/reader.js';
import { CachedSource } from '../io/cached.js';
import { latin1 } from '../text.js';

export type SourceKind = 'elf' | 'kdump' | 'flattened' | 'unknown';

/**
 * The formats inside an ELF container, most specific first: the first whose probe accepts the
 * file opens it (a celf file is also a valid ELF core, so celf is asked before plain ELF).
 * Probes throw only for I/O errors; a file that is not of their format gives false.
 */
const ELF_FORMATS: readonly { name: string; probe(src: ByteSource): Promise<boolean>; open(src: ByteSource, codecs: CodecRegistry): Promise<Dump> }[] = [
  { name: 'celf', probe: isCelf, open: openCelf },
  { name: 'elf', probe: async () => true, open: (src) => ElfDump.open(src) },
];

export async function sniff(src: ByteSource): Promise<SourceKind> {
  const head = await src.read(0, Math.min(32, src.size));
  if (isElf(head)) return 'elf';
  if (isFlattened(head)) return 'flattened';
  if (isKdump(head)) return 'kdump';
  return 'unknown';
}
const OTHER_MAGIC: [string, (h: Uint8Array) => boolean][] = [
  ['a QEMU savevm/migration stream (virsh dump without --memory-only); it holds no plain memory image', (h) => latin1(h.subarray(0, 4)) === 'QEVM'],
  ['a libvirt save image', (h) => latin1(h.subarray(0, 4)) === 'Libv'],
  ['a Windows crash dump (QEMU win-dmp)', (h) => /^PAGEDU(64|MP)/.test(latin1(h.subarray(0, 8)))],
  ['an LKCD dump', (h) => h.length >= 8 && h[0] === 0xed && h[1] === 0x23 && h[2] === 0x8f && h[3] === 0x61],
  ['an s390 stand-alone dump', (h) => h.length >= 8 && h[0] === 0xa8 && h[1] === 0x19 && h[7] === 0xfd],
  ['a sadump', (h) => latin1(h.subarray(0, 6)) === 'sadump' || (h[0] === 0x73 && h[1] === 0x61 && h[2] === 0x64 && h[3] === 0x75)],
  ['a Xen xc_core dump (pre-ELF)', (h) => h.length >= 4 && h[0] === 0xed && h[1] === 0xeb && h[2] === 0x0f && (h[3] === 0xf0 || h[3] === 0xf0)],
  ['a gzip file (decompress it first)', (h) => h[0] === 0x1f && h[1] === 0x8b],
  ['a zstd file (decompress it first: zstd -d)', (h) => h[0] === 0x28 && h[1] === 0xb5 && h[2] === 0x2f && h[3] === 0xfd],
  ['an xz file (decompress it first)', (h) => h[0] === 0xfd && h[1] === 0x37 && h[2] === 0x7a && h[3] === 0x58],
];

/**
 * Open a dump from byte sources: an ELF vmcore (kernel /proc/vmcore, QEMU dump-guest-memory,
 * makedumpfile -E), a compressed ELF (celf), a kdump-compressed file (makedumpfile, QEMU), a
 * flattened stream (makedumpfile -F) or, with several sources, one kdump split set
 * (makedumpfile --split). The format is found from the magic, never from the name.
 * @param rawSources the files' bytes (each is wrapped in a 1 MiB read-ahead cache).
 * @param codecs the page decompressors (`portableCodecs()`, or `nodeCodecs()` in Node).
 * @returns a `Dump`: page size in bytes, page frame numbers (pfn) and physical addresses as
 *   numbers, per-page states, notes, VMCOREINFO text and the format's own header facts.
 * @throws VmcoreError USAGE (no source, several ELF files, ELF mixed with kdump), TRUNCATED (an
 *   empty or cut file), BAD_MAGIC (no known signature), UNSUPPORTED (a known format or variant
 *   not read, e.g. a Windows or s390 dump), and the readers' OUT_OF_BOUNDS / BAD_FIELD for
 *   headers that contradict themselves or the file size.
 * Layouts: include/uapi/linux/elf.h, makedumpfile diskdump_mod.h and makedumpfile.h.
 */
export async function openDump(rawSources: ByteSource[], codecs: CodecRegistry): Promise<Dump> {
  if (!rawSources.length) throw new VmcoreError('USAGE', 'no dump file given');
  // Page-by-page access patterns (hash, scans, conversion) become one read per MiB.
  const sources: ByteSource[] = rawSources.map((s) => (s instanceof CachedSource || s.cached ? s : new CachedSource(s)));
  const kinds: SourceKind[] = [];
  for (const s of sources) {
    if (s.size === 0) throw new VmcoreError('TRUNCATED', 'the file is empty', { file: s.name, offset: 0 });
    kinds.push(await sniff(s));
  }
  for (let i = 0; i < sources.length; i++) {
    if (kinds[i] === 'unknown') {
      const head = await sources[i]!.read(0, Math.min(16, sources[i]!.size));
      const other = OTHER_MAGIC.find(([, t]) => t(head));
      throw new VmcoreError(other ? 'UNSUPPORTED' : 'BAD_MAGIC', other ? `this is ${other[0]}, not a kernel memory dump vmcore reads` : 'not a dump vmcore recognises (no ELF, KDUMP or makedumpfile signature)', {
        file: sources[i]!.name,
        offset: 0,
        field: 'magic',
      });
    }
  }
  if (kinds.every((k) => k === 'elf')) {
    if (sources.length > 1) throw new VmcoreError('USAGE', 'several ELF files given: only kdump split sets can be opened together');
    for (const f of ELF_FORMATS) if (await f.probe(sources[0]!)) return f.open(sources[0]!, codecs);
  }
  if (kinds.some((k) => k === 'elf')) throw new VmcoreError('USAGE', 'cannot mix ELF and kdump files in one set');
  const opened = [];
  for (let i = 0; i < sources.length; i++) {
    if (kinds[i] === 'flattened') {
      const fs = await FlattenedSource.open(sources[i]!);
      const inner = await sniff(fs);
      if (inner !== 'kdump') {
        if (inner === 'elf' && sources.length === 1) {
          const d = await ElfDump.open(fs);
          if (fs.truncated) d.warnings.push(flatTruncated(fs));
          return d;
        }
        throw new VmcoreError('UNSUPPORTED', `flattened stream holds ${inner === 'elf' ? 'an ELF dump' : 'no recognisable dump'}`, { file: sources[i]!.name, offset: 4096 });
      }
      opened.push({ src: fs as ByteSource, flattened: true });
    } else opened.push({ src: sources[i]!, flattened: false });
  }
  const d = await KdumpDump.open(opened, codecs);
  for (const o of opened) if (o.src instanceof FlattenedSource && o.src.truncated) d.warnings.push(flatTruncated(o.src));
  return d;
}

/** makedumpfile ends a flattened stream with a record of offset -1 and size -1 (makedumpfile.c write_end_flat_header). */
function flatTruncated(fs: FlattenedSource): Warning {
  return warning('FILE_TRUNCATED', `${fs.name}: the flattened stream has no end marker after its ${fs.records} records: it may be truncated (pages written after the cut are missing)`);
}
