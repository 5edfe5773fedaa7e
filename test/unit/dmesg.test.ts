/**
 * Kernel log reader on synthetic rings. The rings are built here by a small simulation of the
 * kernel's writer (printk_ringbuffer.c: desc_reserve / data_alloc / get_next_lpos, both the old
 * and the current wrap policy) in SparseMemory, using the real x86_64 6.1 layout written as
 * literal offsets (independently of the reader, which takes every offset from VMCOREINFO).
 * Expected texts are the messages the test pushed, not the reader's output.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { SparseMemory } from '../../src/core/memory.js';
import { Vmcoreinfo } from '../../src/core/kernel/vmcoreinfo.js';
import { VmcoreError } from '../../src/core/errors.js';
import {
  readDmesg,
  formatDmesg,
  dmesgToJson,
  locateDataBlock,
  type DmesgLog,
} from '../../src/core/kernel/dmesg.js';

const VMCOREINFO_6_1 = readFileSync(new URL('../../../test/fixtures/dmesg/vmcoreinfo-6.1-x86_64.txt', import.meta.url), 'latin1');
const enc = new TextEncoder();
const dec = new TextDecoder('latin1');
const M64 = (1n << 64n) - 1n;
const ID_MASK = (1n << 62n) - 1n;

const KTEXT = 0xffffffff80000000n; // __START_KERNEL_map, phys_base 0
const DMAP = 0xffff888000000000n; // direct map without KASLR
const SYM_PRB = 0xffffffff82a622c0n; // from the real VMCOREINFO
const SYM_STATIC = 0xffffffff82a622e0n;
const SYM_CLEAR = 0xffffffff83316480n;
const DYN_RING = 0xffffffff82a63000n; // a "printk_rb_dynamic" in kernel data
const DESCS_PA = 0x1000000;
const INFOS_PA = 0x1400000;
const DATA_PA = 0x1800000;

function readerFor(mem: SparseMemory) {
  return async (va: bigint, len: number): Promise<Uint8Array> => {
    const pa = va >= KTEXT ? va - KTEXT : va - DMAP;
    return mem.readPhys(Number(pa), len);
  };
}

interface PushOpts {
  ts?: bigint;
  level?: number;
  facility?: number;
  flags?: number;
  caller?: number;
  subsystem?: string;
  device?: string;
  state?: 'reserved' | 'committed' | 'finalized';
}

interface Live {
  id: bigint;
  seq: bigint;
  text: string;
  begin: bigint;
  next: bigint;
  wrapped: boolean;
  endsAtRingEnd: boolean;
}

/** Simulates the kernel writer (x86_64 6.1 layout, literal offsets). */
class RingBuilder {
  readonly mem = new SparseMemory(0x8000);
  readonly count: number;
  readonly size: bigint;
  headId: bigint;
  tailId: bigint;
  headLpos: bigint;
  tailLpos: bigint;
  seq = 0n;
  fail = 0n;
  live: Live[] = [];
  /** Everything pushed, in order, including records dropped since. */
  all: Live[] = [];
  constructor(
    readonly countBits: number,
    readonly sizeBits: number,
    readonly policy: 'old' | 'new' = 'new',
    startId?: bigint,
  ) {
    this.count = 2 ** countBits;
    this.size = 1n << BigInt(sizeBits);
    // DESC0_ID: the kernel computes -(count + 1) in 32-bit unsigned arithmetic
    const desc0 = startId ?? BigInt.asUintN(32, -BigInt(this.count + 1));
    this.headId = this.tailId = desc0;
    this.headLpos = this.tailLpos = (-this.size) & M64;
    // bootstrap descriptor: reusable, FAILED_LPOS; infos[0].seq = -count (so slot 0's first seq is 0)
    this.writeDesc(desc0, 3n, 1n, 1n);
    this.mem.write(INFOS_PA, u64(BigInt.asUintN(64, -BigInt(this.count))));
  }
  slot(id: bigint): number {
    return Number(id % BigInt(this.count));
  }
  writeDesc(id: bigint, state: bigint, begin: bigint, next: bigint) {
    const b = new Uint8Array(24);
    const dv = new DataView(b.buffer);
    dv.setBigUint64(0, (state << 62n) | (id & ID_MASK), true);
    dv.setBigUint64(8, begin & M64, true);
    dv.setBigUint64(16, next & M64, true);
    this.mem.write(DESCS_PA + this.slot(id) * 24, b);
  }
  setState(id: bigint, state: bigint) {
    const a = DESCS_PA + this.slot(id) * 24;
    const dv = new DataView(this.mem.pages.get(Math.floor(a / 4096))!.buffer);
    const o = a % 4096;
    dv.setBigUint64(o, (state << 62n) | (id & ID_MASK), true);
  }
  wraps(lpos: bigint): bigint {
    return (lpos & M64) >> BigInt(this.sizeBits);
  }
  dropOldestData() {
    const r = this.live.shift()!;
    this.setState(r.id, 3n); // reusable
    this.tailLpos = r.next;
  }
  push(text: string | Uint8Array, o: PushOpts = {}): Live {
    const bytes = typeof text === 'string' ? enc.encode(text) : text;
    const id = (this.headId + 1n) & ID_MASK;
    // descriptor ring full: recycle the tail descriptor (and its data)
    if (((id - this.tailId) & ID_MASK) >= BigInt(this.count)) {
      const old = this.tailId;
      const i = this.live.findIndex((l) => l.id === old);
      if (i >= 0) {
        while (this.live[0]!.id !== old) this.dropOldestData();
        this.dropOldestData();
      }
      this.tailId = (this.tailId + 1n) & ID_MASK;
    }
    let begin: bigint, next: bigint;
    let wrapped = false;
    if (bytes.length === 0) {
      begin = next = 3n; // EMPTY_LINE_LPOS / NO_LPOS
    } else {
      const blk = BigInt((8 + bytes.length + 7) & ~7);
      if (blk > this.size) throw new Error('record larger than the ring');
      begin = this.headLpos;
      next = (begin + blk) & M64;
      const wrap = this.policy === 'new' ? this.wraps(begin) !== this.wraps(next - 1n) : this.wraps(begin) !== this.wraps(next);
      if (wrap) {
        next = ((next & ~(this.size - 1n)) + blk) & M64; // DATA_THIS_WRAP_START_LPOS(next) + size
        wrapped = true;
      }
      while (((next - this.tailLpos) & M64) > this.size) {
        if (this.live.length) this.dropOldestData();
        else this.tailLpos = (next - this.size) & M64;
      }
      this.headLpos = next;
      const off = Number(begin % this.size);
      const idb = u64(id);
      this.mem.write(DATA_PA + off, idb);
      const at = wrapped ? 0 : off;
      this.mem.write(DATA_PA + at, idb);
      this.mem.write(DATA_PA + at + 8, bytes);
    }
    const state = o.state === 'reserved' ? 0n : o.state === 'committed' ? 1n : 2n;
    this.writeDesc(id, state, begin, next);
    // info
    const inf = new Uint8Array(88);
    const dv = new DataView(inf.buffer);
    const seq = this.seq++;
    dv.setBigUint64(0, seq, true);
    dv.setBigUint64(8, o.ts ?? 1_000_000n * seq, true);
    dv.setUint16(16, bytes.length, true);
    inf[18] = o.facility ?? 0;
    inf[19] = ((o.level ?? 6) << 5) | ((o.flags ?? 2) & 0x1f);
    dv.setUint32(20, o.caller ?? 1, true);
    inf.set(enc.encode(o.subsystem ?? ''), 24);
    inf.set(enc.encode(o.device ?? ''), 40);
    this.mem.write(INFOS_PA + this.slot(id) * 88, inf);
    this.headId = id;
    const rec: Live = {
      id,
      seq,
      text: dec.decode(bytes),
      begin,
      next,
      wrapped,
      endsAtRingEnd: bytes.length > 0 && !wrapped && (next & (this.size - 1n)) === 0n,
    };
    if (bytes.length) this.live.push(rec);
    this.all.push(rec);
    return rec;
  }
  /** Write the ring header and the prb pointer; returns the source for readDmesg. */
  finish(opts: { ring?: bigint; clearSeq?: bigint } = {}) {
    const ringVa = opts.ring ?? DYN_RING;
    const b = new Uint8Array(88);
    const dv = new DataView(b.buffer);
    dv.setUint32(0, this.countBits, true);
    dv.setBigUint64(8, DMAP + BigInt(DESCS_PA), true);
    dv.setBigUint64(16, DMAP + BigInt(INFOS_PA), true);
    dv.setBigUint64(24, this.headId, true);
    dv.setBigUint64(32, this.tailId, true);
    dv.setUint32(48, this.sizeBits, true);
    dv.setBigUint64(56, DMAP + BigInt(DATA_PA), true);
    dv.setBigUint64(64, this.headLpos, true);
    dv.setBigUint64(72, this.tailLpos, true);
    dv.setBigUint64(80, this.fail, true);
    this.mem.write(Number(ringVa - KTEXT), b);
    this.mem.write(Number(SYM_PRB - KTEXT), u64(ringVa));
    // clear_seq is a latched_seq {seqcount u32, u64 val[2]}
    const cs = new Uint8Array(24);
    const cdv = new DataView(cs.buffer);
    cdv.setUint32(0, 2, true);
    cdv.setBigUint64(8, opts.clearSeq ?? 0n, true);
    this.mem.write(Number(SYM_CLEAR - KTEXT), cs);
    return { vmcoreinfo: new Vmcoreinfo(VMCOREINFO_6_1), readVirt: readerFor(this.mem) };
  }
  expectedLive(): string[] {
    return this.live.map((l) => l.text);
  }
}

