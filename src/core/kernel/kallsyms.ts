/**
 * The kernel's own symbol table (kallsyms), decoded from a dump without vmlinux.
 *
 * Layout (scripts/kallsyms.c writes it, kernel/kallsyms.c reads it):
 *  - `kallsyms_num_syms`: u32 (an `unsigned long` before 4.20, so read the low 32 bits).
 *  - `kallsyms_names`: for each symbol, its length in tokens then that many token numbers.
 *    Since 6.1 (commit 73bbb94466fd, "kallsyms: support big kernel symbols") a length with
 *    bit 7 set takes two bytes: `(b0 & 0x7f) | (b1 << 7)`. Older kernels never reach a length
 *    of 128 (KSYM_NAME_LEN was 128 characters, and a name is at least one character per
 *    token plus the type), so the two-byte reading is used whenever bit 7 is set; when the
 *    first reading does not end where `kallsyms_markers` begins, the one-byte reading is tried.
 *  - `kallsyms_markers`: the offset in `kallsyms_names` of every 256th symbol (`unsigned long`,
 *    `unsigned int` since 6.x); it follows `kallsyms_names`, and is used here only as a check.
 *  - `kallsyms_token_table`: 256 NUL-terminated strings; `kallsyms_token_index`: u16[256],
 *    the offset of each token in the table. The first character of an expanded name is the
 *    symbol's type letter (`nm` style: T, t, D, d, R, r, B, b, A, W, V, ...).
 *  - Addresses, sorted ascending, in one of four encodings:
 *    `absolute`: `kallsyms_addresses[]`, native words (kernels built without
 *       CONFIG_KALLSYMS_BASE_RELATIVE; the option and the table were removed in 6.11);
 *    `absolute-percpu`: `kallsyms_offsets[]` s32 plus `kallsyms_relative_base`: a value >= 0 is
 *       the address itself (the zero-based per-CPU symbols), a negative one means
 *       `relative_base - 1 - value` (CONFIG_KALLSYMS_ABSOLUTE_PERCPU, x86_64 SMP before 6.15);
 *    `relative`: `relative_base + (u32)value` (base-relative without absolute per-CPU);
 *    `pc-relative`: `&kallsyms_offsets[i] + (s32)value` (kallsyms_relative_base removed, 7.0).
 *    Which one applies is decided by `_stext`: the encoding that gives the `_stext` symbol the
 *    address VMCOREINFO's SYMBOL(_stext) states wins; without it, the first encoding that
 *    gives sorted addresses.
 *  - 6.2 added `kallsyms_seqs_of_names` (a by-name index); the names and addresses are
 *    unchanged by it, and it is not needed here.
 * Since 6.0 VMCOREINFO carries SYMBOL(kallsyms_names), SYMBOL(kallsyms_num_syms),
 * SYMBOL(kallsyms_token_table), SYMBOL(kallsyms_token_index), SYMBOL(kallsyms_offsets) and
 * SYMBOL(kallsyms_relative_base) or SYMBOL(kallsyms_addresses) (kernel/vmcore_info.c).
 *
 * A symbol's size is what the kernel's get_symbol_pos() gives: up to the next symbol with a
 * higher address (0 for the last one).
 */
import { warning, type Warning } from '../warnings.js';
import { VmcoreError, isVmcoreError } from '../errors.js';
import { type Vmcoreinfo } from './vmcoreinfo.js';
import { hex64 } from '../hex.js';
import { scanKallsyms } from './kallsyms-scan.js';
import { isPageLoss, overlapsLoss, readWithLosses, type PartialBytes } from '../loss.js';
import { KERNEL_LIMITS } from '../limits.js';
import { charCodes, latin1 } from '../text.js';

/** Where the kallsyms tables are (kernel virtual addresses). */
export interface KallsymsLocations {
  names: bigint;
  numSyms: bigint;
  tokenTable: bigint;
  tokenIndex: bigint;
  offsets?: bigint;
  relativeBase?: bigint;
  addresses?: bigint;
}

export type KallsymsAddressMode = 'absolute' | 'absolute-percpu' | 'relative' | 'pc-relative';

/** How the tables were located: VMCOREINFO SYMBOL() entries, or a structural scan. */
export type SymbolSource = 'VMCOREINFO' | 'scan';

/** Reads kernel virtual memory; throws a VmcoreError for what it cannot read. */
export type ReadVirt = (va: bigint, length: number) => Promise<Uint8Array>;

export interface KallsymsDecodeOptions {
  /** Byte order of the dump (default little-endian). */
  littleEndian?: boolean;
  /** Word size in bytes (default 8). */
  wordSize?: 4 | 8;
  /** The true address of `_stext` (VMCOREINFO SYMBOL(_stext)), to choose the address encoding. */
  stext?: bigint;
  /**
   * Without `stext`: where the kernel image is known to start (a scan's start); an encoding
   * must give `_stext` an address within 256 MiB of it to be chosen.
   */
  imageNear?: bigint;
  source?: SymbolSource;
  /** File name for error messages. */
  file?: string;
}

/** One symbol of the table. */
export interface KernelSymbol {
  name: string;
  address: bigint;
  /** Type letter as in /proc/kallsyms. */
  type: string;
  /** Bytes up to the next symbol with a higher address (the kernel's rule); 0 for the last. */
  size: bigint;
  /** Module name, for a module's symbol; undefined for the kernel's own. */
  module?: string;
}

/**
 * One module's own symbols (its kallsyms symtab/strtab, see modules.ts), for
 * {@link KernelSymbols.withModules}.
 */
export interface ModuleSymbolTable {
  /** The module's name (`struct module.name`). */
  name: string;
  /** The module's memory: an address inside one of these resolves to this module's symbols. */
  regions: readonly { start: bigint; end: bigint }[];
  /** Its symbols in address order, each with `module` set and its size up to the next symbol or the region's end. */
  symbols: readonly KernelSymbol[];
}

/** An address resolved to the symbol that contains it. */
export interface Symbolized extends KernelSymbol {
  /** Bytes from the symbol's start to the queried address. */
  offset: bigint;
}

/**
 * Symbols of the table that could not be decoded (a page of kallsyms_names, kallsyms_offsets or
 * kallsyms_addresses unreadable): the addresses [start, end) where they lie, so that a lookup
 * there answers "unknown" rather than the nearest symbol that survived.
 */
export interface LostSymbols {
  /** First address that may belong to a lost symbol. */
  start: bigint;
  /** The address of the next symbol that survived (2^64 when none follows). */
  end: bigint;
  /** Number of symbols lost in this range. */
  count: number;
  /** Which table and page: the reason the symbols are missing. */
  reason: string;
}

const KALLSYMS_LIMITS = KERNEL_LIMITS.kallsyms;
const MASK64 = (1n << 64n) - 1n;

