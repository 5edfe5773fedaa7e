/**
 * The kernel log (dmesg) read from a dump without vmlinux: every offset comes from VMCOREINFO.
 *
 * Three generations (reference analysis.md §3):
 *  - 5.10+: the lockless printk ringbuffer `prb` (descriptor ring + text data ring);
 *  - 3.5–5.9: variable-length `struct printk_log` records in `log_buf`;
 *  - < 3.5: a plain character buffer `log_buf` ending at `log_end`.
 *
 * The lockless walk follows the kernel's own reader (`printk_ringbuffer.c` get_data): a data
 * block is "regular" when begin and next − 1 lie in the same wrap, so a block that ends exactly
 * at the end of the text ring is read in place (the usual `begin > next ⇒ begin = 0` shortcut of
 * the C tools misreads it). All id and lpos arithmetic is done modulo 2^(word bits) with bigint.
 *
 * Portable: no Node APIs. Input is a VMCOREINFO and a kernel-virtual reader.
 */
import { warning, type Warning } from '../warnings.js';
import { VmcoreError, isVmcoreError, type ErrorCode } from '../errors.js';
import { isPageLoss } from '../loss.js';
import type { Vmcoreinfo } from './vmcoreinfo.js';
import { KERNEL_LIMITS } from '../limits.js';
import { latin1 } from '../text.js';

export type ReadVirt = (va: bigint, length: number) => Promise<Uint8Array>;

export interface DmesgSource {
  vmcoreinfo: Vmcoreinfo;
  /** Reads kernel virtual memory; throws a VmcoreError (PAGE_NOT_PRESENT / ADDRESS_TRANSLATION) on failure. */
  readVirt: ReadVirt;
  /** Byte order of the dumped machine (default little-endian). */
  littleEndian?: boolean;
  /** Name used in error messages (the dump file). */
  file?: string | undefined;
}

export interface DmesgOptions {
  /** Only records logged after the last `dmesg -c` (clear_seq / clear_idx), like makedumpfile --partial-dmesg. */
  sinceClear?: boolean;
  /** 5.10+: walk the ring `prb` points to ("active", default) or the boot-time `printk_rb_static`. */
  ring?: 'active' | 'static';
  /** Upper bound for the text ring / log buffer in bytes (default 2 GiB, the kernel's LOG_BUF_LEN_MAX). */
  maxLogBytes?: number;
}

export type DmesgKind = 'lockless' | 'printk_log' | 'plain';

export interface DmesgRecord {
  /** Sequence number (lockless: from printk_info; printk_log: counted from the first record read). */
  seq: bigint;
  /** Lockless: the descriptor id. */
  descId?: bigint;
  tsNsec: bigint;
  /** Syslog level 0 (emerg) … 7 (debug). */
  level: number;
  /** Syslog facility (0 = kernel). */
  facility: number;
  /** Record flags: LOG_NEWLINE = 2, LOG_CONT = 8 (printk_log also LOG_PREFIX = 4). */
  flags: number;
  /** Raw caller id: bit 31 set → CPU number in the low bits, else the thread id. */
  callerId?: number;
  /** Message bytes (no trailing newline; may contain embedded newlines). */
  text: Uint8Array;
  subsystem?: string;
  device?: string;
  /** Lockless: the writer committed the record but could still extend it (not finalized). */
  committed?: boolean;
  /** Lockless: a data-less record that is a real empty line (EMPTY_LINE_LPOS). */
  empty?: boolean;
  /**
   * Set when the record's text is not available: `no-data` (FAILED_LPOS, the kernel could not
   * store it), `overwritten` (its data block now belongs to another record), `invalid` (impossible
   * block positions), `unreadable` (the memory holding it is not in the dump).
   */
  lost?: 'no-data' | 'overwritten' | 'invalid' | 'unreadable';
  /** text_len was larger than the data block: the text was cut to the block. */
  truncated?: boolean;
}

export interface LocklessRingInfo {
  address: bigint;
  isStatic: boolean;
  descCount: number;
  dataSize: number;
  headId: bigint;
  tailId: bigint;
  headLpos: bigint;
  tailLpos: bigint;
  /** printk_ringbuffer.fail: reservations that failed (messages lost at logging time). */
  failed?: bigint;
}

export interface DmesgStats {
  /** Descriptors between tail and head that were skipped, by reason. */
  reserved: number;
  reusable: number;
  miss: number;
  lost: number;
}

export interface DmesgLog {
  kind: DmesgKind;
  records: DmesgRecord[];
  /** Whether records carry a caller id (CONFIG_PRINTK_CALLER / 5.10+). */
  hasCaller: boolean;
  /** `plain` kind: the log bytes in order (what makedumpfile writes). */
  raw?: Uint8Array;
  ring?: LocklessRingInfo;
  stats: DmesgStats;
  warnings: Warning[];
}

export const LOG_NEWLINE = 2;
export const LOG_CONT = 8;
export const LEVEL_NAMES = ['emerg', 'alert', 'crit', 'err', 'warn', 'notice', 'info', 'debug'] as const;
export const FACILITY_NAMES = [
  'kern', 'user', 'mail', 'daemon', 'auth', 'syslog', 'lpr', 'news',
  'uucp', 'cron', 'authpriv', 'ftp', 'res0', 'res1', 'res2', 'res3',
  'local0', 'local1', 'local2', 'local3', 'local4', 'local5', 'local6', 'local7',
] as const;

