/**
 * BTF (BPF Type Format) parser: the kernel's own description of its types, which every
 * mainstream distribution kernel carries in memory (CONFIG_DEBUG_INFO_BTF), between
 * `__start_BTF` and `__stop_BTF`, and per module (CONFIG_DEBUG_INFO_BTF_MODULES, split BTF on
 * top of vmlinux's).
 *
 * Facts from the kernel's Documentation/bpf/btf.rst, include/uapi/linux/btf.h and, for split
 * BTF numbering, tools/lib/bpf/btf.c (`start_id` = base type count, `start_str_off` = base
 * string length).
 *
 * The blob is indexed once (one pass over the type section, 4 bytes per type); types are decoded
 * on demand and cached. Every offset, length, type id and kind is checked: a corrupt or hostile
 * blob gives a VmcoreError naming the type id and field, never a hang or an unbounded allocation.
 */
import { warning, type Warning } from '../../warnings.js';
import { VmcoreError, type ErrorCode } from '../../errors.js';
import { BTF_INT_BOOL, BTF_INT_CHAR, BTF_INT_SIGNED, BTF_MAGIC, BTF_VERSION, BtfHeader, BtfKind, KIND_NAMES, extraSize } from './format.js';
import { KERNEL_LIMITS } from '../../limits.js';
import { latin1 } from '../../text.js';

export { BtfKind } from './format.js';

export interface BtfMember {
  /** '' for an anonymous member (an unnamed struct or union). */
  name: string;
  type: number;
  /** Offset from the start of the enclosing struct, in bits. */
  bitOffset: number;
  /** Width of a bitfield in bits; 0 for an ordinary member. */
  bitSize: number;
}

export interface BtfEnumerator {
  name: string;
  value: bigint;
}

export interface BtfParam {
  name: string;
  type: number;
}

export interface BtfVarSecinfo {
  type: number;
  offset: number;
  size: number;
}

/** One decoded BTF type. Fields beyond the common ones are set according to `kind`. */
export interface BtfType {
  id: number;
  kind: number;
  kindName: string;
  name: string;
  kindFlag: boolean;
  vlen: number;
  /** STRUCT, UNION, ENUM, ENUM64, INT, FLOAT, DATASEC: size in bytes. */
  size?: number;
  /** PTR, TYPEDEF, VOLATILE, CONST, RESTRICT, FUNC, FUNC_PROTO (return), VAR, DECL_TAG, TYPE_TAG: referenced type. */
  type?: number;
  /** INT: BTF_INT_ENCODING, BTF_INT_OFFSET, BTF_INT_BITS. */
  int?: { signed: boolean; char: boolean; bool: boolean; offset: number; bits: number };
  array?: { type: number; indexType: number; nelems: number };
  members?: BtfMember[];
  enumerators?: BtfEnumerator[];
  /** ENUM/ENUM64: kind_flag set means signed values. */
  signed?: boolean;
  params?: BtfParam[];
  /** VAR: 0 static, 1 global, 2 extern. FUNC: linkage from vlen. */
  linkage?: number;
  secinfo?: BtfVarSecinfo[];
  /** DECL_TAG: -1 for the type itself, else the member or parameter index. */
  componentIdx?: number;
}

export interface BtfOptions {
  /** For split BTF (a module's): the vmlinux BTF it extends. */
  base?: Btf;
  /** Label used in error messages, e.g. `vmlinux BTF` or `BTF of module xfs`. */
  label?: string;
  /** Dump file name, for errors. */
  file?: string;
  /** Pointer size in bytes (BTF does not record it); 8 on 64-bit kernels. */
  pointerSize?: number;
  /**
   * Byte ranges [start, end) of `blob` that could not be read (pages of the dump; their bytes are
   * zero), each with why: types and names there are lost, the rest is recovered (see {@link Btf.lostTypes}).
   */
  lost?: readonly { start: number; end: number; reason: string }[];
}

/** Types of a blob that a damaged page cost: ids [first, first + count). */
export interface LostBtfTypes {
  first: number;
  count: number;
  /** The unreadable page, and how the types after it were placed. */
  reason: string;
}

export interface MemberPath {
  /** Type of the member at the end of the path. */
  type: number;
  /** Offset from the start of the outer type, in bits. */
  bitOffset: number;
  /** Bitfield width, 0 for an ordinary member. */
  bitSize: number;
}

const MAX_CHAIN = KERNEL_LIMITS.maxBtfChain;
/**
 * How far after an unreadable range record starts are tried (bytes): the record running out of
 * the range ends within it unless it is a struct or enum of more than 340 entries.
 */
const RESYNC_WINDOW = 4096;
/** Bound on the decoded vlen total: vlen is 16 bits, so one type has at most 65535 entries. */

const utf8 = new TextDecoder('utf-8');
const utf8Encoder = new TextEncoder();
const FNV_BASIS = 0x811c9dc5;
const FNV_PRIME = 0x01000193;
/** FNV-1a, 32 bits. */
function fnv1a(b: Uint8Array): number {
  let h = FNV_BASIS;
  for (const c of b) h = Math.imul(h ^ c, FNV_PRIME);
  return h >>> 0;
}
const NON_ASCII = /[\x80-\xff]/;

/**
 * A parsed BTF blob. Type ids run from 0 (void) to `typeCount - 1`; in split BTF the ids below
 * `startId` belong to the base.
 */
export class Btf {
  readonly littleEndian: boolean;
  readonly base: Btf | undefined;
  /** First type id defined by this blob (1 for vmlinux BTF, base.typeCount for split BTF). */
  readonly startId: number;
  /** Number of type ids, void and the base's included. */
  readonly typeCount: number;
  /** First string offset defined by this blob (0, or the base's string length for split BTF). */
  readonly startStrOff: number;
  readonly strLen: number;
  readonly pointerSize: number;
  readonly label: string;
  readonly file: string | undefined;
  readonly header: ReturnType<typeof BtfHeader.read>;