function u64(v: bigint): Uint8Array {
  const b = new Uint8Array(8);
  new DataView(b.buffer).setBigUint64(0, v & M64, true);
  return b;
}

function texts(log: DmesgLog): string[] {
  return log.records.filter((r) => !r.lost && !r.empty).map((r) => dec.decode(r.text));
}

/** makedumpfile's line form, written out independently for plain ASCII records. */
function mdLine(tsNsec: bigint, text: string): string {
  const s = (tsNsec / 1_000_000_000n).toString().padStart(5, ' ');
  const us = ((tsNsec % 1_000_000_000n) / 1000n).toString().padStart(6, '0');
  const prefix = `[${s}.${us}] `;
  return prefix + text.split('\n').join('\n' + ' '.repeat(prefix.length)) + '\n';
}

test('empty ring (only the bootstrap descriptor) gives no records', async () => {
  const b = new RingBuilder(4, 10);
  const log = await readDmesg(b.finish());
  assert.equal(log.kind, 'lockless');
  assert.equal(log.records.length, 0);
  assert.equal(formatDmesg(log).length, 0);
  assert.equal(log.ring!.descCount, 16);
  assert.equal(log.ring!.dataSize, 1024);
  assert.equal(log.ring!.isStatic, false);
});

test('records: text, timestamps, level, facility, caller, dev_info and makedumpfile text form', async () => {
  const b = new RingBuilder(4, 12);
  b.push('Linux version 6.1.0', { ts: 0n, level: 5 });
  b.push('virtio_net virtio0 eth0: renamed', { ts: 1_234_567_891n, level: 6, caller: 0x80000002, subsystem: 'virtio', device: '+virtio:virtio0' });
  b.push('Kernel panic - not syncing: sysrq triggered crash', { ts: 12_345_678_901_234n, level: 0, caller: 4242 });
  const log = await readDmesg(b.finish());
  assert.deepEqual(texts(log), b.expectedLive());
  const [r0, r1, r2] = log.records;
  assert.equal(r0!.level, 5);
  assert.equal(r1!.subsystem, 'virtio');
  assert.equal(r1!.device, '+virtio:virtio0');
  assert.equal(r1!.callerId, 0x80000002);
  assert.equal(r2!.level, 0);
  assert.equal(r2!.seq, 2n);
  const out = dec.decode(formatDmesg(log));
  assert.equal(
    out,
    mdLine(0n, 'Linux version 6.1.0') +
      mdLine(1_234_567_891n, 'virtio_net virtio0 eth0: renamed') +
      mdLine(12_345_678_901_234n, 'Kernel panic - not syncing: sysrq triggered crash'),
  );
  assert.ok(out.startsWith('[    0.000000] Linux'));
  assert.ok(out.includes('[    1.234567] virtio_net'));
  assert.ok(out.includes('[12345.678901] Kernel panic'));
  // caller column (makedumpfile 1.7.3+ layout) and level prefixes
  const withCaller = dec.decode(formatDmesg(log, { caller: true }));
  assert.ok(withCaller.includes('[    1.234567] [      C2] virtio_net'));
  assert.ok(withCaller.includes('[12345.678901] [   T4242] Kernel panic'));
  const prio = dec.decode(formatDmesg(log, { level: 'prio' }));
  assert.ok(prio.startsWith('<5>[    0.000000] Linux'));
  const named = dec.decode(formatDmesg(log, { level: 'name' }));
  assert.ok(named.includes('kern  :emerg : [12345.678901] Kernel panic'));
  // JSON
  const j = dmesgToJson(log) as { records: Array<Record<string, unknown>> };
  assert.deepEqual(j.records[1]!.caller, { cpu: 2 });
  assert.deepEqual(j.records[2]!.caller, { tid: 4242 });
  assert.equal(j.records[1]!.timestamp_ns, 1_234_567_891);
  assert.equal(j.records[1]!.timestamp, '1.234567');
  assert.equal(j.records[1]!.subsystem, 'virtio');
  assert.equal(j.records[2]!.level_name, 'emerg');
  assert.equal(j.records[2]!.text, 'Kernel panic - not syncing: sysrq triggered crash');
});

