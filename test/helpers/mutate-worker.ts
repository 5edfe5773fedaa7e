/**
 * Worker for the mutation smoke test: opens corrupted copies of small fixtures and exercises
 * every reader path. Any outcome is fine except an exception that is not a VmcoreError.
 */
import { parentPort, workerData } from 'node:worker_threads';
import { writeSync } from 'node:fs';
import { BufferSource } from '../../src/core/io/source.js';
import { openDump } from '../../src/core/format/open.js';
import { nodeCodecs } from '../../src/node/codecs.js';
import { isVmcoreError } from '../../src/core/errors.js';
import { describeDump } from '../../src/core/info.js';
import { rng } from './build.js';
import type { Fixture } from './mutation-fixtures.js';
import { parseCpuNotes, registersOfTask } from '../../src/core/kernel/x86_64/cpu.js';

interface Job {
  fixtures: Fixture[];
  count: number;
  seed: number;
}

const job = workerData as Job;
const r = rng(job.seed);
const codecs = nodeCodecs();
let typed = 0;
let clean = 0;
const failures: string[] = [];
const codes: Record<string, number> = {};
let maxMs = 0;
let maxArrayBuffers = 0;

function mutate(src: Uint8Array, hot: number[]): { bytes: Uint8Array; what: string } {
  const kind = r();
  if (kind < 0.15) {
    const n = Math.floor(r() * src.length);
    return { bytes: src.subarray(0, n), what: `truncate to ${n}` };
  }
  const b = src.slice();
  const edits: string[] = [];
  const nEdits = 1 + Math.floor(r() * 4);
  for (let i = 0; i < nEdits; i++) {
    // half the edits land near a structure (headers, bitmaps, descriptors, notes)
    const at = r() < 0.5 && hot.length ? hot[Math.floor(r() * hot.length)]! + Math.floor(r() * 256) : Math.floor(r() * b.length);
    if (at >= b.length) continue;
    const t = r();
    if (t < 0.5) b[at] = Math.floor(r() * 256);
    else if (t < 0.75) b.fill(0xff, at, Math.min(b.length, at + 8));
    else if (t < 0.9) b.fill(0, at, Math.min(b.length, at + 8));
    else new DataView(b.buffer).setUint32(Math.min(at, b.length - 4), 0x7fffffff, true);
    edits.push(`0x${at.toString(16)}`);
  }
  return { bytes: b, what: `edit ${edits.join(',')}` };
}

// The intact fixtures of the kinds that were once read wrong must still read right, and a
// damaged page descriptor must cost that page only.
const wrong: string[] = [];
for (const fx of job.fixtures) {
  const e = fx.expect;
  if (!e) continue;
  try {
    const d = await openDump([new BufferSource(fx.bytes, fx.name)], codecs);
    const r = await describeDump(d);
    const got = { pageSize: d.pageSize, ram: r.pages.ram, dumped: r.pages.dumped, abi: (r.header as { abi?: string }).abi };
    if (got.pageSize !== e.pageSize || got.ram !== e.ram || got.dumped !== e.dumped || (e.abi !== undefined && got.abi !== e.abi) || r.warnings.length) {
      wrong.push(`${fx.name}: intact fixture reads as ${JSON.stringify(got)} with warnings ${JSON.stringify(r.warnings)}, expected ${JSON.stringify(e)}`);
    }
    if (e.taskNote) {
      const { cpus } = parseCpuNotes(d.notes, d.littleEndian);
      const m = registersOfTask(cpus, e.taskNote.pid);
      if (m?.index !== e.taskNote.index || cpus.some((c) => c.cpu !== null)) wrong.push(`${fx.name}: the note of pid ${e.taskNote.pid} is not matched at ${e.taskNote.index}, or a note got a CPU number it cannot know`);
    }
    for (let k = 0; fx.descs && k < fx.descs.count; k++) {
      const b = fx.bytes.slice();
      const dv = new DataView(b.buffer);
      const o = fx.descs.offset + k * 24;
      const le = d.littleEndian;
      dv.setUint32(o + 8, 0, le);
      dv.setUint32(o + 12, 0, le);
      const dd = await openDump([new BufferSource(b, fx.name)], codecs);
      const rr = await describeDump(dd);
      const shared = rr.pages.zeroShared! < r.pages.zeroShared!; // the damaged one was a shared zero page descriptor
      let readable = 0;
      for await (const run of dd.pageRuns()) {
        for (let p = run.startPfn; p < run.endPfn; p++) {
          if (run.state === 'data' || run.state === 'zero') {
            await dd.readPage(p);
            readable++;
          }
        }
      }
      if (rr.pages.damaged !== 1 || rr.pages.dumped !== e.dumped - 1 || readable !== e.dumped - 1 || !rr.warnings.some((w) => w.code === 'PAGES_DAMAGED' && /damaged page descriptor/.test(w.text))) {
        wrong.push(`${fx.name}: descriptor ${k} damaged${shared ? ' (zero page)' : ''}: damaged ${rr.pages.damaged}, dumped ${rr.pages.dumped}, readable ${readable} (expected 1, ${e.dumped - 1}, ${e.dumped - 1}), warnings ${JSON.stringify(rr.warnings)}`);
      }
    }
  } catch (err) {
    wrong.push(`${fx.name}: intact fixture fails: ${(err as Error).message}`);
  }
}

for (let i = 0; i < job.count; i++) {
  const fx = job.fixtures[i % job.fixtures.length]!;
  const m = mutate(fx.bytes, fx.hotspots);
  if (process.env.MUT_ONLY && Number(process.env.MUT_ONLY) !== i) continue;
  const t0 = performance.now();
  if (process.env.MUT_DEBUG) writeSync(2, `case ${i} ${fx.name} ${m.what}\n`);
  try {
    const d = await openDump([new BufferSource(m.bytes, fx.name)], codecs);
    await describeDump(d);
    let n = 0;
    for await (const run of d.pageRuns()) {
      for (let p = run.startPfn; p < run.endPfn && n < 512; p++, n++) {
        await d.readPage(p).catch((e) => {
          if (!isVmcoreError(e)) throw e;
        });
      }
    }
    clean++;
  } catch (e) {
    if (isVmcoreError(e)) {
      typed++;
      codes[e.code] = (codes[e.code] ?? 0) + 1;
      if (!e.message.startsWith(fx.name)) failures.push(`${fx.name} ${m.what}: typed error without the file name: ${e.message}`);
    } else failures.push(`${fx.name} ${m.what}: ${(e as Error)?.stack ?? String(e)}`);
  }
  maxMs = Math.max(maxMs, performance.now() - t0);
  maxArrayBuffers = Math.max(maxArrayBuffers, process.memoryUsage().arrayBuffers);
}
parentPort!.postMessage({ wrong, typed, clean, failures: failures.slice(0, 20), nFailures: failures.length, codes, maxMs, maxArrayBuffers });
