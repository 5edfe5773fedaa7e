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

interface Job {
  fixtures: { name: string; bytes: Uint8Array; hotspots: number[] }[];
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
parentPort!.postMessage({ typed, clean, failures: failures.slice(0, 20), nFailures: failures.length, codes, maxMs, maxArrayBuffers });