  private readonly blob: Uint8Array;
  private readonly dv: DataView;
  private readonly typeStart: number;
  private readonly strStart: number;
  /** Blob offset of each own type record (index = id - startId). */
  private readonly offsets: Uint32Array;
  private readonly cache = new Map<number, BtfType>();
  /**
   * Own type ids by a hash of their name's bytes (nameHash), built on the first lookup by name:
   * per type (index from startId) its hash and whether it has a name; chains from `heads[hash &
   * mask]` through `next`, -1 ending them.
   */
  private nameIndex: { hashes: Uint32Array; named: Uint8Array; heads: Int32Array; next: Int32Array; mask: number } | undefined;
  /** Types lost to unreadable pages of the type section (their offsets entry is 0). */
  readonly lostTypes: LostBtfTypes[] = [];
  /** What the unreadable pages cost, one line each. */
  readonly warnings: Warning[] = [];
  /** Unreadable ranges of the string section, relative to its start: the names there read as `?lost-name@<offset>`. */
  readonly strLost: { start: number; end: number; reason: string }[] = [];

  /**
   * Parse a BTF blob. Throws VmcoreError BAD_MAGIC (not BTF), UNSUPPORTED (version), TRUNCATED
   * or OUT_OF_BOUNDS (sections outside the blob), BAD_FIELD (unknown kind, a record that overruns
   * the type section, a string section not NUL-terminated).
   */
  constructor(blob: Uint8Array, opts: BtfOptions = {}) {
    this.label = opts.label ?? (opts.base ? 'split BTF' : 'BTF');
    this.file = opts.file;
    this.base = opts.base;
    this.pointerSize = opts.pointerSize ?? opts.base?.pointerSize ?? 8;
    this.blob = blob;
    this.dv = new DataView(blob.buffer, blob.byteOffset, blob.byteLength);
    if (blob.length < BtfHeader.size) this.fail('TRUNCATED', `${blob.length} bytes, a BTF header needs ${BtfHeader.size}`, 0, 'btf_header');
    const le = this.dv.getUint16(0, true) === BTF_MAGIC;
    const be = this.dv.getUint16(0, false) === BTF_MAGIC;
    if (!le && !be) this.fail('BAD_MAGIC', `magic 0x${this.dv.getUint16(0, true).toString(16)} is not BTF (0xeb9f)`, 0, 'btf_header.magic');
    this.littleEndian = le;
    if (opts.base && opts.base.littleEndian !== le) this.fail('BAD_FIELD', 'byte order differs from the base BTF', 0, 'btf_header.magic');
    const h = BtfHeader.read(blob, 0, le);
    this.header = h;
    if (h.version !== BTF_VERSION) this.fail('UNSUPPORTED', `BTF version ${h.version} (only ${BTF_VERSION} is defined)`, 2, 'btf_header.version');
    if (h.hdr_len < BtfHeader.size || h.hdr_len > blob.length) {
      this.fail('OUT_OF_BOUNDS', `hdr_len ${h.hdr_len} is outside ${BtfHeader.size}..${blob.length}`, 4, 'btf_header.hdr_len');
    }
    // a longer header (a future version) must be zero beyond what we know, as the kernel requires
    for (let i = BtfHeader.size; i < h.hdr_len; i++) {
      if (blob[i] !== 0) this.fail('UNSUPPORTED', `header byte ${i} beyond the known header is not zero`, i, 'btf_header');
    }
    const data = blob.length - h.hdr_len;
    if (h.type_off + h.type_len > data) this.fail('TRUNCATED', `type section ${h.type_off}+${h.type_len} ends beyond the blob (${data} bytes after the header)`, 8, 'btf_header.type_len');
    if (h.str_off + h.str_len > data) this.fail('TRUNCATED', `string section ${h.str_off}+${h.str_len} ends beyond the blob (${data} bytes after the header)`, 16, 'btf_header.str_len');
    if (h.type_off % 4 !== 0) this.fail('BAD_FIELD', `type section offset ${h.type_off} is not 4-byte aligned`, 8, 'btf_header.type_off');
    if (h.type_off < h.str_off + h.str_len && h.str_off < h.type_off + h.type_len) {
      this.fail('BAD_FIELD', 'type and string sections overlap', 8, 'btf_header.type_off');
    }
    this.typeStart = h.hdr_len + h.type_off;
    this.strStart = h.hdr_len + h.str_off;
    this.strLen = h.str_len;
    this.startStrOff = opts.base ? opts.base.startStrOff + opts.base.strLen : 0;
    if (h.str_len > 0 && blob[this.strStart + h.str_len - 1] !== 0) this.fail('BAD_FIELD', 'string section does not end with NUL', this.strStart + h.str_len - 1, 'btf strings');
    if (!opts.base && h.str_len > 0 && blob[this.strStart] !== 0) this.fail('BAD_FIELD', 'string section does not start with NUL', this.strStart, 'btf strings');
    this.startId = opts.base ? opts.base.typeCount : 1;

    const lost = opts.lost ?? [];
    if (lost.some((l) => l.start < h.hdr_len)) this.fail('PAGE_DAMAGED', `the header cannot be read (${lost[0]!.reason})`, 0, 'btf_header');
    for (const l of lost) {
      const a = Math.max(l.start, this.strStart) - this.strStart;
      const b = Math.min(l.end, this.strStart + h.str_len) - this.strStart;
      if (a < b) {
        this.strLost.push({ start: a, end: b, reason: l.reason });
        this.warnings.push(warning('BTF_DAMAGED', `${this.label}: string section bytes ${a}..${b} cannot be read (${l.reason}); the names there are lost`));
      }
    }

    // one pass: record offsets (a type takes at least 12 bytes, which bounds the count)
    const end = this.typeStart + h.type_len;
    const typeLost = lost.filter((l) => l.end > this.typeStart && l.start < end).sort((x, y) => x.start - y.start);
    const offs = new Uint32Array(Math.floor(h.type_len / 12));
    let n = 0;
    for (let p = this.typeStart; p < end; ) {
      if (p + 12 > end) this.fail('TRUNCATED', `type ${this.startId + n} header overruns the type section`, p, `btf_type[${this.startId + n}]`);
      const info = this.dv.getUint32(p + 4, le);
      const kind = (info >>> 24) & 0x1f;
      const vlen = info & 0xffff;
      const extra = extraSize(kind, vlen);
      const hit = typeLost.find((l) => l.start < p + 12 + Math.max(extra, 0) && p < l.end);
      if (hit) {
        // a record in an unreadable page: the types from here to where the chain can be picked
        // up again after the page are lost
        const r = this.resync(p, hit, end, typeLost, offs, n);
        n = r.n;
        p = r.p;
        continue;
      }
      if (extra < 0) this.fail('BAD_FIELD', `type ${this.startId + n}: unknown kind ${kind}`, p + 4, `btf_type[${this.startId + n}].info`);
      if (p + 12 + extra > end) this.fail('TRUNCATED', `type ${this.startId + n} (${KIND_NAMES[kind]}, vlen ${vlen}) overruns the type section`, p, `btf_type[${this.startId + n}]`);
      offs[n++] = p;
      p += 12 + extra;
    }
    this.offsets = offs.subarray(0, n);
    this.typeCount = this.startId + n;
  }

