/**
 * Make a small test fixture from a big real dump: keep only the pages that the kernel analysis
 * (VMCOREINFO, phys_base proof) and the kernel log read, mark every other RAM page excluded,
 * and write a flattened kdump file keeping the source's header peculiarities that matter
 * (its phys_base as written, its utsname, its notes). The unit tests then check the analysis
 * on real kernel memory without the 30-45 MB originals.
 *   node dist/test/tools/make-excerpt.js IN OUT.kdump
 */
import { openDumpFiles } from '../../src/node/open.js';
import { analyzeKernelRecorded } from '../../src/core/kernel/kernel.js';
import { readDmesg } from '../../src/core/kernel/dmesg.js';
import { convertDump } from '../../src/node/convert/index.js';
import { isPresent, type Dump, type PageRun } from '../../src/core/dump.js';
import { notPresent } from '../../src/core/memory.js';

export function excerptDump(inner: Dump, keep: Set<number>): Dump {
  const stateOf = async (pfn: number) => {
    const s = await inner.pageState(pfn);
    return keep.has(pfn) || !isPresent(s) ? s : 'excluded';
  };
  return {
    format: inner.format,
    variant: inner.variant,
    files: inner.files,
    arch: inner.arch,
    littleEndian: inner.littleEndian,
    is64: inner.is64,
    notes: inner.notes,
    vmcoreinfoText: inner.vmcoreinfoText,
    warnings: inner.warnings,
    details: () => inner.details(),
    close: () => inner.close(),
    pageSize: inner.pageSize,
    maxPfn: inner.maxPfn,
    pageState: stateOf,
    async *pageRuns(start = 0, end = inner.maxPfn): AsyncIterable<PageRun> {
      for await (const r of inner.pageRuns(start, end)) {
        if (!isPresent(r.state)) {
          yield r;
          continue;
        }
        let cur: PageRun | undefined;
        for (let p = r.startPfn; p < r.endPfn; p++) {
          const st = keep.has(p) ? r.state : 'excluded';
          if (cur && cur.state === st) cur.endPfn = p + 1;
          else {
            if (cur) yield cur;
            cur = { startPfn: p, endPfn: p + 1, state: st };
          }
        }
        if (cur) yield cur;
      }
    },
    async readPage(pfn) {
      if (!keep.has(pfn)) throw notPresent(pfn, 'excluded', inner.pageSize);
      return inner.readPage(pfn);
    },
    async readPhys(addr, length, opts) {
      const out = new Uint8Array(length);
      for (let o = 0; o < length; ) {
        const a = addr + o;
        const pfn = Math.floor(a / inner.pageSize);
        const n = Math.min(length - o, (pfn + 1) * inner.pageSize - a);
        if (keep.has(pfn)) out.set(await inner.readPhys(a, n), o);
        else if (!opts?.fillMissing) throw notPresent(pfn, 'excluded', inner.pageSize);
        o += n;
      }
      return out;
    },
  };
}

async function main() {
  const [input, output] = process.argv.slice(2);
  if (!input || !output) throw new Error('usage: make-excerpt IN OUT');
  const dump = await openDumpFiles([input]);
  const { info, pfns } = await analyzeKernelRecorded(dump);
  if (!info.vmcoreinfo) throw new Error('no VMCOREINFO');
  const log = await readDmesg({ vmcoreinfo: info.vmcoreinfo, readVirt: (va, n) => info.readVirt(va, n), littleEndian: dump.littleEndian });
  // the kallsyms tables (Linux 6.0+ names them in VMCOREINFO)
  const symbols = await info.symbols().catch((e: unknown) => (process.stderr.write(`no symbols: ${String(e)}\n`), undefined));
  const keep = new Set(pfns());
  // the recovered VMCOREINFO note's page(s)
  for (const r of info.recovered.slice(0, 1)) for (let a = r.addr; a < r.addr + 8192; a += dump.pageSize) keep.add(Math.floor(a / dump.pageSize));
  const det = await dump.details();
  const summary = await convertDump(excerptDump(dump, keep), output, {
    format: 'kdump',
    codec: 'zlib',
    dumpLevel: 1,
    flatten: true,
    physBase: det.headerPhysBase ?? 0n,
    force: true,
  });
  process.stdout.write(JSON.stringify({ pages: keep.size, records: log.records.length, symbols: symbols?.count ?? 0, physBase: info.summary().physBase, bytes: summary }, (_k, v) => (typeof v === 'bigint' ? v.toString(16) : v)) + '\n');
  await dump.close();
}

if (process.argv[1] && import.meta.url.endsWith(process.argv[1].split('/').pop()!)) await main();