/** FNV-1a over a string's UTF-16 code units (KernelSymbols' by-name index). */
function nameHash(s: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < s.length; i++) h = Math.imul(h ^ s.charCodeAt(i), 0x01000193);
  return h >>> 0;
}

/**
 * Symbol names kept as the bytes kallsyms_names expands to (ISO-8859-1: one character per byte),
 * a name made into a string only when it is asked for: a lookup or a backtrace asks for a few
 * hundred of a table's 87,000-200,000, and a string for each cost ~50 ms of decoding and, as they
 * all outlive the young generation, garbage collector time besides (bench/README.md, "Lazy
 * symbol names").
 */
export class PackedSymbolNames {
  /**
   * @param bytes the names laid end to end
   * @param starts where name i begins in `bytes`; `starts[count]` is the end (count + 1 entries,
   *   ascending)
   */
  constructor(
    readonly bytes: Uint8Array,
    readonly starts: Uint32Array,
    private readonly hashes?: Uint32Array,
  ) {
    if (starts.length < 1) throw new Error('PackedSymbolNames: starts needs count + 1 entries');
    if (hashes && hashes.length !== starts.length - 1) throw new Error('PackedSymbolNames: one hash per name');
  }

  get length(): number {
    return this.starts.length - 1;
  }

  /** Name `i` (0 <= i < length). */
  at(i: number): string {
    return charCodes(this.bytes.subarray(this.starts[i]!, this.starts[i + 1]!));
  }

  /** nameHash of name `i`, from its bytes (no string made), or as given to the constructor. */
  hash(i: number): number {
    if (this.hashes) return this.hashes[i]!;
    const b = this.bytes;
    let h = 0x811c9dc5;
    for (let k = this.starts[i]!, e = this.starts[i + 1]!; k < e; k++) h = Math.imul(h ^ b[k]!, 0x01000193);
    return h >>> 0;
  }

  /** True when name `i` is `name` (compared byte by byte: no string made). */
  equals(i: number, name: string): boolean {
    const s = this.starts[i]!;
    if (this.starts[i + 1]! - s !== name.length) return false;
    const b = this.bytes;
    for (let k = 0; k < name.length; k++) if (b[s + k] !== name.charCodeAt(k)) return false;
    return true;
  }

  /** The first index whose name is `name`, or -1. */
  indexOf(name: string): number {
    for (let i = 0; i < this.length; i++) if (this.equals(i, name)) return i;
    return -1;
  }

  /** Every name, in order. */
  all(): string[] {
    const out = new Array<string>(this.length);
    for (let i = 0; i < out.length; i++) out[i] = this.at(i);
    return out;
  }
}

/** Names by table index: strings, or packed bytes ({@link PackedSymbolNames}). */
export type SymbolNames = readonly string[] | PackedSymbolNames;

/**
 * The kernel's symbol table: lookups by name and by address, and iteration in address order.
 * Built by {@link decodeKallsyms} (from the dump) or directly from arrays (tests, modules).
 */
export class KernelSymbols implements Iterable<KernelSymbol> {
  /** Addresses ascending (table order). */
  readonly addresses: BigUint64Array;
  /** The names, packed or as strings (use {@link nameAt}; {@link names} makes every string). */
  private readonly nameTable: SymbolNames;
  private nameStrings: readonly string[] | undefined;
  /** Type letters, one per symbol. */
  readonly types: string;
  /**
   * Places where an address is lower than the one before it. The kernel sorts the table by
   * address (scripts/kallsyms.c), so anything but 0 means a corrupt or misread table.
   */
  readonly unsortedPlaces: number;
  /** The by-name index (indexesOf), built on the first lookup by name; shared with the tables {@link withModules} makes. */
  private readonly nameIndex: { built?: { hashes: Uint32Array; heads: Int32Array; next: Int32Array; mask: number } } = {};
  private moduleTables: readonly ModuleSymbolTable[] = [];
  /** Kernel image bounds used by symbolize(): [_stext or _text, _end). */
  private readonly image: { start: bigint; end: bigint } | undefined;
  private readonly percpu: { start: bigint; end: bigint } | undefined;
  /** Address ranges of symbols that could not be decoded, ascending (see {@link LostSymbols}). */
  readonly lost: readonly LostSymbols[];

  constructor(
    init: { addresses: BigUint64Array; names: SymbolNames; types: string; lost?: readonly LostSymbols[] },
    readonly source: SymbolSource,
    readonly addressMode: KallsymsAddressMode,
    readonly warnings: Warning[] = [],
  ) {
    if (init.names.length !== init.addresses.length || init.types.length !== init.addresses.length) {
      throw new Error('KernelSymbols: arrays of different lengths');
    }
    this.addresses = init.addresses;
    let dips = 0;
    for (let i = 1; i < init.addresses.length; i++) if (init.addresses[i]! < init.addresses[i - 1]!) dips++;
    this.unsortedPlaces = dips;
    this.nameTable = init.names;
    this.types = init.types;
    this.lost = init.lost ?? [];
    const first = (n: string) => {
      const i = this.nameTable.indexOf(n);
      return i < 0 ? undefined : this.addresses[i]!;
    };
    const start = first('_stext') ?? first('_text');
    const text = first('_text');
    const end = first('_end');
    if (start !== undefined && end !== undefined && end > start) {
      this.image = { start: text !== undefined && text < start ? text : start, end };
    }
    const ps = first('__per_cpu_start');
    const pe = first('__per_cpu_end');
    if (ps !== undefined && pe !== undefined && pe > ps) this.percpu = { start: ps, end: pe };
  }

  /**
   * The table indexes of the symbols called `name`, ascending, or undefined. The index is built on
   * the first lookup: a hash of each name, chains in typed arrays (a Map of 87,000-150,000 names
   * cost 30-60 ms, most of what a lookup-only command spends on it).
   */
  private indexesOf(name: string): number[] | undefined {
    let ix = this.nameIndex.built;
    const t = this.nameTable;
    if (!ix) {
      const n = t.length;
      let size = 1024;
      while (size < 2 * n) size *= 2;
      const hashes = new Uint32Array(n);
      const heads = new Int32Array(size).fill(-1);
      const next = new Int32Array(n).fill(-1);
      // from the last symbol to the first: each chain lists its symbols in table order
      for (let i = n - 1; i >= 0; i--) {
        const h = t instanceof PackedSymbolNames ? t.hash(i) : nameHash(t[i]!);
        hashes[i] = h;
        next[i] = heads[h & (size - 1)]!;
        heads[h & (size - 1)] = i;
      }
      ix = this.nameIndex.built = { hashes, heads, next, mask: size - 1 };
    }
    const h = nameHash(name);
    let out: number[] | undefined;
    for (let i = ix.heads[h & ix.mask]!; i >= 0; i = ix.next[i]!) {
      if (ix.hashes[i] === h && (t instanceof PackedSymbolNames ? t.equals(i, name) : t[i] === name)) (out ??= []).push(i);
    }
    return out;
  }