const DEFAULT_MAX_LOG = 2 ** 31;
const MAX_COUNT_BITS = KERNEL_LIMITS.maxDmesgCountBits;
const MAX_ARRAY_BYTES = KERNEL_LIMITS.maxDmesgArrayBytes;

/**
 * Read the kernel log from a dump. The generation is chosen from the VMCOREINFO keys present:
 * the lockless ring `prb` (5.10+, kernel/printk/printk_ringbuffer.h), `printk_log` records
 * (3.5-5.9) or the plain byte buffer (before 3.5).
 * @param src VMCOREINFO and a kernel virtual memory reader (`KernelInfo` gives both).
 * @returns the records (timestamps in ns, text, level, caller), ring statistics and warnings;
 *   records that cannot be read are warnings and the log is partial.
 * @throws VmcoreError NO_VMCOREINFO when VMCOREINFO names no log buffer, and the read error
 *   (ADDRESS_TRANSLATION, PAGE_NOT_PRESENT) of a ring descriptor the log cannot go without.
 */
export async function readDmesg(src: DmesgSource, opts: DmesgOptions = {}): Promise<DmesgLog> {
  const r = new KReader(src);
  const vi = src.vmcoreinfo;
  if (vi.symbol('prb') !== undefined) return readLockless(r, opts);
  if (vi.symbol('log_buf') !== undefined && vi.symbol('log_buf_len') !== undefined) {
    if (vi.symbol('log_first_idx') !== undefined && vi.symbol('log_next_idx') !== undefined) return readPrintkLog(r, opts);
    if (vi.symbol('log_end') !== undefined) return readPlain(r, opts);
  }
  throw new VmcoreError('NO_VMCOREINFO', 'VMCOREINFO names no kernel log buffer (neither SYMBOL(prb) nor SYMBOL(log_buf) with its indices)', {
    file: src.file,
    field: 'SYMBOL(prb)',
  });
}

// ---------------------------------------------------------------------------------------------
// memory access helpers

class KReader {
  readonly vi: Vmcoreinfo;
  readonly le: boolean;
  readonly word: 4 | 8;
  readonly bits: bigint;
  readonly mask: bigint;
  readonly pageSize: number;
  readonly file: string | undefined;
  constructor(readonly src: DmesgSource) {
    this.vi = src.vmcoreinfo;
    this.le = src.littleEndian ?? true;
    this.file = src.file;
    const w = this.vi.size('atomic_long_t') ?? 8;
    if (w !== 4 && w !== 8) throw this.err('BAD_FIELD', `SIZE(atomic_long_t) = ${w}, expected 4 or 8`, 'SIZE(atomic_long_t)');
    this.word = w;
    this.bits = BigInt(w * 8);
    this.mask = (1n << this.bits) - 1n;
    const ps = this.vi.pageSize ?? 4096;
    this.pageSize = ps > 0 && (ps & (ps - 1)) === 0 && ps <= 1 << 20 ? ps : 4096;
  }

  err(code: ErrorCode, message: string, field?: string, offset?: bigint): VmcoreError {
    return new VmcoreError(code, message, { file: this.file, field, offset });
  }

  need(kind: 'size' | 'offset' | 'length', name: string): number {
    const v = kind === 'size' ? this.vi.size(name) : kind === 'offset' ? this.vi.offset(name) : this.vi.length(name);
    if (v === undefined) {
      const key = `${kind.toUpperCase()}(${name})`;
      throw this.err('UNSUPPORTED', `VMCOREINFO lacks ${key}, needed to read the kernel log`, key);
    }
    return v;
  }
  symbol(name: string): bigint {
    const v = this.vi.symbol(name);
    if (v === undefined) throw this.err('UNSUPPORTED', `VMCOREINFO lacks SYMBOL(${name}), needed to read the kernel log`, `SYMBOL(${name})`);
    return v;
  }

  /** Small read that must succeed (structure headers, pointers). */
  async read(va: bigint, length: number, what: string): Promise<Uint8Array> {
    try {
      const b = await this.src.readVirt(va, length);
      if (b.length < length) throw this.err('TRUNCATED', `short read of ${what}: ${b.length} of ${length} bytes`, what, va);
      return b;
    } catch (e) {
      if (isVmcoreError(e) && e.field === what) throw e;
      const code: ErrorCode = isVmcoreError(e) ? e.code : 'IO';
      throw new VmcoreError(code, `cannot read ${what} (${length} bytes at virtual 0x${va.toString(16)}): ${e instanceof Error ? e.message : String(e)}`, {
        file: this.file,
        field: what,
        address: va,
        cause: e,
      });
    }
  }

