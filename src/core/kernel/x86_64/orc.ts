/**
 * x86_64 ORC unwind tables: the `orc_entry` bit layouts across kernel versions and the lookup of
 * the entry that covers an instruction address, in the kernel image and in modules.
 *
 * Sources: the kernel's arch/x86/include/asm/orc_types.h (and its history) and
 * arch/x86/kernel/unwind_orc.c (orc_find, __orc_find). An `orc_entry` is 6 bytes:
 * s16 sp_offset, s16 bp_offset, then a 16-bit little-endian word of bitfields:
 *
 * | layout | kernels | bits 0-3 | 4-7 | 8.. |
 * |---|---|---|---|---|
 * | `v1` | 4.14 - 6.2 | sp_reg | bp_reg | type:2 (CALL 0, REGS 1, REGS_PARTIAL 2), end:1 |
 * | `v2` | 6.3 | sp_reg | bp_reg | type:2 (as v1), signal:1, end:1 |
 * | `v3` | 6.4+ | sp_reg | bp_reg | type:3 (UNDEFINED 0, END_OF_STACK 1, CALL 2, REGS 3, REGS_PARTIAL 4), signal:1 |
 *
 * (v2: commit ffb1b4a41016 "x86/unwind/orc: Add 'signal' field to ORC metadata"; v3: commit
 * fb799447ae29 "x86,objtool: Split UNWIND_HINT_EMPTY in two".) In v1/v2 an entry whose sp_reg is
 * ORC_REG_UNDEFINED is the end of the stack when `end` is set and an error otherwise.
 *
 * The IP table (`__start_orc_unwind_ip`, a module's `arch.orc_unwind_ip`) holds s32 offsets
 * relative to each slot's own address, sorted by address; entry i of the ORC table covers
 * [ip_i, ip_{i+1}).
 */
import { VmcoreError } from '../../errors.js';

export const ORC_REG = {
  UNDEFINED: 0,
  PREV_SP: 1,
  DX: 2,
  DI: 3,
  BP: 4,
  SP: 5,
  R10: 6,
  R13: 7,
  BP_INDIRECT: 8,
  SP_INDIRECT: 9,
} as const;

export type OrcLayout = 'v1' | 'v2' | 'v3';
export type OrcType = 'undefined' | 'end_of_stack' | 'call' | 'regs' | 'regs_partial';

export interface OrcEntry {
  spOffset: number;
  bpOffset: number;
  spReg: number;
  bpReg: number;
  /** Normalised across layouts: v1/v2 entries with sp_reg UNDEFINED become end_of_stack (end set) or undefined. */
  type: OrcType;
  signal: boolean;
}

export const ORC_ENTRY_SIZE = 6;

/**
 * The layout for a kernel release string ("6.1.0-56-cloud-amd64" -> v1). Used when BTF does
 * not say (see {@link orcLayoutFromBtf}). Throws UNSUPPORTED for an unparseable release.
 */
export function orcLayoutForRelease(release: string): OrcLayout {
  const m = /^(\d+)\.(\d+)/.exec(release);
  if (!m) throw new VmcoreError('UNSUPPORTED', `cannot tell the ORC layout from kernel release "${release}"`, { field: 'OSRELEASE' });
  const v = Number(m[1]) * 1000 + Number(m[2]);
  if (v >= 6004) return 'v3';
  if (v >= 6003) return 'v2';
  return 'v1';
}

/**
 * The layout from the kernel's BTF description of `struct orc_entry`: its members and the bit
 * size of `type`. Returns undefined when the description is not conclusive.
 */
export function orcLayoutFromBtf(members: readonly { name: string; bitSize?: number }[]): OrcLayout | undefined {
  const names = new Set(members.map((m) => m.name));
  const type = members.find((m) => m.name === 'type');
  if (!names.has('sp_reg') || !type) return undefined;
  if (names.has('signal') && type.bitSize === 3) return 'v3';
  if (names.has('signal') && names.has('end')) return 'v2';
  if (!names.has('signal') && names.has('end')) return 'v1';
  return undefined;
}

/** Decode the orc_entry at `off` of `bytes` (little-endian kernels only: x86_64). */
export function decodeOrcEntry(bytes: Uint8Array, off: number, layout: OrcLayout): OrcEntry {
  const dv = new DataView(bytes.buffer, bytes.byteOffset + off, ORC_ENTRY_SIZE);
  const spOffset = dv.getInt16(0, true);
  const bpOffset = dv.getInt16(2, true);
  const w = dv.getUint16(4, true);
  const spReg = w & 0xf;
  const bpReg = (w >> 4) & 0xf;
  let type: OrcType;
  let signal = false;
  if (layout === 'v3') {
    const t = (w >> 8) & 7;
    type = (['undefined', 'end_of_stack', 'call', 'regs', 'regs_partial'] as const)[t] ?? 'undefined';
    signal = ((w >> 11) & 1) === 1;
  } else {
    const t = (w >> 8) & 3;
    const end = ((w >> (layout === 'v2' ? 11 : 10)) & 1) === 1;
    if (layout === 'v2') signal = ((w >> 10) & 1) === 1;
    if (spReg === ORC_REG.UNDEFINED) type = end ? 'end_of_stack' : 'undefined';
    else type = (['call', 'regs', 'regs_partial'] as const)[t] ?? 'undefined';
  }
  return { spOffset, bpOffset, spReg, bpReg, type, signal };
}