  /** The name of the symbol at table index `i` (0 <= i < count). */
  nameAt(i: number): string {
    const t = this.nameTable;
    return t instanceof PackedSymbolNames ? t.at(i) : t[i]!;
  }

  /** Every name in table order (made on the first call: prefer {@link nameAt}, {@link lookup}). */
  get names(): readonly string[] {
    const t = this.nameTable;
    return (this.nameStrings ??= t instanceof PackedSymbolNames ? t.all() : t);
  }

  /** Number of symbols. */
  get count(): number {
    return this.addresses.length;
  }

  /** The symbol at table index `i` (address order). */
  at(i: number): KernelSymbol | undefined {
    if (i < 0 || i >= this.addresses.length) return undefined;
    return { name: this.nameAt(i), address: this.addresses[i]!, type: this.types[i]!, size: this.sizeAt(i) };
  }

  /**
   * Address of the first kernel symbol called `name` (in address order), or undefined. A
   * `module:name` gives that module's symbol (see {@link withModules}); a plain name is only
   * looked up in the kernel's own table, so kernel internals never resolve to a module's symbol.
   */
  addressOf(name: string): bigint | undefined {
    const v = this.indexesOf(name);
    if (v === undefined) {
      const q = KernelSymbols.qualified(name);
      return q ? this.moduleLookup(q.name, q.module)[0]?.address : undefined;
    }
    return this.addresses[v[0]!];
  }

  /**
   * Every symbol called `name` (local symbols of different files may share a name): the kernel's,
   * or when it has none, every module's of that name; `module:name` gives that module's only.
   */
  lookup(name: string): KernelSymbol[] {
    const v = this.indexesOf(name);
    if (v === undefined) {
      const q = KernelSymbols.qualified(name);
      return q ? this.moduleLookup(q.name, q.module) : this.moduleLookup(name);
    }
    return v.map((i) => this.at(i)!);
  }

  /**
   * The symbol containing `addr`, as the kernel's kallsyms_lookup() gives it: the first of the
   * symbols at the highest address <= addr, with the offset into it. Undefined for an address
   * outside the kernel image (`_text`/`_stext` .. `_end`) and outside the per-CPU section. An
   * address inside a module's memory (see {@link withModules}) gives that module's symbol, its
   * `module` set, as kernel/module/kallsyms.c find_kallsyms_symbol() does.
   */
  symbolize(addr: bigint): Symbolized | undefined {
    const a = addr & MASK64;
    if (this.moduleTables.length > 0) {
      const m = this.moduleSymbolize(a);
      if (m) return m;
    }
    const inImage = this.image ? a >= this.image.start && a < this.image.end : true;
    const inPercpu = this.percpu ? a >= this.percpu.start && a < this.percpu.end : false;
    if (!inImage && !inPercpu) return undefined;
    if (this.lostAt(a)) return undefined;
    let i = this.upperIndex(a);
    if (i < 0) return undefined;
    while (i > 0 && this.addresses[i - 1] === this.addresses[i]) i--;
    const s = this.at(i)!;
    return { ...s, offset: a - s.address };
  }

  /**
   * The range of lost symbols (see {@link lost}) that `addr` falls in, or undefined: an address
   * there may belong to a symbol the dump no longer holds, so {@link symbolize} answers undefined.
   */
  lostAt(addr: bigint): LostSymbols | undefined {
    const a = addr & MASK64;
    return this.lost.find((l) => a >= l.start && a < l.end);
  }

  /** The modules' symbol tables added by {@link withModules} (empty for the kernel's table alone). */
  get modules(): readonly ModuleSymbolTable[] {
    return this.moduleTables;
  }

  /** Number of module symbols (not part of {@link count}, which is the kernel's own table). */
  get moduleSymbolCount(): number {
    let n = 0;
    for (const m of this.moduleTables) n += m.symbols.length;
    return n;
  }

  /**
   * This table plus the modules' symbols: the same kernel symbols (arrays shared), with
   * {@link symbolize} answering inside each module's regions (`name+off [module]`), {@link lookup}
   * finding `module:name` and names that only modules have, and {@link addressOf} `module:name`.
   */
  withModules(tables: readonly ModuleSymbolTable[], warnings: readonly Warning[] = []): KernelSymbols {
    // a copy of this table's fields (its image bounds and name index too: not computed again
    // over every symbol) with the modules and the warnings of its own
    const k = Object.assign(Object.create(KernelSymbols.prototype) as KernelSymbols, this, { warnings: [...this.warnings, ...warnings] });
    k.moduleTables = tables;
    return k;
  }

  /** The module symbols called `name` in module `module` (any module when undefined). */
  private moduleLookup(name: string, module?: string): KernelSymbol[] {
    const out: KernelSymbol[] = [];
    for (const m of this.moduleTables) {
      if (module !== undefined && m.name !== module) continue;
      for (const s of m.symbols) if (s.name === name) out.push(s);
    }
    return out;
  }

  /** `module:name` split, or undefined for a plain name. */
  private static qualified(name: string): { module: string; name: string } | undefined {
    const i = name.indexOf(':');
    if (i <= 0 || i === name.length - 1) return undefined;
    return { module: name.slice(0, i), name: name.slice(i + 1) };
  }

  /** The symbol of a module region containing `a`, as the kernel's find_kallsyms_symbol() gives it. */
  private moduleSymbolize(a: bigint): Symbolized | undefined {
    for (const m of this.moduleTables) {
      if (!m.regions.some((r) => a >= r.start && a < r.end)) continue;
      const syms = m.symbols;
      let lo = 0;
      let hi = syms.length;
      while (lo < hi) {
        const mid = (lo + hi) >>> 1;
        if (syms[mid]!.address <= a) lo = mid + 1;
        else hi = mid;
      }
      let i = lo - 1;
      if (i < 0) return undefined;
      while (i > 0 && syms[i - 1]!.address === syms[i]!.address) i--;
      const s = syms[i]!;
      return { ...s, offset: a - s.address };
    }
    return undefined;
  }

  *[Symbol.iterator](): Iterator<KernelSymbol> {
    for (let i = 0; i < this.addresses.length; i++) yield this.at(i)!;
  }

  /** Index of the last symbol with address <= a, or -1. */
  private upperIndex(a: bigint): number {
    let lo = 0;
    let hi = this.addresses.length; // first index with address > a
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (this.addresses[mid]! <= a) lo = mid + 1;
      else hi = mid;
    }
    return lo - 1;
  }

  private sizeAt(i: number): bigint {
    const a = this.addresses[i]!;
    // a lost symbol may start before the next surviving one: the size ends where the loss begins
    const cut = this.lost.find((l) => l.start > a)?.start;
    for (let j = i + 1; j < this.addresses.length; j++) {
      const b = this.addresses[j]!;
      if (b > a) return cut !== undefined && cut < b ? cut - a : b - a;
    }
    return cut !== undefined ? cut - a : 0n;
  }
}

