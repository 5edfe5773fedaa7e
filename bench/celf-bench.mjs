#!/usr/bin/env node
// Compressed ELF (celf) against kdump with the same codec: file size, write speed and the cost of
// a random 4 KiB read; and the chunk-size trade-off. Not part of the test suite.
//   npm run build && node bench/celf-bench.mjs IN [--codecs zstd,lzo] [--chunks 16K,32K,64K,128K,256K,1M]
//        [--runs 3] [--reads 3000] [--out DIR] [--json FILE]
// IN: any dump vmcore reads (the benchmark uses `node bench/convert-make-input.mjs IN 4`).
// kdump is written with dump level 1 (zero pages share one zero page), celf always stores zero
// runs as index entries, so both get zero memory for free. Threads: the convert default (cores).
// Random reads: fresh open, the same pseudo-random present pages for every file, one
// readPage() at a time (page cache warm: this measures format + decompression cost).
import { statSync, rmSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { openDumpFiles } from '../dist/src/node/open.js';
import { convertDump } from '../dist/src/node/convert/index.js';
import { celfOutput } from '../dist/src/node/convert/celf.js';
import { parseChunkSize } from '../dist/src/core/format/celf/writer.js';

const args = process.argv.slice(2);
const opt = (name, def) => {
  const i = args.indexOf(`--${name}`);
  return i >= 0 ? args[i + 1] : def;
};
const input = args.find((a, i) => !a.startsWith('--') && (i === 0 || !args[i - 1].startsWith('--')));
if (!input) throw new Error('usage: celf-bench.mjs IN [--codecs zstd] [--chunks 64K,...] [--runs 3] [--reads 3000] [--out DIR]');
const codecs = opt('codecs', 'zstd').split(',');
const chunks = opt('chunks', '16K,32K,64K,128K,256K,1M').split(',').map(parseChunkSize);
const runs = Number(opt('runs', '3'));
const reads = Number(opt('reads', '3000'));
const outDir = opt('out', join(process.env.TMPDIR ?? '/tmp', 'vmcore-celf-bench'));
const DEFAULT_CHUNK = 65536;
mkdirSync(outDir, { recursive: true });

const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
const inputSize = statSync(input).size;

async function convert(out, opts) {
  const d = await openDumpFiles([input]);
  const t = performance.now();
  const c0 = process.cpuUsage(); // whole process, worker threads included
  const s = await convertDump(d, out, { ...opts, force: true });
  const sec = (performance.now() - t) / 1000;
  const c1 = process.cpuUsage(c0);
  await d.close();
  return { sec, cpu: (c1.user + c1.system) / 1e6, bytes: statSync(out).size, pagesTotal: s.pages.total, threads: s.threads };
}

/** Present pfns chosen with a fixed seed, from the input's runs. */
async function pickPages(n) {
  const d = await openDumpFiles([input]);
  const runs = [];
  let total = 0;
  for await (const r of d.pageRuns()) if (r.state === 'data' || r.state === 'zero') {
    runs.push([r.startPfn, r.endPfn, total]);
    total += r.endPfn - r.startPfn;
  }
  await d.close();
  let x = 20261126;
  const out = [];
  for (let i = 0; i < n; i++) {
    x = (x * 1103515245 + 12345) % 2 ** 31;
    const k = x % total;
    const r = runs.find(([s, e, base]) => k >= base && k < base + (e - s));
    out.push(r[0] + (k - r[2]));
  }
  return out;
}

async function randomReads(path, pfns) {
  const d = await openDumpFiles([path]);
  const lat = [];
  const c0 = process.cpuUsage();
  for (const p of pfns) {
    const t = process.hrtime.bigint();
    await d.readPage(p);
    lat.push(Number(process.hrtime.bigint() - t) / 1000);
  }
  const c1 = process.cpuUsage(c0);
  await d.close();
  lat.sort((a, b) => a - b);
  const mean = lat.reduce((a, b) => a + b, 0) / lat.length;
  const cpuUs = (c1.user + c1.system) / pfns.length;
  return { meanUs: mean, p50Us: lat[Math.floor(lat.length / 2)], p99Us: lat[Math.floor(lat.length * 0.99)], cpuUs };
}

const pfns = await pickPages(reads);
const results = { input, inputSize, runs, reads, codecs: {}, chunks: [] };
const fmt = (n, d = 1) => n.toFixed(d);
const MiB = 1048576;

for (const codec of codecs) {
  const kdump = join(outDir, `bench.${codec}.kdump`);
  const celf = join(outDir, `bench.${codec}.celf`);
  const k = [];
  const c = [];
  for (let i = 0; i < runs; i++) {
    k.push(await convert(kdump, { format: 'kdump', codec, dumpLevel: 1 }));
    c.push(await convert(celf, { codec, outputFormat: celfOutput({ chunkSize: DEFAULT_CHUNK }) }));
  }
  const kr = await randomReads(kdump, pfns);
  const cr = await randomReads(celf, pfns);
  const row = {
    kdump: { bytes: k[0].bytes, sec: k.map((r) => r.sec), cpu: k.map((r) => r.cpu), read: kr },
    celf: { bytes: c[0].bytes, sec: c.map((r) => r.sec), cpu: c.map((r) => r.cpu), read: cr },
    threads: k[0].threads,
  };
  results.codecs[codec] = row;
  const km = median(row.kdump.sec);
  const cm = median(row.celf.sec);
  const kc = median(row.kdump.cpu);
  const cc = median(row.celf.cpu);
  console.log(
    `${codec}: kdump ${row.kdump.bytes} B, wall ${fmt(km, 2)} s (${fmt(inputSize / MiB / km, 0)} MiB/s), cpu ${fmt(kc, 2)} s, read p50 ${fmt(kr.p50Us)} us mean ${fmt(kr.meanUs)} cpu ${fmt(kr.cpuUs)} us | ` +
      `celf ${row.celf.bytes} B (${fmt((100 * row.celf.bytes) / row.kdump.bytes - 100, 2)} %), wall ${fmt(cm, 2)} s (${fmt(inputSize / MiB / cm, 0)} MiB/s), cpu ${fmt(cc, 2)} s, ` +
      `read p50 ${fmt(cr.p50Us)} us (${fmt(cr.p50Us / kr.p50Us, 2)}x) mean ${fmt(cr.meanUs)} cpu ${fmt(cr.cpuUs)} us (${fmt(cr.cpuUs / kr.cpuUs, 2)}x)`,
  );
  rmSync(kdump, { force: true });
}

const codec = codecs[0];
for (const chunk of chunks) {
  const celf = join(outDir, `bench.${codec}.${chunk}.celf`);
  const r = await convert(celf, { codec, outputFormat: celfOutput({ chunkSize: chunk }) });
  const rr = await randomReads(celf, pfns);
  results.chunks.push({ codec, chunk, bytes: r.bytes, sec: r.sec, cpu: r.cpu, read: rr });
  console.log(`${codec} chunk ${chunk / 1024} KiB: ${r.bytes} B, wall ${fmt(r.sec, 2)} s, cpu ${fmt(r.cpu, 2)} s, read mean ${fmt(rr.meanUs)} us p50 ${fmt(rr.p50Us)} p99 ${fmt(rr.p99Us)} cpu ${fmt(rr.cpuUs)} us`);
  rmSync(celf, { force: true });
}
for (const c of codecs) rmSync(join(outDir, `bench.${c}.celf`), { force: true });
const jsonOut = opt('json');
if (jsonOut) writeFileSync(jsonOut, JSON.stringify(results, null, 2));
