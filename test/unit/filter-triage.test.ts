import { type Warning } from '../../src/core/warnings.js';
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { appendFile, copyFile, mkdtemp, rm, stat, truncate } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { openDumpFiles } from '../../src/node/open.js';
import { analyzeKernel } from '../../src/core/kernel/kernel.js';
import { convertDump } from '../../src/node/convert/index.js';
import { checkFilteredOutput, planFilter, startFilter } from '../../src/node/convert/filter.js';
import { pagesDigest, triageRecord } from '../../src/core/triage.js';
import { nodeSha256 } from '../../src/node/hash.js';
import type { ExcludedRun } from '../../src/core/kernel/pagefilter.js';
import { isVmcoreError } from '../../src/core/errors.js';
import { backtraceReport, createBacktracer } from '../../src/core/kernel/backtrace.js';
import { Worker } from 'node:worker_threads';
import { prestartWorkers } from '../../src/node/workers/prestart.js';

// a real dump: makedumpfile 1.7.2 -c -d 31 of a Debian 6.1 guest
const SAMPLE = new URL('../../../samples/seabios-128M.md-c-d31.kdump', import.meta.url).pathname;

/** Wrongly classify every page triage reads (and nothing else) as page cache. */
async function wrongRuns(): Promise<ExcludedRun[]> {
  const d = await openDumpFiles([SAMPLE]);
  try {
    const { pfns } = await triageRecord(d);
    assert.ok(pfns.length > 10);
    return pfns.map((p) => ({ startPfn: p, endPfn: p + 1, kind: 'cache' as const }));
  } finally {
    await d.close();
  }
}

test('page filter on a real 6.1 dump: level 31 again leaves out nothing more, triage agrees', async () => {
  const d = await openDumpFiles([SAMPLE]);
  try {
    const k = await analyzeKernel(d);
    const plan = await planFilter(d, k, 31);
    assert.ok(plan);
    assert.equal(plan.model.encoding, 'mapcount value (2.6.38-6.11)');
    // makedumpfile already left out every page of these kinds: all runs fall on excluded pages
    for (const r of plan.exclude) assert.equal(await d.pageState(r.startPfn), 'excluded', `pfn 0x${r.startPfn.toString(16)} ${r.kind}`);
    assert.ok(plan.exclude.length > 10, `free, cache and user runs are found (${plan.exclude.length})`);
    for (const kind of ['free', 'cache', 'user'] as const) assert.ok(plan.exclude.some((r) => r.kind === kind), kind);
    assert.match(plan.triage.dmesg, /sysrq triggered crash/);
  } finally {
    await d.close();
  }
});

test('triage guard: a wrong classification that drops what dmesg reads is refused before writing', async () => {
  const bad = await wrongRuns();
  const d = await openDumpFiles([SAMPLE]);
  try {
    const k = await analyzeKernel(d);
    await assert.rejects(planFilter(d, k, 31, { alter: () => bad }), (e: unknown) => isVmcoreError(e) && e.code === 'TRIAGE' && /dmesg: differs|physBase|release/.test(e.message) && /nothing written/.test(e.message));
    const warnings: Warning[] = [];
    const plan = await planFilter(d, k, 31, { alter: () => bad, force: true, onWarning: (w) => warnings.push(w) });
    assert.ok(plan && warnings.some((w) => w.code === 'FILTER_FORCED' && /would change what info\/dmesg\/bt -a say/.test(w.text)));
  } finally {
    await d.close();
  }
});

