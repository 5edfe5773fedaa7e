/**
 * The loaded modules of a dump, read through the kernel's BTF: the `modules` list of
 * `struct module`, each one's name, state, memory, taints and its own symbol table.
 *
 * Facts from the kernel sources:
 *  - modules are linked on the static list `modules` through `struct module.list`
 *    (kernel/module/main.c);
 *  - the module's memory: since 6.4 (commit ac3b43283923, "module: replace module_layout with
 *    module_memory") `struct module_memory mem[MOD_MEM_NUM_TYPES]`, indexed by
 *    `enum mod_mem_type` (MOD_TEXT, MOD_DATA, MOD_RODATA, MOD_RO_AFTER_INIT, MOD_INIT_TEXT, ...),
 *    each `{base, size}`; before, `core_layout` and `init_layout` (`struct module_layout`:
 *    base, size, text_size, ro_size, ro_after_init_size), text first. The index values are
 *    taken from the BTF enum, never assumed;
 *  - what /proc/modules prints (kernel/module/procfs.c m_show): the base is `mem[MOD_TEXT].base`
 *    (6.4+) or `core_layout.base`; the size is the sum of every `mem[].size` (module_total_size)
 *    or `init_layout.size + core_layout.size`; the state word is "Unloading" for
 *    MODULE_STATE_GOING, "Loading" for MODULE_STATE_COMING, else "Live";
 *  - `taints`: the module's taint bits, printed as the kernel's letters (kernel/panic.c);
 *  - the module's own symbols: `kallsyms` (`struct mod_kallsyms *`: `symtab` of `num_symtab`
 *    Elf64_Sym, `strtab`, and since 5.x `typetab`, one type letter per symbol), which after
 *    initialisation points at `core_kallsyms` (kernel/module/kallsyms.c). Symbols with an empty
 *    name, SHN_UNDEF, or a mapping symbol name are skipped, as find_kallsyms_symbol() does.
 *
 * Every walk is bounded (MAX_MODULES, a hard cap on symbols and string bytes) and detects
 * cycles; an unreadable module ends the walk with a warning (partial answer); an unreadable
 * symbol table costs that module's symbols only, an unreadable page of it only the symbols in it.
 */
import { warning, type Warning } from '../warnings.js';
import { VmcoreError, isVmcoreError } from '../errors.js';
import { LossLog, isPageLoss } from '../loss.js';
import { Elf64_Sym } from '../format/elf/structs.js';
import { BtfKind } from './btf/btf.js';
import type { KernelTypes, KObject } from './btf/reader.js';
import type { KernelSymbol, ModuleSymbolTable } from './kallsyms.js';
import { taintLetters } from './state.js';
import type { SymbolOrigin } from './task-symbols.js';
import { hex64 } from '../hex.js';
import { KERNEL_LIMITS } from '../limits.js';
import { latin1 } from '../text.js';

const MAX_MODULES = KERNEL_LIMITS.maxModules;
const MAX_MODULE_SYMBOLS = KERNEL_LIMITS.maxModuleSymbols;
const MAX_MODULE_STRTAB = KERNEL_LIMITS.maxModuleStrtabBytes;
/** KSYM_NAME_LEN (512 since 6.1). */
const KSYM_NAME_LEN = 512;
const PAGE = 4096n;
const SHN_UNDEF = 0;

/** One region of a module's memory. */
export interface ModuleRegion {
  /** `text`, `data`, `rodata`, `ro_after_init`, `init_text`, ... (6.4+ mem[] names), or `core`/`init` parts before. */
  name: string;
  start: bigint;
  size: number;
}

export interface ModuleEntry {
  name: string;
  /** Address of the `struct module`. */
  module: bigint;
  /** As /proc/modules words it: Live, Loading, Unloading; Unformed for MODULE_STATE_UNFORMED (not shown there). */
  state: string;
  /** Start of the module's text, as /proc/modules prints it. */
  base: bigint;
  /** Bytes, as /proc/modules prints them. */
  size: number;
  /** The module's memory regions with a non-zero size. */
  regions: ModuleRegion[];
  /** `taints` bits, and as the kernel's letters. */
  taints: bigint;
  taint: string;
  /** The module's own symbols, when read; `symbolsError` says why not. */
  symbols: KernelSymbol[] | undefined;
  symbolsError?: string;
  /** `btf_data`/`btf_data_size` (set while the module loads; NULL once live since 5.11). */
  btfData: { address: bigint; size: number } | undefined;
  /** The `struct module` as read (for further members, e.g. the ORC tables in `arch`). */
  object: KObject;
}

