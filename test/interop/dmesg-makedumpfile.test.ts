/**
 * Edge cases checked against makedumpfile itself: the memory of the real sample is copied into a
 * new kdump file in which the kernel log is replaced by logs written here (a lockless ring with
 * multi-line records, control and non-ASCII bytes, data-less records, a writer caught between
 * reserve and commit, a block that wraps to the ring start; a ring filled so that its last block
 * ends exactly at the ring end; a 3.5–5.9 printk_log buffer with a wrap marker, empty records and
 * dictionaries). makedumpfile --dump-dmesg reads the new file; our output must be byte-identical,
 * except for the perfect-fit block, which makedumpfile misreads and we must read right.
 * Skips when makedumpfile or the sample is absent.
 */
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { openDumpFiles } from '../../src/node/open.js';
import { analyzeKernel, type KernelInfo } from '../../src/core/kernel/kernel.js';
import { Vmcoreinfo } from '../../src/core/kernel/vmcoreinfo.js';
import { isPresent } from '../../src/core/dump.js';
import { buildNotes, noteDescOffset } from '../../src/core/format/elf/notes.js';
import { readDmesg, formatDmesg } from '../../src/core/kernel/dmesg.js';
import { buildKdump } from '../helpers/build.js';

const root = fileURLToPath(new URL('../../../', import.meta.url));
const SAMPLE = join(root, 'samples/seabios-128M.md-c-d31.kdump');
const haveMakedumpfile = spawnSync('makedumpfile', ['-v'], { stdio: 'ignore' }).error === undefined;
const skip = (!haveMakedumpfile && 'makedumpfile is not installed') || (!existsSync(SAMPLE) && 'samples/seabios-128M.md-c-d31.kdump is absent');
const tmp = mkdtempSync(join(tmpdir(), 'vmcore-dmesg-md-'));
after(() => rmSync(tmp, { recursive: true, force: true }));

const PAGE = 4096;
const M64 = (1n << 64n) - 1n;
const enc = new TextEncoder();

/** The sample's memory, copy-on-write, addressed through the kernel's own translation. */
class Memory {
  constructor(
    readonly pages: Map<number, Uint8Array>,
    readonly k: KernelInfo,
  ) {}
  async write(va: bigint, data: Uint8Array): Promise<void> {
    for (let i = 0; i < data.length; ) {
      const a = va + BigInt(i);
      const pa = await this.k.virtToPhys(a);
      const pfn = Math.floor(pa / PAGE);
      const off = pa % PAGE;
      const n = Math.min(PAGE - off, data.length - i);
      let p = this.pages.get(pfn);
      if (!p) this.pages.set(pfn, (p = new Uint8Array(PAGE)));
      p.set(data.subarray(i, i + n), off);
      i += n;
    }
  }
}

async function loadSample() {
  const dump = await openDumpFiles([SAMPLE]);
  const k = await analyzeKernel(dump);
  const pages = new Map<number, Uint8Array>();
  for await (const run of dump.pageRuns()) {
    if (!isPresent(run.state)) continue;
    for (let pfn = run.startPfn; pfn < run.endPfn; pfn++) pages.set(pfn, (await dump.readPage(pfn)).slice());
  }
  return { dump, k, pages, mem: new Memory(pages, k) };
}

/** A kdump file of `pages` with `vmcoreinfo` as both the note and offset_vmcoreinfo (what makedumpfile reads). */
function writeKdump(path: string, pages: Map<number, Uint8Array>, maxPfn: number, notes: { name: string; type: number; desc: Uint8Array }[], vmcoreinfo: string): void {
  const all = notes.map((n) => (n.name === 'VMCOREINFO' ? { ...n, desc: enc.encode(vmcoreinfo) } : n));
  const blob = buildNotes(all, true);
  const file = buildKdump({ maxMapnr: maxPfn, pages, notes: blob, codec: 'zlib', dumpLevel: 31 });
  const vi = all.findIndex((n) => n.name === 'VMCOREINFO');
  const dv = new DataView(file.buffer, file.byteOffset, file.length);
  dv.setBigUint64(PAGE + 32, BigInt(PAGE + 104 + noteDescOffset(all, vi)), true); // offset_vmcoreinfo
  dv.setBigUint64(PAGE + 40, BigInt(all[vi]!.desc.length), true); // size_vmcoreinfo
  writeFileSync(path, file);
}

