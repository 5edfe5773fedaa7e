/**
 * The celf output plug-in of the convert pipeline, on a small streamed input (no worker
 * threads): every page read back equals the page streamed in, zero runs cost no chunk, RAM
 * above 4 GiB works, and chunks of several sizes and codecs give the same memory.
 */
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { spawnSync } from 'node:child_process';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { convertDump, type PageStreamInput } from '../../src/node/convert/index.js';
import { celfOutput } from '../../src/node/convert/celf.js';
import { openDumpFiles } from '../../src/node/open.js';
import type { OutputCodec } from '../../src/core/format/kdump/writer.js';

const PS = 4096;
const tmp = mkdtempSync(join(tmpdir(), 'vmcore-celf-convert-'));
after(() => rmSync(tmp, { recursive: true, force: true }));

/** Page content: text for most pages, zero for some, incompressible for others. */
function page(pfn: number): Uint8Array {
  const b = new Uint8Array(PS);
  if (pfn % 97 < 20) return b; // zero runs of 20 pages (cut out) ...
  if (pfn % 7 === 3) return b; // ... and single zero pages (kept inside chunks)
  if (pfn % 31 === 0) {
    let x = pfn;
    for (let i = 0; i < PS; i++) b[i] = (x = (x * 1103515245 + 12345) >>> 0) >>> 24;
    return b;
  }
  b.set(new TextEncoder().encode(`page ${pfn} `.repeat(600).slice(0, PS)));
  return b;
}

const RANGES = [
  { startPfn: 0, endPfn: 160 },
  { startPfn: 0x300, endPfn: 0x333 }, // not chunk aligned
  { startPfn: 0xfffe0, endPfn: 0x100050 }, // across 4 GiB
];

function input(): PageStreamInput {
  return {
    kind: 'stream',
    name: 'synthetic',
    pageSize: PS,
    arch: 'x86_64',
    is64: true,
    littleEndian: true,
    notes: [{ name: 'VMCOREINFO', type: 0, desc: new TextEncoder().encode('OSRELEASE=6.1.0-x\nPAGESIZE=4096\n') }],
    vmcoreinfoText: 'OSRELEASE=6.1.0-x\nPAGESIZE=4096\n',
    ranges: RANGES,
    maxPfn: 0x100100,
    pages: (async function* () {
      for (const r of RANGES) {
        for (let p = r.startPfn; p < r.endPfn; p += 16) {
          const n = Math.min(16, r.endPfn - p);
          const data = new Uint8Array(n * PS);
          for (let i = 0; i < n; i++) data.set(page(p + i), i * PS);
          yield { startPfn: p, data };
        }
      }
    })(),
  };
}

for (const [codec, chunk, threads] of [
  ['zstd', 65536, 0],
  ['lzo', 16384, 0],
  ['zlib', 262144, 0],
  ['none', 32768, 0],
  ['zstd', 16384, 2], // worker threads: groups of windows travel as transferred buffers
] as [OutputCodec, number, number][]) {
  test(`convert stream → celf (${codec}, ${chunk / 1024} KiB chunks, ${threads} threads): pages, holes and zero ranges`, async () => {
    const out = join(tmp, `s-${codec}-${threads}.celf`);
    const s = await convertDump(input(), out, { codec, threads, outputFormat: celfOutput({ chunkSize: chunk, threads }) });
    assert.equal(s.bytesOut > 0, true);
    assert.equal(s.codec, codec, 'the summary names the codec of the chunks');
    const d = await openDumpFiles([out]);
    assert.equal(d.format, 'celf');
    assert.equal(d.maxPfn, 0x100100);
    assert.equal(d.vmcoreinfoText, 'OSRELEASE=6.1.0-x\nPAGESIZE=4096\n');
    for (const r of RANGES) {
      for (let p = r.startPfn; p < r.endPfn; p++) {
        assert.notEqual(await d.pageState(p), 'hole');
        assert.deepEqual(await d.readPage(p), page(p), `pfn 0x${p.toString(16)}`);
      }
    }
    assert.equal(await d.pageState(0), 'zero', 'a 20-page zero run is a zero range');
    assert.equal(await d.pageState(200), 'hole');
    assert.equal(await d.pageState(0x100050), 'hole');
    await d.close();
    if (codec !== 'none') assert.ok(statSync(out).size < 0.6 * 380 * PS, `compressed: ${statSync(out).size} bytes`);
  });
}