export interface ModuleList {
  modules: ModuleEntry[];
  warnings: Warning[];
  /** Where the `modules` list head came from (kallsyms, or the search of findModulesHead). */
  symbolSources?: Record<string, ModulesHeadOrigin>;
}

async function readPtr(types: KernelTypes, va: bigint): Promise<bigint> {
  const b = await types.readVirt(va, 8);
  return new DataView(b.buffer, b.byteOffset, 8).getBigUint64(0, types.btf.littleEndian);
}

/**
 * Walk a circular list from the list_head at `head`: the addresses of its nodes (not entries),
 * in order. Bounded by `max` and cycle-checked. Every stop other than the return to `head` adds
 * a warning naming `what` and the address. When a node cannot be read (a damaged or missing
 * page) or holds a NULL next pointer, the nodes after it are taken from the other end: the walk
 * goes back from `head` through the `prev` pointers (struct list_head { next, prev },
 * include/linux/types.h) until it meets a node it has, so one lost node costs that node.
 */
export async function listNodes(types: KernelTypes, head: bigint, what: string, warnings: Warning[], max = MAX_MODULES): Promise<bigint[]> {
  const out: bigint[] = [];
  const seen = new Set<bigint>();
  let at = head;
  let broken = false;
  try {
    let next = await readPtr(types, head);
    while (next !== head) {
      if (seen.has(next)) {
        warnings.push(warning('LIST_DAMAGED', `${what}: the list loops at ${hex64(next)} without returning to its head; stopped after ${out.length}`));
        break;
      }
      if (out.length >= max) {
        warnings.push(warning('LIST_DAMAGED', `${what}: more than ${max} entries; stopped`));
        break;
      }
      if (next === 0n) {
        warnings.push(warning('LIST_DAMAGED', `${what}: a NULL next pointer after ${hex64(at)}; stopped after ${out.length}`));
        broken = true;
        break;
      }
      seen.add(next);
      out.push(next);
      at = next;
      next = await readPtr(types, next);
    }
  } catch (e) {
    if (!isVmcoreError(e)) throw e;
    // the last node pushed could not be followed: it may be a pointer to nowhere
    if (at !== head && out[out.length - 1] === at) out.pop();
    warnings.push(warning('LIST_DAMAGED', `${what}: the node at ${hex64(at)} cannot be read (${e.message}); stopped after ${out.length}`));
    broken = true;
  }
  if (broken) {
    const back = await listNodesBackwards(types, head, seen, max - out.length);
    if (back.length > 0) warnings.push(warning('LIST_DAMAGED', `${what}: ${back.length} more read backwards from the head (prev pointers) after the break`));
    out.push(...back.reverse());
  }
  return out;
}

/** The nodes before `head` through the prev pointers, nearest first, up to one already in `seen` or unreadable. */
async function listNodesBackwards(types: KernelTypes, head: bigint, seen: Set<bigint>, max: number): Promise<bigint[]> {
  const back: bigint[] = [];
  try {
    let prev = await readPtr(types, head + 8n);
    while (prev !== head && prev !== 0n && !seen.has(prev) && back.length < max) {
      seen.add(prev);
      back.push(prev);
      prev = await readPtr(types, prev + 8n);
    }
  } catch (e) {
    if (!isVmcoreError(e)) throw e;
    back.pop(); // the node whose prev cannot be read is on a lost page
  }
  return back;
}

/** Whether BTF type `id` has the member path `path`. */
function hasMember(types: KernelTypes, id: number, path: string): boolean {
  try {
    types.btf.memberPath(id, path);
    return true;
  } catch {
    return false;
  }
}