  /**
   * Whether the 12-byte btf_type at `p` (and its data) could be a record: a known kind, the
   * unused bits of `info` zero, vlen 0 where the kind has none (FUNC: its linkage, 0..2), a
   * name inside the string sections, and the record inside the type section. Returns its size, or 0.
   */
  private plausibleRecord(p: number, end: number): number {
    if (p + 12 > end) return 0;
    const le = this.littleEndian;
    const info = this.dv.getUint32(p + 4, le);
    if ((info & 0x60ff0000) !== 0) return 0;
    const kind = (info >>> 24) & 0x1f;
    const vlen = info & 0xffff;
    const extra = extraSize(kind, vlen);
    if (extra < 0 || kind === BtfKind.UNKN || p + 12 + extra > end) return 0;
    const withVlen = [BtfKind.STRUCT, BtfKind.UNION, BtfKind.ENUM, BtfKind.ENUM64, BtfKind.FUNC_PROTO, BtfKind.DATASEC];
    if (kind === BtfKind.FUNC ? vlen > 2 : !withVlen.includes(kind as never) && vlen !== 0) return 0;
    const nameOff = this.dv.getUint32(p, le);
    if (nameOff >= this.startStrOff + this.strLen) return 0;
    return 12 + extra;
  }

  /**
   * Pick up the type chain after an unreadable range. Records are self-describing (kind, vlen)
   * and the chain must end exactly at the type section's end, so every 4-byte position after
   * the range, within RESYNC_WINDOW, is tried as a record start and kept when its chain reaches the end
   * (or the next unreadable range) through plausible records; the chains of the candidates merge,
   * and the records from their meeting point on are certain; the ones before it are counted lost. How many records were lost is not
   * recorded anywhere: it is the one count that makes the references of the recovered records
   * consistent (a FUNC's type is a FUNC_PROTO, a DATASEC holds VARs and FUNCs, a member, pointer,
   * typedef or variable never refers to a FUNC, VAR, DATASEC or DECL_TAG), and it must be unique;
   * otherwise every type after the range is counted lost.
   */
  private resync(
    from: number,
    hit: { start: number; end: number; reason: string },
    end: number,
    typeLost: readonly { start: number; end: number; reason: string }[],
    offs: Uint32Array,
    n: number,
  ): { n: number; p: number } {
    const firstLost = this.startId + n;
    const align = (v: number) => v + ((4 - ((v - this.typeStart) % 4)) % 4);
    const q0 = align(Math.max(hit.end, from));
    const stopAt = typeLost.find((l) => l.start >= hit.end)?.start ?? end;
    // chain validity, memoised: position -> next position on the chain, or -1 (invalid)
    const ok = new Map<number, boolean>();
    const valid = (q: number): boolean => {
      const path: number[] = [];
      let p = q;
      let res: boolean;
      for (;;) {
        const known = ok.get(p);
        if (known !== undefined) {
          res = known;
          break;
        }
        if (p === end || p >= stopAt) {
          res = true;
          break;
        }
        const size = this.plausibleRecord(p, end);
        if (size === 0) {
          res = false;
          break;
        }
        path.push(p);
        p += size;
      }
      for (const x of path) ok.set(x, res);
      return res;
    };
    const candidates: number[] = [];
    for (let q = q0; q < Math.min(stopAt, q0 + RESYNC_WINDOW); q += 4) if (valid(q)) candidates.push(q);
    const loseRest = (why: string) => {
      this.lostTypes.push({ first: firstLost, count: 0, reason: why });
      this.warnings.push(warning('BTF_DAMAGED', `${this.label}: the types from id ${firstLost} on are lost: ${why}`));
      return { n, p: end };
    };
    if (candidates.length === 0) return loseRest(`type section bytes from ${hit.start} cannot be read (${hit.reason}) and no record chain after them reaches the section's end`);
    // the meeting point: the first position of the first candidate's chain that every chain reaches
    const chainOf = (q: number, limit: number) => {
      const out: number[] = [];
      for (let p = q; p < limit && p < stopAt && p !== end; p += this.plausibleRecord(p, end)) out.push(p);
      return out;
    };
    const lastChain = chainOf(candidates[0]!, stopAt);
    const onLast = new Map(lastChain.map((p, i) => [p, i]));
    let meet = 0;
    for (const c of candidates) {
      let p = c;
      while (p < stopAt && p !== end && !onLast.has(p)) p += this.plausibleRecord(p, end);
      if (p >= stopAt || p === end) {
        if (lastChain.length > 0) return loseRest(`type section bytes from ${hit.start} cannot be read (${hit.reason}) and two record chains after them never meet`);
      } else meet = Math.max(meet, onLast.get(p)!);
    }
    const recovered = lastChain.slice(meet);
    const gapBytes = (recovered[0] ?? stopAt) - from;
    // the lost count: the one that makes the recovered records' references consistent
    const u32 = (o: number) => this.dv.getUint32(o, this.littleEndian);
    const kindAt = (o: number) => (u32(o + 4) >>> 24) & 0x1f;
    const refs: { to: number; from: number; want: 'proto' | 'var' | 'data' }[] = [];
    for (let j = 0; j < recovered.length; j++) {
      const o = recovered[j]!;
      const info = u32(o + 4);
      const kind = (info >>> 24) & 0x1f;
      const vlen = info & 0xffff;
      const add = (to: number, want: 'proto' | 'var' | 'data') => {
        if (to >= firstLost) refs.push({ to, from: j, want });
      };
      switch (kind) {
        case BtfKind.FUNC: add(u32(o + 8), 'proto'); break;
        case BtfKind.PTR: case BtfKind.TYPEDEF: case BtfKind.VOLATILE: case BtfKind.CONST: case BtfKind.RESTRICT: case BtfKind.TYPE_TAG: case BtfKind.VAR: case BtfKind.FUNC_PROTO:
          add(u32(o + 8), 'data');
          break;
        case BtfKind.ARRAY: add(u32(o + 12), 'data'); break;
        case BtfKind.STRUCT: case BtfKind.UNION: for (let i = 0; i < vlen; i++) add(u32(o + 12 + 12 * i + 4), 'data'); break;
        case BtfKind.DATASEC: for (let i = 0; i < vlen; i++) add(u32(o + 12 + 12 * i), 'var'); break;
      }
    }
    const fits = (N: number) => {
      const base = firstLost + N;
      for (const r of refs) {
        if (r.to < base) continue; // a lost type: anything goes
        const j = r.to - base;
        if (j >= recovered.length) {
          if (stopAt === end) return false; // beyond the last type
          continue;
        }
        const k = kindAt(recovered[j]!);
        if (r.want === 'proto' ? k !== BtfKind.FUNC_PROTO : r.want === 'var' ? k !== BtfKind.VAR && k !== BtfKind.FUNC : k === BtfKind.FUNC || k === BtfKind.VAR || k === BtfKind.DATASEC || k === BtfKind.DECL_TAG) return false;
      }
      return true;
    };
    const fitting: number[] = [];
    for (let N = 1; N <= Math.floor(gapBytes / 12) && fitting.length < 2; N++) if (fits(N)) fitting.push(N);
    if (fitting.length !== 1) {
      return loseRest(`type section bytes from ${hit.start} cannot be read (${hit.reason}); the records after them were found, but ${fitting.length === 0 ? 'no' : 'more than one'} count of lost types fits their references, so their ids are unknown`);
    }
    const N = fitting[0]!;
    const room = offs.length - n;
    if (N + recovered.length > room) return loseRest(`type section bytes from ${hit.start} cannot be read (${hit.reason}); the inferred count does not fit the section`);
    for (let i = 0; i < N; i++) offs[n++] = 0;
    const reason = `type section bytes ${hit.start - this.typeStart}..${hit.end - this.typeStart} cannot be read (${hit.reason}); the ${recovered.length} types after them were recovered, their ids placed by ${refs.length} references`;
    this.lostTypes.push({ first: firstLost, count: N, reason });
    this.warnings.push(warning('BTF_DAMAGED', `${this.label}: types ${firstLost}..${firstLost + N - 1} (${N}) are lost: ${reason}`));
    return { n, p: recovered[0] ?? stopAt };
  }

