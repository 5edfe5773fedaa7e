/**
 * Dumps read once, in order, from a pipe (`-`, a FIFO): openDumpStream (flattened kdump, plain
 * kdump, ELF) against the random-access readers over the same bytes, and the CLI through real
 * pipes. The reference digest is what the file readers give for the repo sample
 * (samples/seabios-128M.md-c-d31.kdump, makedumpfile -c -d 31 of a real guest; its digest is
 * also what libkdumpfile computes, see test/interop/convert.test.ts).
 */
import { type Warning } from '../../src/core/warnings.js';
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { openDumpStream } from '../../src/node/stream/kdump-stream.js';
import { nodeCodecs } from '../../src/node/codecs.js';
import { hashMemory, hashPageChunks } from '../../src/core/hash.js';
import { openDumpFiles } from '../../src/node/open.js';
import { nodeSha256 } from '../../src/node/hash.js';
import { isVmcoreError } from '../../src/core/errors.js';
import { KdumpDump } from '../../src/core/format/kdump/reader.js';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '../../..');
const CLI = join(ROOT, 'dist/src/cli/vmcore.js');
const SAMPLE = join(ROOT, 'samples/seabios-128M.md-c-d31.kdump');

let sampleDigest: string | undefined;
async function sampleSha(): Promise<string> {
  if (!sampleDigest) {
    const d = await openDumpFiles([SAMPLE]);
    sampleDigest = (await hashMemory(d, { hasher: nodeSha256 })).sha256;
    await d.close();
  }
  return sampleDigest;
}

/** Chunks of uneven sizes (1..70001 bytes), as a pipe delivers them. */
async function* chunked(b: Uint8Array, seed = 7): AsyncGenerator<Uint8Array> {
  let x = seed;
  for (let o = 0; o < b.length; ) {
    x = (x * 1103515245 + 12345) % 2 ** 31;
    const n = 1 + (x % 70001);
    yield b.subarray(o, Math.min(b.length, o + n));
    o += n;
  }
}

function flatHeader(): Uint8Array {
  const h = new Uint8Array(4096);
  h.set(new TextEncoder().encode('makedumpfile'), 0);
  const dv = new DataView(h.buffer);
  dv.setBigInt64(16, 1n, false); // type
  dv.setBigInt64(24, 1n, false); // version
  return h;
}

function record(offset: number, data: Uint8Array): Uint8Array {
  const r = new Uint8Array(16 + data.length);
  const dv = new DataView(r.buffer);
  dv.setBigInt64(0, BigInt(offset), false);
  dv.setBigInt64(8, BigInt(data.length), false);
  r.set(data, 16);
  return r;
}

function concat(parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((a, p) => a + p.length, 0));
  let o = 0;
  for (const p of parts) {
    out.set(p, o);
    o += p.length;
  }
  return out;
}

/**
 * A flattened stream of `file` in makedumpfile's order (makedumpfile.c write_kdump_pages_cyclic
 * with its 64 KiB caches): header, sub-header and bitmaps, then page data in 64 KiB records,
 * each followed by a smaller record of the descriptors, which lag behind their data.
 */
async function makedumpfileLikeFlat(file: Uint8Array, opts: { descLag?: number; endMarker?: boolean } = {}): Promise<{ stream: Uint8Array; descOffset: number; dataStart: number }> {
  const d = await openDumpFiles([SAMPLE]);
  assert.ok(d instanceof KdumpDump);
  const part = d.parts[0]!;
  const descOffset = part.descOffset;
  const dataStart = descOffset + part.numDescs * 24;
  await d.close();
  const recs: Uint8Array[] = [flatHeader()];
  for (let o = 0; o < descOffset; o += 4096) recs.push(record(o, file.subarray(o, Math.min(descOffset, o + 4096))));
  const descs = file.subarray(descOffset, dataStart);
  const data = file.subarray(dataStart);
  const DCH = 600;
  let dpos = 0;
  for (let o = 0; o < data.length; o += 65536) {
    recs.push(record(dataStart + o, data.subarray(o, Math.min(data.length, o + 65536))));
    // descriptors for roughly the pages written so far, minus a lag
    const want = Math.min(descs.length, Math.floor(((o + 65536) / data.length) * descs.length) - (opts.descLag ?? 0) * 24);
    while (dpos + DCH <= want) {
      recs.push(record(descOffset + dpos, descs.subarray(dpos, dpos + DCH)));
      dpos += DCH;
    }
  }
  if (dpos < descs.length) recs.push(record(descOffset + dpos, descs.subarray(dpos)));
  if (opts.endMarker !== false) {
    const end = new Uint8Array(16);
    new DataView(end.buffer).setBigInt64(0, -1n, false);
    new DataView(end.buffer).setBigInt64(8, -1n, false);
    recs.push(end);
  }
  return { stream: concat(recs), descOffset, dataStart };
}