/** MOD_TEXT -> text, MOD_INIT_RODATA -> init_rodata. */
function memName(enumerator: string): string {
  return enumerator.replace(/^MOD_/, '').toLowerCase();
}

/** The module's memory, base and /proc/modules size, from whichever layout the BTF declares. */
function moduleMemory(types: KernelTypes, modId: number, m: KObject): { regions: ModuleRegion[]; base: bigint; size: number; text: ModuleRegion[] } {
  const btf = types.btf;
  const regions: ModuleRegion[] = [];
  const text: ModuleRegion[] = [];
  if (hasMember(types, modId, 'mem')) {
    // 6.4+: mem[] by enum mod_mem_type
    const enumId = btf.find('enum mod_mem_type');
    const count = btf.memberPath(modId, 'mem');
    const memT = btf.type(btf.resolve(count.type));
    const n = memT.array?.nelems ?? 0;
    const names = new Map<number, string>();
    if (enumId !== undefined) for (const e of btf.enumerators(enumId)) if (e.value >= 0n && e.value < BigInt(n)) names.set(Number(e.value), memName(e.name));
    let base = 0n;
    let total = 0;
    for (let i = 0; i < n; i++) {
      const start = m.ptr(`mem[${i}].base`);
      const size = m.num(`mem[${i}].size`);
      total += size;
      const name = names.get(i) ?? `mem${i}`;
      if (name === 'text') base = start;
      if (size > 0 && start !== 0n) {
        const r = { name, start, size };
        regions.push(r);
        if (name.endsWith('text')) text.push(r);
      }
    }
    if (names.size === 0) throw new VmcoreError('BAD_FIELD', 'struct module has mem[] but the BTF has no enum mod_mem_type to name its entries', { field: 'mod_mem_type' });
    return { regions, base, size: total, text };
  }
  // before 6.4: core_layout and init_layout, text first
  let size = 0;
  let base = 0n;
  for (const which of ['core', 'init'] as const) {
    const path = `${which}_layout`;
    if (!hasMember(types, modId, path)) continue;
    const start = m.ptr(`${path}.base`);
    const total = m.num(`${path}.size`);
    const textSize = m.num(`${path}.text_size`);
    size += total;
    if (which === 'core') base = start;
    if (start === 0n || total === 0) continue;
    const t = { name: which === 'core' ? 'text' : 'init_text', start, size: Math.min(textSize, total) };
    if (t.size > 0) {
      regions.push(t);
      text.push(t);
    }
    if (total > textSize) regions.push({ name: which === 'core' ? 'data' : 'init_data', start: start + BigInt(textSize), size: total - textSize });
  }
  if (!hasMember(types, modId, 'core_layout')) throw new VmcoreError('BAD_FIELD', 'struct module has neither mem[] nor core_layout', { field: 'module.mem' });
  return { regions, base, size, text };
}

/** kernel/module/kallsyms.c is_mapping_symbol(). */
function isMappingSymbol(name: string): boolean {
  return name.startsWith('$') || name.startsWith('.L') || name.startsWith('L0');
}

/** nm-style letter from st_info, for kernels without `typetab`. */
function elfTypeLetter(info: number): string {
  const bind = info >> 4;
  const type = info & 0xf;
  const c = type === 2 ? 't' : type === 1 ? 'd' : '?'; // STT_FUNC, STT_OBJECT
  return bind === 1 && c !== '?' ? c.toUpperCase() : c; // STB_GLOBAL
}

/**
 * Read `len` bytes at `va` page by page; `ok(off, n)` says whether those bytes were read. A lost
 * page is recorded in `losses`, except pages starting at or after `quietFrom` (the slack read
 * past the last string's start, which may run into an unmapped page).
 */
