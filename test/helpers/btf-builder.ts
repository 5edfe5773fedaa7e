/**
 * Builds BTF blobs for tests, following Documentation/bpf/btf.rst: a header, a type section of
 * btf_type records with their kind-specific data, and a string section. Either byte order, and
 * split BTF on top of a base (type ids and string offsets continue after the base's).
 */
import { BtfKind } from '../../src/core/kernel/btf/format.js';

type Words = number[];

export interface BuilderOptions {
  littleEndian?: boolean;
  /** For split BTF: the base's type count (void included) and string section length. */
  base?: { typeCount: number; strLen: number };
}

export class BtfBuilder {
  readonly le: boolean;
  private readonly strs: number[] = [];
  private readonly strIndex = new Map<string, number>();
  private readonly records: Words[] = [];
  private readonly startId: number;
  private readonly startStr: number;

  constructor(opts: BuilderOptions = {}) {
    this.le = opts.littleEndian ?? true;
    this.startId = opts.base?.typeCount ?? 1;
    this.startStr = opts.base?.strLen ?? 0;
    if (!opts.base) this.str(''); // offset 0 is the empty string in a base blob
  }

  /** Offset of string `s` (added once). */
  str(s: string): number {
    const hit = this.strIndex.get(s);
    if (hit !== undefined) return hit;
    if (s === '' && this.startStr > 0) return 0; // split BTF: the base's empty string
    const off = this.startStr + this.strs.length;
    for (const c of new TextEncoder().encode(s)) this.strs.push(c);
    this.strs.push(0);
    this.strIndex.set(s, off);
    return off;
  }

  /** Next type id that add() will return. */
  get nextId(): number {
    return this.startId + this.records.length;
  }

  /** Add a raw record: btf_type (name, kind, vlen, kind_flag, size/type) then `extra` u32 words. */
  add(kind: number, name: string, vlen: number, kindFlag: boolean, sizeOrType: number, extra: Words = []): number {
    const info = ((kindFlag ? 1 : 0) << 31) | ((kind & 0x1f) << 24) | (vlen & 0xffff);
    this.records.push([this.str(name), info >>> 0, sizeOrType >>> 0, ...extra]);
    return this.nextId - 1;
  }

  int(name: string, size: number, o: { signed?: boolean; char?: boolean; bool?: boolean; bits?: number; offset?: number } = {}): number {
    const enc = (o.signed ? 1 : 0) | (o.char ? 2 : 0) | (o.bool ? 4 : 0);
    return this.add(BtfKind.INT, name, 0, false, size, [((enc << 24) | ((o.offset ?? 0) << 16) | (o.bits ?? size * 8)) >>> 0]);
  }
  ptr(type: number): number {
    return this.add(BtfKind.PTR, '', 0, false, type);
  }
  array(type: number, indexType: number, nelems: number): number {
    return this.add(BtfKind.ARRAY, '', 0, false, 0, [type, indexType, nelems]);
  }
  /** members: [name, type, bitOffset, bitSize?]; kindFlag encodes bitSize << 24 | bitOffset. */
  struct(name: string, size: number, members: [string, number, number, number?][], kindFlag = false, union = false): number {
    const w: Words = [];
    for (const [n, t, off, bits] of members) w.push(this.str(n), t, kindFlag ? (((bits ?? 0) << 24) | off) >>> 0 : off);
    return this.add(union ? BtfKind.UNION : BtfKind.STRUCT, name, members.length, kindFlag, size, w);
  }
  union(name: string, size: number, members: [string, number, number, number?][], kindFlag = false): number {
    return this.struct(name, size, members, kindFlag, true);
  }
  enum(name: string, size: number, values: [string, number][], signed = false): number {
    const w: Words = [];
    for (const [n, v] of values) w.push(this.str(n), v >>> 0);
    return this.add(BtfKind.ENUM, name, values.length, signed, size, w);
  }
  enum64(name: string, size: number, values: [string, bigint][], signed = false): number {
    const w: Words = [];
    for (const [n, v] of values) {
      const u = BigInt.asUintN(64, v);
      w.push(this.str(n), Number(u & 0xffffffffn), Number(u >> 32n));
    }
    return this.add(BtfKind.ENUM64, name, values.length, signed, size, w);
  }
  fwd(name: string, union = false): number {
    return this.add(BtfKind.FWD, name, 0, union, 0);
  }
  typedef(name: string, type: number): number {
    return this.add(BtfKind.TYPEDEF, name, 0, false, type);
  }
  volatile(type: number): number {
    return this.add(BtfKind.VOLATILE, '', 0, false, type);
  }
  const(type: number): number {
    return this.add(BtfKind.CONST, '', 0, false, type);
  }
  restrict(type: number): number {
    return this.add(BtfKind.RESTRICT, '', 0, false, type);
  }
  func(name: string, proto: number, linkage = 1): number {
    return this.add(BtfKind.FUNC, name, linkage, false, proto);
  }
  proto(ret: number, params: [string, number][]): number {
    const w: Words = [];
    for (const [n, t] of params) w.push(this.str(n), t);
    return this.add(BtfKind.FUNC_PROTO, '', params.length, false, ret, w);
  }
  var(name: string, type: number, linkage = 1): number {
    return this.add(BtfKind.VAR, name, 0, false, type, [linkage]);
  }
  datasec(name: string, size: number, vars: [number, number, number][]): number {
    return this.add(BtfKind.DATASEC, name, vars.length, false, size, vars.flat());
  }
  float(name: string, size: number): number {
    return this.add(BtfKind.FLOAT, name, 0, false, size);
  }
  declTag(name: string, type: number, componentIdx: number): number {
    return this.add(BtfKind.DECL_TAG, name, 0, false, type, [componentIdx >>> 0]);
  }
  typeTag(name: string, type: number): number {
    return this.add(BtfKind.TYPE_TAG, name, 0, false, type);
  }

  /** Length of the string section so far. */
  get strLen(): number {
    return this.strs.length;
  }

  /** The blob: header, types, strings. `hdr` overrides header fields (for corrupt blobs). */
  build(hdr: Partial<Record<'magic' | 'version' | 'flags' | 'hdr_len' | 'type_off' | 'type_len' | 'str_off' | 'str_len', number>> = {}): Uint8Array {
    const typeLen = this.records.reduce((a, r) => a + 4 * r.length, 0);
    const out = new Uint8Array(24 + typeLen + this.strs.length);
    const dv = new DataView(out.buffer);
    const le = this.le;
    dv.setUint16(0, hdr.magic ?? 0xeb9f, le);
    dv.setUint8(2, hdr.version ?? 1);
    dv.setUint8(3, hdr.flags ?? 0);
    dv.setUint32(4, hdr.hdr_len ?? 24, le);
    dv.setUint32(8, hdr.type_off ?? 0, le);
    dv.setUint32(12, hdr.type_len ?? typeLen, le);
    dv.setUint32(16, hdr.str_off ?? typeLen, le);
    dv.setUint32(20, hdr.str_len ?? this.strs.length, le);
    let p = 24;
    for (const r of this.records) for (const w of r) { dv.setUint32(p, w >>> 0, le); p += 4; }
    out.set(this.strs, p);
    return out;
  }
}
