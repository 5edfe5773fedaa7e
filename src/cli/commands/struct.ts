import { hex } from '../../core/hex.js';
import type { Command } from 'commander';
import { VmcoreError } from '../../core/errors.js';
import { analyzeKernel } from '../../core/kernel/kernel.js';
import { BtfKind } from '../../core/kernel/btf/btf.js';
import { loadKernelBtf, noBtf, type BtfKernel } from '../../core/kernel/btf/kernel-btf.js';
import { loadModuleBtfs } from '../../core/kernel/btf/modules.js';
import { KernelTypes } from '../../core/kernel/btf/reader.js';
import { decodedToJson, formatLayout, formatMembers, formatStruct, type PrintOptions } from '../../core/kernel/btf/print.js';
import { openDumpFiles } from '../../node/open.js';
import { parseNumber, printWarnings, writeStdout, writeStdoutRaw, jsonText } from '../util.js';

type Symbolizer = { symbolize?(a: bigint): { name: string; offset: bigint | number } | undefined; addressOf?(n: string): bigint | undefined };

/** An address as crash takes it: hex with or without 0x, or a symbol name when symbols are loaded. */
async function parseAddress(s: string, kernel: BtfKernel): Promise<bigint> {
  const t = s.trim();
  if (/^(0x)?[0-9a-f]{1,16}$/i.test(t)) return BigInt(t.startsWith('0x') || t.startsWith('0X') ? t : '0x' + t);
  if (kernel.symbols) {
    const syms = await kernel.symbols().catch(() => undefined);
    const a = syms?.addressOf(t);
    if (a !== undefined) return a;
    throw new VmcoreError('USAGE', `ADDR: ${s} is neither a hex address nor a kernel symbol`);
  }
  throw new VmcoreError('USAGE', `ADDR: not a hex address: ${s}`);
}

export function register(program: Command): void {
  program
    .command('struct')
    .description("Print a kernel structure at a kernel virtual address from the dump's own BTF, as crash's `struct` does. TYPE may name members: task_struct.pid,comm")
    .argument('<dump>', 'dump file')
    .argument('<type>', 'struct or union name (`task_struct`, `struct page`), optionally .member,member')
    .argument('[addr]', 'kernel virtual address (hex, 0x optional) or a kernel symbol; without it, -o prints the layout')
    .option('-o, --offsets', 'print member offsets (with ADDR: member addresses) instead of values, like crash `struct -o`')
    .option('--depth <n>', 'expand nested structs, unions and arrays to this depth (deeper ones print as {...})')
    .option('--json', 'JSON: {type, address, size, value}')
    .action(async (file: string, typeArg: string, addrArg: string | undefined, o: { offsets?: boolean; depth?: string; json?: boolean }) => {
      const depth = o.depth === undefined ? 32 : parseNumber(o.depth, '--depth');
      if (!o.offsets && addrArg === undefined) throw new VmcoreError('USAGE', 'give ADDR, or -o for the layout');
      const [typeName, memberList] = splitType(typeArg);
      const dump = await openDumpFiles([file]);
      try {
        const kernel = (await analyzeKernel(dump)) as unknown as BtfKernel;
        const kb = await loadKernelBtf(kernel, { file }).catch((e: unknown) => {
          throw noBtf('struct', e);
        });
        printWarnings([...dump.warnings, ...kb.warnings]);
        const kinds = typeName.includes(' ') ? undefined : [BtfKind.STRUCT, BtfKind.UNION, BtfKind.TYPEDEF];
        let btf = kb.btf;
        let types = kb.types;
        let id = btf.find(typeName, kinds);
        if (id === undefined && kernel.symbols) {
          // a module's type: look in each module's split BTF
          const syms = await kernel.symbols().catch(() => undefined);
          if (syms) {
            const mods = await loadModuleBtfs(kb.types, (n) => syms.addressOf(n), { file });
            for (const m of mods.modules) {
              const mid = m.btf?.find(typeName, kinds);
              if (m.btf && mid !== undefined && mid >= m.btf.startId) {
                btf = m.btf;
                types = new KernelTypes(m.btf, kernel.readVirt);
                id = mid;
                break;
              }
            }
          }
        }
        if (id === undefined) {
          // with types or names lost to unreadable pages, say the type may be among them (PAGE_DAMAGED)
          if (kb.btf.lostTypes.length || kb.btf.strLost.length) kb.btf.need(typeName, kinds);
          throw new VmcoreError('BAD_FIELD', `the kernel's BTF (vmlinux and modules) has no type ${typeName}`, { file, field: typeName });
        }
        const k = btf.type(btf.resolve(id)).kind;
        if (k !== BtfKind.STRUCT && k !== BtfKind.UNION) throw new VmcoreError('USAGE', `${typeName} is not a struct or union (${btf.typeName(id)})`);
        const addr = addrArg === undefined ? undefined : await parseAddress(addrArg, kernel);
        if (o.offsets) {
          if (o.json) {
            const members = btf.members(id).map((m) => ({ name: m.name, type: btf.typeName(m.type), offset: Math.floor(m.bitOffset / 8), bitOffset: m.bitOffset, bitSize: m.bitSize }));
            await writeStdoutRaw(jsonText({ type: btf.typeName(id), size: btf.sizeOf(id), ...(addr !== undefined ? { address: hex(addr) } : {}), members }) + '\n');
          } else {
            await writeStdout(formatLayout(btf, id, addr));
          }
          return;
        }
        const obj = await types.read(id, addr!);
        const syms = kernel.symbols ? ((await kernel.symbols().catch(() => undefined)) as Symbolizer | undefined) : undefined;
        const popts: PrintOptions = {};
        if (syms?.symbolize) {
          popts.symbolize = (a) => {
            // gdb (crash) names addresses in the kernel half only, not per-CPU offsets
            if (a < 1n << 63n) return undefined;
            const s = syms.symbolize!(a);
            if (!s) return undefined;
            const off = BigInt(s.offset);
            return off === 0n ? s.name : `${s.name}+${off}`;
          };
        }
        if (memberList) {
          const members = memberList.map((m) => ({ name: m, value: obj.member(m).decode({ depth }) }));
          if (o.json) {
            await writeStdoutRaw(jsonText({ type: btf.typeName(id), address: hex(addr!), size: btf.sizeOf(id), value: Object.fromEntries(members.map((m) => [m.name, decodedToJson(m.value)])) }) + '\n');
          } else {
            await writeStdout(formatMembers(members, popts));
          }
          return;
        }
        const v = obj.decode({ depth });
        if (o.json) {
          await writeStdoutRaw(jsonText({ type: btf.typeName(id), address: hex(addr!), size: btf.sizeOf(id), value: decodedToJson(v) }) + '\n');
        } else {
          await writeStdout(formatStruct(v, popts));
        }
      } finally {
        await dump.close();
      }
    });
}


/** `task_struct.pid,comm` → ['task_struct', ['pid', 'comm']]; `struct page` → ['struct page', undefined]. */
function splitType(s: string): [string, string[] | undefined] {
  const i = s.indexOf('.');
  if (i < 0) return [s.trim(), undefined];
  const members = s.slice(i + 1).split(',').map((m) => m.trim()).filter((m) => m.length > 0);
  if (members.length === 0) throw new VmcoreError('USAGE', `no member named after ${s.slice(0, i)}.`);
  return [s.slice(0, i).trim(), members];
}