async function readPaged(
  types: KernelTypes,
  va: bigint,
  len: number,
  losses: LossLog,
  what: string,
  quietFrom = len,
): Promise<{ bytes: Uint8Array; ok: (off: number, n: number) => boolean }> {
  const bytes = new Uint8Array(len);
  const lost: [number, number][] = [];
  let off = 0;
  while (off < len) {
    const addr = va + BigInt(off);
    const n = Math.min(len - off, Number(PAGE - (addr % PAGE)));
    const b = off >= quietFrom ? await types.readVirt(addr, n).catch((e: unknown) => {
            if (isPageLoss(e)) return undefined;
            throw e;
          }) : await losses.read(what, () => types.readVirt(addr, n));
    if (b) bytes.set(b, off);
    else lost.push([off, off + n]);
    off += n;
  }
  return { bytes, ok: (o, n) => !lost.some(([a, b]) => o < b && o + n > a) };
}

/** The module's own symbols from `kallsyms` (see the file comment), in address order with sizes. */
async function moduleSymbols(
  types: KernelTypes,
  m: KObject,
  name: string,
  regions: readonly ModuleRegion[],
): Promise<{ symbols: KernelSymbol[]; warnings: Warning[] }> {
  const warnings: Warning[] = [];
  const ks = await m.deref('kallsyms');
  const num = ks.num('num_symtab');
  const symtab = ks.ptr('symtab');
  const strtab = ks.ptr('strtab');
  const typetab = hasMember(types, ks.typeId, 'typetab') ? ks.ptr('typetab') : undefined;
  if (num < 0 || num > MAX_MODULE_SYMBOLS) {
    throw new VmcoreError('BAD_FIELD', `module ${name}: num_symtab = ${num} is implausible (at most ${MAX_MODULE_SYMBOLS})`, { address: ks.address, field: 'mod_kallsyms.num_symtab' });
  }
  if (num === 0) return { symbols: [], warnings };
  const losses = new LossLog();
  const le = types.btf.littleEndian;
  const tab = await readPaged(types, symtab, num * Elf64_Sym.size, losses, `module ${name} symtab`);
  const entries: { i: number; st_name: number; st_info: number; st_shndx: number; st_value: bigint }[] = [];
  let maxName = 0;
  let lostSyms = 0;
  for (let i = 1; i < num; i++) {
    if (!tab.ok(i * Elf64_Sym.size, Elf64_Sym.size)) {
      lostSyms++;
      continue;
    }
    const s = Elf64_Sym.read(tab.bytes, i * Elf64_Sym.size, le);
    if (s.st_shndx === SHN_UNDEF || s.st_name === 0) continue;
    entries.push({ i, st_name: s.st_name, st_info: s.st_info, st_shndx: s.st_shndx, st_value: s.st_value });
    if (s.st_name > maxName) maxName = s.st_name;
  }
  const strLen = Math.min(maxName + KSYM_NAME_LEN, MAX_MODULE_STRTAB);
  const str = await readPaged(types, strtab, strLen, losses, `module ${name} strtab`, maxName + 1);
  const types_ = typetab !== undefined ? await readPaged(types, typetab, num, losses, `module ${name} typetab`) : undefined;
  const out: KernelSymbol[] = [];
  for (const e of entries) {
    if (e.st_name >= strLen) {
      lostSyms++;
      continue;
    }
    const end = str.bytes.indexOf(0, e.st_name);
    if (end < 0 || !str.ok(e.st_name, end - e.st_name + 1)) {
      lostSyms++;
      continue;
    }
    const sname = latin1(str.bytes.subarray(e.st_name, end));
    if (sname === '' || isMappingSymbol(sname)) continue;
    let type = elfTypeLetter(e.st_info);
    if (types_ && types_.ok(e.i, 1)) type = String.fromCharCode(types_.bytes[e.i]!);
    out.push({ name: sname, address: e.st_value, type, size: 0n, module: name });
  }
  out.sort((a, b) => (a.address < b.address ? -1 : a.address > b.address ? 1 : 0));
  // size: up to the next symbol with a higher address in the same region, else the region's end
  for (let i = 0; i < out.length; i++) {
    const s = out[i]!;
    const r = regions.find((x) => s.address >= x.start && s.address < x.start + BigInt(x.size));
    const end = r ? r.start + BigInt(r.size) : s.address;
    let next = end;
    for (let j = i + 1; j < out.length; j++) {
      const a = out[j]!.address;
      if (a > s.address) {
        if (a < next) next = a;
        break;
      }
    }
    out[i] = { ...s, size: next > s.address ? next - s.address : 0n };
  }
  if (lostSyms > 0) warnings.push(warning('MODULE_UNREADABLE', `module ${name}: ${lostSyms} symbols unreadable`));
  warnings.push(...losses.warnings());
  return { symbols: out, warnings };
}