  /**
   * Large read that tolerates pages missing from the dump: they read as zeros and are listed in
   * `missing` (byte ranges relative to `va`), so records stored there can be reported as lost.
   */
  async readTolerant(va: bigint, length: number, what: string): Promise<{ data: Uint8Array; missing: Array<[number, number]> }> {
    const data = new Uint8Array(length);
    const missing: Array<[number, number]> = [];
    const CHUNK = 1 << 20;
    const tolerable = isPageLoss;
    for (let o = 0; o < length; o += CHUNK) {
      const n = Math.min(CHUNK, length - o);
      try {
        const b = await this.src.readVirt(va + BigInt(o), n);
        if (b.length < n) throw this.err('TRUNCATED', `short read of ${what}`, what, va + BigInt(o));
        data.set(b.subarray(0, n), o);
      } catch (e) {
        if (!tolerable(e)) throw e;
        for (let p = o; p < o + n; ) {
          const a = va + BigInt(p);
          const inPage = Number(a % BigInt(this.pageSize));
          const end = Math.min(o + n, p + this.pageSize - inPage);
          try {
            data.set((await this.src.readVirt(a, end - p)).subarray(0, end - p), p);
          } catch (e2) {
            if (!tolerable(e2)) throw e2;
            const last = missing[missing.length - 1];
            if (last && last[1] === p) last[1] = end;
            else missing.push([p, end]);
          }
          p = end;
        }
      }
    }
    return { data, missing };
  }

  wordAt(b: Uint8Array, off: number): bigint {
    const dv = new DataView(b.buffer, b.byteOffset, b.length);
    return this.word === 8 ? dv.getBigUint64(off, this.le) : BigInt(dv.getUint32(off, this.le));
  }
  u64At(b: Uint8Array, off: number): bigint {
    return new DataView(b.buffer, b.byteOffset, b.length).getBigUint64(off, this.le);
  }
  u32At(b: Uint8Array, off: number): number {
    return new DataView(b.buffer, b.byteOffset, b.length).getUint32(off, this.le);
  }
  u16At(b: Uint8Array, off: number): number {
    return new DataView(b.buffer, b.byteOffset, b.length).getUint16(off, this.le);
  }
  /** flags:5 then level:3 in one byte; GCC allocates bit-fields from the low end on little-endian. */
  flagsLevel(byte: number): { flags: number; level: number } {
    return this.le ? { flags: byte & 0x1f, level: byte >> 5 } : { flags: byte >> 3, level: byte & 7 };
  }
  async pointer(symbolName: string): Promise<bigint> {
    const a = this.symbol(symbolName);
    return this.wordAt(await this.read(a, this.word, `${symbolName} (pointer at SYMBOL(${symbolName}))`), 0);
  }
}

function overlaps(missing: Array<[number, number]>, start: number, end: number): boolean {
  for (const [a, b] of missing) if (a < end && start < b) return true;
  return false;
}
function cString(b: Uint8Array): string | undefined {
  const nul = b.indexOf(0);
  const s = latin1(nul >= 0 ? b.subarray(0, nul) : b);
  return s === '' ? undefined : s;
}

// ---------------------------------------------------------------------------------------------
// 5.10+: lockless ringbuffer

const DESC_RESERVED = 0n;
const DESC_COMMITTED = 1n;
const DESC_FINALIZED = 2n;
const DESC_REUSABLE = 3n;
const FAILED_LPOS = 1n;
const EMPTY_LINE_LPOS = 3n;

/**
 * Where the data block of [begin, next) lies in a text ring of 2^sizeBits bytes, following the
 * kernel's get_data(): regular when begin and next − 1 are in the same wrap (and begin < next − 1),
 * wrapped (stored from offset 0) when begin is exactly one wrap behind next − 1. All arithmetic
 * modulo 2^wordBits. Returns undefined for an impossible description. `length` includes the id word.
 */
export function locateDataBlock(
  begin: bigint,
  next: bigint,
  sizeBits: number,
  wordBytes: 4 | 8 = 8,
): { offset: number; length: number } | undefined {
  const mask = (1n << BigInt(wordBytes * 8)) - 1n;
  const sb = BigInt(sizeBits);
  const size = 1n << sb;
  const wraps = (x: bigint) => (x & mask) >> sb;
  const nextM1 = (next - 1n) & mask;
  let offset: bigint;
  let length: bigint;
  if (wraps(begin) === wraps(nextM1) && (begin & mask) < nextM1) {
    offset = begin & (size - 1n);
    length = (next - begin) & mask;
  } else if (wraps(begin + size) === wraps(nextM1)) {
    offset = 0n;
    length = next & (size - 1n);
  } else {
    return undefined;
  }
  const w = BigInt(wordBytes);
  if (begin % w !== 0n || next % w !== 0n) return undefined;
  if (length < w || offset + length > size) return undefined;
  return { offset: Number(offset), length: Number(length) };
}