const TWO32 = 2 ** 32;
/** Where the low and the high half of a 64-bit element lie in a Uint32Array over it (host order). */
const LO32 = new Uint8Array(new Uint32Array([1]).buffer)[0] === 1 ? 0 : 1;
const HI32 = 1 - LO32;

/** The kallsyms locations named by VMCOREINFO (6.0+), or undefined when any required one is absent. */
export function kallsymsFromVmcoreinfo(vi: Vmcoreinfo): KallsymsLocations | undefined {
  const names = vi.symbol('kallsyms_names');
  const numSyms = vi.symbol('kallsyms_num_syms');
  const tokenTable = vi.symbol('kallsyms_token_table');
  const tokenIndex = vi.symbol('kallsyms_token_index');
  const offsets = vi.symbol('kallsyms_offsets');
  const relativeBase = vi.symbol('kallsyms_relative_base');
  const addresses = vi.symbol('kallsyms_addresses');
  if (names === undefined || numSyms === undefined || tokenTable === undefined || tokenIndex === undefined) return undefined;
  if (offsets === undefined && addresses === undefined) return undefined;
  return {
    names,
    numSyms,
    tokenTable,
    tokenIndex,
    ...(offsets !== undefined ? { offsets } : {}),
    ...(relativeBase !== undefined ? { relativeBase } : {}),
    ...(addresses !== undefined ? { addresses } : {}),
  };
}

async function readTable(read: ReadVirt, va: bigint, n: number, table: string, file: string | undefined): Promise<Uint8Array> {
  try {
    return await read(va, n);
  } catch (e) {
    throw tableReadError(e, va, n, table, file);
  }
}

/** A read error of a kallsyms table, with the table's name and address (other errors pass through). */
function tableReadError(e: unknown, va: bigint, n: number, table: string, file: string | undefined): unknown {
  if (!isVmcoreError(e)) return e;
  return new VmcoreError(e.code, `${table}: cannot read ${n} bytes at ${hex64(va)}: ${e.message}`, {
    ...(file ? { file } : {}),
    address: va,
    field: table,
    cause: e,
  });
}

function corrupt(msg: string, va: bigint, field: string, file: string | undefined): VmcoreError {
  return new VmcoreError('BAD_FIELD', msg, { ...(file ? { file } : {}), address: va, field });
}

/**
 * Decode the kallsyms tables at `loc` through `read`.
 * @param read kernel virtual memory reader (e.g. `KernelInfo.readVirt`).
 * @param loc table addresses (from {@link kallsymsFromVmcoreinfo} or a scan).
 * @returns the table, sorted by address as the kernel stores it.
 * @throws VmcoreError PAGE_NOT_PRESENT / ADDRESS_TRANSLATION (a table cannot be read; the
 *   message names the table and address), BAD_FIELD (a count, length, token or address that
 *   cannot be right), OUT_OF_BOUNDS (a table larger than KERNEL_LIMITS.kallsyms (limits.ts)).
 */