test('a celf conversion that fails half-way ends its worker threads: the process exits', () => {
  // in a child process, so that a thread left running shows as a process that does not exit
  const root = new URL('../../../', import.meta.url);
  const src = `
    const { openDumpFiles } = await import(${JSON.stringify(new URL('dist/src/node/open.js', root).href)});
    const { convertDump } = await import(${JSON.stringify(new URL('dist/src/node/convert/index.js', root).href)});
    const { celfOutput } = await import(${JSON.stringify(new URL('dist/src/node/convert/celf.js', root).href)});
    const dump = await openDumpFiles([${JSON.stringify(new URL('samples/seabios-128M.md-c-d31.kdump', root).pathname)}]);
    const ac = new AbortController();
    let n = 0;
    try {
      await convertDump(dump, ${JSON.stringify(join(tmp, 'aborted.celf'))}, { outputFormat: celfOutput({ threads: 2 }), threads: 2, batchPages: 64, signal: ac.signal, onProgress: () => void (++n === 20 && ac.abort()) });
      console.log('finished');
    } catch (e) {
      console.log(e.code);
      console.error(e.message);
    }
    await dump.close();`;
  const script = join(tmp, 'abort.mjs');
  writeFileSync(script, src);
  const r = spawnSync(process.execPath, [script], { encoding: 'utf8', timeout: 60_000 });
  assert.equal(r.signal, null, `the process did not exit by itself (killed by ${r.signal}): ${r.stderr}`);
  assert.equal(r.stdout.trim(), 'INTERRUPTED', r.stdout + r.stderr);
  assert.equal(r.status, 0);
});

test('a full disk under a celf kept incomplete: the last chunks give way to the index, and the file reads back marked incomplete with the pages it kept', async () => {
  const { CelfFormat } = await import('../../src/node/convert/celf.js');
  const { fullDiskSink, fillUntilFull, wholePlan } = await import('../helpers/full-disk.js');
  const PS = 4096;
  const N = 8192; // 32 MiB of pages that do not compress
  const LIMIT = 20 << 20; // the disk holds 20 MiB
  const page = (pfn: number) => {
    const b = new Uint8Array(PS);
    let x = (pfn * 2654435761) >>> 0 || 1;
    for (let i = 0; i < PS; i++) {
      x ^= x << 13;
      x ^= x >>> 17;
      x ^= x << 5;
      b[i] = x & 255;
    }
    return b;
  };
  const sink = fullDiskSink('full.celf', LIMIT);
  const fmt = new CelfFormat({ codec: 'zstd', level: 1, threads: 0 });
  await fmt.begin(wholePlan(N, PS, { codec: 'zstd' }), sink);
  assert.match(String(await fillUntilFull(fmt, N, PS, page)), /no space left/);
  const end = await fmt.finish({ incomplete: true });
  assert.ok(end <= LIMIT && end === sink.bytes().length, `the file ends at ${end} (${sink.bytes().length}), within the disk's ${LIMIT}`);
  const f = join(tmp, 'full.celf');
  writeFileSync(f, sink.bytes());
  const d = await openDumpFiles([f]);
  try {
    assert.ok(d.warnings.some((w) => w.code === 'MARKED_INCOMPLETE'), d.warnings.map((w) => w.code).join());
    let kept = 0;
    for await (const r of d.pageRuns(0, N)) {
      if (r.state !== 'data') continue;
      for (let p = r.startPfn; p < r.endPfn; p++, kept++) assert.deepEqual(await d.readPage(p), page(p), `pfn ${p}`);
    }
    // what fits: the chunks before the index, nearly all of the 20 MiB
    assert.ok(kept > (LIMIT >> 12) * 0.8 && kept < LIMIT >> 12, `${kept} pages kept`);
  } finally {
    await d.close();
  }
});