async function readLockless(r: KReader, opts: DmesgOptions): Promise<DmesgLog> {
  const warnings: Warning[] = [];
  const stats: DmesgStats = { reserved: 0, reusable: 0, miss: 0, lost: 0 };
  const W = r.word;
  const counter = r.vi.offset('atomic_long_t.counter') ?? 0;
  const staticAddr = r.vi.symbol('printk_rb_static');
  let ringAddr: bigint;
  if (opts.ring === 'static') ringAddr = r.symbol('printk_rb_static');
  else ringAddr = await r.pointer('prb');

  const ringSize = r.need('size', 'printk_ringbuffer');
  if (ringSize > 4096) throw r.err('BAD_FIELD', `SIZE(printk_ringbuffer) = ${ringSize} is not plausible`, 'SIZE(printk_ringbuffer)');
  const ring = await r.read(ringAddr, ringSize, 'printk_ringbuffer');
  const dr = r.need('offset', 'printk_ringbuffer.desc_ring');
  const tr = r.need('offset', 'printk_ringbuffer.text_data_ring');
  const at = (off: number, len: number, key: string) => {
    if (off + len > ring.length) throw r.err('BAD_FIELD', `OFFSET(${key}) lies outside SIZE(printk_ringbuffer)`, `OFFSET(${key})`);
    return off;
  };
  const countBits = r.u32At(ring, at(dr + r.need('offset', 'prb_desc_ring.count_bits'), 4, 'prb_desc_ring.count_bits'));
  const descsVa = r.wordAt(ring, at(dr + r.need('offset', 'prb_desc_ring.descs'), W, 'prb_desc_ring.descs'));
  const infosVa = r.wordAt(ring, at(dr + r.need('offset', 'prb_desc_ring.infos'), W, 'prb_desc_ring.infos'));
  let headId = r.wordAt(ring, at(dr + r.need('offset', 'prb_desc_ring.head_id') + counter, W, 'prb_desc_ring.head_id'));
  let tailId = r.wordAt(ring, at(dr + r.need('offset', 'prb_desc_ring.tail_id') + counter, W, 'prb_desc_ring.tail_id'));
  const sizeBits = r.u32At(ring, at(tr + r.need('offset', 'prb_data_ring.size_bits'), 4, 'prb_data_ring.size_bits'));
  const dataVa = r.wordAt(ring, at(tr + r.need('offset', 'prb_data_ring.data'), W, 'prb_data_ring.data'));
  const headLpos = r.wordAt(ring, at(tr + r.need('offset', 'prb_data_ring.head_lpos') + counter, W, 'prb_data_ring.head_lpos'));
  const tailLpos = r.wordAt(ring, at(tr + r.need('offset', 'prb_data_ring.tail_lpos') + counter, W, 'prb_data_ring.tail_lpos'));
  const failOff = r.vi.offset('printk_ringbuffer.fail');
  const failed = failOff !== undefined && failOff + counter + W <= ring.length ? r.wordAt(ring, failOff + counter) : undefined;

  const maxLog = opts.maxLogBytes ?? DEFAULT_MAX_LOG;
  if (countBits > MAX_COUNT_BITS) {
    throw r.err('OUT_OF_BOUNDS', `descriptor ring count_bits = ${countBits} is not plausible (max ${MAX_COUNT_BITS})`, 'prb_desc_ring.count_bits', ringAddr);
  }
  if (sizeBits < 3 || sizeBits > 31 || 2 ** sizeBits > maxLog) {
    throw r.err('OUT_OF_BOUNDS', `text ring size_bits = ${sizeBits} is not plausible (ring limit ${maxLog} bytes)`, 'prb_data_ring.size_bits', ringAddr);
  }
  const count = 2 ** countBits;
  const dataSize = 2 ** sizeBits;
  const descSize = r.need('size', 'prb_desc');
  const infoSize = r.need('size', 'printk_info');
  if (descSize * count > MAX_ARRAY_BYTES || infoSize * count > MAX_ARRAY_BYTES) {
    throw r.err('OUT_OF_BOUNDS', `descriptor arrays of ${count} entries are too large`, 'prb_desc_ring.count_bits', ringAddr);
  }
  const oStateVar = r.need('offset', 'prb_desc.state_var') + counter;
  const oBlk = r.need('offset', 'prb_desc.text_blk_lpos');
  const oBegin = oBlk + r.need('offset', 'prb_data_blk_lpos.begin');
  const oNext = oBlk + r.need('offset', 'prb_data_blk_lpos.next');
  if (oStateVar + W > descSize || oBegin + W > descSize || oNext + W > descSize) {
    throw r.err('BAD_FIELD', 'prb_desc offsets lie outside SIZE(prb_desc)', 'SIZE(prb_desc)');
  }
  const oSeq = r.need('offset', 'printk_info.seq');
  const oTs = r.need('offset', 'printk_info.ts_nsec');
  const oTextLen = r.need('offset', 'printk_info.text_len');
  const oCaller = r.vi.offset('printk_info.caller_id');
  const oDev = r.vi.offset('printk_info.dev_info');
  const oSub = oDev !== undefined ? r.vi.offset('dev_printk_info.subsystem') : undefined;
  const oDevice = oDev !== undefined ? r.vi.offset('dev_printk_info.device') : undefined;
  const lSub = r.vi.length('printk_info_subsystem') ?? 16;
  const lDevice = r.vi.length('printk_info_device') ?? 48;
  for (const [o, n] of [[oSeq, 8], [oTs, 8], [oTextLen, 4], [oCaller ?? 0, 4]] as const) {
    if (o + n > infoSize) throw r.err('BAD_FIELD', 'printk_info offsets lie outside SIZE(printk_info)', 'SIZE(printk_info)');
  }
  const devOk = oDev !== undefined && oSub !== undefined && oDevice !== undefined && oDev + oSub + lSub <= infoSize && oDev + oDevice + lDevice <= infoSize;

  const descs = await r.readTolerant(descsVa, descSize * count, 'prb_desc_ring.descs');
  const infos = await r.readTolerant(infosVa, infoSize * count, 'prb_desc_ring.infos');
  const text = await r.readTolerant(dataVa, dataSize, 'prb_data_ring.data');
  for (const [name, m] of [['descriptor', descs], ['info', infos], ['text', text]] as const) {
    if (m.missing.length) {
      const bytes = m.missing.reduce((s, [a, b]) => s + b - a, 0);
      warnings.push(warning('PRINTK_DAMAGED', `${bytes} bytes of the printk ${name} ring are not in the dump; records stored there are reported as lost`));
    }
  }

  const idBits = r.bits - 2n;
  const idMask = (1n << idBits) - 1n;
  const cMask = BigInt(count - 1);
  let n = (headId - tailId) & idMask;
  if (n >= BigInt(count)) {
    warnings.push(warning('PRINTK_DAMAGED', `descriptor ring head id 0x${headId.toString(16)} and tail id 0x${tailId.toString(16)} are ${n} apart (ring holds ${count}); reading the last ${count}`));
    n = BigInt(count - 1);
    tailId = (headId - n) & idMask;
  }
  headId &= idMask;

  let clearSeq: bigint | undefined;
  if (opts.sinceClear) clearSeq = await readClearSeq(r);

  const records: DmesgRecord[] = [];
  let seqMismatch = 0;
  for (let i = 0n; i <= n; i++) {
    const id = (tailId + i) & idMask;
    const slot = Number(id & cMask);
    const dOff = slot * descSize;
    if (overlaps(descs.missing, dOff, dOff + descSize)) {
      stats.miss++;
      continue;
    }
    const sv = r.wordAt(descs.data, dOff + oStateVar);
    const state = sv >> idBits;
    if ((sv & idMask) !== id) {
      stats.miss++;
      continue;
    }
    if (state === DESC_RESERVED) {
      stats.reserved++;
      warnings.push(warning('PRINTK_RECORDS_LOST', `record id 0x${id.toString(16)} was being written when the dump was taken (reserved); skipped`));
      continue;
    }
    if (state === DESC_REUSABLE) {
      stats.reusable++;
      continue;
    }
    const iOff = slot * infoSize;
    const infoMissing = overlaps(infos.missing, iOff, iOff + infoSize);
    const inf = infos.data.subarray(iOff, iOff + infoSize);
    const seq = r.u64At(inf, oSeq);
    if (!infoMissing && (seq & cMask) !== BigInt(slot)) seqMismatch++;
    const textLen = r.u16At(inf, oTextLen);
    const fl = r.flagsLevel(inf[oTextLen + 3]!);
    const rec: DmesgRecord = {
      seq,
      descId: id,
      tsNsec: r.u64At(inf, oTs),
      level: fl.level,
      facility: inf[oTextLen + 2]!,
      flags: fl.flags,
      text: new Uint8Array(0),
    };
    if (oCaller !== undefined) rec.callerId = r.u32At(inf, oCaller);
    if (devOk) {
      const sub = cString(inf.subarray(oDev! + oSub!, oDev! + oSub! + lSub));
      const dev = cString(inf.subarray(oDev! + oDevice!, oDev! + oDevice! + lDevice));
      if (sub !== undefined) rec.subsystem = sub;
      if (dev !== undefined) rec.device = dev;
    }
    if (state === DESC_COMMITTED) rec.committed = true;
    if (infoMissing) {
      rec.lost = 'unreadable';
    } else {
      const begin = r.wordAt(descs.data, dOff + oBegin);
      const next = r.wordAt(descs.data, dOff + oNext);
      if (begin & 1n) {
        if (begin === EMPTY_LINE_LPOS && next === EMPTY_LINE_LPOS) rec.empty = true;
        else if (begin === FAILED_LPOS && next === FAILED_LPOS) rec.lost = 'no-data';
        else rec.lost = 'invalid';
      } else {
        const blk = locateDataBlock(begin, next, sizeBits, W);
        if (!blk) rec.lost = 'invalid';
        else if (overlaps(text.missing, blk.offset, blk.offset + blk.length)) rec.lost = 'unreadable';
        else if (r.wordAt(text.data, blk.offset) !== id) rec.lost = 'overwritten';
        else {
          const avail = blk.length - W;
          if (textLen > avail) rec.truncated = true;
          const start = blk.offset + W;
          rec.text = text.data.slice(start, start + Math.min(textLen, avail));
        }
      }
    }
    if (rec.lost) stats.lost++;
    if (clearSeq !== undefined && seq < clearSeq) continue;
    records.push(rec);
  }
  if (seqMismatch) warnings.push(warning('PRINTK_RECORDS_LOST', `${seqMismatch} records have a sequence number that does not match their descriptor slot`));
  if (stats.lost) warnings.push(warning('PRINTK_RECORDS_LOST', `${stats.lost} records lost their text (see "lost" in --json)`));
  if (failed !== undefined && failed > 0n) warnings.push(warning('PRINTK_RECORDS_LOST', `the kernel failed to store ${failed} messages (printk_ringbuffer.fail)`));

  return {
    kind: 'lockless',
    records,
    hasCaller: oCaller !== undefined,
    ring: {
      address: ringAddr,
      isStatic: staticAddr !== undefined && ringAddr === staticAddr,
      descCount: count,
      dataSize,
      headId,
      tailId,
      headLpos,
      tailLpos,
      ...(failed !== undefined ? { failed } : {}),
    },
    stats,
    warnings,
  };
}

