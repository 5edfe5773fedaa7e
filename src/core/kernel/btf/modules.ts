/**
 * Modules' BTF (CONFIG_DEBUG_INFO_BTF_MODULES): split BTF on top of vmlinux's. Where it is in a
 * dump, from the kernel sources:
 *  - `struct module.btf_data`/`btf_data_size` point at the module's .BTF section while it loads;
 *    since 5.11 kernel/module (do_init_module) sets btf_data to NULL once the module is live,
 *    because that section is freed;
 *  - the kernel keeps its own parsed copy: kernel/bpf/btf.c links a `struct btf_module` per
 *    module on the static list `btf_modules`, whose `btf` has `data`/`data_size` (the raw blob)
 *    and `name`.
 * So the module's own pointer is used when set, else the `btf_modules` list. Every walk is
 * bounded and cycle-checked; a module whose BTF cannot be read or parsed gets an `error`.
 */
import { hex } from '../../hex.js';
import { warning, type Warning } from '../../warnings.js';
import { isVmcoreError } from '../../errors.js';
import { listModules, listNodes, type ModuleList } from '../modules.js';
import { Btf } from './btf.js';
import { KERNEL_LIMITS } from '../../limits.js';
import type { KernelTypes } from './reader.js';

const MAX_MODULE_BTF_BYTES = KERNEL_LIMITS.maxModuleBtfBytes;

export interface ModuleBtf {
  name: string;
  /** Address of the raw blob, and its size. */
  address: bigint;
  size: number;
  /** Where the blob was found: `module.btf_data` or the kernel's `btf_modules` list. */
  source: 'module' | 'btf_modules';
  btf?: Btf;
  error?: string;
}


async function parseModuleBtf(types: KernelTypes, m: Omit<ModuleBtf, 'btf' | 'error'>, file?: string): Promise<ModuleBtf> {
  if (m.size <= 0 || m.size > MAX_MODULE_BTF_BYTES) return { ...m, error: `BTF size ${m.size} is implausible` };
  try {
    const blob = await types.readVirt(m.address, m.size);
    return { ...m, btf: new Btf(blob, { base: types.btf, label: `BTF of module ${m.name} at ${hex(m.address)}`, ...(file ? { file } : {}) }) };
  } catch (e) {
    if (!isVmcoreError(e)) throw e;
    return { ...m, error: e.message };
  }
}

/**
 * The BTF of every loaded module that has one. `symbol` resolves `modules` and `btf_modules`
 * (kallsyms); `opts.modules` is the module list when already walked (modules.ts listModules).
 * Returns the modules found and warnings; never throws for the dump's content.
 */
export async function loadModuleBtfs(
  types: KernelTypes,
  symbol: (name: string) => bigint | undefined,
  opts: { file?: string; modules?: ModuleList } = {},
): Promise<{ modules: ModuleBtf[]; warnings: Warning[] }> {
  const btf = types.btf;
  const warnings: Warning[] = [];
  const found = new Map<string, ModuleBtf>();
  let list = opts.modules;
  if (!list && symbol('modules') !== undefined && btf.find('struct module') !== undefined) {
    try {
      list = await listModules(types, symbol, { symbols: false });
      warnings.push(...list.warnings);
    } catch (e) {
      if (!isVmcoreError(e)) throw e;
      warnings.push(warning('MODULE_UNREADABLE', `modules: ${e.message}`));
    }
  }
  for (const m of list?.modules ?? []) {
    if (m.btfData) found.set(m.name, await parseModuleBtf(types, { name: m.name, address: m.btfData.address, size: m.btfData.size, source: 'module' }, opts.file));
  }
  const bmHead = symbol('btf_modules');
  const bmId = btf.find('btf_module');
  if (bmHead !== undefined && bmId !== undefined) {
    const listOff = BigInt(btf.offsetOf('btf_module', 'list'));
    for (const node of await listNodes(types, bmHead, 'btf_modules', warnings)) {
      const va = BigInt.asUintN(64, node - listOff);
      try {
        const bm = await types.read(bmId, va);
        const b = await bm.deref('btf');
        const name = b.str('name');
        if (found.has(name)) continue;
        found.set(name, await parseModuleBtf(types, { name, address: b.ptr('data'), size: b.num('data_size'), source: 'btf_modules' }, opts.file));
      } catch (e) {
        if (!isVmcoreError(e)) throw e;
        warnings.push(warning('MODULE_UNREADABLE', `btf_module at ${hex(va)}: ${e.message}`));
      }
    }
  }
  if (bmHead === undefined && bmId !== undefined) {
    // CONFIG_DEBUG_INFO_BTF_MODULES (struct btf_module exists) without the list's symbol
    // (CONFIG_KALLSYMS_ALL unset): a module's btf_data is cleared after its init (kernel/module/
    // main.c), so its BTF is on btf_modules only and cannot be found here; say so, never "none"
    const without = (list?.modules ?? []).filter((m) => !found.has(m.name)).map((m) => m.name);
    if (without.length > 0) warnings.push(warning('SYMBOLS_UNAVAILABLE', `btf_modules: no kallsyms symbol (a kernel without CONFIG_KALLSYMS_ALL): the BTF of ${without.length} module(s) (${without.slice(0, 8).join(', ')}${without.length > 8 ? ', ...' : ''}) cannot be found from the dump alone; --system-map gives it`));
  }
  return { modules: [...found.values()], warnings };
}