test('multi-line records: continuation lines indented under the prefix; escapes like makedumpfile', async () => {
  const b = new RingBuilder(4, 12);
  b.push('Call Trace:\n <TASK>\n dump_stack_lvl+0x44/0x5c', { ts: 6_200_788_000n });
  b.push(new Uint8Array([0x41, 0x09, 0x01, 0x7f, 0xc3, 0xa9, 0x0d, 0x42]), { ts: 0n });
  const log = await readDmesg(b.finish());
  const out = dec.decode(formatDmesg(log));
  assert.equal(
    out,
    '[    6.200788] Call Trace:\n' + ' '.repeat(15) + ' <TASK>\n' + ' '.repeat(15) + ' dump_stack_lvl+0x44/0x5c\n' +
      // isprint||isspace pass (tab, CR); others \x%02x of a signed char (as makedumpfile 1.7.2 prints them)
      '[    0.000000] A\t\\x01\\x7f\\xffffffc3\\xffffffa9\rB\n',
  );
  const utf = formatDmesg(log, { utf8: true });
  assert.ok(new TextDecoder().decode(utf).includes('\\x01\\x7f\u00e9\rB'));
  const withCaller = dec.decode(formatDmesg(log, { caller: true }));
  assert.ok(withCaller.startsWith('[    6.200788] [      T1] Call Trace:\n' + ' '.repeat(26) + ' <TASK>\n'));
});