async function readClearSeq(r: KReader): Promise<bigint | undefined> {
  const a = r.vi.symbol('clear_seq');
  if (a === undefined) return undefined;
  const latched = r.vi.size('latched_seq');
  if (latched !== undefined) {
    const valOff = r.vi.offset('latched_seq.val') ?? 8;
    const b = await r.read(a, Math.max(latched, valOff + 16), 'clear_seq');
    const sc = r.u32At(b, 0);
    return r.u64At(b, valOff + (sc & 1) * 8);
  }
  return r.u64At(await r.read(a, 8, 'clear_seq'), 0);
}

// ---------------------------------------------------------------------------------------------
// 3.5–5.9: struct printk_log records

async function readPrintkLog(r: KReader, opts: DmesgOptions): Promise<DmesgLog> {
  const warnings: Warning[] = [];
  const stats: DmesgStats = { reserved: 0, reusable: 0, miss: 0, lost: 0 };
  const hdr = r.vi.size('printk_log') ?? r.vi.size('log');
  const key = r.vi.size('printk_log') !== undefined ? 'printk_log' : 'log';
  if (hdr === undefined) throw r.err('UNSUPPORTED', 'VMCOREINFO lacks SIZE(printk_log), needed to read the kernel log', 'SIZE(printk_log)');
  const oLen = r.need('offset', `${key}.len`);
  const oTextLen = r.need('offset', `${key}.text_len`);
  const oTs = r.need('offset', `${key}.ts_nsec`);
  const oDictLen = r.vi.offset(`${key}.dict_len`);
  const oCaller = r.vi.offset(`${key}.caller_id`);
  // facility and flags:5|level:3 follow dict_len (not exported)
  const oFac = (oDictLen ?? oTextLen + 2) + 2;
  if (hdr < 8 || hdr > 256 || oFac + 2 > hdr || oLen + 2 > hdr || oTs + 8 > hdr || (oCaller !== undefined && oCaller + 4 > hdr)) {
    throw r.err('BAD_FIELD', `SIZE(${key}) = ${hdr} does not hold its fields`, `SIZE(${key})`);
  }
  const logBuf = await r.pointer('log_buf');
  const bufLen = r.u32At(await r.read(r.symbol('log_buf_len'), 4, 'log_buf_len'), 0);
  const maxLog = opts.maxLogBytes ?? DEFAULT_MAX_LOG;
  if (bufLen < hdr || bufLen > maxLog) throw r.err('OUT_OF_BOUNDS', `log_buf_len = ${bufLen} is not plausible`, 'log_buf_len');
  const firstSym = opts.sinceClear && r.vi.symbol('clear_idx') !== undefined ? 'clear_idx' : 'log_first_idx';
  const first = r.u32At(await r.read(r.symbol(firstSym), 4, firstSym), 0);
  const nextIdx = r.u32At(await r.read(r.symbol('log_next_idx'), 4, 'log_next_idx'), 0);
  const { data: buf, missing } = await r.readTolerant(logBuf, bufLen, 'log_buf');
  if (missing.length) warnings.push(warning('PRINTK_DAMAGED', 'part of log_buf is not in the dump; records stored there are reported as lost'));
  const records: DmesgRecord[] = [];
  if (first > bufLen - hdr && first !== nextIdx) throw r.err('OUT_OF_BOUNDS', `${firstSym} = ${first} lies outside log_buf`, firstSym);
  let idx = first;
  let seq = 0n;
  const limit = Math.floor(bufLen / 8) + 2; // a record takes at least 8 bytes: bounds the walk
  for (let steps = 0; idx !== nextIdx; steps++) {
    if (steps > limit) {
      warnings.push(warning('PRINTK_DAMAGED', `cycle in log_buf records at index ${idx}; the log is most likely corrupted`));
      break;
    }
    if (idx > bufLen - hdr) {
      warnings.push(warning('PRINTK_DAMAGED', `record index ${idx} lies outside log_buf; the log is most likely corrupted`));
      break;
    }
    let len = r.u16At(buf, idx + oLen);
    if (len === 0) {
      // end-of-buffer marker: the record continues at the buffer start
      if (idx === 0) {
        warnings.push(warning('PRINTK_DAMAGED', 'zero-length record at index 0; the log is most likely corrupted'));
        break;
      }
      idx = 0;
      if (idx === nextIdx) break;
      len = r.u16At(buf, oLen);
      if (len === 0) {
        warnings.push(warning('PRINTK_DAMAGED', 'zero-length record at index 0; the log is most likely corrupted'));
        break;
      }
    }
    const textLen = r.u16At(buf, idx + oTextLen);
    const dictLen = oDictLen !== undefined ? r.u16At(buf, idx + oDictLen) : 0;
    const fl = r.flagsLevel(buf[idx + oFac + 1]!);
    const rec: DmesgRecord = {
      seq: seq++,
      tsNsec: r.u64At(buf, idx + oTs),
      level: fl.level,
      facility: buf[idx + oFac]!,
      flags: fl.flags,
      text: new Uint8Array(0),
    };
    if (oCaller !== undefined) rec.callerId = r.u32At(buf, idx + oCaller);
    const tStart = idx + hdr;
    const tEnd = Math.min(tStart + textLen, bufLen);
    if (tStart + textLen > bufLen || len < hdr) rec.truncated = true;
    if (overlaps(missing, idx, tEnd)) {
      rec.lost = 'unreadable';
      stats.lost++;
    } else {
      rec.text = buf.slice(tStart, tEnd);
      if (dictLen && tEnd + dictLen <= bufLen) {
        for (const kv of latin1(buf.subarray(tEnd, tEnd + dictLen)).split('\0')) {
          if (kv.startsWith('SUBSYSTEM=')) rec.subsystem = kv.slice(10);
          else if (kv.startsWith('DEVICE=')) rec.device = kv.slice(7);
        }
      }
    }
    records.push(rec);
    idx += len;
    if (idx > bufLen) {
      warnings.push(warning('PRINTK_DAMAGED', `record index ${idx} lies outside log_buf; the log is most likely corrupted`));
      break;
    }
  }
  return { kind: 'printk_log', records, hasCaller: oCaller !== undefined, stats, warnings };
}

