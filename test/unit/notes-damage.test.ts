/**
 * A hostile or damaged note header (n_namesz 0xff on the real arm64 QEMU dump's CPU note,
 * test/fixtures/excerpts-arm64) costs that note only: a warning names its offset and field, the
 * notes after it are still read (or a warning says they are lost), and its bytes are never
 * taken for the crash CPU's registers.
 */
import { type Warning } from '../../src/core/warnings.js';
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { fileURLToPath } from 'node:url';
import { openDumpFiles } from '../../src/node/open.js';
import { buildNotes, parseNotes, NT_PRSTATUS } from '../../src/core/format/elf/notes.js';
import { parseAarch64CpuNotes } from '../../src/core/kernel/aarch64/cpu.js';
import { convertDump } from '../../src/node/convert/index.js';
import { analyzeKernel } from '../../src/core/kernel/kernel.js';
import { readDmesg } from '../../src/core/kernel/dmesg.js';
import { panicSummary } from '../../src/core/kernel/panic.js';
import { mkdtempSync, openSync, writeSync, closeSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const SRC = fileURLToPath(new URL('../../../test/fixtures/excerpts-arm64/direct-max-kaslr-1cpu-256M-vmci-panic.kdump', import.meta.url));

async function realNotes() {
  const d = await openDumpFiles([SRC]);
  try {
    return d.notes.map((n) => ({ name: n.name, type: n.type, desc: n.desc }));
  } finally {
    await d.close();
  }
}

test('notes: n_namesz 0xff on the CPU note: warned with offset and field, the note left out, the notes after it read', async () => {
  const notes = await realNotes();
  const i = notes.findIndex((n) => n.name === 'CORE' && n.type === NT_PRSTATUS);
  assert.ok(i >= 0);
  const buf = buildNotes(notes, true);
  const clean = parseNotes(buf, true);
  assert.deepEqual(clean.map((n) => n.name), notes.map((n) => n.name));
  let off = 0;
  for (let k = 0; k < i; k++) off = clean[k + 1]!.offset!;
  if (i === 0) off = 0;
  const bad = buf.slice();
  new DataView(bad.buffer).setUint32(off, 0xff, true);
  const warnings: Warning[] = [];
  const got = parseNotes(bad, true, { file: 'x.kdump', base: 0x1000, warnings });
  assert.equal(warnings.length, 1);
  assert.equal(warnings[0]?.code, 'NOTE_DAMAGED');
  assert.match(warnings[0]!.text, new RegExp(`^x\\.kdump: note at offset 0x${(0x1000 + off).toString(16)}: field Elf_Nhdr\\.n_namesz 255 `));
  assert.match(warnings[0]!.text, /read on from offset/);
  // every other note, with its bytes
  const want = notes.filter((_, k) => k !== i);
  assert.deepEqual(got.map((n) => [n.name, n.type, Buffer.from(n.desc).toString('hex')]), want.map((n) => [n.name, n.type, Buffer.from(n.desc).toString('hex')]));
  // no CPU registers come from the damaged note
  const cpus = parseAarch64CpuNotes(got, true).cpus;
  assert.equal(cpus.length, notes.filter((n) => n.name === 'CORE' && n.type === NT_PRSTATUS).length - 1);
});

test('notes: a namesz that leaves no way to find the next note says the notes after it are lost', () => {
  const notes = [
    { name: 'CORE', type: NT_PRSTATUS, desc: new Uint8Array(16).fill(0x11) },
    { name: 'VMCOREINFO', type: 0, desc: new TextEncoder().encode('OSRELEASE=6.1.0\n') },
  ];
  const bad = buildNotes(notes, true);
  // namesz 0xff and descsz 7: re-measured by its name "CORE", the note would end inside its own
  // descriptor, where no sound note starts
  new DataView(bad.buffer).setUint32(0, 0xff, true);
  new DataView(bad.buffer).setUint32(4, 7, true);
  const warnings: Warning[] = [];
  const got = parseNotes(bad, true, { warnings });
  assert.equal(got.length, 0);
  assert.equal(warnings.length, 1);
  assert.equal(warnings[0]?.code, 'NOTE_DAMAGED');
  assert.match(warnings[0]!.text, /note at offset 0x0: field Elf_Nhdr\.n_namesz 255 .* bytes of notes from there are lost/);
});

test('kdump file with n_namesz 0xff on its CPU note: the reader warns, the other notes stay, info has no crash registers from it', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'vmcore-notes-'));
  try {
    const out = join(dir, 'a.kdump');
    const src = await openDumpFiles([SRC]);
    try {
      await convertDump(src, out, { format: 'kdump', threads: 0 });
    } finally {
      await src.close();
    }
    const good = await openDumpFiles([out]);
    const names = good.notes.map((n) => n.name);
    const off = good.notes.find((n) => n.name === 'CORE' && n.type === NT_PRSTATUS)!.offset!;
    await good.close();
    const fd = openSync(out, 'r+');
    const b = Buffer.alloc(4);
    b.writeUInt32LE(0xff);
    writeSync(fd, b, 0, 4, off);
    closeSync(fd);
    const d = await openDumpFiles([out]);
    try {
      assert.ok(d.warnings.some((w) => w.code === 'NOTE_DAMAGED' && w.text.includes(`note at offset 0x${off.toString(16)}: field Elf_Nhdr.n_namesz 255`)), d.warnings.map((x) => x.text).join('\n'));
      const i = names.findIndex((n) => n === 'CORE');
      assert.deepEqual(d.notes.map((n) => n.name), names.filter((_, k) => k !== i));
      assert.ok(d.vmcoreinfoText?.includes('OSRELEASE=6.1.0-56-cloud-arm64'));
      const k = await analyzeKernel(d);
      assert.equal(k.cpus.length, 0);
      const p = await panicSummary(k, await readDmesg({ vmcoreinfo: k.vmcoreinfo!, readVirt: (va, n) => k.readVirt(va, n) }), d.littleEndian);
      // the panic line is still the guest's (its console: "Kernel panic - not syncing: sysrq triggered crash")
      assert.equal(p?.message, 'Kernel panic - not syncing: sysrq triggered crash');
      assert.equal(p?.registers, null);
    } finally {
      await d.close();
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
