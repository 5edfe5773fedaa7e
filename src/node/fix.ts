/**
 * `fixDump`: rewrite a dump (QEMU's above all) so that every reader gets it right.
 *
 *  - kdump input (seekable or flattened): a seekable kdump file with the proved phys_base in
 *    the sub-header, the VMCOREINFO recovered from memory added to the note blob (with
 *    offset/size_vmcoreinfo), and utsname / nr_cpus / timestamp filled in. Compressed pages,
 *    bitmaps and descriptors are copied, not recompressed (see src/core/fix/kdump.ts).
 *  - `inPlace` (seekable kdump only): the 8-byte phys_base field alone, one aligned write
 *    inside one sector followed by fdatasync; nothing else in the file changes.
 *  - ELF input: a copy laid out as the kernel's /proc/vmcore: program headers right after the
 *    ELF header, PT_LOAD p_vaddr = direct-map addresses plus a kernel-text alias PT_LOAD, and a
 *    VMCOREINFO note (recovered from memory when the file had none).
 * The input is never modified unless `inPlace`; the output goes to a temporary name and is
 * renamed into place when complete; an existing output is kept unless `force`.
 */
import { warning, type Warning } from '../core/warnings.js';
import { open } from 'node:fs/promises';
import { VmcoreError } from '../core/errors.js';
import type { DetailsOptions, Dump, FormatDetails, PageRun, PageState } from '../core/dump.js';
import { cpuCountOfNotes, type ElfNote } from '../core/format/elf/notes.js';
import { producerText } from './version.js';
import type { CodecRegistry } from '../core/codec/types.js';
import { KdumpDump } from '../core/format/kdump/reader.js';
import { readKdumpHeader } from '../core/format/kdump/reader.js';
import { analyzeKernel, kernelAnalysable, type KernelInfo } from '../core/kernel/kernel.js';
import { kdumpFixWrites, planKdumpFix, planPhysBaseInPlace, singleKdumpPart } from '../core/fix/kdump.js';
import { kernelHeaderValues } from '../core/kernel/header-values.js';
import { openDumpFiles } from './open.js';
import { isHttpUrl, redactUrl } from '../core/io/http.js';
import { FileSource } from './file-source.js';
import { convertDump } from './convert/index.js';
import { withPageSize } from '../core/reblock.js';
import { checkOutput, FileSink, ioError } from './convert/sinks.js';
import { hex64 } from '../core/hex.js';
import type { ProofStep } from '../core/kernel/proof.js';
import { latin1, latin1Bytes } from '../core/text.js';

export interface FixOptions {
  /** Output path (a new file). Exactly one of `out` and `inPlace`. */
  out?: string;
  /** Correct the phys_base of a seekable kdump file in place. */
  inPlace?: boolean;
  /** Overwrite an existing `out`. */
  force?: boolean;
  /** 'auto' (default): the proved value; refuses when it cannot be proved. Or a given value. */
  physBase?: 'auto' | bigint;
  codecs?: CodecRegistry;
  /** Worker threads for the ELF copy (default: cores). */
  threads?: number;
  /**
   * Keep kdump pages above the end of the kernel's memory model (firmware ROM blocks in QEMU
   * dumps). Default false: they are dropped, since makedumpfile cannot re-filter such a file.
   */
  keepAllPages?: boolean;
}

export interface FixResult {
  input: string;
  output: string;
  inPlace: boolean;
  inputVariant: string;
  outputFormat: 'kdump' | 'elf';
  physBase: {
    /** Header value before the fix (kdump), if any. */
    before: string | null;
    after: string;
    source: 'proved' | 'given';
    verdict: string;
    /** The checks the proven value passed: `{code, text}` (codes in core/kernel/proof.ts). */
    proof: ProofStep[];
  };
  vmcoreinfo: { source: string; added: boolean };
  changes: string[];
  warnings: Warning[];
  bytes: number;
}
const NOTE_VMCOREINFO = 'VMCOREINFO';