/** Encode an entry (for tests and synthetic tables). */
export function encodeOrcEntry(e: OrcEntry, layout: OrcLayout): Uint8Array {
  const out = new Uint8Array(ORC_ENTRY_SIZE);
  const dv = new DataView(out.buffer);
  dv.setInt16(0, e.spOffset, true);
  dv.setInt16(2, e.bpOffset, true);
  let w = (e.spReg & 0xf) | ((e.bpReg & 0xf) << 4);
  if (layout === 'v3') {
    w |= ['undefined', 'end_of_stack', 'call', 'regs', 'regs_partial'].indexOf(e.type) << 8;
    if (e.signal) w |= 1 << 11;
  } else {
    const t = e.type === 'regs' ? 1 : e.type === 'regs_partial' ? 2 : 0;
    w |= t << 8;
    if (e.type === 'end_of_stack') w |= 1 << (layout === 'v2' ? 11 : 10);
    if (layout === 'v2' && e.signal) w |= 1 << 10;
  }
  dv.setUint16(4, w, true);
  return out;
}

/** One ORC table: the kernel's or a module's, read whole from the dump. */
export class OrcTable {
  /**
   * The s32 IP table as read (little-endian): entry i's IP is ipBase + 4i + ips[i], made when a
   * lookup needs it rather than kept in a second array (the kernel's table has ~500,000 entries:
   * 4 MB of fresh memory, a page fault per 4 KiB).
   */
  private readonly ips: DataView;
  private readonly n: number;
  private readonly ipBase: bigint;
  /**
   * @param name   'vmlinux' or the module name (for messages and frames)
   * @param ipBase address of the first IP-table slot
   * @param ipTable the s32 relative IP table (4 bytes per entry)
   * @param orcTable the orc_entry table (6 bytes per entry), same count
   * @param textStart/textEnd the text range the table covers (lookups outside it miss); both 0n
   *   for the table's own IP range (the kernel's table covers its text, entry and init text)
   * Throws BAD_FIELD when the two tables disagree in length or the IPs are not sorted.
   */
  constructor(
    readonly name: string,
    ipBase: bigint,
    ipTable: Uint8Array,
    private readonly orcTable: Uint8Array,
    readonly layout: OrcLayout,
    public textStart: bigint,
    public textEnd: bigint,
  ) {
    const n = Math.floor(ipTable.length / 4);
    if (orcTable.length < n * ORC_ENTRY_SIZE) {
      throw new VmcoreError('BAD_FIELD', `${name}: ORC table has ${Math.floor(orcTable.length / ORC_ENTRY_SIZE)} entries for ${n} IPs`, {
        offset: ipBase,
        field: 'orc_unwind',
      });
    }
    this.ipBase = ipBase;
    const dv = new DataView(ipTable.buffer, ipTable.byteOffset, ipTable.length);
    this.ips = dv;
    this.n = n;
    // sorted, as the binary search of find() needs
    let prev = -Infinity;
    for (let i = 0; i < n; i++) {
      const r = i * 4 + dv.getInt32(i * 4, true);
      if (r < prev) {
        throw new VmcoreError('BAD_FIELD', `${name}: ORC IP table not sorted at entry ${i}`, { offset: ipBase + BigInt(i * 4), field: 'orc_unwind_ip' });
      }
      prev = r;
    }
    if (textStart === 0n && textEnd === 0n && n > 0) {
      this.textStart = ipBase + BigInt(this.rel(0));
      this.textEnd = ipBase + BigInt(this.rel(n - 1)) + 1n;
    }
  }

  /** Entry i's IP relative to ipBase (exact as a number: the table spans far less than 2^53 bytes). */
  private rel(i: number): number {
    return i * 4 + this.ips.getInt32(i * 4, true);
  }

  get count(): number {
    return this.n;
  }

  covers(ip: bigint): boolean {
    return ip >= this.textStart && ip < this.textEnd;
  }

  /** The entry covering `ip` (the last one whose IP is <= ip), or undefined. */
  find(ip: bigint): OrcEntry | undefined {
    if (!this.covers(ip)) return undefined;
    const target = Number(ip - this.ipBase);
    let lo = 0;
    let hi = this.n - 1;
    let found = -1;
    while (lo <= hi) {
      const mid = (lo + hi) >> 1;
      if (this.rel(mid) <= target) {
        found = mid;
        lo = mid + 1;
      } else hi = mid - 1;
    }
    if (found < 0) return undefined;
    return decodeOrcEntry(this.orcTable, found * ORC_ENTRY_SIZE, this.layout);
  }
}

/** The kernel's table plus the modules' tables. */
export class OrcTables {
  constructor(readonly tables: readonly OrcTable[]) {}
  find(ip: bigint): { entry: OrcEntry; table: OrcTable } | undefined {
    for (const t of this.tables) {
      if (!t.covers(ip)) continue;
      const entry = t.find(ip);
      if (entry) return { entry, table: t };
    }
    return undefined;
  }
}

/**
 * The fallback the kernel uses where no ORC entry exists (orc_fp_entry in unwind_orc.c): assume
 * a frame-pointer frame. Frames found with it are unreliable.
 */
export const ORC_FP_ENTRY: OrcEntry = {
  type: 'call',
  spReg: ORC_REG.BP,
  spOffset: 16,
  bpReg: ORC_REG.PREV_SP,
  bpOffset: -16,
  signal: false,
};