export async function decodeKallsyms(read: ReadVirt, loc: KallsymsLocations, opts: KallsymsDecodeOptions = {}): Promise<KernelSymbols> {
  const le = opts.littleEndian ?? true;
  const word = opts.wordSize ?? 8;
  const file = opts.file;
  const warnings: Warning[] = [];

  // count
  const numBuf = await readTable(read, loc.numSyms, 4, 'kallsyms_num_syms', file);
  const num = new DataView(numBuf.buffer, numBuf.byteOffset, 4).getUint32(0, le);
  if (num === 0 || num > KALLSYMS_LIMITS.maxSymbols) {
    throw corrupt(`kallsyms_num_syms = ${num} is not a plausible symbol count (1..${KALLSYMS_LIMITS.maxSymbols})`, loc.numSyms, 'kallsyms_num_syms', file);
  }

  // tokens
  const idxBuf = await readTable(read, loc.tokenIndex, 512, 'kallsyms_token_index', file);
  const idxView = new DataView(idxBuf.buffer, idxBuf.byteOffset, 512);
  const tokenOffsets: number[] = [];
  let maxTok = 0;
  for (let i = 0; i < 256; i++) {
    const o = idxView.getUint16(i * 2, le);
    tokenOffsets.push(o);
    maxTok = Math.max(maxTok, o);
  }
  // the table is read up to the last token's end; it normally sits just before the index
  const tokLimit = loc.tokenIndex > loc.tokenTable && loc.tokenIndex - loc.tokenTable <= BigInt(KALLSYMS_LIMITS.maxTokenTableBytes)
    ? Number(loc.tokenIndex - loc.tokenTable)
    : Math.min(KALLSYMS_LIMITS.maxTokenTableBytes, maxTok + 256);
  if (maxTok >= tokLimit) throw corrupt(`kallsyms_token_index holds offset ${maxTok}, beyond the token table (${tokLimit} bytes)`, loc.tokenIndex, 'kallsyms_token_index', file);
  const tokBuf = await readTable(read, loc.tokenTable, tokLimit, 'kallsyms_token_table', file);
  const tokenBytes: Uint8Array[] = [];
  for (let i = 0; i < 256; i++) {
    const o = tokenOffsets[i]!;
    const end = tokBuf.indexOf(0, o);
    if (end < 0) throw corrupt(`token ${i} at offset ${o} has no terminating NUL`, loc.tokenTable + BigInt(o), 'kallsyms_token_table', file);
    tokenBytes.push(tokBuf.slice(o, end));
  }
  // each token as text (latin1 is one character per byte, so a name is the concatenation of its
  // tokens' texts, its length the number of bytes)
  let tokenText: string[] | undefined; // decodeOne's, made on its first call

  // names
  const namesBound = loc.tokenTable > loc.names && loc.tokenTable - loc.names <= BigInt(KALLSYMS_LIMITS.maxNamesBytes);
  const namesLimit = namesBound ? Number(loc.tokenTable - loc.names) : KALLSYMS_LIMITS.maxNamesBytes;
  // the whole table is read at once: up to kallsyms_token_table when that follows it (the
  // usual layout; pages that cannot be read are recorded, see below), else in growing steps
  // until every name fits
  let namesBuf: Uint8Array;
  let namesLost: PartialBytes['lost'] = [];
  if (namesBound) {
    const p = await readPartial(read, loc.names, namesLimit, 'kallsyms_names', file);
    namesBuf = p.bytes;
    namesLost = p.lost;
  } else namesBuf = await readTable(read, loc.names, Math.min(namesLimit, 4 << 20), 'kallsyms_names', file);
  const SHORT = 'short' as const;
  const LOST = 'lost' as const;
  /** Symbol `i` at `at`: its type and name and where the next begins; 'lost' when its bytes touch `lost`. */
  const decodeOne = (at: number, long: boolean, i: number, lost: PartialBytes['lost']) => {
    const b = namesBuf;
    let off = at;
    if (off >= b.length) return SHORT;
    if (lost.length && overlapsLoss(lost, at, at + 2)) return LOST;
    let len = b[off++]!;
    const isLong = (len & 0x80) !== 0;
    if (isLong && long) {
      if (off >= b.length) return SHORT;
      len = (len & 0x7f) | (b[off++]! << 7);
    }
    if (len === 0) throw corrupt(`symbol ${i} has length 0`, loc.names + BigInt(at), 'kallsyms_names', file);
    if (off + len > b.length) return SHORT;
    if (lost.length && overlapsLoss(lost, at, off + len)) return LOST;
    let text = '';
    const texts = (tokenText ??= tokenBytes.map((t) => latin1(t)));
    for (let k = off; k < off + len; k++) {
      text += texts[b[k]!]!;
      if (text.length > KALLSYMS_LIMITS.maxNameLength + 1) {
        throw corrupt(`symbol ${i} decodes to more than ${KALLSYMS_LIMITS.maxNameLength} characters`, loc.names + BigInt(at), 'kallsyms_names', file);
      }
    }
    const n = text.length;
    if (n < 2) throw corrupt(`symbol ${i} decodes to ${n} characters`, loc.names + BigInt(at), 'kallsyms_names', file);
    // the type letter is the first byte
    let k0 = off;
    while (tokenBytes[b[k0]!]!.length === 0) k0++;
    return { type: String.fromCharCode(tokenBytes[b[k0]!]![0]!), name: text.slice(1), next: off + len, isLong };
  };
  // the tokens laid end to end, for decodeNames' copy loop
  const tokStart = new Uint32Array(256);
  const tokLen = new Uint32Array(256);
  let tokTotal = 0;
  for (let i = 0; i < 256; i++) tokTotal += tokenBytes[i]!.length;
  const tokFlat = new Uint8Array(tokTotal);
  for (let i = 0, o = 0; i < 256; i++) {
    tokStart[i] = o;
    tokLen[i] = tokenBytes[i]!.length;
    tokFlat.set(tokenBytes[i]!, o);
    o += tokenBytes[i]!.length;
  }
  /**
   * Every name of an undamaged table (decodeOne's rules and errors): the tokens are expanded into
   * one buffer, decoded to one string, and each name is a slice of it, where decodeOne builds
   * each name from its tokens' texts (200,000 symbols: ~6 strings each, most of them garbage).
   */
  const decodeNames = (long: boolean) => {
    const b = namesBuf;
    const maxText = KALLSYMS_LIMITS.maxNameLength + 1;
    // the expansions, each less its first byte (the type letter, as in decodeOne), end to end
    let out = new Uint8Array(Math.max(4096, b.length * 3));
    let o = 0;
    /** Where each symbol's name starts in `out`; starts[num] is the end. */
    const starts = new Uint32Array(num + 1);
    const typeBytes = new Uint8Array(num);
    /** nameHash of each name, made as its bytes are written (PackedSymbolNames). */
    const hashes = new Uint32Array(num);
    const markers: number[] = [];
    let off = 0;
    let sawLong = false;
    for (let i = 0; i < num; i++) {
      if ((i & 0xff) === 0) markers.push(off);
      const at = off;
      if (off >= b.length) return { short: true as const };
      let len = b[off++]!;
      const isLong = (len & 0x80) !== 0;
      if (isLong && long) {
        if (off >= b.length) return { short: true as const };
        len = (len & 0x7f) | (b[off++]! << 7);
      }
      if (len === 0) throw corrupt(`symbol ${i} has length 0`, loc.names + BigInt(at), 'kallsyms_names', file);
      if (off + len > b.length) return { short: true as const };
      sawLong ||= isLong;
      const s = o;
      // expansion length so far: the type letter (once taken) and the name's bytes
      let typed = 0;
      let h = 0x811c9dc5;
      for (let k = off; k < off + len; k++) {
        const t = b[k]!;
        let j = tokStart[t]!;
        const e = j + tokLen[t]!;
        if (typed === 0 && j < e) {
          typeBytes[i] = tokFlat[j++]!;
          typed = 1;
        }
        if (o + (e - j) > out.length) {
          const grown = new Uint8Array(out.length * 2);
          grown.set(out.subarray(0, o));
          out = grown;
        }
        for (; j < e; j++) {
          const c = tokFlat[j]!;
          out[o++] = c;
          h = Math.imul(h ^ c, 0x01000193);
        }
        if (o - s + typed > maxText) throw corrupt(`symbol ${i} decodes to more than ${KALLSYMS_LIMITS.maxNameLength} characters`, loc.names + BigInt(at), 'kallsyms_names', file);
      }
      if (o - s + typed < 2) throw corrupt(`symbol ${i} decodes to ${o - s + typed} characters`, loc.names + BigInt(at), 'kallsyms_names', file);
      starts[i] = s;
      hashes[i] = h >>> 0;
      off += len;
    }
    starts[num] = o;
    const types = charCodes(typeBytes);
    return { short: false as const, names: new PackedSymbolNames(out.subarray(0, o), starts, hashes), types, end: off, markers, sawLong };
  };
  const decodeAll = async (long: boolean) => {
    for (;;) {
      const r = decodeNames(long);
      if (!r.short) return r;
      if (namesBuf.length >= namesLimit) {
        throw new VmcoreError('OUT_OF_BOUNDS', `kallsyms_names: ${num} names do not fit in ${namesLimit} bytes`, {
          ...(file ? { file } : {}),
          offset: loc.names,
          field: 'kallsyms_names',
        });
      }
      namesBuf = await readTable(read, loc.names, Math.min(namesLimit, namesBuf.length * 2), 'kallsyms_names', file);
    }
  };
  // two-byte lengths (6.1+) unless only the one-byte reading ends where kallsyms_markers begin
  type Decoded = { names: PackedSymbolNames | (string | undefined)[]; types: string };
  const attempt = async (long: boolean): Promise<Awaited<ReturnType<typeof decodeAll>> | VmcoreError> => {
    try {
      return await decodeAll(long);
    } catch (e) {
      if (!isVmcoreError(e)) throw e;
      return e;
    }
  };
  /** Why each symbol is lost: an index into `losses` (-1: not lost). */
  const why = new Int32Array(num).fill(-1);
  const losses: { table: string; va: bigint; loss: PartialBytes['lost'][number]; count: number; note: string }[] = [];
  const lose = (i: number, r: number) => {
    if (why[i]! >= 0) return;
    why[i] = r;
    losses[r]!.count++;
  };
  let decoded: Decoded;
  if (namesLost.length === 0) {
    const long = await attempt(true);
    if (!(long instanceof VmcoreError) && (!long.sawLong || (await markersFollow(read, loc.names, long.end, long.markers, le)))) {
      decoded = long;
    } else {
      const short = await attempt(false);
      if (!(short instanceof VmcoreError) && short.sawLong && (await markersFollow(read, loc.names, short.end, short.markers, le))) decoded = short;
      else if (long instanceof VmcoreError) throw long;
      else {
        decoded = long;
        warnings.push(warning('SYMBOLS_DAMAGED', 'kallsyms_markers do not follow kallsyms_names where expected; names read with two-byte lengths (6.1+)'));
      }
    }
  } else {
    const d = await decodeDamagedNames(read, loc, num, namesLimit, { le, word, file }, decodeOne, namesLost, (loss, note) => losses.push({ table: 'kallsyms_names', va: loc.names, loss, count: 0, note }) - 1, lose, warnings);
    decoded = { names: d.names, types: d.types.join('') };
  }

  // addresses
  const addresses = new BigUint64Array(num);
  const addressLost = (tableVa: bigint, lost: PartialBytes['lost'], size: number, table: string) => {
    const known = new Uint8Array(num).fill(1);
    for (const l of lost) {
      const r = losses.push({ table, va: tableVa, loss: l, count: 0, note: 'the symbols whose entries it holds' }) - 1;
      for (let i = Math.floor(l.start / size); i < num && i * size < l.end; i++) {
        known[i] = 0;
        lose(i, r);
      }
    }
    return known;
  };
  let known: Uint8Array;
  let mode: KallsymsAddressMode;
  const stextIdx = decoded.names.indexOf('_stext');
  if (loc.addresses !== undefined) {
    mode = 'absolute';
    const n = num * word;
    const p = await readPartial(read, loc.addresses, n, 'kallsyms_addresses', file);
    known = addressLost(loc.addresses, p.lost, word, 'kallsyms_addresses');
    const dv = new DataView(p.bytes.buffer, p.bytes.byteOffset, n);
    for (let i = 0; i < num; i++) addresses[i] = word === 8 ? dv.getBigUint64(i * 8, le) : BigInt(dv.getUint32(i * 4, le));
  } else if (loc.offsets !== undefined) {
    const n = num * 4;
    const p = await readPartial(read, loc.offsets, n, 'kallsyms_offsets', file);
    known = addressLost(loc.offsets, p.lost, 4, 'kallsyms_offsets');
    const dv = new DataView(p.bytes.buffer, p.bytes.byteOffset, n);
    let base: bigint | undefined;
    if (loc.relativeBase !== undefined) {
      const b = await readTable(read, loc.relativeBase, word, 'kallsyms_relative_base', file);
      const bv = new DataView(b.buffer, b.byteOffset, word);
      base = word === 8 ? bv.getBigUint64(0, le) : BigInt(bv.getUint32(0, le));
    }
    const wmask = word === 8 ? MASK64 : 0xffffffffn;
    const calc: Record<'absolute-percpu' | 'relative' | 'pc-relative', (i: number) => bigint> = {
      'absolute-percpu': (i) => {
        const v = dv.getInt32(i * 4, le);
        return v >= 0 ? BigInt(v) : (base! - 1n - BigInt(v)) & wmask;
      },
      relative: (i) => (base! + BigInt(dv.getUint32(i * 4, le))) & wmask,
      'pc-relative': (i) => (loc.offsets! + BigInt(i * 4) + BigInt(dv.getInt32(i * 4, le))) & wmask,
    };
    const candidates: (keyof typeof calc)[] = base !== undefined ? ['absolute-percpu', 'relative'] : ['pc-relative'];
    // every address as calc gives it, written as two 32-bit halves (a BigInt for each of 87,000 to
    // 200,000 symbols, twice, was most of the table's decoding time); unknown entries stay 0
    const a32 = new Uint32Array(addresses.buffer, addresses.byteOffset, num * 2);
    const halves = (x: bigint | undefined): [number, number] => (x === undefined ? [0, 0] : [Number((x >> 32n) & 0xffffffffn), Number(x & 0xffffffffn)]);
    const [baseHi, baseLo] = halves(base);
    const [offHi, offLo] = halves(loc.offsets);
    /** addresses[i] = (bHi:bLo + d) mod 2^64 (2^32 for a 32-bit kernel), d an integer of at most 2^52. */
    const put = (i: number, bHi: number, bLo: number, d: number) => {
      const q = Math.floor(d / TWO32);
      let lo = bLo + (d - q * TWO32);
      let hi = bHi + q;
      if (lo >= TWO32) {
        lo -= TWO32;
        hi++;
      }
      a32[2 * i + LO32] = lo;
      a32[2 * i + HI32] = word === 8 ? ((hi % TWO32) + TWO32) % TWO32 : 0;
    };
    let filled: keyof typeof calc | undefined;
    /** Fills `addresses` in mode m; true when the known ones ascend (as the kernel sorts them). */
    const fill = (m: keyof typeof calc): boolean => {
      filled = m;
      let pHi = 0;
      let pLo = 0;
      let ascending = true;
      for (let i = 0; i < num; i++) {
        if (!known[i]) {
          a32[2 * i] = 0;
          a32[2 * i + 1] = 0;
          continue;
        }
        if (m === 'absolute-percpu') {
          const v = dv.getInt32(i * 4, le);
          if (v >= 0) put(i, 0, 0, v);
          else put(i, baseHi, baseLo, -1 - v);
        } else if (m === 'relative') put(i, baseHi, baseLo, dv.getUint32(i * 4, le));
        else put(i, offHi, offLo, i * 4 + dv.getInt32(i * 4, le));
        const hi = a32[2 * i + HI32]!;
        const lo = a32[2 * i + LO32]!;
        if (hi < pHi || (hi === pHi && lo < pLo)) ascending = false;
        pHi = hi;
        pLo = lo;
      }
      return ascending;
    };
    const stextKnown = stextIdx >= 0 && known[stextIdx] === 1;
    let chosen: keyof typeof calc | undefined;
    if (opts.stext !== undefined && stextKnown) chosen = candidates.find((m) => calc[m](stextIdx) === opts.stext);
    if (chosen === undefined && opts.stext !== undefined && stextKnown) {
      throw corrupt(
        `no address encoding gives _stext its VMCOREINFO address ${hex64(opts.stext)} (${candidates.map((m) => `${m}: ${hex64(calc[m](stextIdx))}`).join(', ')})`,
        loc.offsets,
        'kallsyms_offsets',
        file,
      );
    }
    const near = (m: keyof typeof calc) => {
      if (opts.imageNear === undefined || !stextKnown) return true;
      const a = calc[m](stextIdx);
      return (a > opts.imageNear ? a - opts.imageNear : opts.imageNear - a) <= 256n << 20n;
    };
    chosen ??= candidates.find((m) => near(m) && fill(m));
    if (chosen === undefined) throw corrupt('kallsyms_offsets give unsorted addresses in every encoding', loc.offsets, 'kallsyms_offsets', file);
    mode = chosen;
    if (filled !== chosen) fill(chosen);
  } else {
    throw new VmcoreError('UNSUPPORTED', 'kallsyms: neither kallsyms_offsets nor kallsyms_addresses is known', { ...(file ? { file } : {}) });
  }

  // what was lost: dropped from the table, one warning per unreadable range, and the address
  // ranges where a lookup must say "unknown" rather than give a surviving neighbour
  let table: { addresses: BigUint64Array; names: SymbolNames; types: string } = { addresses, names: decoded.names as SymbolNames, types: decoded.types };
  const lostRanges: LostSymbols[] = [];
  if (losses.length > 0) {
    const keep: number[] = [];
    for (let i = 0; i < num; i++) if (why[i]! < 0) keep.push(i);
    for (let i = 0; i < num; ) {
      if (why[i]! < 0) {
        i++;
        continue;
      }
      let j = i;
      while (j + 1 < num && why[j + 1]! >= 0) j++;
      // a lost symbol at the address of the surviving one before it hides nothing
      const prev = i > 0 ? addresses[i - 1]! : undefined;
      let lo: bigint | undefined;
      for (let e = i; e <= j; e++) {
        const c = known[e] ? (prev === undefined || addresses[e]! > prev ? addresses[e]! : undefined) : prev === undefined ? 0n : prev + 1n;
        if (c !== undefined && (lo === undefined || c < lo)) lo = c;
      }
      const hi = j + 1 < num ? addresses[j + 1]! : 1n << 64n;
      const l = losses[why[i]!]!;
      if (lo !== undefined && lo < hi) lostRanges.push({ start: lo, end: hi, count: j - i + 1, reason: `${l.table} at ${hex64(l.va + BigInt(l.loss.start))}: ${l.loss.error.message}` });
      i = j + 1;
    }
    for (const l of losses) {
      if (l.count === 0) continue;
      warnings.push(warning('SYMBOLS_DAMAGED', `${l.table}: ${hex64(l.va + BigInt(l.loss.start))}..${hex64(l.va + BigInt(l.loss.end))} cannot be read (${l.loss.error.message}); ${l.count} of ${num} symbols lost (${l.note}), lookups there answer unknown`));
    }
    const names = decoded.names;
    table = {
      addresses: BigUint64Array.from(keep, (i) => addresses[i]!),
      names: keep.map((i) => (names instanceof PackedSymbolNames ? names.at(i) : names[i]!)),
      types: keep.map((i) => decoded.types[i]!).join(''),
    };
  }
  const symbols = new KernelSymbols({ ...table, lost: lostRanges }, opts.source ?? 'VMCOREINFO', mode, warnings);
  const dips = symbols.unsortedPlaces;
  if (dips > 0) warnings.push(warning('SYMBOLS_DAMAGED', `kallsyms addresses are not sorted (${dips} places); lookups by address may be wrong`));
  if (opts.stext !== undefined && stextIdx >= 0 && known[stextIdx] && addresses[stextIdx] !== opts.stext) {
    warnings.push(warning('SYMBOLS_DAMAGED', `kallsyms gives _stext ${hex64(addresses[stextIdx]!)}, VMCOREINFO says ${hex64(opts.stext)}`));
  }
  return symbols;
}