async function streamSha(b: Uint8Array): Promise<{ sha: string; pages: number; warnings: Warning[]; format: string }> {
  const s = await openDumpStream(chunked(b), { name: 'test stream', codecs: nodeCodecs() });
  const r = await hashPageChunks(s.input.pages, s.input.pageSize, { hasher: nodeSha256 });
  return { sha: r.sha256, pages: r.pages, warnings: s.warnings, format: s.format };
}

async function streamErr(b: Uint8Array): Promise<{ code: string; message: string }> {
  try {
    await streamSha(b);
  } catch (e) {
    if (isVmcoreError(e)) return { code: e.code, message: e.message };
    throw e;
  }
  assert.fail('no error');
}

test('a makedumpfile-order flattened stream (data before its descriptors) gives the file digest', async () => {
  const file = new Uint8Array(await readFile(SAMPLE));
  const { stream } = await makedumpfileLikeFlat(file, { descLag: 40 });
  const r = await streamSha(stream);
  assert.equal(r.format, 'flattened kdump');
  assert.equal(r.sha, await sampleSha());
  assert.equal(r.pages, 15374);
  assert.deepEqual(r.warnings, []);
});

test('a plain kdump file read front to back (descriptors before all data) gives the file digest', async () => {
  const file = new Uint8Array(await readFile(SAMPLE));
  const r = await streamSha(file);
  assert.equal(r.format, 'kdump');
  assert.equal(r.sha, await sampleSha());
});

test('a flattened stream without the end marker is read, with a warning that it may be cut short', async () => {
  const file = new Uint8Array(await readFile(SAMPLE));
  const { stream } = await makedumpfileLikeFlat(file, { endMarker: false });
  const r = await streamSha(stream);
  assert.equal(r.sha, await sampleSha());
  assert.ok(r.warnings.some((w) => w.code === 'FILE_TRUNCATED' && /no end marker/.test(w.text)), JSON.stringify(r.warnings));
});

test('hostile streams: typed errors, never a hang', async () => {
  const file = new Uint8Array(await readFile(SAMPLE));
  const { stream, descOffset, dataStart } = await makedumpfileLikeFlat(file);
  // cut inside the pages
  const cut = await streamErr(stream.subarray(0, Math.floor(stream.length / 2)));
  assert.equal(cut.code, 'TRUNCATED');
  assert.match(cut.message, /ended (after|inside)/);
  // cut inside the bitmaps
  assert.equal((await streamErr(stream.subarray(0, 4096 + 3 * (4096 + 16)))).code, 'TRUNCATED');
  assert.equal((await streamErr(new Uint8Array(0))).code, 'TRUNCATED');
  assert.equal((await streamErr(new TextEncoder().encode('this is not a dump at all, no.....'))).code, 'BAD_MAGIC');
  // a record with a negative size
  const bad = concat([flatHeader(), record(0, file.subarray(0, 4096))]);
  new DataView(bad.buffer).setBigInt64(4096 + 8, -5n, false);
  const br = await streamErr(bad);
  assert.equal(br.code, 'BAD_FIELD');
  // a bitmap written again after the first page (makedumpfile cyclic mode, several cycles)
  const again = concat([stream.subarray(0, stream.length - 16), record(descOffset - 4096, file.subarray(descOffset - 4096, descOffset))]);
  // (the rewrite comes after all pages here: harmless, the pages are done) -> put it before the data
  const meta: Uint8Array[] = [flatHeader()];
  for (let o = 0; o < descOffset; o += 4096) meta.push(record(o, file.subarray(o, Math.min(descOffset, o + 4096))));
  const cyc = concat([...meta, record(descOffset, file.subarray(descOffset, descOffset + 24 * 10)), record(descOffset - 4096, file.subarray(descOffset - 4096, descOffset)), record(dataStart, file.subarray(dataStart))]);
  const ce = await streamErr(cyc);
  assert.equal(ce.code, 'UNSUPPORTED');
  assert.match(ce.message, /bitmap again/);
  assert.equal((await streamSha(again)).sha, await sampleSha());
  // descriptors out of order
  const ooo = concat([...meta, record(descOffset + 240, file.subarray(descOffset + 240, descOffset + 480))]);
  assert.equal((await streamErr(ooo)).code, 'UNSUPPORTED');
  // a descriptor whose page data lies far behind what was already passed
  const descs = file.slice(descOffset, dataStart);
  const dv = new DataView(descs.buffer);
  const last = (descs.length / 24 - 1) * 24;
  dv.setBigInt64(last, BigInt(dataStart + 8192), true);
  const back = concat([...meta, record(dataStart, file.subarray(dataStart)), record(descOffset, descs)]);
  const be = await streamErr(back);
  assert.match(be.code, /UNSUPPORTED|DECOMPRESS|PAGE_DAMAGED/);
  // a damaged descriptor (size 0)
  const dam = file.slice(descOffset, dataStart);
  new DataView(dam.buffer).setUint32(24 * 5 + 8, 0, true);
  const de = await streamErr(concat([...meta, record(descOffset, dam), record(dataStart, file.subarray(dataStart))]));
  assert.equal(de.code, 'PAGE_DAMAGED');
  assert.match(de.message, /pfn 0x/);
});