  /** Offset in the blob of own type `id`'s btf_type record; undefined for an id not defined here or lost to a damaged page. */
  recordOffset(id: number): number | undefined {
    const p = id >= this.startId && id < this.typeCount ? this.offsets[id - this.startId] : undefined;
    return p === 0 ? undefined : p;
  }

  /** The lost-types entry holding own type `id`, if a damaged page cost it. */
  lostType(id: number): LostBtfTypes | undefined {
    return this.lostTypes.find((l) => id >= l.first && (l.count === 0 ? true : id < l.first + l.count));
  }

  /** Number of types defined by this blob itself. */
  get ownTypeCount(): number {
    return this.offsets.length;
  }

  private fail(code: ErrorCode, msg: string, offset: number, field: string): never {
    throw new VmcoreError(code, `${this.label}: ${msg}`, { ...(this.file ? { file: this.file } : {}), offset, field });
  }

  /** The NUL-terminated string at `off` (split BTF: base strings below startStrOff). */
  str(off: number, field: string | (() => string) = 'name_off'): string {
    if (off < this.startStrOff) {
      if (!this.base) this.fail('OUT_OF_BOUNDS', `string offset ${off}`, 0, typeof field === 'string' ? field : field());
      return this.base.str(off, field);
    }
    const rel = off - this.startStrOff;
    if (rel >= this.strLen) this.fail('OUT_OF_BOUNDS', `string offset ${off} beyond the string section (${this.startStrOff + this.strLen})`, this.strStart, typeof field === 'string' ? field : field());
    // the section is decoded once as latin1 (one char per byte, so offsets stay valid); names
    // are C identifiers, and any other string is re-decoded as UTF-8
    this.strings ??= latin1(this.blob.subarray(this.strStart, this.strStart + this.strLen));
    const e = this.strings.indexOf('\0', rel); // the section ends with NUL (checked)
    // a name in (or running into) an unreadable page is lost: a marker no C name can equal
    if (this.strLost.length && this.strLost.some((l) => l.start <= e && rel < l.end)) return `?lost-name@${off}`;
    const s = this.strings.slice(rel, e);
    return NON_ASCII.test(s) ? utf8.decode(this.blob.subarray(this.strStart + rel, this.strStart + e)) : s;
  }
  private strings: string | undefined;

  /** The kind of own type `id` from its info word, without decoding it. */
  private rawKind(id: number): number {
    const p = this.offsets[id - this.startId]!;
    return p === 0 ? -1 : (this.dv.getUint32(p + 4, this.littleEndian) >>> 24) & 0x1f;
  }

