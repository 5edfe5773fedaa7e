/**
 * A typed reader over kernel virtual memory, driven by BTF: read a structure at a kernel
 * virtual address, take members by path, read integers, enums, pointers and bitfields, follow
 * pointers, and decode a whole value into a tree (for `vmcore struct`).
 *
 * Scalars are read in the blob's byte order; bitfields follow the C ABI of that byte order
 * (little-endian: bit 0 is the least significant bit of the first byte; big-endian: bit 0 is
 * the most significant bit of the first byte), which is how BTF numbers member bit offsets.
 */
import { VmcoreError } from '../../errors.js';
import { Btf, BtfKind } from './btf.js';
import { KERNEL_LIMITS } from '../../limits.js';
import { latin1 } from '../../text.js';

export type ReadVirt = (va: bigint, length: number) => Promise<Uint8Array>;

const MAX_OBJECT_BYTES = KERNEL_LIMITS.maxObjectBytes;

/** Read an unsigned integer of `bitSize` bits at `bitOffset` in `bytes` (bitSize ≤ 128). */
export function readBits(bytes: Uint8Array, bitOffset: number, bitSize: number, littleEndian: boolean): bigint {
  const first = bitOffset >> 3;
  const n = ((bitOffset & 7) + bitSize + 7) >> 3;
  if (first < 0 || first + n > bytes.length) {
    throw new VmcoreError('OUT_OF_BOUNDS', `bits ${bitOffset}+${bitSize} outside a ${bytes.length}-byte value`);
  }
  let v = 0n;
  if (littleEndian) {
    for (let i = n - 1; i >= 0; i--) v = (v << 8n) | BigInt(bytes[first + i]!);
    v >>= BigInt(bitOffset & 7);
  } else {
    for (let i = 0; i < n; i++) v = (v << 8n) | BigInt(bytes[first + i]!);
    v >>= BigInt(n * 8 - (bitOffset & 7) - bitSize);
  }
  return v & ((1n << BigInt(bitSize)) - 1n);
}

/** A decoded value (see KObject.decode). */
export type Decoded =
  | { kind: 'int'; type: string; value: bigint; signed: boolean; bool: boolean; char: boolean }
  | { kind: 'float'; type: string; value: number }
  | { kind: 'enum'; type: string; value: bigint; name: string | undefined }
  | { kind: 'ptr'; type: string; value: bigint; func: boolean }
  | { kind: 'struct' | 'union'; type: string; members: { name: string; offset: number; bitSize: number; value: Decoded }[] }
  | { kind: 'array'; type: string; elements: Decoded[]; truncated: number }
  | { kind: 'chars'; type: string; bytes: Uint8Array }
  | { kind: 'elided'; type: string }
  | { kind: 'void'; type: string };

export interface DecodeOptions {
  /** Nested aggregates beyond this depth decode as `elided` (default 32). */
  depth?: number;
  /** Array elements decoded at most (default 4096); the rest are counted in `truncated`. */
  maxElements?: number;
}

/**
 * A value of a BTF type held in memory: its type id, kernel virtual address and bytes, and for
 * a bitfield its bit offset and width within `bytes`.
 */
export class KObject {
  constructor(
    readonly types: KernelTypes,
    readonly typeId: number,
    readonly address: bigint,
    readonly bytes: Uint8Array,
    readonly bitOffset = 0,
    readonly bitSize = 0,
  ) {}

  get btf(): Btf {
    return this.types.btf;
  }

  /** C spelling of the type. */
  get typeName(): string {
    return this.btf.typeName(this.typeId);
  }

  /** The member at `path` (`thread.sp`, `pids[1]`), a view on the same bytes. Throws BAD_FIELD. */
  member(path: string): KObject {
    const m = this.btf.memberPath(this.typeId, path);
    const bit = this.bitOffset + m.bitOffset;
    if (m.bitSize !== 0) {
      const first = bit >> 3;
      const n = ((bit & 7) + m.bitSize + 7) >> 3;
      return new KObject(this.types, m.type, this.address + BigInt(first), this.sub(first, n, path), bit & 7, m.bitSize);
    }
    const off = bit >> 3;
    return new KObject(this.types, m.type, this.address + BigInt(off), this.sub(off, this.btf.sizeOf(m.type), path));
  }

  private sub(off: number, len: number, path: string): Uint8Array {
    if (off + len > this.bytes.length) {
      throw new VmcoreError('OUT_OF_BOUNDS', `${this.typeName}.${path} at 0x${(this.address + BigInt(off)).toString(16)} lies beyond the ${this.bytes.length} bytes read`, { field: path });
    }
    return this.bytes.subarray(off, off + len);
  }