test('wrapped rings: many laps over the descriptor ring, the text ring and the 2^64 lpos and 2^62 id space', async () => {
  for (const policy of ['old', 'new'] as const) {
    // start ids just below the 62-bit id wrap, so ids wrap to 0 during the run
    const b = new RingBuilder(4, 9, policy, ID_MASK - 32n);
    for (let i = 0; i < 300; i++) b.push(`message ${i} ` + 'x'.repeat((i * 37) % 90), { ts: BigInt(i) * 1000n });
    const log = await readDmesg(b.finish());
    assert.deepEqual(texts(log), b.expectedLive(), policy);
    assert.ok(b.live.length > 2);
    assert.ok(b.all.some((l) => l.wrapped), 'some block wrapped to offset 0');
    assert.ok(b.all.some((l) => l.id < 100n) && b.all.some((l) => l.id > ID_MASK - 30n), 'ids wrapped');
    assert.equal(log.records.at(-1)!.seq, 299n);
    // records whose data was recycled but whose descriptor is still in the ring are skipped as reusable
    assert.equal(log.stats.lost, 0);
  }
});

test('a data block ending exactly at the end of the text ring is read in place (current kernel wrap rule)', async () => {
  // 512-byte ring, 128-byte blocks (8-byte id + 120 text): the 4th block ends at the ring end.
  // On the first lap its next lpos overflows to 0 (lpos starts at -size).
  const b = new RingBuilder(5, 9, 'new');
  const msgs = ['a', 'b', 'c', 'd', 'e', 'f', 'g', 'h'].map((c, i) => `${c}${i}`.padEnd(120, c));
  for (const m of msgs.slice(0, 4)) b.push(m);
  assert.equal(b.all[3]!.next, 0n, 'next lpos overflowed to 0');
  assert.ok(b.all[3]!.endsAtRingEnd && !b.all[3]!.wrapped);
  let log = await readDmesg(b.finish());
  assert.deepEqual(texts(log), msgs.slice(0, 4));
  // a second lap: again a perfect fit, without overflow this time
  for (const m of msgs.slice(4)) b.push(m);
  assert.ok(b.all[7]!.endsAtRingEnd && b.all[7]!.next === 512n);
  log = await readDmesg(b.finish());
  assert.deepEqual(texts(log), msgs.slice(4));
  // the shortcut used by makedumpfile/crash/drgn ("begin > next ⇒ begin = 0") reads the block at
  // offset 0 instead: that is another record's text
  const atZero = dec.decode((await b.mem.readPhys(DATA_PA + 8, 120)));
  assert.equal(atZero, msgs[4]);
  assert.equal(texts(log)[3], msgs[7]);
});