function sh(cmd: string): { rc: number | null; out: string; err: string } {
  const r = spawnSync('sh', ['-c', cmd], { encoding: 'utf8', maxBuffer: 64 << 20, env: { ...process.env, V: `${process.execPath} ${CLI}` } });
  return { rc: r.status, out: r.stdout, err: r.stderr };
}

test('CLI through real pipes: convert - (flattened from convert OUT "-"), -R, hash - (ELF, kdump), a FIFO; the memory digest survives', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'vmcore-stream-'));
  try {
    const want = await sampleSha();
    const a = join(dir, 'a.kdump');
    // uncompressed outputs keep the test fast; the codecs have their own tests
    let r = sh(`$V convert --quiet --compress none "${SAMPLE}" - | $V convert --quiet --compress none - "${a}"`);
    assert.equal(r.rc, 0, r.err);
    r = sh(`$V hash --json "${a}"`);
    assert.equal(JSON.parse(r.out).sha256, want);
    // -R: the dump from standard input (here a plain kdump file), to ELF
    const e = join(dir, 'e.elf');
    r = sh(`cat "${a}" | $V convert -R -E --quiet "${e}"`);
    assert.equal(r.rc, 0, r.err);
    assert.equal(JSON.parse(sh(`$V hash --json "${e}"`).out).sha256, want);
    // an ELF stream and a compressed kdump stream on standard input
    r = sh(`cat "${e}" | $V hash --json -`);
    assert.equal(r.rc, 0, r.err);
    assert.equal(JSON.parse(r.out).sha256, want);
    r = sh(`cat "${SAMPLE}" | $V hash -`);
    assert.match(r.out, new RegExp(`^${want}  15374 pages\\n$`));
    // a FIFO given by name
    const fifo = join(dir, 'in.fifo');
    assert.equal(sh(`mkfifo "${fifo}"`).rc, 0);
    const writer = spawn('sh', ['-c', `cat "${e}" > "${fifo}"`]);
    r = sh(`$V hash --json "${fifo}"`);
    await new Promise((res) => writer.on('close', res));
    assert.equal(r.rc, 0, r.err);
    assert.equal(JSON.parse(r.out).sha256, want);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test('commands that need a seekable file say so for "-" and pipes: NOT_SEEKABLE naming the command, exit 1', async () => {
  for (const cmd of ['info', 'dmesg', 'read', 'vmcoreinfo']) {
    const args = cmd === 'read' ? `read - --phys 0 --length 16` : `${cmd} -`;
    const r = sh(`cat "${SAMPLE}" | $V ${args}`);
    assert.equal(r.rc, 1, `${cmd}: ${r.err}`);
    assert.match(r.err, new RegExp(`^vmcore: NOT_SEEKABLE: .*vmcore ${cmd} needs a seekable file`), cmd);
    assert.doesNotMatch(r.err, /ENOENT/);
  }
  // standard input redirected from a regular file is still read once, in order: not called a pipe
  const f0 = sh(`$V info - < "${SAMPLE}"`);
  assert.equal(f0.rc, 1, f0.err);
  assert.match(f0.err, /NOT_SEEKABLE: standard input: it is read once, in order, whether a pipe or a redirected file.*give the file's path/);
  assert.doesNotMatch(f0.err, /a pipe cannot/);
  // page filtering needs random access too: a usage error
  const f = sh(`cat "${SAMPLE}" | $V convert -d 31 - /dev/null`);
  assert.equal(f.rc, 2, f.err);
  assert.match(f.err, /random access/);
  const dir = await mkdtemp(join(tmpdir(), 'vmcore-stream-'));
  try {
    await writeFile(join(dir, 'x'), '');
    const r = sh(`$V convert -R "${SAMPLE}" "${join(dir, 'y')}" < /dev/null`);
    assert.equal(r.rc, 2);
    assert.match(r.err, /only OUT/);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});