  /**
   * The integer value (INT, ENUM, PTR, bitfield), sign-extended for signed types, as bigint.
   * Throws BAD_FIELD for a struct, union, array or float.
   */
  int(path?: string): bigint {
    if (path !== undefined) return this.member(path).int();
    const t = this.btf.type(this.btf.resolve(this.typeId));
    let signed = false;
    switch (t.kind) {
      case BtfKind.INT: signed = t.int!.signed; break;
      case BtfKind.ENUM:
      case BtfKind.ENUM64: signed = t.signed === true; break;
      case BtfKind.PTR: break;
      default:
        throw new VmcoreError('BAD_FIELD', `${this.typeName} at 0x${this.address.toString(16)} is not an integer, enum or pointer`);
    }
    const le = this.btf.littleEndian;
    let bits: number;
    let v: bigint;
    if (this.bitSize !== 0) {
      bits = this.bitSize;
      v = readBits(this.bytes, this.bitOffset, bits, le);
    } else {
      const size = t.kind === BtfKind.PTR ? this.btf.pointerSize : t.size!;
      bits = t.kind === BtfKind.INT && t.int!.bits < size * 8 ? t.int!.bits : size * 8;
      v = readBits(this.bytes, t.kind === BtfKind.INT ? t.int!.offset : 0, bits, le);
    }
    return signed ? BigInt.asIntN(bits, v) : v;
  }

  /** int() as a number; OUT_OF_BOUNDS if beyond 2^53. */
  num(path?: string): number {
    const v = this.int(path);
    if (v > BigInt(Number.MAX_SAFE_INTEGER) || v < -BigInt(Number.MAX_SAFE_INTEGER)) {
      throw new VmcoreError('OUT_OF_BOUNDS', `${this.typeName}${path ? '.' + path : ''} = ${v} is beyond 2^53`, { field: path ?? this.typeName });
    }
    return Number(v);
  }

  /** A pointer's value (unsigned). */
  ptr(path?: string): bigint {
    return BigInt.asUintN(this.btf.pointerSize * 8, this.int(path));
  }

  /** A char array up to its first NUL, as latin1 (how the kernel's comm and names are shown). */
  str(path?: string): string {
    const o = path === undefined ? this : this.member(path);
    const nul = o.bytes.indexOf(0);
    return latin1(nul >= 0 ? o.bytes.subarray(0, nul) : o.bytes);
  }

  /** Follow a pointer member (or this pointer) and read the object it points to. */
  async deref(path?: string): Promise<KObject> {
    const o = path === undefined ? this : this.member(path);
    const t = o.btf.type(o.btf.resolve(o.typeId));
    if (t.kind !== BtfKind.PTR) throw new VmcoreError('BAD_FIELD', `${o.typeName} is not a pointer`, { field: path ?? o.typeName });
    return this.types.read(t.type!, o.ptr());
  }

  /** The object that contains this one as member `path` of type `typeName` (the kernel's container_of). */
  async containerOf(typeName: string, path: string, pointer: bigint): Promise<KObject> {
    return this.types.containerOf(pointer, typeName, path);
  }

  /** Decode the whole value into a tree. */
  decode(opts: DecodeOptions = {}): Decoded {
    return decodeValue(this.btf, this.typeId, this.bytes, this.bitOffset, this.bitSize, opts.depth ?? 32, opts.maxElements ?? 4096);
  }
}