function makedumpfileDmesg(dump: string): Buffer {
  const out = dump + '.dmesg';
  const r = spawnSync('makedumpfile', ['--dump-dmesg', dump, out], { encoding: 'latin1' });
  assert.equal(r.status, 0, `makedumpfile --dump-dmesg failed: ${r.stdout}${r.stderr}`);
  return readFileSync(out);
}

async function oursOn(path: string, vmcoreinfo: string): Promise<Buffer> {
  const dump = await openDumpFiles([path]);
  try {
    const k = await analyzeKernel(dump);
    const log = await readDmesg({ vmcoreinfo: new Vmcoreinfo(vmcoreinfo), readVirt: (a, l) => k.readVirt(a, l) });
    return Buffer.from(formatDmesg(log));
  } finally {
    await dump.close();
  }
}

interface Rec {
  text: Uint8Array;
  special?: 'failed' | 'empty' | 'reserved' | 'committed';
  level?: number;
  caller?: number;
}

/** Lay records into the sample's (static) lockless ring as the kernel would, starting at `startLpos`. */
async function writeLockless(m: Memory, vi: Vmcoreinfo, recs: Rec[], startLpos: bigint): Promise<{ perfectFit: number[]; wrapped: number[] }> {
  const read = (va: bigint, n: number) => m.k.readVirt(va, n);
  const le64 = (b: Uint8Array, o: number) => new DataView(b.buffer, b.byteOffset).getBigUint64(o, true);
  const ringVa = le64(await read(vi.symbol('prb')!, 8), 0);
  const hdr = await read(ringVa, 88);
  const hv = new DataView(hdr.buffer, hdr.byteOffset, 88);
  const countBits = hv.getUint32(0, true);
  const descsVa = le64(hdr, 8);
  const infosVa = le64(hdr, 16);
  const sizeBits = hv.getUint32(48, true);
  const dataVa = le64(hdr, 56);
  const count = 2 ** countBits;
  const size = 1n << BigInt(sizeBits);
  const descs = new Uint8Array(count * 24);
  const infos = new Uint8Array(count * 88);
  const data = new Uint8Array(Number(size));
  const ddv = new DataView(descs.buffer);
  const idv = new DataView(infos.buffer);
  const desc0 = BigInt.asUintN(32, -BigInt(count + 1));
  const wraps = (x: bigint) => (x & M64) >> BigInt(sizeBits);
  let lpos = startLpos & M64;
  const perfectFit: number[] = [];
  const wrapped: number[] = [];
  recs.forEach((r, i) => {
    const id = desc0 + 1n + BigInt(i);
    const slot = i % count;
    let begin: bigint, next: bigint;
    if (r.special === 'failed') begin = next = 1n;
    else if (r.special === 'empty' || r.text.length === 0) begin = next = 3n;
    else {
      const blk = BigInt((8 + r.text.length + 7) & ~7);
      begin = lpos;
      next = (begin + blk) & M64;
      let at = Number(begin % size);
      const idb = new Uint8Array(8);
      new DataView(idb.buffer).setBigUint64(0, id, true);
      data.set(idb, at);
      if (wraps(begin) !== wraps(next - 1n)) {
        next = ((next & ~(size - 1n)) + blk) & M64;
        at = 0;
        data.set(idb, 0);
        wrapped.push(i);
      } else if (next % size === 0n) perfectFit.push(i);
      data.set(r.text, at + 8);
      lpos = next;
    }
    const state = r.special === 'reserved' ? 0n : r.special === 'committed' ? 1n : 2n;
    ddv.setBigUint64(slot * 24, (state << 62n) | id, true);
    ddv.setBigUint64(slot * 24 + 8, begin, true);
    ddv.setBigUint64(slot * 24 + 16, next, true);
    idv.setBigUint64(slot * 88, BigInt(i), true);
    idv.setBigUint64(slot * 88 + 8, 1_000_000_007n * BigInt(i) + 123_456_789n, true);
    idv.setUint16(slot * 88 + 16, r.text.length, true);
    infos[slot * 88 + 19] = ((r.level ?? 6) << 5) | 2;
    idv.setUint32(slot * 88 + 20, r.caller ?? 1, true);
  });
  await m.write(descsVa, descs);
  await m.write(infosVa, infos);
  await m.write(dataVa, data);
  const ids = new Uint8Array(16);
  new DataView(ids.buffer).setBigUint64(0, desc0 + BigInt(recs.length), true); // head_id
  new DataView(ids.buffer).setBigUint64(8, desc0 + 1n, true); // tail_id
  await m.write(ringVa + 24n, ids);
  return { perfectFit, wrapped };
}