/** The phys_base to write: the given value, else the proved one; refuses when unproved. */
export function choosePhysBase(k: KernelInfo, given: 'auto' | bigint | undefined, file: string, warnings: Warning[]): { value: bigint; source: 'proved' | 'given' } {
  const pb = k.physBase;
  if (given !== undefined && given !== 'auto') {
    if (pb.value !== undefined && BigInt.asUintN(64, pb.value) !== BigInt.asUintN(64, given)) {
      warnings.push(warning('PHYS_BASE_GIVEN_DIFFERS', `the given phys_base ${hex64(given)} differs from the proved value ${hex64(pb.value)}`));
    }
    const vi = pb.vmcoreinfo;
    if (vi !== undefined && BigInt.asUintN(64, vi) !== BigInt.asUintN(64, given)) {
      // makedumpfile 1.7.2 takes phys_base from the kdump header (re-filtering and --dump-dmesg
      // fail on a file whose header is wrong and whose VMCOREINFO is right), the other readers
      // from VMCOREINFO: the same facts `info` states (src/core/info.ts)
      warnings.push(warning('PHYS_BASE_GIVEN_DIFFERS', 
        `VMCOREINFO says NUMBER(phys_base)=${hex64(vi)}: libkdumpfile, drgn and crash will use that, not ${hex64(given)}; makedumpfile (re-filtering, --dump-dmesg) uses the header's ${hex64(given)}`),);
    }
    return { value: given, source: 'given' };
  }
  if (pb.value === undefined || pb.verdict === 'cannot prove') {
    const guess = pb.unprovenGuess !== undefined ? ` (best unproved guess ${hex64(pb.unprovenGuess)})` : '';
    throw new VmcoreError('ADDRESS_TRANSLATION', `phys_base cannot be proved from this dump${guess}; give it with --phys-base VALUE if you know it`, {
      file,
      field: 'phys_base',
    });
  }
  return { value: pb.value, source: 'proved' };
}

/** A Dump with a different note list / VMCOREINFO text (for the ELF copy). */
class NoteOverlay implements Dump {
  constructor(
    private readonly d: Dump,
    readonly notes: readonly ElfNote[],
    readonly vmcoreinfoText: string | undefined,
  ) {}
  get format() {
    return this.d.format;
  }
  get variant() {
    return this.d.variant;
  }
  get files() {
    return this.d.files;
  }
  get arch() {
    return this.d.arch;
  }
  get littleEndian() {
    return this.d.littleEndian;
  }
  get is64() {
    return this.d.is64;
  }
  get warnings() {
    return this.d.warnings;
  }
  get pageSize() {
    return this.d.pageSize;
  }
  get maxPfn() {
    return this.d.maxPfn;
  }
  /** Without the source's PT_LOAD virtual addresses: the copy gets direct-map ones throughout. */
  async details(opts?: DetailsOptions): Promise<FormatDetails> {
    const { segments: _dropped, ...rest } = await this.d.details(opts);
    return rest;
  }
  close(): Promise<void> {
    return this.d.close();
  }
  pageState(pfn: number): Promise<PageState> {
    return this.d.pageState(pfn);
  }
  pageRuns(s?: number, e?: number): AsyncIterable<PageRun> {
    return this.d.pageRuns(s, e);
  }
  readPage(pfn: number): Promise<Uint8Array> {
    return this.d.readPage(pfn);
  }
  readPhys(addr: number, len: number, o?: { fillMissing?: boolean }): Promise<Uint8Array> {
    return this.d.readPhys(addr, len, o);
  }
}

function checkOpts(input: string, o: FixOptions): void {
  if (!!o.out === !!o.inPlace) throw new VmcoreError('USAGE', o.out ? '-o OUT and --in-place exclude each other' : 'give -o OUT (write a fixed copy) or --in-place', { file: input });
  if (o.inPlace && isHttpUrl(input)) throw new VmcoreError('USAGE', '--in-place needs a local file, not a URL: use -o OUT', { file: redactUrl(input) });
  if (o.inPlace && o.force) throw new VmcoreError('USAGE', '--force applies to -o OUT, not to --in-place', { file: input });
}