// ---------------------------------------------------------------------------------------------
// < 3.5: plain character buffer

function kernelVersion(osrelease: string | undefined): number | undefined {
  const m = /^(\d+)\.(\d+)(?:\.(\d+))?/.exec(osrelease ?? '');
  if (!m) return undefined;
  return Number(m[1]) * 65536 + Number(m[2]) * 256 + Math.min(255, Number(m[3] ?? 0));
}

async function readPlain(r: KReader, opts: DmesgOptions): Promise<DmesgLog> {
  const warnings: Warning[] = [];
  const logBuf = await r.pointer('log_buf');
  const bufLen = r.u32At(await r.read(r.symbol('log_buf_len'), 4, 'log_buf_len'), 0);
  const maxLog = opts.maxLogBytes ?? DEFAULT_MAX_LOG;
  if (bufLen === 0 || bufLen > maxLog || (bufLen & (bufLen - 1)) !== 0) {
    throw r.err('OUT_OF_BOUNDS', `log_buf_len = ${bufLen} is not plausible (a power of two up to ${maxLog})`, 'log_buf_len');
  }
  const v = kernelVersion(r.vi.osrelease);
  // log_end: unsigned long up to 2.6.24, unsigned int from 2.6.25
  const wide = v !== undefined && v < 0x020619;
  const endBuf = await r.read(r.symbol('log_end'), wide ? r.word : 4, 'log_end');
  const logEnd = wide ? r.wordAt(endBuf, 0) : BigInt(r.u32At(endBuf, 0));
  let raw: Uint8Array;
  if (logEnd < BigInt(bufLen)) {
    raw = (await r.readTolerant(logBuf, Number(logEnd), 'log_buf')).data;
  } else {
    const index = Number(logEnd & BigInt(bufLen - 1));
    const all = (await r.readTolerant(logBuf, bufLen, 'log_buf')).data;
    raw = new Uint8Array(bufLen);
    raw.set(all.subarray(index), 0);
    raw.set(all.subarray(0, index), bufLen - index);
  }
  const records: DmesgRecord[] = [];
  let seq = 0n;
  let start = 0;
  for (let i = 0; i <= raw.length; i++) {
    if (i < raw.length && raw[i] !== 0x0a) continue;
    if (i > start || i < raw.length) {
      let line = raw.subarray(start, i);
      let level = 4; // default_message_loglevel
      const m = /^<(\d)>/.exec(latin1(line.subarray(0, 3)));
      if (m) {
        level = Number(m[1]);
        line = line.subarray(3);
      }
      records.push({ seq: seq++, tsNsec: 0n, level, facility: 0, flags: LOG_NEWLINE, text: line.slice() });
    }
    start = i + 1;
  }
  return { kind: 'plain', records, raw, hasCaller: false, stats: { reserved: 0, reusable: 0, miss: 0, lost: 0 }, warnings };
}