/** Where the `modules` list head came from. */
export type ModulesHeadOrigin = Extract<SymbolOrigin, 'kallsyms' | 'memory search (modules)'>;

/** Bytes of the kernel image searched for the `modules` list head, and the read unit. */
const MODULES_SEARCH = 64 << 20;
const SEARCH_CHUNK = 1 << 20;
/** Wholly unreadable chunks in a row after which the search is past the image's end. */
const SEARCH_HOLES = 8;

/** A NUL-terminated module name: 1 to MODULE_NAME_LEN−1 printable, non-space bytes. */
function moduleName(b: Uint8Array): string | undefined {
  const n = b.indexOf(0);
  if (n <= 0) return undefined;
  for (let i = 0; i < n; i++) if (b[i]! <= 0x20 || b[i]! >= 0x7f) return undefined;
  return String.fromCharCode(...b.subarray(0, n));
}

/**
 * Find the kernel's `modules` list head (kernel/module/main.c `static LIST_HEAD(modules)`, in
 * .data) in the kernel image, for kernels whose kallsyms has no data symbols (CONFIG_KALLSYMS_ALL
 * unset, as Debian's arm64 cloud kernels). Searches `MODULES_SEARCH` bytes from `from` (the
 * kernel symbol __init_begin: arm64 puts .data after the init sections) for a list_head whose
 * chain cannot be anything else by chance:
 *  - next is not the head itself, points outside the searched range (modules live in the module
 *    area, not in the image) and next->prev is the head;
 *  - every node of the chain is the `list` of a struct module (BTF layout) with a
 *    NUL-terminated printable name and a `state` that is one of enum module_state's values, and
 *    the node's next->prev is the node; the chain closes back on the head within MAX_MODULES;
 *  - at least one of them has `mkobj.mod` pointing at itself (mod_sysfs_init sets it,
 *    kernel/module/sysfs.c).
 * An empty list (no module loaded) points at itself like any other empty list_head and cannot
 * be told apart: it is not found, and the warning says so.
 * @param readVirt kernel virtual memory (unreadable chunks are read again page by page; the
 *   search ends after SEARCH_HOLES wholly unreadable MiB in a row: past the image's end)
 * @returns the head's address, or undefined with a warning.
 */