  private checkId(id: number, field: string): void {
    const lost = id >= this.startId ? this.lostType(id) : undefined;
    if (lost && (id >= this.typeCount || this.offsets[id - this.startId] === 0)) {
      throw new VmcoreError('PAGE_DAMAGED', `${this.label}: type ${id} is lost: ${lost.reason}`, { ...(this.file ? { file: this.file } : {}), field });
    }
    if (!Number.isInteger(id) || id < 0 || id >= this.typeCount) {
      this.fail('BAD_FIELD', `type id ${id} does not exist (${this.typeCount} types)`, 0, field);
    }
  }

  /** Decode type `id` (0 = void). Throws BAD_FIELD for an id that does not exist. */
  type(id: number): BtfType {
    this.checkId(id, 'type id');
    if (id < this.startId) {
      if (id === 0) return VOID;
      return this.base!.type(id);
    }
    const hit = this.cache.get(id);
    if (hit) return hit;
    const t = this.decode(id);
    this.cache.set(id, t);
    return t;
  }

  private decode(id: number): BtfType {
    const p = this.offsets[id - this.startId]!;
    const le = this.littleEndian;
    const dv = this.dv;
    const u32 = (o: number) => dv.getUint32(o, le);
    const f = `btf_type[${id}]`;
    const info = u32(p + 4);
    const kind = (info >>> 24) & 0x1f;
    const vlen = info & 0xffff;
    const kindFlag = (info >>> 31) === 1;
    const sot = u32(p + 8);
    const t: BtfType = { id, kind, kindName: KIND_NAMES[kind]!, name: this.str(u32(p), () => `${f}.name_off`), kindFlag, vlen };
    const x = p + 12;
    const count = this.typeCount;
    const ref = (v: number, field: string) => {
      if (v >= count) this.checkId(v, `${f}.${field}`);
      return v;
    };
    switch (kind) {
      case BtfKind.INT: {
        const v = u32(x);
        const enc = (v >>> 24) & 0x0f;
        t.size = sot;
        t.int = { signed: (enc & BTF_INT_SIGNED) !== 0, char: (enc & BTF_INT_CHAR) !== 0, bool: (enc & BTF_INT_BOOL) !== 0, offset: (v >>> 16) & 0xff, bits: v & 0xff };
        if (sot === 0 || sot > 16 || t.int.bits > sot * 8 || t.int.offset + t.int.bits > sot * 8) {
          this.fail('BAD_FIELD', `type ${id}: INT of size ${sot} with ${t.int.bits} bits at offset ${t.int.offset}`, x, `${f}.int`);
        }
        break;
      }
      case BtfKind.FLOAT:
      case BtfKind.DATASEC:
        t.size = sot;
        break;
      case BtfKind.PTR:
      case BtfKind.TYPEDEF:
      case BtfKind.VOLATILE:
      case BtfKind.CONST:
      case BtfKind.RESTRICT:
      case BtfKind.FUNC:
      case BtfKind.FUNC_PROTO:
      case BtfKind.VAR:
      case BtfKind.DECL_TAG:
      case BtfKind.TYPE_TAG:
        t.type = ref(sot, 'type');
        break;
      case BtfKind.STRUCT:
      case BtfKind.UNION:
      case BtfKind.ENUM:
      case BtfKind.ENUM64:
        t.size = sot;
        break;
    }
    switch (kind) {
      case BtfKind.ARRAY:
        t.array = { type: ref(u32(x), 'array.type'), indexType: ref(u32(x + 4), 'array.index_type'), nelems: u32(x + 8) };
        break;
      case BtfKind.STRUCT:
      case BtfKind.UNION: {
        const ms: BtfMember[] = [];
        for (let i = 0; i < vlen; i++) {
          const m = x + 12 * i;
          const off = u32(m + 8);
          ms.push({
            name: this.str(u32(m), () => `${f}.members[${i}].name_off`),
            type: ref(u32(m + 4), 'members.type'),
            bitOffset: kindFlag ? off & 0xffffff : off,
            bitSize: kindFlag ? off >>> 24 : 0,
          });
        }
        t.members = ms;
        break;
      }
      case BtfKind.ENUM: {
        t.signed = kindFlag;
        const es: BtfEnumerator[] = [];
        for (let i = 0; i < vlen; i++) {
          const m = x + 8 * i;
          const raw = u32(m + 4);
          es.push({ name: this.str(u32(m), () => `${f}.enum[${i}].name_off`), value: kindFlag ? BigInt(raw | 0) : BigInt(raw) });
        }
        t.enumerators = es;
        break;
      }
      case BtfKind.ENUM64: {
        t.signed = kindFlag;
        const es: BtfEnumerator[] = [];
        for (let i = 0; i < vlen; i++) {
          const m = x + 12 * i;
          const v = (BigInt(u32(m + 8)) << 32n) | BigInt(u32(m + 4));
          es.push({ name: this.str(u32(m), () => `${f}.enum64[${i}].name_off`), value: kindFlag ? BigInt.asIntN(64, v) : v });
        }
        t.enumerators = es;
        break;
      }
      case BtfKind.FUNC_PROTO: {
        const ps: BtfParam[] = [];
        for (let i = 0; i < vlen; i++) {
          const m = x + 8 * i;
          ps.push({ name: this.str(u32(m), () => `${f}.params[${i}].name_off`), type: ref(u32(m + 4), 'params.type') });
        }
        t.params = ps;
        break;
      }
      case BtfKind.FUNC:
        t.linkage = vlen;
        break;
      case BtfKind.VAR:
        t.linkage = u32(x);
        break;
      case BtfKind.DATASEC: {
        const ss: BtfVarSecinfo[] = [];
        for (let i = 0; i < vlen; i++) {
          const m = x + 12 * i;
          ss.push({ type: ref(u32(m), 'secinfo.type'), offset: u32(m + 4), size: u32(m + 8) });
        }
        t.secinfo = ss;
        break;
      }
      case BtfKind.DECL_TAG:
        t.componentIdx = dv.getInt32(x, le);
        break;
    }
    return t;
  }