type DecodeOne = (at: number, long: boolean, i: number, lost: PartialBytes['lost']) => 'short' | 'lost' | { type: string; name: string; next: number; isLong: boolean };

/**
 * kallsyms_names with unreadable pages: each 256-symbol block starts at its kallsyms_markers
 * offset, so a lost page costs the blocks it overlaps and the others decode as usual (the length
 * encoding is the one whose intact blocks each end where the next marker says). Without a
 * readable kallsyms_markers the names are decoded up to the first lost byte and the rest is lost.
 * `addLoss` registers a loss and gives its index for `lose(symbol, index)`.
 */
async function decodeDamagedNames(
  read: ReadVirt,
  loc: KallsymsLocations,
  num: number,
  namesLength: number,
  o: { le: boolean; word: number; file: string | undefined },
  decodeOne: DecodeOne,
  namesLost: PartialBytes['lost'],
  addLoss: (loss: PartialBytes['lost'][number], note: string) => number,
  lose: (i: number, r: number) => void,
  warnings: Warning[],
): Promise<{ names: (string | undefined)[]; types: string[] }> {
  const names: (string | undefined)[] = new Array<string | undefined>(num);
  const types: string[] = new Array<string>(num).fill('?');
  const markers = await findMarkers(read, loc, num, namesLength, o.le);
  const lossIndex = new Map<PartialBytes['lost'][number], number>();
  const reasonOf = (at: number, end: number, note: string) => {
    const l = overlapsLoss(namesLost, at, end) ?? namesLost.find((x) => x.start >= at) ?? namesLost[namesLost.length - 1]!;
    let r = lossIndex.get(l);
    if (r === undefined) lossIndex.set(l, (r = addLoss(l, note)));
    return r;
  };
  if (!markers) {
    warnings.push(warning('SYMBOLS_DAMAGED', 'kallsyms_markers not found after kallsyms_names: the names after the first unreadable page cannot be placed'));
    for (const long of [true, false]) {
      let off = 0;
      let i = 0;
      try {
        for (; i < num; i++) {
          const s = decodeOne(off, long, i, namesLost);
          if (s === 'short') throw corrupt(`kallsyms_names: symbol ${i} runs past the table`, loc.names + BigInt(off), 'kallsyms_names', o.file);
          if (s === 'lost') break;
          names[i] = s.name;
          types[i] = s.type;
          off = s.next;
        }
      } catch (e) {
        if (!isVmcoreError(e) || !long) throw e;
        continue;
      }
      const r = reasonOf(off, off + 2, 'this symbol and all after it: without kallsyms_markers the names cannot be placed after a gap');
      for (; i < num; i++) lose(i, r);
      break;
    }
    return { names, types };
  }
  let failure: VmcoreError | undefined;
  for (const long of [true, false]) {
    try {
      let ok = true;
      const lostBlocks: number[] = [];
      for (let bk = 0; bk < markers.length && ok; bk++) {
        let off = markers[bk]!;
        const first = bk * 256;
        const n = Math.min(256, num - first);
        for (let k = 0; k < n; k++) {
          const s = decodeOne(off, long, first + k, namesLost);
          if (s === 'short') throw corrupt(`kallsyms_names: symbol ${first + k} runs past the table`, loc.names + BigInt(off), 'kallsyms_names', o.file);
          if (s === 'lost') {
            lostBlocks.push(bk);
            break;
          }
          names[first + k] = s.name;
          types[first + k] = s.type;
          off = s.next;
        }
        if (lostBlocks[lostBlocks.length - 1] !== bk && bk + 1 < markers.length && off !== markers[bk + 1]) ok = false;
      }
      if (!ok) continue;
      for (const bk of lostBlocks) {
        const end = bk + 1 < markers.length ? markers[bk + 1]! : namesLength;
        const r = reasonOf(markers[bk]!, end, 'the 256-symbol blocks of kallsyms_markers it overlaps');
        for (let i = bk * 256; i < Math.min(num, bk * 256 + 256); i++) {
          names[i] = undefined;
          types[i] = '?';
          lose(i, r);
        }
      }
      return { names, types };
    } catch (e) {
      if (!isVmcoreError(e)) throw e;
      failure = e;
    }
  }
  throw failure ?? corrupt('kallsyms_names: no length encoding decodes the readable blocks to the offsets kallsyms_markers give', loc.names, 'kallsyms_names', o.file);
}