test('triage guard with the input\'s triage on a worker thread: the same plan as on this thread, and a wrong classification is still refused', async () => {
  const bad = await wrongRuns();
  const d = await openDumpFiles([SAMPLE]);
  try {
    const k = await analyzeKernel(d);
    const here = (await planFilter(d, k, 31))!;
    const there = (await planFilter(d, k, 31, { inputFiles: [SAMPLE] }))!;
    assert.deepEqual(there.triage, here.triage);
    assert.deepEqual(there.exclude, here.exclude);
    assert.ok(here.touched && here.touched.pfns.length > 10, 'triage read a set of pages');
    // the digest the worker made of the pages it read is the one this thread makes of them
    assert.deepEqual(there.touched, here.touched);
    assert.equal(here.touched.digest, await pagesDigest(d, here.touched.pfns, nodeSha256));
    await assert.rejects(planFilter(d, k, 31, { inputFiles: [SAMPLE], alter: () => bad }), (e: unknown) => isVmcoreError(e) && e.code === 'TRIAGE' && /dmesg: differs|physBase|release/.test(e.message) && /nothing written/.test(e.message));
    // the worker's errors are the calling thread's: a file that is not there
    await assert.rejects(planFilter(d, k, 31, { inputFiles: [SAMPLE + '.absent'] }), (e: unknown) => isVmcoreError(e) && e.code === 'IO');
    // judged after the output is written (convert's order): the refusal removes it
    const dir = await mkdtemp(join(tmpdir(), 'vmcore-filter-'));
    try {
      const started = (await startFilter(d, k, 31, { inputFiles: [SAMPLE], alter: () => bad }))!;
      assert.ok(started.concurrent, 'the triage runs on a worker thread');
      const out = join(dir, 'bad.kdump');
      await convertDump(d, out, { dumpLevel: 31, exclude: started.exclude, threads: 0 });
      await assert.rejects(started.finish([out]), (e: unknown) => isVmcoreError(e) && e.code === 'TRIAGE' && /output removed/.test(e.message));
      await assert.rejects(stat(out));
      // a triage thread that fails (here: its file is not there) judges nothing: the output goes too
      const failing = (await startFilter(d, k, 31, { inputFiles: [SAMPLE + '.absent'] }))!;
      await convertDump(d, out, { dumpLevel: 31, exclude: failing.exclude, threads: 0 });
      await assert.rejects(failing.finish([out]), (e: unknown) => isVmcoreError(e) && e.code === 'IO' && /output removed$/.test(e.message));
      await assert.rejects(stat(out));
      // without the files, no worker: judged on this thread
      assert.equal((await startFilter(d, k, 31))!.concurrent, false);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  } finally {
    await d.close();
  }
});

test('triage thread that answers its record and dies before the page digests: IO, and the written output is removed', async () => {
  const d = await openDumpFiles([SAMPLE]);
  const dir = await mkdtemp(join(tmpdir(), 'vmcore-filter-'));
  try {
    const k = await analyzeKernel(d);
    const record = await triageRecord(d);
    // a stand-in for the triage thread, taken as a prestarted one (src/node/workers/prestart.ts):
    // it answers the record, then exits where the digests would come
    const code = "const { parentPort, workerData } = require('node:worker_threads'); parentPort.once('message', () => { parentPort.postMessage({ record: workerData.record }); setTimeout(() => process.exit(3), 20); });";
    const w = new Worker(code, { eval: true, workerData: { record } });
    prestartWorkers('triage-worker', 0); // makes the shared list of spares
    (globalThis as unknown as Record<symbol, Record<string, Worker[]>>)[Symbol.for('vmcore.prestartedWorkers')]!['triage-worker']!.push(w);
    const started = (await startFilter(d, k, 31, { inputFiles: [SAMPLE] }))!;
    assert.ok(started.concurrent);
    const out = join(dir, 'out.kdump');
    await convertDump(d, out, { dumpLevel: 31, exclude: started.exclude, threads: 0 });
    await assert.rejects(started.finish([out]), (e: unknown) => isVmcoreError(e) && e.code === 'IO' && /exited \(code 3\)/.test(e.message) && /output removed$/.test(e.message));
    await assert.rejects(stat(out), 'the output is gone');
  } finally {
    await rm(dir, { recursive: true, force: true });
    await d.close();
  }
});

test('triage guard: a wrong classification that drops one sleeping task\'s kernel stack page changes bt -a and is refused', async () => {
  const d = await openDumpFiles([SAMPLE]);
  try {
    const k = await analyzeKernel(d);
    // the pages info and dmesg read: the injected page must be none of them, so only bt -a sees it
    const base = new Set((await triageRecord(d, { noBacktraces: true })).pfns);
    const full = await triageRecord(d);
    assert.ok(full.fingerprint.bt && !full.fingerprint.bt.startsWith('error'), 'bt -a works on the sample');
    const report = await backtraceReport(await createBacktracer(k), { all: true });
    let stackPfn: number | undefined;
    let who = '';
    for (const t of report.tasks) {
      if (t.task.activeCpu !== null || t.frames.length < 3) continue;
      // the deepest frame's stack slot: inside task_struct.stack (THREAD_SIZE below stackBase's top)
      const sp = t.frames[t.frames.length - 1]!.sp;
      const pfn = Math.floor((await k.virtToPhys(sp)) / d.pageSize);
      if (base.has(pfn) || !full.pfns.includes(pfn)) continue;
      stackPfn = pfn;
      who = `${t.task.comm} (pid ${t.task.pid})`;
      break;
    }
    assert.ok(stackPfn !== undefined, 'a sleeping task with a kernel stack page only bt reads');
    const bad: ExcludedRun[] = [{ startPfn: stackPfn, endPfn: stackPfn + 1, kind: 'user' }];
    // what info and dmesg say is unchanged by that page: only the backtraces catch it
    const noBt = await planFilter(d, k, 31, { alter: (r) => mergeRun(r, bad[0]!), noBacktraces: true });
    assert.ok(noBt, `without bt -a the guard passes the drop of ${who}'s stack page`);
    await assert.rejects(planFilter(d, k, 31, { alter: (r) => mergeRun(r, bad[0]!) }), (e: unknown) => {
      assert.ok(isVmcoreError(e) && e.code === 'TRIAGE', String(e));
      assert.match(e.message, /bt: differs from line/);
      assert.doesNotMatch(e.message, /dmesg: differs/);
      assert.match(e.message, new RegExp(`pfn 0x${stackPfn!.toString(16)} \\(user\\)`));
      return true;
    });
    const warnings: Warning[] = [];
    assert.ok(await planFilter(d, k, 31, { alter: (r) => mergeRun(r, bad[0]!), force: true, onWarning: (w) => warnings.push(w) }));
    assert.ok(warnings.some((w) => w.code === 'FILTER_FORCED' && /bt: differs/.test(w.text) && /--force/.test(w.text)), warnings.map((w) => w.text).join('\n'));
    // on a written output without that page: info and dmesg agree, the digest of the pages triage
    // read on the input does not, and the whole of triage then names bt -a
    const good = (await planFilter(d, k, 31))!;
    assert.ok(good.touched?.pfns.includes(stackPfn), 'the stack page is one triage asked about');
    const dir = await mkdtemp(join(tmpdir(), 'vmcore-filter-'));
    try {
      const out = join(dir, 'nostack.kdump');
      await convertDump(d, out, { dumpLevel: 31, exclude: mergeRun(good.exclude, bad[0]!), threads: 0 });
      await assert.rejects(checkFilteredOutput([out], good), (e: unknown) => {
        assert.ok(isVmcoreError(e) && e.code === 'TRIAGE', String(e));
        assert.match(e.message, /bt: differs from line/);
        assert.doesNotMatch(e.message, /dmesg: differs/);
        return true;
      });
      // the honest output passes the same check
      await convertDump(d, out, { dumpLevel: 31, exclude: good.exclude, threads: 0 });
      await checkFilteredOutput([out], good);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  } finally {
    await d.close();
  }
});

/** `runs` plus one more run, still sorted and disjoint. */
function mergeRun(runs: ExcludedRun[], x: ExcludedRun): ExcludedRun[] {
  const out = runs.filter((r) => r.endPfn <= x.startPfn || r.startPfn >= x.endPfn);
  out.push(x);
  return out.sort((a, b) => a.startPfn - b.startPfn);
}

test('triage guard: pages only the kernel analysis reads are checked by its conclusions, not by bt -a', async () => {
  const d = await openDumpFiles([SAMPLE]);
  const dir = await mkdtemp(join(tmpdir(), 'vmcore-filter-'));
  try {
    const k = await analyzeKernel(d);
    const r = await triageRecord(d);
    assert.ok(r.touched && r.afterAnalysis, 'triage read a set of pages');
    const after = new Set(r.afterAnalysis);
    const present = async (p: number) => ['data', 'zero'].includes(await d.pageState(p));
    const only: number[] = [];
    for (const p of r.touched) if (!after.has(p) && (await present(p))) only.push(p);
    // init_uts_ns: the analysis reads utsname (and proves phys_base with it), nothing after it does
    const vi = k.vmcoreinfo!;
    const utsVa = vi.symbol('init_uts_ns')! + BigInt(vi.offset('uts_namespace.name')!);
    const utsPfn = Math.floor((await k.virtToPhys(utsVa)) / d.pageSize);
    assert.ok(only.includes(utsPfn), `the utsname page 0x${utsPfn.toString(16)} is read by the analysis alone`);
    // the pages where a rejected phys_base candidate puts init_top_pgt and init_uts_ns: read only to reject it
    const pfnAt = (va: bigint, pb: bigint) => Number(BigInt.asUintN(64, va - 0xffffffff80000000n + pb) / BigInt(d.pageSize));
    const others = k.physBase.candidates
      .filter((c) => !c.accepted)
      .flatMap((c) => [pfnAt(vi.symbol('init_top_pgt')!, c.value), pfnAt(utsVa, c.value)])
      .filter((p) => only.includes(p));
    assert.ok(others.length >= 2, `a rejected candidate's pages are read by the analysis alone (${others.map((p) => p.toString(16)).join(', ')})`);
    const runs = (ps: number[]) => (base: ExcludedRun[]) => ps.reduce((acc, p) => mergeRun(acc, { startPfn: p, endPfn: p + 1, kind: 'cache' }), base);
    // leaving out the pages of the rejected candidates changes nothing: accepted, and the output passes
    const plan = (await planFilter(d, k, 31, { alter: runs(others) }))!;
    assert.ok(plan.touched, 'the output check compares pages');
    for (const p of others) assert.ok(!plan.touched.pfns.includes(p), `pfn 0x${p.toString(16)} is left out of the output's page digest`);
    const out = join(dir, 'others.kdump');
    await convertDump(d, out, { dumpLevel: 31, exclude: plan.exclude, threads: 0 });
    for (const p of others) assert.equal((await openDumpFiles([out]).then(async (o) => [await o.pageState(p), await o.close()]))[0], 'excluded');
    await checkFilteredOutput([out], plan);
    // leaving out the utsname page changes what info says: refused before writing
    await assert.rejects(planFilter(d, k, 31, { alter: runs([utsPfn]) }), (e: unknown) => {
      assert.ok(isVmcoreError(e) && e.code === 'TRIAGE', String(e));
      assert.match(e.message, /utsname: input/);
      return true;
    });
  } finally {
    await d.close();
    await rm(dir, { recursive: true, force: true });
  }
});

test('triage guard on the written output: removed when triage changed, kept with --force', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'vmcore-filter-'));
  const bad = await wrongRuns();
  const d = await openDumpFiles([SAMPLE]);
  try {
    const k = await analyzeKernel(d);
    const plan = (await planFilter(d, k, 31, { alter: () => bad, force: true }))!;
    const out = join(dir, 'bad.kdump');
    const s = await convertDump(d, out, { dumpLevel: 31, exclude: plan.exclude, threads: 0 });
    let presentBad = 0;
    for (const r of bad) if (['data', 'zero'].includes(await d.pageState(r.startPfn))) presentBad++;
    assert.equal(s.filtered?.cache, presentBad);
    await assert.rejects(checkFilteredOutput([out], plan), (e: unknown) => isVmcoreError(e) && e.code === 'TRIAGE' && /output removed/.test(e.message));
    await assert.rejects(stat(out));
    await convertDump(d, out, { dumpLevel: 31, exclude: plan.exclude, threads: 0 });
    const warnings: Warning[] = [];
    await checkFilteredOutput([out], plan, { force: true, onWarning: (w) => warnings.push(w) });
    assert.ok((await stat(out)).size > 0);
    assert.equal(warnings.length, 1);
    // the honest classification passes
    const good = (await planFilter(d, k, 31))!;
    const out2 = join(dir, 'good.kdump');
    await convertDump(d, out2, { dumpLevel: 31, exclude: good.exclude, threads: 0 });
    await checkFilteredOutput([out2], good);
  } finally {
    await d.close();
    await rm(dir, { recursive: true, force: true });
  }
});