// ---------------------------------------------------------------------------------------------
// output

export interface DmesgFormatOptions {
  /** Caller column `[%8s] ` of T<tid>/C<cpu>, as makedumpfile 1.7.3+ prints it. */
  caller?: boolean;
  /** Prefix each record with its priority: `prio` → `<6>` (as `dmesg -r`), `name` → `kern  :info  : ` (as `dmesg -x`). */
  level?: 'prio' | 'name';
  /** Pass bytes ≥ 0x80 through (UTF-8 text) instead of makedumpfile's `\xffffffNN` escape. */
  utf8?: boolean;
}

class ByteWriter {
  buf = new Uint8Array(1 << 16);
  len = 0;
  private grow(n: number) {
    if (this.len + n <= this.buf.length) return;
    let cap = this.buf.length * 2;
    while (cap < this.len + n) cap *= 2;
    const b = new Uint8Array(cap);
    b.set(this.buf.subarray(0, this.len));
    this.buf = b;
  }
  byte(c: number) {
    this.grow(1);
    this.buf[this.len++] = c;
  }
  ascii(s: string) {
    this.grow(s.length);
    for (let i = 0; i < s.length; i++) this.buf[this.len++] = s.charCodeAt(i) & 0xff;
  }
  bytes(b: Uint8Array) {
    this.grow(b.length);
    this.buf.set(b, this.len);
    this.len += b.length;
  }
  result(): Uint8Array {
    return this.buf.slice(0, this.len);
  }
}

/** `[%5lu.%06lu]` of a nanosecond timestamp, without the brackets. */
export function formatTimestamp(tsNsec: bigint): string {
  const sec = tsNsec / 1_000_000_000n;
  const usec = (tsNsec % 1_000_000_000n) / 1000n;
  return `${sec.toString().padStart(5, ' ')}.${usec.toString().padStart(6, '0')}`;
}

