/**
 * The kernel's types for an analysed dump: the vmlinux BTF located through the kernel's symbols
 * (`__start_BTF`/`__stop_BTF` from kallsyms) or, without them, by a scan of the kernel image from
 * VMCOREINFO's `SYMBOL(_stext)`; loaded once per KernelInfo.
 */
import { warning, type Warning } from '../../warnings.js';
import { VmcoreError, isVmcoreError } from '../../errors.js';
import type { KernelInfo } from '../kernel.js';
import { loadVmlinuxBtf, type LoadedBtf } from './locate.js';
import { KernelTypes } from './reader.js';

/** A symbol table as the kallsyms decoder offers it. */
export interface SymbolLookup {
  addressOf(name: string): bigint | undefined;
}

export interface KernelBtf extends LoadedBtf {
  types: KernelTypes;
}

/** What loading needs from the kernel analysis (a KernelInfo, with `symbols()` when kallsyms is available). */
export type BtfKernel = Pick<KernelInfo, 'readVirt' | 'vmcoreinfo'> & {
  symbols?: () => Promise<SymbolLookup>;
  files?: readonly { name: string }[];
};

const cache = new WeakMap<object, Promise<KernelBtf>>();

/**
 * Load the vmlinux BTF of `kernel` (once; later calls return the same promise). Symbols that
 * cannot be loaded only cost the symbol route: the scan still runs, and the result's warnings
 * say why. Rejects with NO_BTF when no blob is found (the message lists what was tried).
 */
export function loadKernelBtf(kernel: BtfKernel, opts: { file?: string } = {}): Promise<KernelBtf> {
  let p = cache.get(kernel);
  if (!p) {
    p = (async () => {
      const warnings: Warning[] = [];
      let syms: SymbolLookup | undefined;
      if (kernel.symbols) {
        try {
          syms = await kernel.symbols();
        } catch (e) {
          if (!isVmcoreError(e)) throw e;
          warnings.push(warning('SYMBOLS_UNAVAILABLE', `kernel symbols: ${e.message}`));
        }
      }
      const stext = kernel.vmcoreinfo?.symbol('_stext');
      const loaded = await loadVmlinuxBtf({
        readVirt: kernel.readVirt,
        ...(syms ? { symbol: (n: string) => syms!.addressOf(n) } : {}),
        ...(stext !== undefined ? { stext } : {}),
        ...(opts.file ? { file: opts.file } : {}),
      });
      return { ...loaded, warnings: [...warnings, ...loaded.warnings], types: new KernelTypes(loaded.btf, kernel.readVirt) };
    })();
    cache.set(kernel, p);
  }
  return p;
}

/** NO_BTF error text for commands that cannot work without types. */
export function noBtf(what: string, cause: unknown): VmcoreError {
  const msg = isVmcoreError(cause) ? cause.message : String(cause);
  return new VmcoreError('NO_BTF', `${what} needs the kernel's BTF: ${msg}`, { cause });
}