test('usage: pages per type add up, the level-31 estimate keeps only kernel data', async () => {
  const { memoryUsage } = await import('../../src/node/usage.js');
  const d = await openDumpFiles([SAMPLE]);
  try {
    const r = await memoryUsage(d, await analyzeKernel(d), { samplePages: 256 });
    assert.equal(r.kernel, '6.1.0-56-cloud-amd64');
    assert.equal(r.pages, 15374);
    assert.equal(Object.values(r.types).reduce((n, t) => n + t.pages, 0), r.pages);
    // makedumpfile -d 31 wrote this file: nothing left to filter
    assert.equal(r.types.kernel.pages, r.pages);
    assert.equal(r.levels[31]!.pages, r.pages);
    assert.ok(r.sample.pages >= 200 && r.sample.zero > 0);
    // zero pages cost a descriptor at -d 1; the file itself (zlib, -d 31) is about the estimate
    const est = r.levels[31]!.bytes.zlib;
    assert.ok(r.levels[0]!.bytes.zlib > est && est > 0.7 * d.files[0]!.size && est < 1.3 * d.files[0]!.size, `estimate ${est}, file ${d.files[0]!.size}`);
  } finally {
    await d.close();
  }
});

test('triage guard: an input that changes while it is converted is named (TRUNCATED, IO), not taken for a filter that loses pages', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'vmcore-filter-'));
  try {
    const input = join(dir, 'in.kdump');
    await copyFile(SAMPLE, input);
    const size = (await stat(input)).size;
    const d = await openDumpFiles([input]);
    try {
      const k = await analyzeKernel(d);
      // cut short after it was opened, once the input's triage has answered: judged before the
      // output is kept, the refusal removes it
      const started = (await startFilter(d, k, 31, { inputFiles: [input] }))!;
      const out = join(dir, 'out.kdump');
      await convertDump(d, out, { dumpLevel: 31, exclude: started.exclude, threads: 0 });
      await started.settle();
      await truncate(input, size - 4096);
      await assert.rejects(started.finish([out]), (e: unknown) => {
        assert.ok(isVmcoreError(e) && e.code === 'TRUNCATED', String(e));
        assert.equal(e.file, input);
        assert.equal(e.offset, size - 4096);
        assert.match(e.message, new RegExp(`changed while it was converted: ${size} bytes when filtering began, ${size - 4096} now.*output removed`));
        return true;
      });
      await assert.rejects(stat(out));
      // grown after the plan was made: the output check names it; --force keeps the output with a warning
      await truncate(input, size);
      const plan = (await planFilter(d, k, 31, { inputFiles: [input] }))!;
      assert.deepEqual(plan.inputs, [{ name: input, size }]);
      await convertDump(d, out, { dumpLevel: 31, exclude: plan.exclude, threads: 0 });
      await appendFile(input, new Uint8Array(512));
      const warnings: Warning[] = [];
      await checkFilteredOutput([out], plan, { force: true, onWarning: (w) => warnings.push(w) });
      assert.ok(warnings.some((w) => w.code === 'FILTER_FORCED' && w.text.includes(`${size + 512} now`)), JSON.stringify(warnings));
      await stat(out);
      await assert.rejects(checkFilteredOutput([out], plan), (e: unknown) => isVmcoreError(e) && e.code === 'IO' && /changed while it was converted/.test(e.message));
      await assert.rejects(stat(out));
    } finally {
      await d.close();
    }
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});
