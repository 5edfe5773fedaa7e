#!/usr/bin/env node
// Where the bytes of `vmcore info URL` go: runs the steps of `info` (and of the web page's
// summary) one by one over an HTTP range source and prints, after each, the bytes fetched so
// far, the requests and the time. The URL is a dump served with Range support (`vmcore serve`).
//   node bench/remote-steps.mjs URL [bitmaps|full]     (page count; default bitmaps, as info URL)
import { HttpSource } from '../dist/src/core/io/http.js';
import { openDump } from '../dist/src/core/format/open.js';
import { nodeCodecs } from '../dist/src/node/codecs.js';
import { analyzeKernel } from '../dist/src/core/kernel/kernel.js';
import { panicSummary } from '../dist/src/core/kernel/panic.js';
import { kernelStateReport } from '../dist/src/core/kernel/state.js';
import { loadKernelBtf } from '../dist/src/core/kernel/btf/kernel-btf.js';
import { readDmesg } from '../dist/src/core/kernel/dmesg.js';
import { createBacktracer, panicBacktrace } from '../dist/src/core/kernel/backtrace.js';
import { describeDump } from '../dist/src/core/info.js';

const [url, pages = 'bitmaps'] = process.argv.slice(2);
if (!url) throw new Error('usage: remote-steps.mjs URL [bitmaps|full]');
const src = await HttpSource.open(url);
const t0 = performance.now();
let lastBytes = 0;
let lastT = t0;
const step = (name) => {
  const b = src.stats.bytesFetched;
  const t = performance.now();
  console.log(
    `${name.padEnd(34)} +${((b - lastBytes) / 1048576).toFixed(2).padStart(7)} MiB  total ${(b / 1048576).toFixed(2).padStart(7)} MiB (${((100 * b) / src.size).toFixed(3)} %)  ${src.stats.requests} requests  +${((t - lastT) / 1000).toFixed(2)} s`,
  );
  lastBytes = b;
  lastT = t;
};
console.log(`${url}: ${(src.size / 1048576).toFixed(1)} MiB`);
step('open the source (first block)');
const dump = await openDump([src], nodeCodecs());
step('openDump (headers, bitmaps, notes)');
const k = await analyzeKernel(dump);
step('analyzeKernel (phys_base proof)');
const panic = await panicSummary(k, undefined, dump.littleEndian);
step('panicSummary (the log)');
const state = await kernelStateReport(k, { cpus: Math.max(1, k.cpus.length), types: async () => (await loadKernelBtf(k, {})).btf });
step('kernelStateReport (kallsyms, BTF)');
if (panic) {
  const bt = await createBacktracer(k);
  const log = await readDmesg({ vmcoreinfo: k.vmcoreinfo, readVirt: (va, n) => k.readVirt(va, n), littleEndian: dump.littleEndian });
  await panicBacktrace(bt, panic, log.records.map((r) => new TextDecoder('latin1').decode(r.text)));
  step('panic backtrace (ORC)');
}
const r = await describeDump(dump, k, { panic, kernelState: state, pages });
step(`describeDump (page count: ${r.pageCount})`);
console.log(`pages ${JSON.stringify(r.pages)} codecs ${JSON.stringify(r.codecs)}`);
console.log(`total ${((performance.now() - t0) / 1000).toFixed(2)} s`);
await dump.close();
