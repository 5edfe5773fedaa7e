/**
 * Printing kernel structures the way crash's `struct` command does (crash hands the work to
 * gdb's `print`, with its pretty-printing on and no `<repeats N times>` folding): member names,
 * nested structs and unions indented by two spaces, anonymous members as a bare `{`, arrays in
 * braces, char arrays as C strings with octal escapes (the final NUL left out), one-byte
 * integers as `N 'c'`, enums by name, pointers in hex with `<symbol+off>` when a symbolizer
 * knows the address, bools as true/false. At most 256 elements of an array or string are
 * printed (crash's `print elements`), then `...`.
 *
 * Also the layout view of `struct -o`: every member with its offset (or address).
 */
import type { Btf } from './btf.js';
import { BtfKind } from './btf.js';
import type { Decoded } from './reader.js';
import { latin1 } from '../../text.js';

export interface PrintOptions {
  /** Name of the symbol containing `addr` as `name` or `name+0xoff`, or undefined. */
  symbolize?: (addr: bigint) => string | undefined;
  /** Elements of an array or chars of a string printed at most (default PRINT_ELEMENTS). */
  elements?: number;
}

/**
 * Elements of an array or chars of a string printed before `...`: crash runs gdb with `print
 * elements` 256 (its task_struct output stops a 4 KiB char array at 256 chars, whole runs).
 */
export const PRINT_ELEMENTS = 256;

const ESC: Record<number, string> = { 7: '\\a', 8: '\\b', 9: '\\t', 10: '\\n', 11: '\\v', 12: '\\f', 13: '\\r', 34: '\\"', 92: '\\\\' };

/** One char of a C string as gdb writes it inside double quotes (or single quotes with `quote`). */
function charText(c: number, quote: '"' | "'"): string {
  if (c === 39) return quote === "'" ? "\\'" : "'";
  if (c === 34) return quote === '"' ? '\\"' : '"';
  const e = ESC[c];
  if (e) return e;
  if (c >= 0x20 && c < 0x7f) return String.fromCharCode(c);
  return '\\' + c.toString(8).padStart(3, '0');
}

/** A char array as gdb prints it: the trailing NUL dropped, octal escapes, `...` past the limit. */
export function cString(bytes: Uint8Array, limit = PRINT_ELEMENTS): string {
  let n = bytes.length;
  if (n > 0 && bytes[n - 1] === 0) n--;
  // gdb reads the string in runs of one repeated char (count_next_character in gdb/valprint.c)
  // and checks the limit between runs, so the run that crosses the limit is printed whole
  let shown = 0;
  while (shown < n && shown < limit) {
    const c = bytes[shown];
    do shown++;
    while (shown < n && bytes[shown] === c);
  }
  // a digit right after an octal escape is escaped too, or it would read as part of it
  // (gdb/valprint.c print_wchar: need_escape): "\311\060", not "\3110"
  let s = '"';
  let afterOctal = false;
  for (let i = 0; i < shown; i++) {
    const c = bytes[i]!;
    const t: string = afterOctal && c >= 0x30 && c <= 0x39 ? '\\' + c.toString(8).padStart(3, '0') : charText(c, '"');
    afterOctal = t.length === 4 && t[0] === '\\' && t[1]! >= '0' && t[1]! <= '7';
    s += t;
  }
  s += '"';
  if (shown < n) s += '...';
  return s;
}

function scalarText(v: Decoded, o: PrintOptions): string {
  switch (v.kind) {
    case 'int':
      if (v.bool) return v.value === 0n ? 'false' : v.value === 1n ? 'true' : v.value.toString();
      if (v.char) return `${v.value} '${charText(Number(BigInt.asUintN(8, v.value)), "'")}'`;
      return v.value.toString();
    case 'float':
      return String(v.value);
    case 'enum':
      return v.name ?? v.value.toString();
    case 'ptr': {
      const h = '0x' + v.value.toString(16);
      const s = v.value !== 0n ? o.symbolize?.(v.value) : undefined;
      return s ? `${h} <${s}>` : h;
    }
    case 'chars':
      return cString(v.bytes, o.elements ?? PRINT_ELEMENTS);
    case 'elided':
      return '{...}';
    case 'void':
      return 'void';
    default:
      return '?';
  }
}