  /**
   * FNV-1a (32 bits) of the name at string offset `off`, over its bytes up to the NUL (split BTF:
   * base strings below startStrOff), without making a string of it.
   */
  private nameHash(off: number): number {
    if (off < this.startStrOff) return this.base ? this.base.nameHash(off) : 0;
    const b = this.blob;
    const end = this.strStart + this.strLen;
    const rel = off - this.startStrOff;
    let h = FNV_BASIS;
    let i = this.strStart + rel;
    for (; i < end && b[i] !== 0; i++) h = Math.imul(h ^ b[i]!, FNV_PRIME);
    // a name in an unreadable page reads as its marker (str())
    const e = i - this.strStart;
    if (this.strLost.length && this.strLost.some((l) => l.start <= e && rel < l.end)) return fnv1a(utf8Encoder.encode(this.str(off)));
    return h >>> 0;
  }

  /** Every type id with this name (base first), optionally only of the given kinds. */
  findAll(name: string, kinds?: readonly number[]): number[] {
    if (!this.nameIndex) {
      // by a hash of the name's bytes: one pass over the type records, no string made, chains in
      // typed arrays (a Map of arrays cost ~50 ms for vmlinux's 130,000 types); a lookup compares
      // the names of its chain
      const n = this.offsets.length;
      const hashes = new Uint32Array(n);
      const named = new Uint8Array(n);
      let size = 1024;
      while (size < 2 * n) size *= 2;
      const heads = new Int32Array(size).fill(-1);
      const next = new Int32Array(n).fill(-1);
      // from the last type to the first: each chain lists its types in ascending order
      for (let i = n - 1; i >= 0; i--) {
        const p = this.offsets[i]!;
        if (p === 0) continue; // lost to an unreadable page
        const off = this.dv.getUint32(p, this.littleEndian);
        if (off === 0) continue;
        if (off >= this.startStrOff + this.strLen) this.str(off, () => `btf_type[${this.startId + i}].name_off`); // throws OUT_OF_BOUNDS
        const h = this.nameHash(off);
        hashes[i] = h;
        named[i] = 1;
        next[i] = heads[h & (size - 1)]!;
        heads[h & (size - 1)] = i;
      }
      this.nameIndex = { hashes, named, heads, next, mask: size - 1 };
    }
    const ix = this.nameIndex;
    const nameOf = (id: number) => this.str(this.dv.getUint32(this.offsets[id - this.startId]!, this.littleEndian));
    // a name's bytes are its UTF-8 (str() reads non-ASCII names as UTF-8); one with U+FFFD may
    // stand for bytes that are not UTF-8, and is compared with every name
    const bucket: number[] = [];
    if (name.includes('\uFFFD')) {
      for (let i = 0; i < ix.named.length; i++) if (ix.named[i]) bucket.push(this.startId + i);
    } else {
      const h = fnv1a(utf8Encoder.encode(name));
      for (let i = ix.heads[h & ix.mask]!; i >= 0; i = ix.next[i]!) if (ix.hashes[i] === h) bucket.push(this.startId + i);
    }
    const own = bucket.filter((id) => nameOf(id) === name && (!kinds || kinds.includes(this.rawKind(id))));
    return [...(this.base ? this.base.findAll(name, kinds) : []), ...own];
  }

  /**
   * The type id named `name`. `struct foo`, `union foo`, `enum foo` select the kind; a bare name
   * prefers a STRUCT/UNION, then a TYPEDEF, then any kind. A FWD is used only when nothing else
   * matches. Returns undefined when there is none.
   */
  find(name: string, kinds?: readonly number[]): number | undefined {
    let n = name.trim();
    let ks = kinds;
    const m = /^(struct|union|enum)\s+(.+)$/.exec(n);
    if (m) {
      n = m[2]!;
      ks = m[1] === 'struct' ? [BtfKind.STRUCT] : m[1] === 'union' ? [BtfKind.UNION] : [BtfKind.ENUM, BtfKind.ENUM64];
    }
    const ids = this.findAll(n, ks);
    if (ids.length === 0) return undefined;
    const pref = [BtfKind.STRUCT, BtfKind.UNION, BtfKind.TYPEDEF, BtfKind.INT, BtfKind.ENUM, BtfKind.ENUM64];
    for (const k of pref) {
      const id = ids.find((i) => this.type(i).kind === k);
      if (id !== undefined) return id;
    }
    return ids.find((i) => this.type(i).kind !== BtfKind.FWD) ?? ids[0];
  }

  /** Like find(), but throws BAD_FIELD naming the type when it is absent. */
  need(name: string, kinds?: readonly number[]): number {
    const id = this.find(name, kinds);
    if (id === undefined) {
      // a type the dump lost is named as possibly lost, not as absent
      const lost = [...(this.base?.lostTypes ?? []), ...this.lostTypes];
      const names = [...(this.base?.strLost ?? []), ...this.strLost];
      if (names.length) lost.push({ first: -1, count: 0, reason: `names at string offsets ${names.map((l) => `${l.start}..${l.end}`).join(', ')} are lost` });
      const why = lost.length ? ` (it may be among the types lost to unreadable pages: ${lost.map((l) => (l.first < 0 ? '' : (l.count ? `ids ${l.first}..${l.first + l.count - 1}` : `ids from ${l.first}`) + ': ') + l.reason).join('; ')})` : '';
      throw new VmcoreError(lost.length ? 'PAGE_DAMAGED' : 'BAD_FIELD', `${this.label}: no type ${name}${why}`, { ...(this.file ? { file: this.file } : {}), field: name });
    }
    return id;
  }

