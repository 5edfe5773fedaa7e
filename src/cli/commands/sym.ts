/** `vmcore sym`: kernel symbols from the dump's own kallsyms: address → name+offset/size, name → address. */
import type { Command } from 'commander';
import { VmcoreError } from '../../core/errors.js';
import { analyzeKernel } from '../../core/kernel/kernel.js';
import { symbolQuery, type SymbolAnswer } from '../../core/kernel/symquery.js';
import { kernelPacMask } from '../../core/kernel/aarch64/pagetables.js';
import { openDumpFiles } from '../../node/open.js';
import { printJson, printWarnings, writeStdout } from '../util.js';
import { hex64 } from '../../core/hex.js';

const HELP_AFTER = `
A query is a kernel virtual address (hex; 0x optional unless the text is also a symbol name) or a
symbol name. Each answer prints as ADDRESS  TYPE  name+0xoff/0xsize [module]: the address, the
type letter of /proc/kallsyms, and the symbol as the kernel prints it in a backtrace. A name
prints every symbol of that name (local symbols of different files can share one). Symbols come from the dump itself (kallsyms), no vmlinux needed.

JSON: an array of {query, name, address, offset, size, type, module}: address is the symbol's
start (the queried address is address + offset); name and address are null
for a query that matched nothing. Exit status 1 when any query matched nothing.
On aarch64 an address no symbol holds is looked up again with its pointer-authentication bits
stripped (NUMBER(KERNELPACMASK)): a saved LR resolves, and address + offset is its code address.`;

export function register(program: Command): void {
  program
    .command('sym')
    .description("Resolve kernel addresses and symbol names from the dump's own symbol table (kallsyms).")
    .argument('<dump>', 'dump file')
    .argument('<query...>', 'addresses (hex) or symbol names')
    .option('--json', 'JSON array of {query, name, address, offset, size, type, module}')
    .addHelpText('after', HELP_AFTER)
    .action(async (file: string, queries: string[], o: { json?: boolean }) => {
      const dump = await openDumpFiles([file]);
      try {
        const kernel = await analyzeKernel(dump);
        const syms = await kernel.symbolsWithModules();
        printWarnings([...dump.warnings, ...syms.warnings]);
        const answers: SymbolAnswer[] = [];
        // arm64: a saved LR with pointer-authentication bits resolves to its code address
        const pacMask = kernel.arch === 'aarch64' ? kernelPacMask(kernel.vmcoreinfo) : undefined;
        for (const q of queries) answers.push(...symbolQuery(syms, q, pacMask !== undefined ? { pacMask } : {}));
        const missed = answers.filter((a) => a.name === null);
        if (o.json) await printJson(answers);
        else {
          const lines: string[] = [];
          for (const a of answers) {
            if (a.name === null) continue;
            const mod = a.module ? ` [${a.module}]` : '';
            const at = hex64(BigInt(a.address!) + BigInt(a.offset!)); // the code address (PAC bits stripped)
            lines.push(`${at}  ${a.type}  ${a.name}+${a.offset}/${a.size}${mod}`);
          }
          if (lines.length) await writeStdout(lines.join('\n') + '\n');
        }
        if (missed.length) {
          // an address where the dump lost symbols (unreadable kallsyms pages) says so
          const why = (q: string) => {
            const a = /^(0x)?[0-9a-f]{1,16}$/i.test(q) ? syms.lostAt(BigInt(q.startsWith('0x') || q.startsWith('0X') ? q : '0x' + q)) : undefined;
            return a ? `${q} (unknown: ${a.count} symbols from ${hex64(a.start)} lost, ${a.reason})` : q;
          };
          throw new VmcoreError('NO_SYMBOLS', `no kernel symbol for ${missed.map((a) => why(a.query)).join(', ')}`, { file });
        }
      } finally {
        await dump.close();
      }
    });
}