function decodeValue(btf: Btf, typeId: number, bytes: Uint8Array, bitOffset: number, bitSize: number, depth: number, maxEl: number): Decoded {
  const type = btf.typeName(typeId);
  const t = btf.type(btf.resolve(typeId));
  const le = btf.littleEndian;
  const byte = bitOffset >> 3;
  switch (t.kind) {
    case BtfKind.INT: {
      const size = t.size!;
      const bits = bitSize || t.int!.bits;
      const off = bitSize ? bitOffset : bitOffset + t.int!.offset;
      const raw = readBits(bytes, off, bits > 0 ? bits : size * 8, le);
      return { kind: 'int', type, value: t.int!.signed ? BigInt.asIntN(bits, raw) : raw, signed: t.int!.signed, bool: t.int!.bool, char: t.int!.char || (size === 1 && /char/.test(t.name)) };
    }
    case BtfKind.ENUM:
    case BtfKind.ENUM64: {
      const bits = bitSize || t.size! * 8;
      const raw = readBits(bytes, bitOffset, bits, le);
      const value = t.signed ? BigInt.asIntN(bits, raw) : raw;
      return { kind: 'enum', type, value, name: t.enumerators!.find((e) => e.value === value || BigInt.asUintN(bits, e.value) === raw)?.name };
    }
    case BtfKind.PTR: {
      const target = btf.type(btf.resolve(t.type!));
      return { kind: 'ptr', type, value: readBits(bytes, bitOffset, btf.pointerSize * 8, le), func: target.kind === BtfKind.FUNC_PROTO };
    }
    case BtfKind.FLOAT: {
      const dv = new DataView(bytes.buffer, bytes.byteOffset + byte, t.size!);
      const value = t.size === 4 ? dv.getFloat32(0, le) : t.size === 8 ? dv.getFloat64(0, le) : NaN;
      return { kind: 'float', type, value };
    }
    case BtfKind.STRUCT:
    case BtfKind.UNION: {
      if (depth <= 0) return { kind: 'elided', type };
      const out: { name: string; offset: number; bitSize: number; value: Decoded }[] = [];
      for (const m of t.members!) {
        // bitfield width from kind_flag, or from an INT member's own bits (see Btf.memberPath)
        let mBit = m.bitOffset;
        let mSize = m.bitSize;
        if (mSize === 0) {
          const mt = btf.type(btf.resolve(m.type));
          if (mt.kind === BtfKind.INT && (mt.int!.offset !== 0 || mt.int!.bits !== mt.size! * 8)) {
            mBit += mt.int!.offset;
            mSize = mt.int!.bits;
          }
        }
        out.push({ name: m.name, offset: mBit, bitSize: mSize, value: decodeValue(btf, m.type, bytes, bitOffset + mBit, mSize, depth - 1, maxEl) });
      }
      return { kind: t.kind === BtfKind.STRUCT ? 'struct' : 'union', type, members: out };
    }
    case BtfKind.ARRAY: {
      const a = t.array!;
      const et = btf.type(btf.resolve(a.type));
      const esize = btf.sizeOf(a.type);
      if (et.kind === BtfKind.INT && et.size === 1 && (et.int!.char || /char/.test(et.name))) {
        return { kind: 'chars', type, bytes: bytes.slice(byte, byte + a.nelems) };
      }
      if (depth <= 0) return { kind: 'elided', type };
      const n = Math.min(a.nelems, maxEl);
      const elements: Decoded[] = [];
      for (let i = 0; i < n; i++) elements.push(decodeValue(btf, a.type, bytes, bitOffset + i * esize * 8, 0, depth - 1, maxEl));
      return { kind: 'array', type, elements, truncated: a.nelems - n };
    }
    default:
      return { kind: 'void', type };
  }
}

/**
 * Kernel types over kernel virtual memory: the BTF plus a reader. `read(type, va)` reads a whole
 * object; errors from readVirt (page not present, no translation) propagate with the address.
 */
export class KernelTypes {
  constructor(
    readonly btf: Btf,
    readonly readVirt: ReadVirt,
  ) {}

  /** Type id by name (see Btf.find); BAD_FIELD when absent. */
  id(type: string | number): number {
    return typeof type === 'number' ? type : this.btf.need(type);
  }

  /** Read an object of `type` (a name such as `task_struct`, or a type id) at kernel virtual address `va`. */
  async read(type: string | number, va: bigint): Promise<KObject> {
    const id = this.id(type);
    const size = this.btf.sizeOf(id);
    if (size > MAX_OBJECT_BYTES) {
      throw new VmcoreError('OUT_OF_BOUNDS', `${this.btf.typeName(id)} is ${size} bytes (more than ${MAX_OBJECT_BYTES} are not read at once)`, { address: va });
    }
    const bytes = size === 0 ? new Uint8Array(0) : await this.readVirt(va, size);
    return new KObject(this, id, va, bytes);
  }

  /** The object of `type` whose member `path` is at `va` (container_of). */
  async containerOf(va: bigint, type: string, path: string): Promise<KObject> {
    const id = this.id(type);
    const m = this.btf.memberPath(id, path);
    return this.read(id, BigInt.asUintN(64, va - BigInt(m.bitOffset >> 3)));
  }

  /** Byte offset of `path` in `type`. */
  offsetOf(type: string, path: string): number {
    return this.btf.offsetOf(type, path);
  }
}