test('locateDataBlock follows the kernel rule', () => {
  const size = 1n << 9n;
  const start = (-size) & M64;
  assert.deepEqual(locateDataBlock(start, start + 16n, 9), { offset: 0, length: 16 });
  assert.deepEqual(locateDataBlock(start + 384n, 0n, 9), { offset: 384, length: 128 }); // ends at ring end, next overflowed
  assert.deepEqual(locateDataBlock(896n, 1024n, 9), { offset: 384, length: 128 }); // ends at ring end
  assert.deepEqual(locateDataBlock(992n, 1024n + 48n, 9), { offset: 0, length: 48 }); // wrapped
  assert.equal(locateDataBlock(992n, 2048n + 48n, 9), undefined); // two wraps apart
  assert.equal(locateDataBlock(100n, 90n, 9), undefined); // backwards
  assert.equal(locateDataBlock(4n, 36n, 9), undefined); // misaligned
});

test('lost data: FAILED_LPOS, overwritten data block, memory missing from the dump', async () => {
  const b = new RingBuilder(4, 12);
  b.push('first');
  const lostRec = b.push('this one failed');
  b.writeDesc(lostRec.id, 2n, 1n, 1n); // FAILED_LPOS
  const over = b.push('overwritten later');
  b.push('last');
  // clobber the block id of `over`, as if another record's data now lies there
  b.mem.write(DATA_PA + Number(over.begin % b.size), u64(over.id + 77n));
  const log = await readDmesg(b.finish());
  assert.deepEqual(texts(log), ['first', 'last']);
  assert.equal(log.records[1]!.lost, 'no-data');
  assert.equal(log.records[2]!.lost, 'overwritten');
  assert.equal(log.stats.lost, 2);
  assert.ok(log.warnings.some((w) => w.code === 'PRINTK_RECORDS_LOST' && /2 records lost/.test(w.text)));
  assert.equal(dec.decode(formatDmesg(log)), mdLine(0n, 'first') + mdLine(3_000_000n, 'last'));
  const j = dmesgToJson(log) as { records: Array<Record<string, unknown>> };
  assert.equal(j.records[1]!.lost, 'no-data');

  // the page holding part of the text ring is excluded from the dump
  const b2 = new RingBuilder(6, 13);
  for (let i = 0; i < 60; i++) b2.push(`line ${i} `.padEnd(100, '.'));
  b2.mem.setState(Math.floor(DATA_PA / 4096) + 1, 'excluded');
  const log2 = await readDmesg(b2.finish());
  const unreadable = log2.records.filter((r) => r.lost === 'unreadable');
  assert.ok(unreadable.length > 0);
  assert.ok(log2.warnings.some((w) => w.code === 'PRINTK_DAMAGED' && /not in the dump/.test(w.text)));
  const expected = b2.live.filter((l) => {
    const o = Number(l.begin % b2.size);
    return o + 8 + 100 <= 4096 || o >= 8192;
  });
  assert.deepEqual(texts(log2), expected.map((l) => l.text));
});