function variety(): Rec[] {
  const recs: Rec[] = [];
  const bytes = (...a: number[]) => new Uint8Array(a);
  recs.push({ text: enc.encode('Linux version 6.1.0 (synthetic log for the makedumpfile comparison)'), level: 5 });
  recs.push({ text: enc.encode('Call Trace:\n <TASK>\n dump_stack_lvl+0x44/0x5c\n </TASK>') });
  recs.push({ text: bytes(0x41, 0x09, 0x42, 0x0b, 0x0c, 0x0d, 0x43, 0x01, 0x1b, 0x7f, 0xc3, 0xa9, 0xe2, 0x82, 0xac, 0x80, 0xff, 0x44) });
  recs.push({ text: enc.encode('trailing newline\n') });
  recs.push({ text: enc.encode(''), special: 'empty' });
  recs.push({ text: enc.encode('data lost'), special: 'failed' });
  recs.push({ text: enc.encode('caller on a CPU'), caller: 0x80000003 });
  for (let i = 0; i < 40; i++) recs.push({ text: enc.encode(`filler ${i} `.padEnd(17 + ((i * 53) % 300), '=')) });
  recs.push({ text: enc.encode('committed, not yet finalized'), special: 'committed' });
  recs.push({ text: enc.encode('being written at crash time'), special: 'reserved' });
  return recs;
}

test('lockless ring with edge cases: byte-identical to makedumpfile --dump-dmesg on the same memory', { skip }, async () => {
  const { dump, k, pages, mem } = await loadSample();
  try {
    const viText = k.vmcoreinfo!.text;
    // start 1000 bytes before the end of the first lap: blocks wrap to the ring start early on
    const layout = await writeLockless(mem, k.vmcoreinfo!, variety(), -1000n);
    assert.ok(layout.wrapped.length > 0, 'a block wrapped to the ring start');
    assert.equal(layout.perfectFit.length, 0);
    const path = join(tmp, 'lockless.kdump');
    writeKdump(path, pages, dump.maxPfn, [...dump.notes], viText);
    const md = makedumpfileDmesg(path);
    const ours = await oursOn(path, viText);
    assert.equal(ours.toString('latin1'), md.toString('latin1'));
    assert.ok(md.toString('latin1').includes('\\xffffffc3'), 'makedumpfile escapes bytes >= 0x80 as a signed char');
  } finally {
    await dump.close();
  }
});

test('a block ending exactly at the ring end: makedumpfile misreads it, we read it', { skip }, async () => {
  const { dump, k, pages, mem } = await loadSample();
  try {
    const viText = k.vmcoreinfo!.text;
    // fill one whole lap from lpos -size: 1024 blocks of 128 bytes, the last ends at the ring end (next lpos overflows to 0)
    const recs: Rec[] = [];
    for (let i = 0; i < 1024; i++) recs.push({ text: enc.encode(`record ${String(i).padStart(4, '0')} `.padEnd(120, String.fromCharCode(97 + (i % 26)))) });
    const layout = await writeLockless(mem, k.vmcoreinfo!, recs, -(1n << 17n));
    assert.deepEqual(layout.perfectFit, [1023]);
    const path = join(tmp, 'perfect.kdump');
    writeKdump(path, pages, dump.maxPfn, [...dump.notes], viText);
    const md = makedumpfileDmesg(path).toString('latin1').split('\n');
    const ours = (await oursOn(path, viText)).toString('latin1').split('\n');
    assert.equal(ours.length, md.length);
    const last = ours.length - 2;
    assert.deepEqual(ours.slice(0, last), md.slice(0, last), 'all other records identical');
    assert.ok(ours[last]!.endsWith('] ' + new TextDecoder().decode(recs[1023]!.text)), 'we read the perfect-fit block');
    assert.notEqual(md[last], ours[last], 'makedumpfile misreads the perfect-fit block');
  } finally {
    await dump.close();
  }
});