/**
 * kallsyms_markers, for a kallsyms_names with unreadable pages: scripts/kallsyms.c puts it right
 * after kallsyms_names, each table aligned to 8 (4 on 32-bit), followed by kallsyms_token_table
 * (6.1, 6.4+) or kallsyms_seqs_of_names (6.2, 6.3: 3 bytes a symbol, then the token table). Its
 * ceil(num / 256) entries are u32 (6.x) or native words, start with 0, increase, and stay inside
 * kallsyms_names. Undefined when no candidate position holds such a table (or it cannot be read).
 */
async function findMarkers(read: ReadVirt, loc: KallsymsLocations, num: number, namesLength: number, le: boolean): Promise<number[] | undefined> {
  const m = Math.ceil(num / 256);
  const align8 = (n: number) => (n + 7) & ~7;
  for (const tail of [0, align8(num * 3)]) {
    for (const w of [4, 8]) {
      for (const pad of [0, 4]) {
        const start = namesLength - tail - pad - m * w;
        if (start <= 0 || start % 4 !== 0) continue;
        let buf: Uint8Array;
        try {
          buf = await read(loc.names + BigInt(start), m * w);
        } catch (e) {
          if (isPageLoss(e)) continue;
          throw e;
        }
        const dv = new DataView(buf.buffer, buf.byteOffset, buf.length);
        const out: number[] = [];
        let ok = true;
        for (let k = 0; k < m && ok; k++) {
          if (w === 8 && dv.getUint32(k * 8 + (le ? 4 : 0), le) !== 0) ok = false;
          const v = dv.getUint32(w === 8 ? k * 8 + (le ? 0 : 4) : k * 4, le);
          // each symbol takes at least 2 bytes: its length and one token
          if (k === 0 ? v !== 0 : v < out[k - 1]! + 512) ok = false;
          if (v >= start) ok = false;
          out.push(v);
        }
        if (ok) return out;
      }
    }
  }
  return undefined;
}