test('concurrent writer: reserved head descriptor is skipped, committed one is read', async () => {
  const b = new RingBuilder(4, 12);
  b.push('done 1');
  b.push('still open', { state: 'committed' });
  b.push('being written', { state: 'reserved' });
  const log = await readDmesg(b.finish());
  assert.deepEqual(texts(log), ['done 1', 'still open']);
  assert.equal(log.records[1]!.committed, true);
  assert.equal(log.stats.reserved, 1);
  assert.ok(log.warnings.some((w) => w.code === 'PRINTK_RECORDS_LOST' && /reserved/.test(w.text)));
});

test('empty-line records are kept in JSON but not printed (as makedumpfile)', async () => {
  const b = new RingBuilder(4, 12);
  b.push('a');
  b.push('');
  b.push('b');
  const log = await readDmesg(b.finish());
  assert.equal(log.records.length, 3);
  assert.equal(log.records[1]!.empty, true);
  assert.equal(dec.decode(formatDmesg(log)), mdLine(0n, 'a') + mdLine(2_000_000n, 'b'));
});

test('since clear: only records at or after clear_seq', async () => {
  const b = new RingBuilder(4, 12);
  for (let i = 0; i < 10; i++) b.push(`m${i}`);
  const log = await readDmesg(b.finish({ clearSeq: 7n }), { sinceClear: true });
  assert.deepEqual(texts(log), ['m7', 'm8', 'm9']);
});

test('static ring is read when asked for', async () => {
  const b = new RingBuilder(4, 12);
  b.push('static one');
  const src = b.finish({ ring: SYM_STATIC });
  const log = await readDmesg(src, { ring: 'static' });
  assert.equal(log.ring!.isStatic, true);
  assert.deepEqual(texts(log), ['static one']);
});

test('hostile sizes are refused before allocating', async () => {
  for (const [off, val, field] of [
    [0, 40, 'prb_desc_ring.count_bits'],
    [48, 40, 'prb_data_ring.size_bits'],
    [48, 2, 'prb_data_ring.size_bits'],
  ] as const) {
    const b = new RingBuilder(4, 12);
    b.push('x');
    const src = b.finish();
    const hdr = new Uint8Array(4);
    new DataView(hdr.buffer).setUint32(0, val, true);
    b.mem.write(Number(DYN_RING - KTEXT) + off, hdr);
    await assert.rejects(readDmesg(src), (e: unknown) => e instanceof VmcoreError && e.code === 'OUT_OF_BOUNDS' && e.field === field);
  }
  // a head id far ahead of the tail is clamped to one ring's worth, not looped over
  const b = new RingBuilder(4, 12);
  b.push('x');
  const src = b.finish();
  b.mem.write(Number(DYN_RING - KTEXT) + 24, u64(b.tailId + (1n << 40n)));
  const log = await readDmesg(src);
  assert.ok(log.warnings.some((w) => w.code === 'PRINTK_DAMAGED' && /apart/.test(w.text)));
  // missing VMCOREINFO keys name the key
  const vi = new Vmcoreinfo(VMCOREINFO_6_1.replace(/^SIZE\(prb_desc\)=.*$/m, ''));
  await assert.rejects(readDmesg({ vmcoreinfo: vi, readVirt: src.readVirt }), (e: unknown) => e instanceof VmcoreError && e.field === 'SIZE(prb_desc)');
  await assert.rejects(readDmesg({ vmcoreinfo: new Vmcoreinfo('OSRELEASE=6.1.0\n'), readVirt: src.readVirt }), (e: unknown) => e instanceof VmcoreError && e.code === 'NO_VMCOREINFO');
});

