/** `vmcore mod`: the loaded modules of a dump, from the kernel's `modules` list (kallsyms + BTF, no vmlinux). */
import type { Command } from 'commander';
import { VmcoreError, isVmcoreError } from '../../core/errors.js';
import { analyzeKernel } from '../../core/kernel/kernel.js';
import { loadKernelBtf } from '../../core/kernel/btf/kernel-btf.js';
import { loadModuleBtfs, type ModuleBtf } from '../../core/kernel/btf/modules.js';
import { listModules, type ModuleEntry, type ModuleList } from '../../core/kernel/modules.js';
import { systemMapForDump } from '../../core/kernel/system-map.js';
import { readFile } from 'node:fs/promises';
import { openDumpFiles } from '../../node/open.js';
import { printJson, printWarnings, writeStdout } from '../util.js';
import { hex64 } from '../../core/hex.js';

const HELP_AFTER = `
One row per module on the kernel's modules list, in list order (newest first, as /proc/modules):
the struct module address, name, base (start of its text) and size as /proc/modules prints
them, state (Live, Loading, Unloading; Unformed for a module still being set up), the module's
taint letters (kernel/panic.c), how many of its own symbols were read (its kallsyms symtab), and
whether its BTF was found (module.btf_data or the kernel's btf_modules list).

JSON: an array of {name, base, size, state, taint, module, taints, symbols, symbols_error, btf,
btf_source, regions: [{name, base, size}]} (keys in README).`;

/** One `mod` row as JSON (keys documented in README.md). */
export function moduleToJson(m: ModuleEntry, btf: ModuleBtf | undefined): Record<string, unknown> {
  return {
    name: m.name,
    base: hex64(m.base),
    size: m.size,
    state: m.state,
    taint: m.taint,
    module: hex64(m.module),
    taints: hex64(m.taints),
    symbols: m.symbols ? m.symbols.length : null,
    symbols_error: m.symbols ? null : (m.symbolsError ?? null),
    btf: btf?.btf !== undefined,
    btf_source: btf?.btf ? btf.source : null,
    regions: m.regions.map((r) => ({ name: r.name, base: hex64(r.start), size: r.size })),
  };
}

/** crash-like table. */
export function formatModules(mods: readonly ModuleEntry[], btfs: ReadonlyMap<string, ModuleBtf>): string {
  const w = Math.max(4, ...mods.map((m) => m.name.length));
  const rows = [`${'MODULE'.padEnd(16)}  ${'NAME'.padEnd(w)}  ${'BASE'.padEnd(16)}  ${'SIZE'.padStart(8)}  ${'STATE'.padEnd(9)}  TAINT  SYMBOLS  BTF`];
  for (const m of mods) {
    const b = btfs.get(m.name);
    const syms = m.symbols ? String(m.symbols.length) : 'none';
    const btf = b?.btf ? `yes (${b.source})` : b?.error ? 'unreadable' : 'no';
    rows.push(
      `${m.module.toString(16).padStart(16)}  ${m.name.padEnd(w)}  ${m.base.toString(16).padStart(16)}  ${String(m.size).padStart(8)}  ${m.state.padEnd(9)}  ${(m.taint || '-').padEnd(5)}  ${syms.padStart(7)}  ${btf}`,
    );
  }
  return rows.join('\n') + '\n';
}

export function register(program: Command): void {
  program
    .command('mod')
    .description("The loaded modules: name, base, size, state, taint letters, whether their symbols and BTF were found. Needs the kernel's symbols (kallsyms) and BTF from the dump.")
    .argument('<dump...>', 'dump file (several files: one split set)')
    .option('--json', 'JSON: an array of {name, base, size, state, taint, ...} (keys in README)')
    .option('--system-map <file>', "symbols from this System.map (shifted by VMCOREINFO's KERNELOFFSET) instead of the dump's kallsyms and the search for the modules list")
    .addHelpText('after', HELP_AFTER)
    .action(async (files: string[], o: { json?: boolean; systemMap?: string }) => {
      const dump = await openDumpFiles(files);
      try {
        const kernel = await analyzeKernel(dump);
        const syms = o.systemMap
          ? systemMapForDump(await readFile(o.systemMap, 'latin1'), kernel.vmcoreinfo, o.systemMap)
          : await kernel.symbols().catch((e: unknown) => {
              if (!isVmcoreError(e)) throw e;
              throw new VmcoreError('NO_SYMBOLS', `mod needs the kernel's symbols (modules): ${e.message}`, { cause: e });
            });
        const kb = await loadKernelBtf(kernel, { file: files[0]! });
        let list: ModuleList;
        if (o.systemMap) {
          if (syms.addressOf('modules') === undefined) throw new VmcoreError('NO_SYMBOLS', `${o.systemMap} has no symbol \`modules\``, { field: 'modules' });
          list = await listModules(kb.types, (n) => syms.addressOf(n));
        } else {
          list = await kernel.modules();
        }
        const btfs = await loadModuleBtfs(kb.types, (n) => syms.addressOf(n), { file: files[0]!, modules: list });
        const byName = new Map(btfs.modules.map((b) => [b.name, b] as const));
        printWarnings([...dump.warnings, ...kb.warnings, ...list.warnings, ...btfs.warnings]);
        for (const [n, src] of Object.entries(list.symbolSources ?? {})) if (src !== 'kallsyms') process.stderr.write(`vmcore: ${n}: ${src}\n`);
        if (o.json) await printJson(list.modules.map((m) => moduleToJson(m, byName.get(m.name))));
        else await writeStdout(formatModules(list.modules, byName));
      } finally {
        await dump.close();
      }
    });
}