export async function findModulesHead(types: KernelTypes, readVirt: (va: bigint, n: number) => Promise<Uint8Array>, from: bigint, warnings: Warning[]): Promise<bigint | undefined> {
  const btf = types.btf;
  const le = btf.littleEndian;
  let listOff: number, nameOff: number, stateOff: number, mkobjModOff: number, nameLen: number;
  const states = new Set<bigint>();
  try {
    const modId = btf.need('struct module');
    listOff = btf.offsetOf('module', 'list');
    nameOff = btf.offsetOf('module', 'name');
    stateOff = btf.offsetOf('module', 'state');
    mkobjModOff = btf.offsetOf('module', 'mkobj.mod');
    nameLen = btf.sizeOf(btf.memberPath(modId, 'name').type);
    for (const e of btf.enumerators(btf.memberPath(modId, 'state').type)) states.add(e.value);
  } catch (e) {
    if (!isVmcoreError(e)) throw e;
    warnings.push(warning('SYMBOLS_UNAVAILABLE', `modules: no kallsyms symbol, and the BTF does not describe struct module well enough to search for it (${e.message})`));
    return undefined;
  }
  const start = from & ~0xfffn;
  const end = start + BigInt(MODULES_SEARCH);
  const u64At = (b: Uint8Array, i: number) => new DataView(b.buffer, b.byteOffset + i, 8).getBigUint64(0, le);
  const ptr = async (va: bigint) => u64At(await readVirt(va, 8), 0);
  /** The struct module of list node `node`, if it is one: its name and whether mkobj.mod points back. */
  const moduleAt = async (node: bigint): Promise<{ self: boolean } | undefined> => {
    const m = BigInt.asUintN(64, node - BigInt(listOff));
    const name = moduleName(await readVirt(m + BigInt(nameOff), nameLen));
    if (name === undefined) return undefined;
    const sb = await readVirt(m + BigInt(stateOff), 4);
    const st = new DataView(sb.buffer, sb.byteOffset, 4).getUint32(0, le);
    if (!states.has(BigInt(st))) return undefined;
    return { self: (await ptr(m + BigInt(mkobjModOff))) === m };
  };
  const isHead = async (head: bigint, first: bigint): Promise<boolean> => {
    try {
      let prev = head;
      let node = first;
      let self = false;
      for (let n = 0; node !== head; n++) {
        if (n >= MAX_MODULES || node === 0n || (node >= start && node < end)) return false;
        if ((await ptr(node + 8n)) !== prev) return false;
        const m = await moduleAt(node);
        if (!m) return false;
        self ||= m.self;
        prev = node;
        node = await ptr(node);
      }
      return self && (await ptr(head + 8n)) === prev;
    } catch (e) {
      if (!isVmcoreError(e)) throw e;
      return false;
    }
  };
  const search = async (va: bigint, b: Uint8Array, limit: number): Promise<bigint | undefined> => {
    const dv = new DataView(b.buffer, b.byteOffset, b.length);
    const hiOff = le ? 4 : 0;
    for (let i = 0; i < limit && i + 16 <= b.length; i += 8) {
      // next and prev both kernel addresses (the top 12 bits set: 52-bit VAs and below)
      if (dv.getUint32(i + hiOff, le) < 0xfff00000 || dv.getUint32(i + 8 + hiOff, le) < 0xfff00000) continue;
      const next = u64At(b, i);
      const head = va + BigInt(i);
      if (next === head || (next >= start && next < end)) continue;
      if (await isHead(head, next)) return head;
    }
    return undefined;
  };
  let holes = 0;
  for (let off = 0; off < MODULES_SEARCH && holes < SEARCH_HOLES; off += SEARCH_CHUNK) {
    const va = start + BigInt(off);
    let found: bigint | undefined;
    try {
      // 8 bytes more: a list_head at the chunk's last 8 bytes
      found = await search(va, await readVirt(va, SEARCH_CHUNK + 8).catch(() => readVirt(va, SEARCH_CHUNK)), SEARCH_CHUNK);
      holes = 0;
    } catch (e) {
      if (!isVmcoreError(e)) throw e;
      let readable = false;
      for (let p = 0; p < SEARCH_CHUNK && found === undefined; p += 4096) {
        const b = await readVirt(va + BigInt(p), 4096).catch(() => undefined);
        if (!b) continue;
        readable = true;
        found = await search(va + BigInt(p), b, 4096);
      }
      holes = readable ? 0 : holes + 1;
    }
    if (found !== undefined) return found;
  }
  warnings.push(warning('SYMBOLS_UNAVAILABLE', `modules: no kallsyms symbol, and no list_head of struct modules closing on itself in the kernel image from ${hex64(from)} (no module loaded, or the list is damaged)`));
  return undefined;
}

/**
 * Every module on the kernel's `modules` list. `symbol` resolves the kernel symbol `modules`
 * (kallsyms). Never throws for the dump's content: a module that cannot be read ends the walk
 * (the modules before it are returned) and `warnings` say why; a module whose symbols cannot be
 * read has `symbolsError`.
 * @throws VmcoreError NO_SYMBOLS (no `modules` symbol), NO_BTF (no `struct module` in the BTF).
 */