  /** Skip TYPEDEF, VOLATILE, CONST, RESTRICT and TYPE_TAG; a FWD is resolved by name to its definition when one exists. */
  resolve(id: number): number {
    let cur = id;
    for (let i = 0; i < MAX_CHAIN; i++) {
      const t = this.type(cur);
      switch (t.kind) {
        case BtfKind.TYPEDEF:
        case BtfKind.VOLATILE:
        case BtfKind.CONST:
        case BtfKind.RESTRICT:
        case BtfKind.TYPE_TAG:
          cur = t.type!;
          continue;
        case BtfKind.FWD: {
          const def = this.findAll(t.name, [t.kindFlag ? BtfKind.UNION : BtfKind.STRUCT])[0];
          return def ?? cur;
        }
        default:
          return cur;
      }
    }
    return this.fail('BAD_FIELD', `type ${id}: typedef/modifier chain longer than ${MAX_CHAIN} (a loop?)`, 0, `btf_type[${id}]`);
  }

  /** Size in bytes of a value of type `id` (void and functions: 0). Arrays multiply, bounded by 2^53. */
  sizeOf(id: number): number {
    let mult = 1;
    let cur = id;
    for (let i = 0; i < MAX_CHAIN; i++) {
      const t = this.type(this.resolve(cur));
      switch (t.kind) {
        case BtfKind.INT:
        case BtfKind.STRUCT:
        case BtfKind.UNION:
        case BtfKind.ENUM:
        case BtfKind.ENUM64:
        case BtfKind.FLOAT:
        case BtfKind.DATASEC:
          return mult * t.size!;
        case BtfKind.PTR:
          return mult * this.pointerSize;
        case BtfKind.ARRAY:
          mult *= t.array!.nelems;
          if (!Number.isSafeInteger(mult)) this.fail('OUT_OF_BOUNDS', `type ${id}: array size overflows`, 0, `btf_type[${t.id}].array.nelems`);
          cur = t.array!.type;
          continue;
        case BtfKind.VAR:
          cur = t.type!;
          continue;
        default:
          return 0;
      }
    }
    return this.fail('BAD_FIELD', `type ${id}: array nesting deeper than ${MAX_CHAIN}`, 0, `btf_type[${id}]`);
  }

  /** Members of a STRUCT or UNION (after resolve()); BAD_FIELD for another kind. */
  members(id: number): BtfMember[] {
    const t = this.type(this.resolve(id));
    if (!t.members) this.fail('BAD_FIELD', `type ${id} (${this.typeName(id)}) is a ${t.kindName}, not a struct or union`, 0, `btf_type[${id}]`);
    return t.members;
  }

  /**
   * The bitfield width and offset of member `m`: with kind_flag the member says it; without,
   * an INT member's BTF_INT_OFFSET/BTF_INT_BITS describe the bitfield (btf.rst, "STRUCT").
   */
  private memberBits(m: BtfMember): { bitOffset: number; bitSize: number } {
    if (m.bitSize !== 0) return { bitOffset: m.bitOffset, bitSize: m.bitSize };
    const t = this.type(this.resolve(m.type));
    if (t.kind === BtfKind.INT && t.int && (t.int.offset !== 0 || t.int.bits !== t.size! * 8)) {
      return { bitOffset: m.bitOffset + t.int.offset, bitSize: t.int.bits };
    }
    return { bitOffset: m.bitOffset, bitSize: 0 };
  }

  /**
   * Find member `name` in struct/union `id`, descending into anonymous members. Returns the
   * member's type, offset in bits from the start of `id`, bitfield width; undefined when absent.
   */
  findMember(id: number, name: string, depth = 0): MemberPath | undefined {
    if (depth > MAX_CHAIN) this.fail('BAD_FIELD', `type ${id}: anonymous members nested deeper than ${MAX_CHAIN}`, 0, `btf_type[${id}]`);
    const ms = this.members(id);
    for (const m of ms) {
      if (m.name === name) return { type: m.type, ...this.memberBits(m) };
    }
    for (const m of ms) {
      if (m.name !== '') continue;
      const k = this.type(this.resolve(m.type)).kind;
      if (k !== BtfKind.STRUCT && k !== BtfKind.UNION) continue;
      const sub = this.findMember(m.type, name, depth + 1);
      if (sub) return { ...sub, bitOffset: m.bitOffset + sub.bitOffset };
    }
    return undefined;
  }

  /**
   * Follow a member path such as `thread.sp`, `pids[1].pid` or `se.avg` from type `id`.
   * Throws BAD_FIELD naming the missing member or a bad index.
   */
  memberPath(id: number, path: string): MemberPath {
    let cur: MemberPath = { type: id, bitOffset: 0, bitSize: 0 };
    const parts = path.split('.');
    for (const part of parts) {
      const m = /^([A-Za-z_$][\w$]*)?((?:\[\d+\])*)$/.exec(part);
      if (!m || (!m[1] && !m[2])) this.fail('BAD_FIELD', `bad member path ${path}`, 0, path);
      if (m[1]) {
        if (cur.bitSize !== 0) this.fail('BAD_FIELD', `${path}: a bitfield has no members`, 0, path);
        const k = this.type(this.resolve(cur.type)).kind;
        if (k !== BtfKind.STRUCT && k !== BtfKind.UNION) {
          this.fail('BAD_FIELD', `${path}: ${this.typeName(cur.type)} has no member ${m[1]}`, 0, path);
        }
        const mem = this.findMember(cur.type, m[1]);
        if (!mem) this.fail('BAD_FIELD', `${this.typeName(cur.type)} has no member ${m[1]}`, 0, path);
        cur = { type: mem.type, bitOffset: cur.bitOffset + mem.bitOffset, bitSize: mem.bitSize };
      }
      for (const im of (m[2] ?? '').matchAll(/\[(\d+)\]/g)) {
        const idx = Number(im[1]);
        const t = this.type(this.resolve(cur.type));
        if (t.kind !== BtfKind.ARRAY) this.fail('BAD_FIELD', `${path}: ${this.typeName(cur.type)} is not an array`, 0, path);
        // flexible arrays (nelems 0) may be indexed; others are bounds-checked
        if (t.array!.nelems !== 0 && idx >= t.array!.nelems) this.fail('BAD_FIELD', `${path}: index ${idx} beyond ${t.array!.nelems} elements`, 0, path);
        cur = { type: t.array!.type, bitOffset: cur.bitOffset + idx * this.sizeOf(t.array!.type) * 8, bitSize: 0 };
      }
    }
    return cur;
  }