export function formatCaller(callerId: number): string {
  return callerId & 0x80000000 ? `C${(callerId & 0x7fffffff) >>> 0}` : `T${callerId >>> 0}`;
}

export function recordCaller(rec: DmesgRecord): { tid: number } | { cpu: number } | undefined {
  if (rec.callerId === undefined) return undefined;
  return rec.callerId & 0x80000000 ? { cpu: (rec.callerId & 0x7fffffff) >>> 0 } : { tid: rec.callerId >>> 0 };
}

/** Whether a record is printed in the text output (makedumpfile skips records without a data block). */
export function isPrintedRecord(log: DmesgLog, rec: DmesgRecord): boolean {
  if (rec.lost) return false;
  if (log.kind === 'lockless' && rec.empty) return false;
  return true;
}

/**
 * Text output. With default options it is byte-identical to `makedumpfile --dump-dmesg`
 * (1.7.2): `[%5lu.%06lu] ` then the text; each embedded newline is followed by spaces as wide as
 * the prefix; bytes that are neither printable nor white space in the C locale are escaped as
 * `\x%02x` of a signed char (so bytes ≥ 0x80 become `\xffffffNN`); records without a data block
 * are skipped. For the pre-3.5 plain buffer the bytes are written unchanged.
 */
export function formatDmesg(log: DmesgLog, opts: DmesgFormatOptions = {}): Uint8Array {
  if (log.kind === 'plain' && log.raw && !opts.level && !opts.caller) return log.raw.slice();
  const w = new ByteWriter();
  for (const rec of log.records) {
    if (!isPrintedRecord(log, rec)) continue;
    let prefix = '';
    if (opts.level === 'prio') prefix += `<${rec.facility * 8 + rec.level}>`;
    else if (opts.level === 'name') {
      prefix += `${(FACILITY_NAMES[rec.facility] ?? String(rec.facility)).padEnd(6)}:${(LEVEL_NAMES[rec.level] ?? String(rec.level)).padEnd(6)}: `;
    }
    if (log.kind !== 'plain') prefix += `[${formatTimestamp(rec.tsNsec)}] `;
    if (opts.caller && rec.callerId !== undefined) prefix += `[${formatCaller(rec.callerId).padStart(8, ' ')}] `;
    w.ascii(prefix);
    const indent = ' '.repeat(prefix.length);
    const t = rec.text;
    for (let i = 0; i < t.length; i++) {
      const c = t[i]!;
      if (c === 0x0a) {
        w.byte(0x0a);
        w.ascii(indent);
      } else if ((c >= 0x20 && c <= 0x7e) || (c >= 0x09 && c <= 0x0d)) w.byte(c);
      else if (c >= 0x80 && opts.utf8) w.byte(c);
      else if (c >= 0x80) w.ascii(`\\xffffff${c.toString(16).padStart(2, '0')}`);
      else w.ascii(`\\x${c.toString(16).padStart(2, '0')}`);
    }
    w.byte(0x0a);
  }
  return w.result();
}

const utf8 = new TextDecoder('utf-8');

/** One record as a JSON-safe object (bigints as decimal strings only where beyond 2^53). */
export function recordToJson(rec: DmesgRecord): Record<string, unknown> {
  const o: Record<string, unknown> = {
    seq: bigJson(rec.seq),
    timestamp_ns: bigJson(rec.tsNsec),
    timestamp: formatTimestamp(rec.tsNsec).trim(),
    level: rec.level,
    level_name: LEVEL_NAMES[rec.level],
    facility: rec.facility,
    facility_name: FACILITY_NAMES[rec.facility],
  };
  const caller = recordCaller(rec);
  if (caller) o.caller = caller;
  o.text = utf8.decode(rec.text);
  if (rec.subsystem !== undefined) o.subsystem = rec.subsystem;
  if (rec.device !== undefined) o.device = rec.device;
  if (rec.flags & LOG_CONT) o.continuation = true;
  if (rec.committed) o.committed = true;
  if (rec.empty) o.empty = true;
  if (rec.lost) o.lost = rec.lost;
  if (rec.truncated) o.truncated = true;
  if (rec.descId !== undefined) o.desc_id = bigJson(rec.descId);
  return o;
}

function bigJson(v: bigint): number | string {
  return v <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(v) : v.toString();
}

/** The whole log as a JSON-safe object: kind, ring summary, statistics, warnings, records. */
export function dmesgToJson(log: DmesgLog): Record<string, unknown> {
  const o: Record<string, unknown> = { kind: log.kind };
  if (log.ring) {
    const g = log.ring;
    o.ring = {
      address: '0x' + g.address.toString(16),
      static: g.isStatic,
      descriptors: g.descCount,
      text_bytes: g.dataSize,
      head_id: '0x' + g.headId.toString(16),
      tail_id: '0x' + g.tailId.toString(16),
      head_lpos: '0x' + g.headLpos.toString(16),
      tail_lpos: '0x' + g.tailLpos.toString(16),
      ...(g.failed !== undefined ? { failed: bigJson(g.failed) } : {}),
    };
  }
  o.stats = { records: log.records.length, ...log.stats };
  o.warnings = log.warnings;
  o.records = log.records.map(recordToJson);
  return o;
}