/**
 * Correct a dump's kernel facts: write a copy (`out`) or patch in place (`inPlace`, kdump
 * only) with the proven phys_base (arch/x86/kernel/head64.c; `physBase: 'auto'`) or a given one,
 * and add VMCOREINFO when the file has none but memory holds it.
 * @param input a file path (an http(s) URL only with `out`).
 * @returns what was written: input and output names, variants and the changes made.
 * @throws VmcoreError USAGE (neither or both of `out` and `inPlace`), EXISTS, UNSUPPORTED (a
 *   format or architecture fix cannot change), ADDRESS_TRANSLATION (phys_base cannot be proven
 *   and none is given), BAD_FIELD, IO, and the input's read errors.
 */
export async function fixDump(input: string, opts: FixOptions): Promise<FixResult> {
  checkOpts(input, opts);
  const dump = await openDumpFiles([input], opts.codecs ? { codecs: opts.codecs } : {});
  let closed = false;
  const close = async () => {
    if (!closed) {
      closed = true;
      await dump.close();
    }
  };
  try {
    const warnings: Warning[] = [];
    if (!kernelAnalysable(dump)) {
      throw new VmcoreError('UNSUPPORTED', `architecture ${dump.arch}: only x86_64 and aarch64 dumps can be fixed (the kernel's location is proved with their page tables)`, { file: input });
    }
    if (opts.inPlace && !(dump instanceof KdumpDump && !dump.flattened)) {
      throw new VmcoreError(
        'USAGE',
        dump instanceof KdumpDump
          ? '--in-place needs a seekable kdump file; this one is flattened: write a fixed copy with -o OUT'
          : `--in-place only corrects a kdump header; this is ${dump.variant}: write a fixed copy with -o OUT`,
        { file: input },
      );
    }
    if (dump instanceof KdumpDump) singleKdumpPart(dump); // refuse split parts before the analysis
    const k = await analyzeKernel(dump);
    if (k.arch !== 'x86_64' && k.arch !== 'aarch64') {
      throw new VmcoreError('UNSUPPORTED', `architecture ${dump.arch}: not recognised as x86_64 or aarch64 from the notes or VMCOREINFO`, { file: input });
    }
    warnings.push(...dump.warnings);
    const { value: physBase, source } = choosePhysBase(k, opts.physBase, input, warnings);
    // the header values convert writes too (kernelHeaderValues): with the VMCOREINFO whose layout
    // values the location proof rejected replaced by the proven ones
    const hv = await kernelHeaderValues(dump, k);
    const recoveredText = hv.vmcoreinfoNote ? latin1(hv.vmcoreinfoNote.desc) : undefined;
    const vmciText = hv.vmcoreinfoText ?? dump.vmcoreinfoText ?? recoveredText ?? k.vmcoreinfo?.text;
    const vmciCorrected = hv.vmcoreinfoText !== undefined ? { vmcoreinfoText: hv.vmcoreinfoText } : {};
    const vmciAdded = dump.vmcoreinfoText === undefined && vmciText !== undefined;
    if (vmciText === undefined) warnings.push(warning('NO_VMCOREINFO', 'no VMCOREINFO in the file or in memory: readers that need it (drgn, makedumpfile, vmcore-dmesg) will still fail'));
    const pbReport = {
      before: k.physBase.header !== undefined ? hex64(k.physBase.header) : null,
      after: hex64(physBase),
      source,
      verdict: k.physBase.verdict,
      proof: k.physBase.proof,
    };
    const base = {
      input,
      inputVariant: dump.variant,
      physBase: pbReport,
      warnings,
    };

    if (dump instanceof KdumpDump) {
      const part = singleKdumpPart(dump);
      if (opts.inPlace) {
        const w = planPhysBaseInPlace(part, physBase);
        const changes: string[] = [];
        if (BigInt.asUintN(64, part.h.physBase) !== BigInt.asUintN(64, physBase)) changes.push(`phys_base ${hex64(part.h.physBase)} -> ${hex64(physBase)}`);
        if (vmciAdded) warnings.push(warning('IN_PLACE_LIMITED', '--in-place corrects phys_base only: the VMCOREINFO recovered from memory is not added (write a fixed copy with -o OUT for that)'));
        for (const c of hv.vmcoreinfoChanges) warnings.push(warning('IN_PLACE_LIMITED', `--in-place corrects phys_base only, not ${c.replace(/ \(.*\)$/, '')} (write a fixed copy with -o OUT for that)`));
        if (!part.h.utsname.release) warnings.push(warning('IN_PLACE_LIMITED', '--in-place corrects phys_base only: the header utsname stays empty (write a fixed copy with -o OUT)'));
        const kps = k.vmcoreinfo?.pageSize;
        if (kps !== undefined && kps < dump.pageSize) warnings.push(warning('IN_PLACE_LIMITED', `--in-place keeps the ${dump.pageSize}-byte blocks; readers that count pages in the kernel's PAGESIZE (${kps}) still fail (write a fixed copy with -o OUT)`));
        if (hv.memoryEndPfn !== undefined) {
          const end = { endPfn: hv.memoryEndPfn };
          warnings.push(warning('IN_PLACE_LIMITED',
            `--in-place keeps max_mapnr 0x${dump.maxPfn.toString(16)} above the kernel's memory end 0x${end.endPfn.toString(16)}: makedumpfile cannot re-filter this file (write a fixed copy with -o OUT)`,
          ));
        }
        await close();
        if (changes.length) await writeInPlace(input, w.offset, w.bytes);
        return {
          ...base,
          output: input,
          inPlace: true,
          outputFormat: 'kdump',
          vmcoreinfo: { source: k.vmcoreinfoSource, added: false },
          changes,
          bytes: changes.length ? w.bytes.length : 0,
        };
      }
      const out = opts.out!;
      const kernelPageSize = k.vmcoreinfo?.pageSize;
      if (kernelPageSize !== undefined && kernelPageSize < dump.pageSize) {
        // QEMU's arm64 files use 64 KiB blocks; the other readers count pages in PAGESIZE:
        // rewrite every block as the kernel's pages (decompressed and compressed again)
        const notes: ElfNote[] = [...dump.notes];
        if (vmciAdded) notes.push({ name: NOTE_VMCOREINFO, type: 0, desc: latin1Bytes(vmciText!) });
        const det = await dump.details();
        const codecs = Object.entries(det.codecs ?? {}).filter(([c]) => ['zlib', 'lzo', 'snappy', 'zstd'].includes(c));
        codecs.sort((a, b) => b[1] - a[1]);
        const codec = (codecs[0]?.[0] ?? 'zlib') as 'zlib' | 'lzo' | 'snappy' | 'zstd';
        const summary = await convertDump(withPageSize(new NoteOverlay(dump, notes, vmciText), kernelPageSize), out, {
          format: 'kdump',
          codec,
          dumpLevel: 1,
          physBase,
          ...(k.utsname ? { utsname: k.utsname } : {}),
          ...vmciCorrected,
          kernel: false, // the values above are this fix's; no max_mapnr cut on this path
          force: !!opts.force,
          inputFiles: [input],
          ...(opts.threads !== undefined ? { threads: opts.threads } : {}),
        });
        warnings.push(...summary.warnings);
        const changes = [
          `${dump.pageSize}-byte blocks rewritten as the kernel's ${kernelPageSize}-byte pages (${codec}): crash, makedumpfile and libkdumpfile count pages in PAGESIZE`,
          ...(dump.flattened ? ['flattened stream written as a seekable kdump file'] : []),
          ...(vmciAdded ? [`VMCOREINFO note added (${vmciText!.length} bytes recovered from memory)`] : []),
          ...hv.vmcoreinfoChanges,
          ...(k.utsname ? [`utsname filled from the kernel: ${k.utsname.sysname} ${k.utsname.release} ${k.utsname.machine}`] : []),
        ];
        return { ...base, output: out, inPlace: false, outputFormat: 'kdump', vmcoreinfo: { source: k.vmcoreinfoSource, added: vmciAdded }, changes, bytes: summary.bytesOut };
      }
      // the same max_mapnr rule as convert's
      const maxPfn = opts.keepAllPages ? undefined : hv.memoryEndPfn;
      if (!opts.keepAllPages && hv.memoryModelUnread) warnings.push(warning('MEMORY_MODEL_UNREAD', "the kernel's mem_section could not be read: max_mapnr is kept as it is (makedumpfile may refuse to re-filter the file if it covers firmware above RAM)"));
      const plan = await planKdumpFix(dump, {
        ...(maxPfn !== undefined ? { maxPfn } : {}),
        physBase,
        ...(vmciText !== undefined ? { vmcoreinfoText: vmciText } : {}),
        ...(hv.vmcoreinfoText !== undefined ? { vmcoreinfoCorrected: { text: hv.vmcoreinfoText, changes: hv.vmcoreinfoChanges } } : {}),
        ...(k.utsname ? { utsname: k.utsname } : {}),
        nrCpus: Math.max(1, hv.nrCpus),
        producer: producerText('fix'),
        ...(hv.crashTime ? { timestampSec: hv.crashTime } : {}),
      });
      if (dump.flattened) plan.changes.unshift('flattened stream written as a seekable kdump file');
      if (plan.vmcoreinfoAdded) plan.changes.push(...hv.vmcoreinfoChanges);
      await checkOutput(out, !!opts.force, [input]);
      const sink = await FileSink.create(out);
      try {
        for await (const w of kdumpFixWrites(plan)) await sink.write(w.offset, w.bytes);
        await sink.finish(plan.outputSize);
      } catch (e) {
        await sink.abort(false);
        throw e;
      }
      return {
        ...base,
        output: out,
        inPlace: false,
        outputFormat: 'kdump',
        vmcoreinfo: { source: k.vmcoreinfoSource, added: plan.vmcoreinfoAdded },
        changes: plan.changes,
        bytes: plan.outputSize,
      };
    }

    // ELF (or compressed ELF): a /proc/vmcore-like ELF copy
    const out = opts.out!;
    const notes: ElfNote[] = [...dump.notes];
    const changes: string[] = ['program headers right after the ELF header', 'PT_LOAD p_vaddr: direct map and kernel text'];
    if (vmciAdded) {
      notes.push({ name: NOTE_VMCOREINFO, type: 0, desc: latin1Bytes(vmciText!) });
      changes.push(`VMCOREINFO note added (${vmciText!.length} bytes recovered from memory)`);
    }
    changes.push(...hv.vmcoreinfoChanges);
    const overlay = new NoteOverlay(dump, notes, vmciText);
    const summary = await convertDump(overlay, out, {
      producer: producerText('fix'),
      format: 'elf',
      dumpLevel: 0,
      physBase,
      ...vmciCorrected,
      force: !!opts.force,
      inputFiles: [input],
      ...(opts.threads !== undefined ? { threads: opts.threads } : {}),
    });
    warnings.push(...summary.warnings);
    return {
      ...base,
      output: out,
      inPlace: false,
      outputFormat: 'elf',
      vmcoreinfo: { source: k.vmcoreinfoSource, added: vmciAdded },
      changes,
      bytes: summary.bytesOut,
    };
  } finally {
    await close();
  }
}

