/**
 * After a one-pass conversion (e.g. from QEMU's dump stream), give the written file what the
 * stream could not know up front: the true phys_base (proven by the kernel analysis on the
 * output) and, when the guest provided no VMCOREINFO, the copy recovered from its memory.
 *
 *  - kdump: phys_base is rewritten in the sub-header; a recovered VMCOREINFO is added by
 *    appending a new note blob (the old notes + a VMCOREINFO note) at the end of the file and
 *    pointing offset_note/size_note and offset_vmcoreinfo/size_vmcoreinfo at it.
 *  - ELF: the PT_NOTE program header is pointed at such an appended blob (ELF has no phys_base
 *    field; the VMCOREINFO note carries NUMBER(phys_base) for readers).
 */
import { warning, type Warning } from '../../core/warnings.js';
import { open, type FileHandle } from 'node:fs/promises';
import { VmcoreError } from '../../core/errors.js';
import { buildNotes, parseNotes } from '../../core/format/elf/notes.js';
import { DiskDumpHeader64, KdumpSubHeader64 } from '../../core/format/kdump/structs.js';
import { Elf64_Ehdr, Elf64_Phdr, Elf64_Shdr, PN_XNUM, PT_LOAD, PT_NOTE } from '../../core/format/elf/structs.js';
import { ELF_LIMITS, parseElfHeader, parseProgramHeaders, parseSectionHeader, programHeaderCount, programHeaderTable } from '../../core/format/elf/header.js';
import { kernelMappings } from '../../core/kernel/kernel-map.js';
import { analyzeKernel } from '../../core/kernel/kernel.js';
import { kernelHeaderValues, type KernelHeaderValues } from '../../core/kernel/header-values.js';
import { openDumpFiles } from '../open.js';
import { latin1, latin1Bytes } from '../../core/text.js';

export interface KernelPatchResult {
  physBase?: { value: bigint; verdict: string; method?: string; patched: boolean };
  vmcoreinfo: { source: string; added: boolean };
  /** The kdump header utsname was completed from the kernel's memory. */
  utsnameFilled?: boolean;
  /** ELF: PT_LOADs given direct-map virtual addresses. */
  directMapVaddrs?: number;
  /** ELF: a PT_LOAD for the kernel text mapping was written into a spare (PT_NULL) slot. */
  kernelTextAlias?: boolean;
  warnings: Warning[];
}

const MAX_NOTES = ELF_LIMITS.maxNoteBytes;

/** Name of the note that holds room for a VMCOREINFO note added after the conversion. */
export const PAD_NOTE_NAME = 'PAD';
/** Room for the largest VMCOREINFO note (4096 bytes of text, as the kernel's buffer) and a smaller pad note. */
const PAD_DESC = 4096 + 64;
export function padNote(): { name: string; type: number; desc: Uint8Array } {
  return { name: PAD_NOTE_NAME, type: 0, desc: new Uint8Array(PAD_DESC) };
}
const align4 = (n: number) => (n + 3) & ~3;
/** Bytes of a note with this name and descriptor size. */
const noteBytes = (name: string, descLen: number) => 12 + align4(name.length + 1) + align4(descLen);

async function readAt(fh: FileHandle, offset: number, length: number, file: string): Promise<Uint8Array> {
  const b = new Uint8Array(length);
  const { bytesRead } = await fh.read(b, 0, length, offset);
  if (bytesRead !== length) throw new VmcoreError('TRUNCATED', `short read of ${length} bytes`, { file, offset });
  return b;
}

async function writeAt(fh: FileHandle, offset: number, bytes: Uint8Array): Promise<void> {
  let done = 0;
  while (done < bytes.length) {
    const { bytesWritten } = await fh.write(bytes, done, bytes.length - done, offset + done);
    if (bytesWritten <= 0) throw new VmcoreError('IO', 'write returned 0');
    done += bytesWritten;
  }
}