  /** Byte offset of `path` in the struct named `typeName` (`task_struct`, `thread.sp`). BAD_FIELD for a bitfield. */
  offsetOf(typeName: string, path: string): number {
    const r = this.memberPath(this.need(typeName, [BtfKind.STRUCT, BtfKind.UNION, BtfKind.TYPEDEF]), path);
    if (r.bitSize !== 0 || r.bitOffset % 8 !== 0) this.fail('BAD_FIELD', `${typeName}.${path} is a bitfield at bit ${r.bitOffset}`, 0, `${typeName}.${path}`);
    return r.bitOffset / 8;
  }

  /** Enumerators of an ENUM or ENUM64 type. */
  enumerators(id: number): BtfEnumerator[] {
    const t = this.type(this.resolve(id));
    if (!t.enumerators) this.fail('BAD_FIELD', `type ${id} is a ${t.kindName}, not an enum`, 0, `btf_type[${id}]`);
    return t.enumerators;
  }

  /**
   * Value of enumerator `name`, searched in every ENUM/ENUM64 (or only in `enumType` when given).
   * Undefined when absent.
   */
  enumValue(name: string, enumType?: string): bigint | undefined {
    if (enumType !== undefined) {
      const id = this.find(enumType.startsWith('enum ') ? enumType : `enum ${enumType}`);
      if (id === undefined) return undefined;
      return this.enumerators(id).find((e) => e.name === name)?.value;
    }
    if (!this.enumIndex) {
      const idx = new Map<string, bigint>();
      const add = (b: Btf) => {
        for (let id = b.startId; id < b.typeCount; id++) {
          const k = b.rawKind(id);
          if (k !== BtfKind.ENUM && k !== BtfKind.ENUM64) continue;
          const t = b.type(id);
          if (t.enumerators) for (const e of t.enumerators) if (!idx.has(e.name)) idx.set(e.name, e.value);
        }
      };
      if (this.base) add(this.base);
      add(this);
      this.enumIndex = idx;
    }
    return this.enumIndex.get(name);
  }
  private enumIndex: Map<string, bigint> | undefined;

  /** The name of the enumerator of enum `id` with this value, if any. */
  enumName(id: number, value: bigint): string | undefined {
    return this.enumerators(id).find((e) => e.value === value)?.name;
  }

  /** A C spelling of type `id`, e.g. `struct task_struct *`, `char [16]`, `unsigned int`. */
  typeName(id: number): string {
    return this.declare(id, '').trim();
  }

  /**
   * A C declaration of `name` with type `id`: `struct list_head *next`, `char comm[16]`,
   * `void (*fn)(struct work_struct *)`. Bounded by MAX_CHAIN levels.
   */
  declare(id: number, name: string, depth = 0): string {
    if (depth > MAX_CHAIN) return `<loop> ${name}`;
    const t = this.type(id);
    const sep = (s: string) => (s === '' || s.startsWith('[') || s.startsWith(')') ? s : ' ' + s);
    switch (t.kind) {
      case BtfKind.UNKN: return 'void' + sep(name);
      case BtfKind.INT:
      case BtfKind.FLOAT:
      case BtfKind.TYPEDEF: return t.name + sep(name);
      case BtfKind.STRUCT: return `struct ${t.name || '{...}'}` + sep(name);
      case BtfKind.UNION: return `union ${t.name || '{...}'}` + sep(name);
      case BtfKind.ENUM:
      case BtfKind.ENUM64: return `enum ${t.name || '{...}'}` + sep(name);
      case BtfKind.FWD: return `${t.kindFlag ? 'union' : 'struct'} ${t.name}` + sep(name);
      case BtfKind.CONST:
      case BtfKind.VOLATILE:
      case BtfKind.RESTRICT: {
        const q = t.kind === BtfKind.CONST ? 'const' : t.kind === BtfKind.VOLATILE ? 'volatile' : 'restrict';
        const inner = this.type(t.type!);
        if (inner.kind === BtfKind.PTR) return this.declare(t.type!, `${q}${sep(name)}`, depth + 1);
        return `${q} ${this.declare(t.type!, name, depth + 1)}`;
      }
      case BtfKind.TYPE_TAG: return this.declare(t.type!, name, depth + 1);
      case BtfKind.PTR: {
        const inner = this.type(t.type!);
        const wrap = inner.kind === BtfKind.ARRAY || inner.kind === BtfKind.FUNC_PROTO;
        return this.declare(t.type!, wrap ? `(*${name})` : `*${name}`, depth + 1);
      }
      case BtfKind.ARRAY: return this.declare(t.array!.type, `${name}[${t.array!.nelems}]`, depth + 1);
      case BtfKind.FUNC_PROTO: {
        const ps = t.params!.map((p) => (p.type === 0 ? '...' : this.declare(p.type, '', depth + 1).trim()));
        return this.declare(t.type!, `${name}(${ps.length ? ps.join(', ') : 'void'})`, depth + 1);
      }
      case BtfKind.FUNC: return this.declare(t.type!, t.name, depth + 1);
      case BtfKind.VAR: return this.declare(t.type!, t.name, depth + 1);
      case BtfKind.DATASEC: return `SEC("${t.name}")`;
      case BtfKind.DECL_TAG: return `__attribute__((btf_decl_tag("${t.name}")))`;
      default: return `<kind ${t.kind}>`;
    }
  }
}

const VOID: BtfType = Object.freeze({ id: 0, kind: 0, kindName: 'UNKN', name: '', kindFlag: false, vlen: 0 }) as BtfType;

/** Parse a BTF blob; `base` for split (module) BTF. See the Btf constructor for the errors thrown. */
export function parseBtf(blob: Uint8Array, opts: BtfOptions = {}): Btf {
  return new Btf(blob, opts);
}
