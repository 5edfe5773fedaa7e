/**
 * Declarative binary structures. Each on-disk structure is declared once, as a list of fields
 * with offset, size and type; `read`, `write` and `encode` derive from the declaration, and code
 * that needs a field's position (a hot loop over a table, a patch in place) takes it from
 * `fields`, never from a number of its own.
 *
 * 64-bit fields come in two flavours:
 *  - `u64` / `i64`: read as bigint (exact, for addresses and values such as phys_base);
 *  - `u64n` / `i64n`: read as number, and a value beyond Number.MAX_SAFE_INTEGER raises a typed
 *    OUT_OF_BOUNDS error naming the field. Used for file offsets, sizes and page numbers, which
 *    in any real dump stay below 2^53 (8 PiB).
 */
import { VmcoreError } from './errors.js';
import { latin1, latin1Bytes } from './text.js';

export type FieldType =
  | 'u8' | 'u16' | 'u32' | 'i32'
  | 'u64' | 'i64' | 'u64n' | 'i64n'
  | 'char' // NUL-padded string of `size` bytes, one character per byte (text.ts latin1): written back byte for byte; headerText shows it as text
  | 'bytes'; // raw bytes of `size`

export interface FieldDecl {
  readonly off: number;
  readonly type: FieldType;
  readonly size?: number; // for char/bytes
}

type FieldValue<T extends FieldType> = T extends 'u64' | 'i64'
  ? bigint
  : T extends 'char'
    ? string
    : T extends 'bytes'
      ? Uint8Array
      : number;

export type StructValue<F extends Record<string, FieldDecl>> = {
  -readonly [K in keyof F]: FieldValue<F[K]['type']>;
};

export interface ReadContext {
  file?: string | undefined;
  /** File offset of the buffer's byte 0, so that errors name absolute offsets. */
  base?: number | undefined;
}

const SIZES: Record<FieldType, number> = { u8: 1, u16: 2, u32: 4, i32: 4, u64: 8, i64: 8, u64n: 8, i64n: 8, char: 0, bytes: 0 };

export interface Struct<F extends Record<string, FieldDecl>> {
  readonly name: string;
  readonly size: number;
  readonly fields: F;
  read(buf: Uint8Array, offset: number, littleEndian: boolean, ctx?: ReadContext): StructValue<F>;
  write(value: Partial<StructValue<F>>, buf: Uint8Array, offset: number, littleEndian: boolean): void;
  /** A zero-filled buffer with `value` written at 0. */
  encode(value: Partial<StructValue<F>>, littleEndian: boolean): Uint8Array;
}


export function fieldSize(f: FieldDecl): number {
  return f.type === 'char' || f.type === 'bytes' ? (f.size ?? 0) : SIZES[f.type];
}

export function defineStruct<F extends Record<string, FieldDecl>>(name: string, size: number, fields: F): Struct<F> {
  for (const [k, f] of Object.entries(fields)) {
    if (f.off + fieldSize(f) > size) throw new Error(`struct ${name}: field ${k} overruns size ${size}`);
  }
  const entries = Object.entries(fields) as [string, FieldDecl][];
  return {
    name,
    size,
    fields,
    read(buf, offset, le, ctx = {}) {
      if (offset < 0 || offset + size > buf.length) {
        throw new VmcoreError('TRUNCATED', `${name} needs ${size} bytes, only ${Math.max(0, buf.length - offset)} available`, {
          file: ctx.file,
          offset: (ctx.base ?? 0) + offset,
        });
      }
      const dv = new DataView(buf.buffer, buf.byteOffset + offset, size);
      const out: Record<string, unknown> = {};
      for (const [k, f] of entries) {
        const o = f.off;
        switch (f.type) {
          case 'u8': out[k] = dv.getUint8(o); break;
          case 'u16': out[k] = dv.getUint16(o, le); break;
          case 'u32': out[k] = dv.getUint32(o, le); break;
          case 'i32': out[k] = dv.getInt32(o, le); break;
          case 'u64': out[k] = dv.getBigUint64(o, le); break;
          case 'i64': out[k] = dv.getBigInt64(o, le); break;
          case 'u64n':
          case 'i64n': {
            const v = f.type === 'u64n' ? dv.getBigUint64(o, le) : dv.getBigInt64(o, le);
            if (v > BigInt(Number.MAX_SAFE_INTEGER) || v < -BigInt(Number.MAX_SAFE_INTEGER)) {
              throw new VmcoreError('OUT_OF_BOUNDS', `${name}.${k} = 0x${BigInt.asUintN(64, v).toString(16)} is beyond 2^53`, {
                file: ctx.file,
                offset: (ctx.base ?? 0) + offset + o,
                field: `${name}.${k}`,
              });
            }
            out[k] = Number(v);
            break;
          }
          case 'char': {
            const raw = buf.subarray(offset + o, offset + o + (f.size ?? 0));
            const nul = raw.indexOf(0);
            out[k] = latin1(nul >= 0 ? raw.subarray(0, nul) : raw);
            break;
          }
          case 'bytes': out[k] = buf.slice(offset + o, offset + o + (f.size ?? 0)); break;
        }
      }
      return out as StructValue<F>;
    },
    write(value, buf, offset, le) {
      const dv = new DataView(buf.buffer, buf.byteOffset + offset, size);
      for (const [k, f] of entries) {
        const v = (value as Record<string, unknown>)[k];
        if (v === undefined) continue;
        const o = f.off;
        switch (f.type) {
          case 'u8': dv.setUint8(o, v as number); break;
          case 'u16': dv.setUint16(o, v as number, le); break;
          case 'u32': dv.setUint32(o, (v as number) >>> 0, le); break;
          case 'i32': dv.setInt32(o, v as number, le); break;
          case 'u64': dv.setBigUint64(o, BigInt.asUintN(64, v as bigint), le); break;
          case 'i64': dv.setBigInt64(o, BigInt.asIntN(64, v as bigint), le); break;
          case 'u64n': dv.setBigUint64(o, BigInt(v as number), le); break;
          case 'i64n': dv.setBigInt64(o, BigInt(v as number), le); break;
          case 'char': {
            const n = f.size ?? 0;
            buf.fill(0, offset + o, offset + o + n);
            buf.set(latin1Bytes(v as string).subarray(0, n), offset + o);
            break;
          }
          case 'bytes': buf.set((v as Uint8Array).subarray(0, f.size ?? 0), offset + o); break;
        }
      }
    },
    encode(value, le) {
      const b = new Uint8Array(size);
      this.write(value, b, 0, le);
      return b;
    },
  };
}