/**
 * A table read page by page (see readWithLosses): the pages that cannot be read are returned as
 * losses; a table none of whose pages can be read throws as {@link readTable} does.
 */
async function readPartial(read: ReadVirt, va: bigint, n: number, table: string, file: string | undefined): Promise<PartialBytes> {
  try {
    const p = await readWithLosses(read, va, n);
    if (p.lost.length === 1 && p.lost[0]!.start === 0 && p.lost[0]!.end === n) throw p.lost[0]!.error;
    return p;
  } catch (e) {
    throw tableReadError(e, va, n, table, file);
  }
}

/**
 * True when kallsyms_markers (u32 or native-word entries, aligned to 4 or 8) start within a few
 * bytes after the names table ending at `end`, holding the offsets of every 256th symbol.
 */
async function markersFollow(read: ReadVirt, names: bigint, end: number, markers: number[], le: boolean): Promise<boolean> {
  if (markers.length < 2) return true; // nothing to check against
  let buf: Uint8Array;
  try {
    buf = await read(names + BigInt(end), 16 + 16);
  } catch {
    return false;
  }
  const dv = new DataView(buf.buffer, buf.byteOffset, buf.length);
  for (let pad = 0; pad < 8; pad++) {
    if ((end + pad) % 4 !== 0) continue;
    if (dv.getUint32(pad, le) !== 0) continue;
    if (dv.getUint32(pad + 4, le) === markers[1]) return true;
    if ((end + pad) % 8 === 0 && dv.getUint32(pad + 4, le) === 0 && dv.getUint32(pad + 8, le) === markers[1]) return true;
  }
  return false;
}

/** The parts of the kernel analysis that symbol loading uses. */
export interface SymbolKernel {
  vmcoreinfo: Vmcoreinfo | undefined;
  readVirt: ReadVirt;
  files?: readonly { name: string }[];
  /** 'x86_64' or 'aarch64': where the kernel image starts when VMCOREINFO has no `_stext`. */
  arch?: string;
}

/** x86_64 `__START_KERNEL` (arch/x86/include/asm/page_64_types.h): `_text` without KASLR. */
const X86_64_START_KERNEL = 0xffffffff81000000n;

/**
 * Load the kernel's symbol table from a dump: through VMCOREINFO's SYMBOL(kallsyms_*) entries
 * (Linux 6.0+), else by a scan of the kernel image for the tables' structure (see
 * kallsyms-scan.ts), from VMCOREINFO's `_stext` (x86_64: `__START_KERNEL` + KERNELOFFSET when
 * `_stext` is absent). The table's `source` says which.
 * @param kernel the `analyzeKernel` result (VMCOREINFO and kernel virtual memory).
 * @throws VmcoreError NO_SYMBOLS when the tables cannot be located (no VMCOREINFO, or the scan
 *   found nothing), or the errors of {@link decodeKallsyms} when they are named by VMCOREINFO
 *   but cannot be read.
 */
export async function loadKernelSymbols(kernel: SymbolKernel, opts: { file?: string } = {}): Promise<KernelSymbols> {
  const vi = kernel.vmcoreinfo;
  const file = opts.file ?? kernel.files?.[0]?.name;
  if (!vi) throw new VmcoreError('NO_SYMBOLS', 'no VMCOREINFO, so the kallsyms tables cannot be located', { ...(file ? { file } : {}) });
  const loc = kallsymsFromVmcoreinfo(vi);
  const stext = vi.symbol('_stext');
  if (loc) return decodeKallsyms(kernel.readVirt, loc, { source: 'VMCOREINFO', ...(stext !== undefined ? { stext } : {}), ...(file ? { file } : {}) });
  const start = stext ?? vi.symbol('_text') ?? (kernel.arch === undefined || kernel.arch === 'x86_64' ? X86_64_START_KERNEL + (vi.kernelOffset ?? 0n) : undefined);
  if (start === undefined) {
    throw new VmcoreError('NO_SYMBOLS', 'VMCOREINFO has no SYMBOL(kallsyms_*) entries (Linux 6.0+ writes them) and no _stext to scan the kernel image from', {
      ...(file ? { file } : {}),
    });
  }
  const r = await scanKallsyms(kernel.readVirt, { start, ...(stext !== undefined ? { stext } : {}), ...(file ? { file } : {}) });
  return r.symbols;
}