/** gdb's pretty-printed value text; `indent` is the current member indentation (spaces). */
function valueText(v: Decoded, indent: number, o: PrintOptions): string {
  if (v.kind === 'struct' || v.kind === 'union') {
    const pad = ' '.repeat(indent + 2);
    const lines = v.members.map((m) => `${pad}${m.name === '' ? '' : m.name + ' = '}${valueText(m.value, indent + 2, o)}`);
    if (lines.length === 0) return '{<No data fields>}';
    return `{\n${lines.join(',\n')}\n${' '.repeat(indent)}}`;
  }
  if (v.kind === 'array') {
    const limit = o.elements ?? PRINT_ELEMENTS;
    const shown = v.elements.slice(0, limit).map((e) => valueText(e, indent + 2, o));
    const more = v.elements.length > limit || v.truncated > 0 ? '...' : '';
    return `{${shown.join(', ')}${more}}`;
  }
  return scalarText(v, o);
}

/** A decoded structure printed as crash's `struct TYPE ADDR` prints it. */
export function formatStruct(v: Decoded, o: PrintOptions = {}): string {
  if (v.kind === 'struct' || v.kind === 'union') return `${v.type} ${valueText(v, 0, o)}\n`;
  return `${valueText(v, 0, o)}\n`;
}

/** Selected members (crash's `struct TYPE.a,b ADDR`): one `  name = value,` line each. */
export function formatMembers(members: { name: string; value: Decoded }[], o: PrintOptions = {}): string {
  return members.map((m) => `  ${m.name} = ${valueText(m.value, 2, o)},\n`).join('');
}

/**
 * The layout of struct/union `id` as crash's `struct -o` prints it: `[offset] declaration;`
 * per member (offsets in decimal, or the member's address in hex when `address` is given),
 * anonymous members expanded, bitfields with their width, then the size.
 */
export function formatLayout(btf: Btf, id: number, address?: bigint): string {
  const t = btf.type(btf.resolve(id));
  const out: string[] = [`${btf.typeName(t.id)} {`];
  const tag = (bits: number) => (address === undefined ? `[${Math.floor(bits / 8)}]` : `[${(address + BigInt(Math.floor(bits / 8))).toString(16)}]`);
  const width = address === undefined ? 8 : 18;
  const walk = (sid: number, base: number, depth: number) => {
    const st = btf.type(btf.resolve(sid));
    for (const m of st.members ?? []) {
      const mt = btf.type(btf.resolve(m.type));
      const indent = ' '.repeat(4 * depth);
      let bits = m.bitOffset;
      let size = m.bitSize;
      if (size === 0 && mt.kind === BtfKind.INT && (mt.int!.offset !== 0 || mt.int!.bits !== mt.size! * 8)) {
        bits += mt.int!.offset;
        size = mt.int!.bits;
      }
      if (m.name === '' && (mt.kind === BtfKind.STRUCT || mt.kind === BtfKind.UNION)) {
        out.push(`${' '.repeat(width)} ${indent}${mt.kind === BtfKind.STRUCT ? 'struct' : 'union'} {`);
        walk(m.type, base + m.bitOffset, depth + 1);
        out.push(`${' '.repeat(width)} ${indent}};`);
        continue;
      }
      const decl = btf.declare(m.type, m.name) + (size ? ` : ${size}` : '');
      out.push(`${tag(base + bits).padStart(width)} ${indent}${decl};`);
    }
  };
  walk(t.id, 0, 0);
  out.push('}');
  out.push(`SIZE: ${btf.sizeOf(t.id)}`);
  return out.join('\n') + '\n';
}

/**
 * A decoded value as JSON: struct/union → object by member name (anonymous members' members
 * merged in, as C accesses them); integers → number, or a decimal string beyond 2^53; pointers →
 * 0x-hex string; enums → the enumerator name, or the number when no name matches; char arrays →
 * the string up to the first NUL; bools → true/false; arrays → arrays; elided aggregates → null.
 */
export function decodedToJson(v: Decoded): unknown {
  switch (v.kind) {
    case 'struct':
    case 'union': {
      const o: Record<string, unknown> = {};
      for (const m of v.members) {
        const j = decodedToJson(m.value);
        if (m.name === '' && j !== null && typeof j === 'object' && !Array.isArray(j)) Object.assign(o, j);
        else o[m.name] = j;
      }
      return o;
    }
    case 'array':
      return v.elements.map(decodedToJson);
    case 'chars': {
      const nul = v.bytes.indexOf(0);
      return latin1(nul >= 0 ? v.bytes.subarray(0, nul) : v.bytes);
    }
    case 'int':
      if (v.bool) return v.value !== 0n;
      return bigJson(v.value);
    case 'enum':
      return v.name ?? bigJson(v.value);
    case 'ptr':
      return '0x' + v.value.toString(16);
    case 'float':
      return v.value;
    default:
      return null;
  }
}

function bigJson(v: bigint): number | string {
  return v <= BigInt(Number.MAX_SAFE_INTEGER) && v >= -BigInt(Number.MAX_SAFE_INTEGER) ? Number(v) : v.toString();
}