test('printk_log buffer (3.5-5.9 layout): byte-identical to makedumpfile --dump-dmesg', { skip }, async () => {
  const { dump, k, pages, mem } = await loadSample();
  try {
    const vi = k.vmcoreinfo!;
    const read = (va: bigint, n: number) => k.readVirt(va, n);
    const le64 = (b: Uint8Array, o: number) => new DataView(b.buffer, b.byteOffset).getBigUint64(o, true);
    const ringVa = le64(await read(vi.symbol('prb')!, 8), 0);
    const hdr = await read(ringVa, 88);
    const varsVa = le64(hdr, 8); // reuse the descriptor array for the index variables
    const bufVa = le64(hdr, 56); // and the text ring for log_buf
    const bufLen = 1 << 16;
    const buf = new Uint8Array(bufLen);
    const texts: Array<[string | Uint8Array, string]> = [
      ['first record', ''],
      ['usb 1-1: new high-speed USB device', 'SUBSYSTEM=usb\0DEVICE=c189:1'],
      ['', ''],
      ['multi\nline', ''],
      [new Uint8Array([0x61, 0x01, 0xe9, 0x09, 0x62]), ''],
    ];
    for (let i = 0; i < 60; i++) texts.push([`printk_log filler ${i} `.padEnd(20 + ((i * 31) % 200), '-'), '']);
    let idx = bufLen - 700; // wraps with a zero-length marker after a few records
    const first = idx;
    let wrappedOnce = false;
    texts.forEach(([t, d], i) => {
      const tb = typeof t === 'string' ? enc.encode(t) : t;
      const db = enc.encode(d);
      const len = (16 + tb.length + db.length + 3) & ~3;
      if (idx + len + 16 > bufLen) {
        buf.fill(0, idx, idx + 16); // end-of-buffer marker
        idx = 0;
        wrappedOnce = true;
      }
      const dv = new DataView(buf.buffer, idx);
      dv.setBigUint64(0, 1_000_000_000n * BigInt(i) + 999_999n, true);
      dv.setUint16(8, len, true);
      dv.setUint16(10, tb.length, true);
      dv.setUint16(12, db.length, true);
      buf[idx + 15] = (6 << 5) | 2;
      buf.set(tb, idx + 16);
      buf.set(db, idx + 16 + tb.length);
      idx += len;
    });
    assert.ok(wrappedOnce);
    await mem.write(bufVa, buf);
    const vars = new Uint8Array(32);
    const vdv = new DataView(vars.buffer);
    vdv.setBigUint64(0, bufVa, true);
    vdv.setUint32(8, bufLen, true);
    vdv.setUint32(16, first, true);
    vdv.setUint32(24, idx, true);
    await mem.write(varsVa, vars);
    const h = (v: bigint) => v.toString(16);
    const viText =
      vi.text
        .split('\n')
        .filter((l) => !/prb|printk_ringbuffer|printk_info|printk_rb|latched_seq|clear_seq/.test(l)) // a 5.9 kernel's key set
        .join('\n')
        .trimEnd() +
      `\nSYMBOL(log_buf)=${h(varsVa)}\nSYMBOL(log_buf_len)=${h(varsVa + 8n)}\nSYMBOL(log_first_idx)=${h(varsVa + 16n)}\nSYMBOL(log_next_idx)=${h(varsVa + 24n)}\n` +
      'SIZE(printk_log)=16\nOFFSET(printk_log.ts_nsec)=0\nOFFSET(printk_log.len)=8\nOFFSET(printk_log.text_len)=10\nOFFSET(printk_log.dict_len)=12\n';
    const path = join(tmp, 'printk_log.kdump');
    writeKdump(path, pages, dump.maxPfn, [...dump.notes], viText);
    const md = makedumpfileDmesg(path);
    const ours = await oursOn(path, viText);
    assert.equal(ours.toString('latin1'), md.toString('latin1'));
    assert.ok(md.toString('latin1').includes('usb 1-1: new high-speed USB device'));
  } finally {
    await dump.close();
  }
});