test('garbage in the rings: every record is read or reported, nothing throws, nothing loops', async () => {
  let seed = 12345;
  const rnd = () => ((seed = (seed * 1103515245 + 12345) >>> 0) >>> 8) & 0xff;
  for (let round = 0; round < 6; round++) {
    const b = new RingBuilder(5, 10);
    for (let i = 0; i < 20; i++) b.push(`m${i}`.padEnd(10 + i * 3, '.'));
    const src = b.finish();
    // overwrite descriptors, infos and text with noise, keeping some of the real state words
    for (const [pa, n] of [[DESCS_PA, 32 * 24], [INFOS_PA, 32 * 88], [DATA_PA, 1024]] as const) {
      const noise = new Uint8Array(n);
      for (let i = 0; i < n; i++) noise[i] = rnd();
      const orig = await b.mem.readPhys(pa, n);
      for (let i = 0; i < n; i++) if (rnd() < 64 * (round % 4)) noise[i] = orig[i]!;
      b.mem.write(pa, noise);
    }
    const log = await readDmesg(src);
    assert.ok(log.records.length <= 32);
    for (const r of log.records) assert.ok(r.lost !== undefined || r.empty === true || r.text.length <= 1024);
    formatDmesg(log, { caller: true, level: 'name' });
    dmesgToJson(log);
  }
});

// ------------------------------------------------------------------------------------------------
// 3.5–5.9: struct printk_log (x86_64: packed, 16 bytes; 20 with caller_id)

const PRINTK_LOG_VI = `OSRELEASE=5.4.0
PAGESIZE=4096
SYMBOL(log_buf)=ffffffff82000000
SYMBOL(log_buf_len)=ffffffff82000008
SYMBOL(log_first_idx)=ffffffff82000010
SYMBOL(clear_idx)=ffffffff82000014
SYMBOL(log_next_idx)=ffffffff82000018
SIZE(printk_log)=16
OFFSET(printk_log.ts_nsec)=0
OFFSET(printk_log.len)=8
OFFSET(printk_log.text_len)=10
OFFSET(printk_log.dict_len)=12
`;
const LOG_BUF_PA = 0x3000000;

function printkLogRecord(ts: bigint, text: string, level: number, dict = ''): Uint8Array {
  const t = enc.encode(text);
  const d = enc.encode(dict);
  const len = (16 + t.length + d.length + 3) & ~3;
  const b = new Uint8Array(len);
  const dv = new DataView(b.buffer);
  dv.setBigUint64(0, ts, true);
  dv.setUint16(8, len, true);
  dv.setUint16(10, t.length, true);
  dv.setUint16(12, d.length, true);
  b[14] = 0;
  b[15] = (level << 5) | 2;
  b.set(t, 16);
  b.set(d, 16 + t.length);
  return b;
}