/**
 * Write `bytes` at `offset` of an existing file: one positional write that stays inside one
 * 512-byte sector, then fdatasync; the header is re-read and compared afterwards.
 */
async function writeInPlace(path: string, offset: number, bytes: Uint8Array): Promise<void> {
  if (Math.floor(offset / 512) !== Math.floor((offset + bytes.length - 1) / 512) || offset % bytes.length !== 0) {
    throw new VmcoreError('BAD_FIELD', 'the phys_base field is not naturally aligned inside one sector; refusing to write in place', { file: path, offset, field: 'phys_base' });
  }
  let fh;
  try {
    fh = await open(path, 'r+');
  } catch (e) {
    throw ioError(e, path, 'opening the dump for writing');
  }
  try {
    const { bytesWritten } = await fh.write(bytes, 0, bytes.length, offset);
    if (bytesWritten !== bytes.length) throw new VmcoreError('IO', `short write (${bytesWritten} of ${bytes.length} bytes)`, { file: path, offset, field: 'phys_base' });
    await fh.datasync();
  } catch (e) {
    throw ioError(e, path, 'writing phys_base');
  } finally {
    await fh.close().catch(() => undefined);
  }
  const src = await FileSource.open(path);
  try {
    const back = await src.read(offset, bytes.length);
    if (back.length !== bytes.length || back.some((b, i) => b !== bytes[i])) throw new VmcoreError('IO', 'phys_base reads back different from what was written', { file: path, offset, field: 'phys_base' });
    await readKdumpHeader(src); // still a valid header
  } finally {
    await src.close();
  }
}