/** Analyse `path` (an x86_64 dump) and patch phys_base / VMCOREINFO into it. */
export async function patchKernelInfo(path: string, format: 'kdump' | 'elf' | 'celf'): Promise<KernelPatchResult> {
  const dump = await openDumpFiles([path]);
  let info;
  let hv: KernelHeaderValues;
  let directMapBase: bigint | undefined;
  let kernelImage: { vaddr: bigint; paddr: number; size: number } | undefined;
  try {
    if (dump.arch !== 'x86_64') return { vmcoreinfo: { source: 'none', added: false }, warnings: [warning('ARCH_UNSUPPORTED', `architecture ${dump.arch}: phys_base and VMCOREINFO not checked`)] };
    info = await analyzeKernel(dump, { recover: true });
    hv = await kernelHeaderValues(dump, info);
    if (format === 'elf' && info.vmcoreinfo && info.physBase.value !== undefined) {
      const km = await kernelMappings(dump, info.vmcoreinfo, info.physBase.value);
      directMapBase = km.directMapBase;
      kernelImage = km.kernelImage;
    }
  } finally {
    await dump.close();
  }
  const warnings = [...info.warnings];
  const pb = info.physBase;
  // VMCOREINFO recovered from memory (the stream carried none): the header values convert and fix write too
  const recoveredText = hv.vmcoreinfoNote ? latin1(hv.vmcoreinfoNote.desc) : undefined;
  const result: KernelPatchResult = { vmcoreinfo: { source: info.vmcoreinfoSource, added: false }, warnings };
  if (pb.value !== undefined) result.physBase = { value: pb.value, verdict: pb.verdict, method: pb.sources.join(', '), patched: false };
  else warnings.push(warning('PHYS_BASE_UNPROVEN', 'phys_base could not be proven from the guest memory; the header keeps what QEMU wrote'));

  if (format === 'celf') {
    if (recoveredText) warnings.push(warning('VMCOREINFO_NOT_ADDED', 'VMCOREINFO recovered from memory is not added to celf output'));
    return result;
  }
  const fh = await open(path, 'r+');
  try {
    const size = (await fh.stat()).size;
    if (format === 'kdump') {
      const hraw = await readAt(fh, 0, DiskDumpHeader64.size, path);
      const h = DiskDumpHeader64.read(hraw, 0, true, { file: path });
      if (!h.signature.startsWith('KDUMP') || h.header_version < 6) {
        throw new VmcoreError('UNSUPPORTED', `not a version-6 kdump file (${h.signature} v${h.header_version}); cannot patch`, { file: path });
      }
      const subOff = h.block_size;
      const raw = await readAt(fh, subOff, KdumpSubHeader64.size, path);
      const sub = KdumpSubHeader64.read(raw, 0, true, { file: path, base: subOff });
      let dirty = false;
      if (pb.value !== undefined && sub.phys_base !== BigInt.asUintN(64, pb.value)) {
        sub.phys_base = BigInt.asUintN(64, pb.value);
        result.physBase!.patched = true;
        dirty = true;
      }
      if (recoveredText && sub.size_vmcoreinfo === 0) {
        if (sub.size_note > MAX_NOTES) throw new VmcoreError('OUT_OF_BOUNDS', 'note blob too large', { file: path, field: 'size_note' });
        const old = sub.size_note > 0 ? parseNotes(await readAt(fh, sub.offset_note, sub.size_note, path), true, { file: path, base: sub.offset_note }) : [];
        const text = latin1Bytes(recoveredText);
        const blob = buildNotes([...old, { name: 'VMCOREINFO', type: 0, desc: text }], true);
        const at = Math.ceil(size / 8) * 8;
        await writeAt(fh, at, blob);
        sub.offset_note = at;
        sub.size_note = blob.length;
        sub.offset_vmcoreinfo = at + blob.length - (Math.ceil(text.length / 4) * 4);
        sub.size_vmcoreinfo = text.length;
        result.vmcoreinfo.added = true;
        dirty = true;
      }
      if (dirty) {
        KdumpSubHeader64.write(sub, raw, 0, true);
        await writeAt(fh, subOff, raw);
      }
      // libkdumpfile (and so drgn) take the architecture from the header utsname only when all
      // of sysname, nodename, release, version and machine are set: fill them from the
      // kernel's own init_uts_ns when the stream could not.
      const u = info.utsname;
      const sane = (x: { sysname: string; nodename: string; release: string; version: string; machine: string }) =>
        !!(x.sysname && x.nodename && x.release && x.version && x.machine);
      if (u && !sane(h) && sane(u)) {
        DiskDumpHeader64.write(
          { sysname: u.sysname, nodename: u.nodename, release: u.release, version: u.version, machine: u.machine, domainname: u.domainname },
          hraw,
          0,
          true,
        );
        await writeAt(fh, 0, hraw);
        result.utsnameFilled = true;
      }
    } else {
      const eh = parseElfHeader(await readAt(fh, 0, Elf64_Ehdr.size, path), path);
      if (!eh.is64 || !eh.littleEndian) throw new VmcoreError('UNSUPPORTED', 'only little-endian ELF64 output is patched', { file: path });
      const sh0Info = eh.phnum === PN_XNUM && eh.shoff ? parseSectionHeader(await readAt(fh, eh.shoff, Elf64_Shdr.size, path), 0, eh, path, eh.shoff).info : undefined;
      const phnum = programHeaderCount(eh, sh0Info, path);
      const table = programHeaderTable(eh, phnum, size, path);
      const phs = await readAt(fh, table.offset, table.bytes, path);
      parseProgramHeaders(phs, eh, phnum, path); // the checks every ELF reader makes
      // Direct-map virtual addresses for PT_LOADs that have none (QEMU paging=false writes
      // p_vaddr = p_paddr), so readers that translate through p_vaddr find kernel data.
      if (directMapBase !== undefined) {
        let n = 0;
        for (let i = 0; i < phnum; i++) {
          const ph = Elf64_Phdr.read(phs, i * Elf64_Phdr.size, true, { file: path, base: eh.phoff });
          if (ph.p_type !== PT_LOAD || (ph.p_vaddr !== ph.p_paddr && ph.p_vaddr !== 0n)) continue;
          ph.p_vaddr = BigInt.asUintN(64, directMapBase + ph.p_paddr);
          Elf64_Phdr.write(ph, phs, i * Elf64_Phdr.size, true);
          n++;
        }
        if (n) {
          await writeAt(fh, eh.phoff, phs);
          result.directMapVaddrs = n;
        }
      }
      // The kernel text mapping (vmcore-dmesg and other p_vaddr readers need it), in a PT_NULL
      // slot the one-pass writer left for it, aliasing the file bytes of the RAM PT_LOAD.
      if (kernelImage) {
        let slot = -1;
        let host: ReturnType<typeof Elf64_Phdr.read> | undefined;
        const kStart = BigInt(kernelImage.paddr);
        const kEnd = kStart + BigInt(kernelImage.size);
        for (let i = 0; i < phnum; i++) {
          const ph = Elf64_Phdr.read(phs, i * Elf64_Phdr.size, true, { file: path, base: eh.phoff });
          if (ph.p_type === 0 && slot < 0) slot = i;
          if (ph.p_type === PT_LOAD && ph.p_paddr <= kStart && kEnd <= ph.p_paddr + BigInt(ph.p_filesz) && ph.p_vaddr < 0xffffffff80000000n) host ??= ph;
        }
        const hasText = Array.from({ length: phnum }, (_, i) => Elf64_Phdr.read(phs, i * Elf64_Phdr.size, true)).some(
          (ph) => ph.p_type === PT_LOAD && ph.p_vaddr >= 0xffffffff80000000n,
        );
        if (!hasText && slot >= 0 && host) {
          const alias = {
            p_type: PT_LOAD,
            p_flags: 7,
            p_offset: host.p_offset + Number(kStart - host.p_paddr),
            p_vaddr: kernelImage.vaddr,
            p_paddr: kStart,
            p_filesz: kernelImage.size,
            p_memsz: kernelImage.size,
            p_align: 0n,
          };
          Elf64_Phdr.write(alias, phs, slot * Elf64_Phdr.size, true);
          await writeAt(fh, eh.phoff + slot * Elf64_Phdr.size, Elf64_Phdr.encode(alias, true));
          result.kernelTextAlias = true;
        } else if (!hasText) warnings.push(warning('OUTPUT_LIMITED', 'no room or no single RAM segment for a kernel-text PT_LOAD: readers that translate through p_vaddr (vmcore-dmesg) cannot read this ELF'));
      }
      if (recoveredText) {
        let idx = -1;
        for (let i = 0; i < phnum; i++) if (Elf64_Phdr.read(phs, i * Elf64_Phdr.size, true).p_type === PT_NOTE) idx = idx < 0 ? i : idx;
        if (idx < 0) {
          warnings.push(warning('VMCOREINFO_NOT_ADDED', 'the ELF output has no PT_NOTE; VMCOREINFO not added'));
        } else {
          const ph = Elf64_Phdr.read(phs, idx * Elf64_Phdr.size, true, { file: path, base: eh.phoff });
          if (ph.p_filesz > MAX_NOTES) throw new VmcoreError('OUT_OF_BOUNDS', 'PT_NOTE too large', { file: path, field: 'p_filesz' });
          const old = parseNotes(await readAt(fh, ph.p_offset, ph.p_filesz, path), true, { file: path, base: ph.p_offset });
          if (!old.some((n) => n.name === 'VMCOREINFO')) {
            const text = latin1Bytes(recoveredText);
            const keep = old.filter((n) => n.name !== PAD_NOTE_NAME);
            const pad = old.find((n) => n.name === PAD_NOTE_NAME);
            const room = pad ? noteBytes(pad.name, pad.desc.length) : 0;
            const need = noteBytes('VMCOREINFO', text.length);
            if (pad && room - need >= noteBytes(PAD_NOTE_NAME, 0)) {
              // In place, where the conversion left room: the notes keep their offset and size.
              const padLeft = room - need - noteBytes(PAD_NOTE_NAME, 0);
              const blob = buildNotes([...keep, { name: 'VMCOREINFO', type: 0, desc: text }, { name: PAD_NOTE_NAME, type: 0, desc: new Uint8Array(padLeft) }], true);
              if (blob.length !== ph.p_filesz) throw new VmcoreError('BAD_FIELD', `note rewrite is ${blob.length} bytes, PT_NOTE holds ${ph.p_filesz}`, { file: path });
              await writeAt(fh, ph.p_offset, blob);
            } else {
              const blob = buildNotes([...keep, { name: 'VMCOREINFO', type: 0, desc: text }], true);
              const at = Math.ceil(size / 8) * 8;
              await writeAt(fh, at, blob);
              ph.p_offset = at;
              ph.p_filesz = blob.length;
              if (ph.p_memsz !== 0) ph.p_memsz = blob.length;
              await writeAt(fh, eh.phoff + idx * Elf64_Phdr.size, Elf64_Phdr.encode(ph, true));
              warnings.push(warning('VMCOREINFO_NOT_ADDED', 'VMCOREINFO appended at the end of the ELF file (no room by the headers); crash may not see the notes'));
            }
            result.vmcoreinfo.added = true;
          }
        }
      }
    }
  } finally {
    await fh.close();
  }
  return result;
}