test('printk_log buffer (3.5-5.9): walk from log_first_idx with the end-of-buffer marker', async () => {
  const mem = new SparseMemory(0x8000);
  const bufLen = 256;
  const buf = new Uint8Array(bufLen);
  // layout: [r3 @0][r4 @..] ... free ... [r1 @128][r2][marker len=0]
  const r1 = printkLogRecord(5_000_000n, 'oldest record', 6);
  const r2 = printkLogRecord(6_000_000n, 'usb 1-1: new device', 6, 'SUBSYSTEM=usb\0DEVICE=c189:1');
  const r3 = printkLogRecord(7_000_000n, 'after wrap\nsecond line', 3);
  const r4 = printkLogRecord(8_000_000n, '', 6);
  let o = 128;
  buf.set(r1, o);
  o += r1.length;
  buf.set(r2, o);
  o += r2.length;
  // marker: a zero header (len 0) at o
  buf.set(r3, 0);
  buf.set(r4, r3.length);
  const next = r3.length + r4.length;
  mem.write(LOG_BUF_PA, buf);
  const w = (va: bigint, b: Uint8Array) => mem.write(Number(va - KTEXT), b);
  w(0xffffffff82000000n, u64(DMAP + BigInt(LOG_BUF_PA)));
  const u32 = (v: number) => new Uint8Array(new Uint32Array([v]).buffer);
  w(0xffffffff82000008n, u32(bufLen));
  w(0xffffffff82000010n, u32(128));
  w(0xffffffff82000014n, u32(0));
  w(0xffffffff82000018n, u32(next));
  const src = { vmcoreinfo: new Vmcoreinfo(PRINTK_LOG_VI), readVirt: readerFor(mem) };
  const log = await readDmesg(src);
  assert.equal(log.kind, 'printk_log');
  assert.deepEqual(
    log.records.map((r) => dec.decode(r.text)),
    ['oldest record', 'usb 1-1: new device', 'after wrap\nsecond line', ''],
  );
  assert.equal(log.records[1]!.subsystem, 'usb');
  assert.equal(log.records[1]!.device, 'c189:1');
  assert.equal(log.records[2]!.level, 3);
  // makedumpfile prints empty printk_log records as a bare prefix
  assert.equal(
    dec.decode(formatDmesg(log)),
    mdLine(5_000_000n, 'oldest record') + mdLine(6_000_000n, 'usb 1-1: new device') + mdLine(7_000_000n, 'after wrap\nsecond line') + mdLine(8_000_000n, ''),
  );
  const since = await readDmesg(src, { sinceClear: true });
  assert.deepEqual(since.records.map((r) => dec.decode(r.text)), ['after wrap\nsecond line', '']);

  // a cycle (a record pointing back to itself via len 0 at index 0) stops with a warning
  const bad = new Uint8Array(16);
  mem.write(LOG_BUF_PA, bad);
  const cyc = await readDmesg(src);
  assert.ok(cyc.warnings.some((x) => x.code === 'PRINTK_DAMAGED' && /corrupted/.test(x.text)));
});

test('plain log_buf (before 3.5): bytes in order from log_end', async () => {
  const mem = new SparseMemory(0x8000);
  const vi = `OSRELEASE=3.2.0\nSYMBOL(log_buf)=ffffffff82000000\nSYMBOL(log_buf_len)=ffffffff82000008\nSYMBOL(log_end)=ffffffff82000010\n`;
  const len = 64;
  const text = '<6>[    0.000000] one\n<4>[    0.100000] two\n<3>[    0.200000] three\n';
  // text longer than the buffer: the oldest bytes are overwritten; log_end = text.length
  const buf = new Uint8Array(len);
  const t = enc.encode(text);
  for (let i = 0; i < t.length; i++) buf[i % len] = t[i]!;
  mem.write(LOG_BUF_PA, buf);
  const w = (va: bigint, b: Uint8Array) => mem.write(Number(va - KTEXT), b);
  w(0xffffffff82000000n, u64(DMAP + BigInt(LOG_BUF_PA)));
  w(0xffffffff82000008n, new Uint8Array(new Uint32Array([len]).buffer));
  w(0xffffffff82000010n, new Uint8Array(new Uint32Array([t.length]).buffer));
  const log = await readDmesg({ vmcoreinfo: new Vmcoreinfo(vi), readVirt: readerFor(mem) });
  assert.equal(log.kind, 'plain');
  assert.equal(dec.decode(formatDmesg(log)), text.slice(t.length - len));
  assert.equal(log.records.at(-1)!.level, 3);
  assert.equal(dec.decode(log.records.at(-1)!.text), '[    0.200000] three');
});