export async function listModules(types: KernelTypes, symbol: (name: string) => bigint | undefined, opts: { symbols?: boolean } = {}): Promise<ModuleList> {
  const btf = types.btf;
  const head = symbol('modules');
  if (head === undefined) throw new VmcoreError('NO_SYMBOLS', 'the module list needs the kernel symbol `modules` (kallsyms)', { field: 'modules' });
  const modId = btf.find('struct module');
  if (modId === undefined) throw new VmcoreError('NO_BTF', 'the kernel BTF has no struct module', { field: 'module' });
  const warnings: Warning[] = [];
  const listOff = BigInt(btf.offsetOf('module', 'list'));
  const stateEnum = (() => {
    try {
      const id = btf.resolve(btf.memberPath(modId, 'state').type);
      const k = btf.type(id).kind;
      return k === BtfKind.ENUM || k === BtfKind.ENUM64 ? id : undefined;
    } catch {
      return undefined;
    }
  })();
  const hasKallsyms = hasMember(types, modId, 'kallsyms');
  const hasBtf = hasMember(types, modId, 'btf_data');
  const hasTaints = hasMember(types, modId, 'taints');
  const modules: ModuleEntry[] = [];
  for (const node of await listNodes(types, head, 'modules', warnings)) {
    const va = BigInt.asUintN(64, node - listOff);
    let m: KObject;
    try {
      m = await types.read(modId, va);
    } catch (e) {
      if (!isVmcoreError(e)) throw e;
      warnings.push(warning('MODULE_UNREADABLE', `modules: struct module at ${hex64(va)} cannot be read (${e.message}); stopped after ${modules.length}`));
      break;
    }
    try {
      const name = m.str('name');
      const st = m.int('state');
      const sname = stateEnum !== undefined ? btf.enumName(stateEnum, st) : undefined;
      const state =
        sname === 'MODULE_STATE_GOING' ? 'Unloading' : sname === 'MODULE_STATE_COMING' ? 'Loading' : sname === 'MODULE_STATE_UNFORMED' ? 'Unformed' : sname === 'MODULE_STATE_LIVE' ? 'Live' : `state ${st}`;
      let mem: ReturnType<typeof moduleMemory> = { regions: [], base: 0n, size: 0, text: [] };
      try {
        mem = moduleMemory(types, modId, m);
      } catch (e) {
        if (!isVmcoreError(e)) throw e;
        warnings.push(warning('MODULE_UNREADABLE', `module ${name}: memory layout: ${e.message}`));
      }
      const taints = hasTaints ? BigInt.asUintN(64, m.int('taints')) : 0n;
      const data = hasBtf ? m.ptr('btf_data') : 0n;
      const dataSize = hasBtf ? m.num('btf_data_size') : 0;
      const entry: ModuleEntry = {
        name,
        module: va,
        state,
        base: mem.base,
        size: mem.size,
        regions: mem.regions,
        taints,
        taint: taintLetters(taints),
        symbols: undefined,
        btfData: data !== 0n && dataSize > 0 ? { address: data, size: dataSize } : undefined,
        object: m,
      };
      if (opts.symbols !== false) {
        if (!hasKallsyms) entry.symbolsError = 'struct module has no kallsyms (CONFIG_KALLSYMS off)';
        else if (m.ptr('kallsyms') === 0n) entry.symbolsError = 'kallsyms is NULL';
        else {
          try {
            const r = await moduleSymbols(types, m, name, mem.regions);
            entry.symbols = r.symbols;
            warnings.push(...r.warnings);
          } catch (e) {
            if (!isVmcoreError(e)) throw e;
            entry.symbolsError = e.message;
            warnings.push(warning('MODULE_UNREADABLE', `module ${name}: symbols: ${e.message}`));
          }
        }
      }
      modules.push(entry);
    } catch (e) {
      if (!isVmcoreError(e)) throw e;
      warnings.push(warning('MODULE_UNREADABLE', `modules: struct module at ${hex64(va)}: ${e.message}`));
    }
  }
  return { modules, warnings };
}

/** The modules' symbol tables for KernelSymbols.withModules (modules whose symbols were read). */
export function moduleSymbolTables(list: ModuleList): ModuleSymbolTable[] {
  return list.modules
    .filter((m) => m.symbols !== undefined)
    .map((m) => ({ name: m.name, regions: m.regions.map((r) => ({ start: r.start, end: r.start + BigInt(r.size) })), symbols: m.symbols! }));
}
