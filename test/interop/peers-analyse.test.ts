/**
 * Every file `vmcore convert` writes is analysed by each peer that reads its format, not just
 * opened:
 *  - crash 8.0.2 with the matching debug vmlinux runs `sys`, `log`, `bt` and `kmem -i`, and its
 *    session must equal crash's session on the makedumpfile original (the file names aside);
 *  - makedumpfile 1.7.2 re-filters it (`-d 31`), reassembles split sets (`--reassemble`) and
 *    rebuilds flattened streams (`-R`), and the result holds the same memory;
 *  - libkdumpfile and drgn read every page and their digests equal the original's.
 * Inputs: the repo sample (makedumpfile -c -d 31 of a real 128 MiB guest) and, with the
 * corpus (VMCORE_CORPUS, default ../shared/corpus), QEMU's own dumps of the three corpus guests.
 * The corpus kernel is linux-image-6.1.0-56-cloud-amd64; VMCORE_VMLINUX must be its -dbg
 * vmlinux (`VMCORE_KERNEL_ABI=6.1.0-56 scripts/guest/fetch-kernel.sh --dbg`). In CI (CI=true) a
 * missing tool or vmlinux fails the test instead of skipping it.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, rm, readdir } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { openDumpFiles } from '../../src/node/open.js';
import { hashMemory } from '../../src/core/hash.js';
import { nodeSha256 } from '../../src/node/hash.js';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '../../..');
const CLI = join(ROOT, 'dist/src/cli/vmcore.js');
const LKDF = join(ROOT, 'test/interop/convert-lkdf.py');
const DRGN = join(ROOT, 'test/interop/peer-digest.py');
const SAMPLE = join(ROOT, 'samples/seabios-128M.md-c-d31.kdump');
const SAMPLE_SHA = '03c2b8685986e5ee4bcfee31fc94ef61c42dfed7ec5029f6194829dc174feacb';
const SAMPLE_NONZERO_SHA = '9c170c51849794cc7dd8514ac085fd4bfc0685ca6851606e5b16664c4fd19088';
const RELEASE = '6.1.0-56-cloud-amd64';
const PY = '/usr/bin/python3';
const CI = process.env.CI === 'true';

function run(cmd: string, args: string[], opts: { input?: string; timeout?: number; shell?: boolean } = {}) {
  const r = spawnSync(cmd, args, { encoding: 'utf8', input: opts.input, timeout: opts.timeout ?? 600_000, maxBuffer: 256 << 20 });
  return { rc: r.status, out: r.stdout ?? '', err: r.stderr ?? '' };
}
const sh = (script: string) => run('sh', ['-c', script]);
const have = (cmd: string) => sh(`command -v ${cmd}`).rc === 0;
const HAVE = {
  crash: have('crash'),
  makedumpfile: have('makedumpfile'),
  lkdf: existsSync(PY) && run(PY, ['-c', 'import kdumpfile']).rc === 0,
  drgn: existsSync(PY) && run(PY, ['-c', 'import drgn']).rc === 0,
  zstd: have('zstd'),
};
const VMLINUX = [process.env.VMCORE_VMLINUX, `/usr/lib/debug/boot/vmlinux-${RELEASE}`].find(
  (p) => p && existsSync(p) && p.includes(RELEASE),
);
const CORPUS_DIR = process.env.VMCORE_CORPUS ?? resolve(ROOT, '../shared/corpus');
const CORPUS = existsSync(join(CORPUS_DIR, 'truth')) ? CORPUS_DIR : undefined;

/** What is missing for a check; in CI that is a failure, elsewhere a skip with the reason. */
function need(t: { skip(msg: string): void }, what: Record<string, boolean>): boolean {
  const missing = Object.entries(what)
    .filter(([, ok]) => !ok)
    .map(([k]) => k);
  if (!missing.length) return true;
  const msg = `missing: ${missing.join(', ')}`;
  if (CI) assert.fail(msg);
  t.skip(msg);
  return false;
}

function vmcore(...args: string[]) {
  const r = run(process.execPath, [CLI, ...args]);
  assert.equal(r.rc, 0, `vmcore ${args.join(' ')}: ${r.err}`);
  return r.out;
}

/** crash's session for sys, log, bt and kmem -i, without the lines that name the dump files. */
function crashSession(files: string[]): string {
  const r = run('crash', ['-s', VMLINUX!, ...files], { input: 'sys\nlog\nbt\nkmem -i\nquit\n' });
  const text = r.out + r.err;
  assert.equal(r.rc, 0, `crash ${files.join(' ')} exited ${r.rc}:\n${text.slice(0, 2000)}`);
  const lines = text.split('\n');
  const out: string[] = [];
  for (let i = 0; i < lines.length; i++) {
    const l = lines[i]!;
    if (/^\s*DUMPFILES?: /.test(l)) {
      // a split set lists one file per line
      while (i + 1 < lines.length && /^\s{10,}\S+( \[PARTIAL DUMP\])?$/.test(lines[i + 1]!)) i++;
      continue;
    }
    out.push(l);
  }
  const s = out.join('\n');
  for (const want of [`RELEASE: ${RELEASE}`, 'PANIC: "Kernel panic - not syncing: sysrq triggered crash"', 'VMCORE-CORPUS-MARKER', 'TOTAL MEM', ' #0 [']) {
    assert.ok(s.includes(want), `crash on ${files.join(' ')}: no "${want}" in:\n${s.slice(0, 3000)}`);
  }
  return s;
}

function firstDifference(a: string, b: string): string {
  const x = a.split('\n');
  const y = b.split('\n');
  for (let i = 0; i < Math.max(x.length, y.length); i++) if (x[i] !== y[i]) return `line ${i + 1}:\n- ${x[i]}\n+ ${y[i]}`;
  return '';
}

function lkdf(files: string[], skipZero = false): { sha256: string; pages: number } {
  const r = run(PY, [LKDF, ...files, ...(skipZero ? ['--skip-zero'] : [])]);
  assert.equal(r.rc, 0, `libkdumpfile on ${files.join(' ')}: ${r.err}`);
  return JSON.parse(r.out) as { sha256: string; pages: number };
}

function drgn(file: string, ranges: [number, number][]): { sha256: string; pages: number; unreadable: number; first_unreadable: number | null } {
  const r = run(PY, [DRGN, 'drgn', file, VMLINUX!], { input: JSON.stringify(ranges) });
  assert.equal(r.rc, 0, `drgn on ${file}: ${r.out}${r.err}`);
  return JSON.parse(r.out);
}

async function presentRanges(files: string[]): Promise<[number, number][]> {
  const d = await openDumpFiles(files);
  try {
    const out: [number, number][] = [];
    for await (const r of d.pageRuns()) if (r.state === 'data' || r.state === 'zero') out.push([r.startPfn, r.endPfn]);
    return out;
  } finally {
    await d.close();
  }
}

async function ourHash(files: string[], skipZero = false): Promise<{ sha256: string; pages: number }> {
  const d = await openDumpFiles(files);
  try {
    return await hashMemory(d, { hasher: nodeSha256, skipZero });
  } finally {
    await d.close();
  }
}

async function withTmp(fn: (dir: string) => Promise<void>): Promise<void> {
  const dir = await mkdtemp(join(tmpdir(), 'vmcore-peers-'));
  try {
    await fn(dir);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

test('crash analyses every convert output of the real sample as it analyses makedumpfile\'s file', async (t) => {
  if (!need(t, { crash: HAVE.crash, [`VMCORE_VMLINUX (${RELEASE} -dbg)`]: !!VMLINUX })) return;
  await withTmp(async (dir) => {
    const truth = crashSession([SAMPLE]);
    const outputs: [string, string[]][] = [];
    const o = (name: string, ...args: string[]) => {
      vmcore('convert', '--quiet', ...args, SAMPLE, join(dir, name));
      outputs.push([name, [join(dir, name)]]);
    };
    o('c.kdump', '-c');
    o('l.kdump', '-l', '-d', '1');
    o('e0.elf', '-E');
    o('e1.elf', '-E', '-d', '1');
    // the flattened stream on stdout, as `vmcore convert IN - | ssh … ` sends it
    assert.equal(sh(`node "${CLI}" convert -c --quiet "${SAMPLE}" - > "${join(dir, 'f.flat')}"`).rc, 0);
    outputs.push(['flattened', [join(dir, 'f.flat')]]);
    vmcore('convert', '--quiet', '-c', '--split', '3', SAMPLE, join(dir, 's'));
    outputs.push(['split set', [1, 2, 3].map((i) => join(dir, `s.${i}`))]);
    for (const [name, files] of outputs) {
      const s = crashSession(files);
      assert.equal(firstDifference(truth, s), '', `crash on our ${name} differs from crash on makedumpfile's file`);
    }
  });
});

test('makedumpfile re-filters (-d 31), reassembles (--reassemble) and rebuilds (-R) what convert writes; the memory stays the same', async (t) => {
  if (!need(t, { makedumpfile: HAVE.makedumpfile, 'python3-libkdumpfile': HAVE.lkdf })) return;
  await withTmp(async (dir) => {
    const p = (n: string) => join(dir, n);
    vmcore('convert', '--quiet', '-c', SAMPLE, p('c.kdump'));
    vmcore('convert', '--quiet', '-l', '-d', '1', SAMPLE, p('l.kdump'));
    vmcore('convert', '--quiet', '-E', SAMPLE, p('e0.elf'));
    vmcore('convert', '--quiet', '-E', '-d', '1', SAMPLE, p('e1.elf'));
    for (const [f, skipZero] of [['c.kdump', false], ['l.kdump', false], ['e0.elf', false], ['e1.elf', true]] as const) {
      const r = run('makedumpfile', ['-c', '-d', '31', p(f), p(`${f}.d31`)]);
      assert.equal(r.rc, 0, `makedumpfile -d 31 ${f}: ${r.out}${r.err}`);
      assert.equal(lkdf([p(`${f}.d31`)], skipZero).sha256, skipZero ? SAMPLE_NONZERO_SHA : SAMPLE_SHA, `re-filtered ${f}`);
    }
    // split sets: makedumpfile --reassemble must restore every page (it takes the bitmaps from the parts)
    for (const n of [2, 3]) {
      vmcore('convert', '--quiet', '-c', '--split', String(n), SAMPLE, p(`s${n}`));
      const parts = Array.from({ length: n }, (_, i) => p(`s${n}.${i + 1}`));
      assert.equal(lkdf(parts).sha256, SAMPLE_SHA, `libkdumpfile reads the ${n}-part set`);
      const r = run('makedumpfile', ['--reassemble', ...parts, p(`s${n}.whole`)]);
      assert.equal(r.rc, 0, `makedumpfile --reassemble: ${r.out}${r.err}`);
      assert.deepEqual(await ourHash([p(`s${n}.whole`)]), await ourHash([SAMPLE]), `reassembled ${n}-part set`);
      assert.equal(lkdf([p(`s${n}.whole`)]).sha256, SAMPLE_SHA);
    }
    // flattened: makedumpfile -R rebuilds the file
    assert.equal(sh(`node "${CLI}" convert -l --quiet "${SAMPLE}" - | makedumpfile -R "${p('f.R')}"`).rc, 0);
    assert.equal(lkdf([p('f.R')]).sha256, SAMPLE_SHA, 'makedumpfile -R of our stream');
  });
});

test('drgn and libkdumpfile read every page of the convert outputs (kdump, ELF) with the original digest', async (t) => {
  if (!need(t, { 'python3-drgn': HAVE.drgn, 'python3-libkdumpfile': HAVE.lkdf, [`VMCORE_VMLINUX (${RELEASE} -dbg)`]: !!VMLINUX })) return;
  await withTmp(async (dir) => {
    const ranges = await presentRanges([SAMPLE]);
    const want = await ourHash([SAMPLE]);
    assert.equal(want.sha256, SAMPLE_SHA);
    for (const [f, args] of [
      ['z.kdump', ['-z']],
      ['e0.elf', ['-E']],
    ] as const) {
      vmcore('convert', '--quiet', ...args, SAMPLE, join(dir, f));
      const d = drgn(join(dir, f), ranges);
      assert.deepEqual(
        { sha256: d.sha256, pages: d.pages, unreadable: d.unreadable },
        { sha256: SAMPLE_SHA, pages: want.pages, unreadable: 0 },
        `drgn reads our ${f}`,
      );
      assert.equal(lkdf([join(dir, f)]).sha256, SAMPLE_SHA, `libkdumpfile reads our ${f}`);
    }
  });
});

/** The QEMU dumps of the corpus: file, its decompressed name, and whether it needs zstd -d. */
async function corpusDumps(): Promise<{ name: string; path: string; zst: boolean }[]> {
  const out: { name: string; path: string; zst: boolean }[] = [];
  for (const c of (await readdir(CORPUS!)).filter((x) => x.endsWith('-panic')).sort()) {
    if (existsSync(join(CORPUS!, c, 'qemu-kdump-zlib.vmcore'))) out.push({ name: `${c}/qemu-kdump-zlib`, path: join(CORPUS!, c, 'qemu-kdump-zlib.vmcore'), zst: false });
    if (existsSync(join(CORPUS!, c, 'qemu-elf.vmcore.zst'))) out.push({ name: `${c}/qemu-elf`, path: join(CORPUS!, c, 'qemu-elf.vmcore.zst'), zst: true });
  }
  return out;
}

test('every QEMU corpus dump, converted to kdump: makedumpfile re-filters it (-d 31) and crash analyses it', async (t) => {
  if (!need(t, { corpus: !!CORPUS, makedumpfile: HAVE.makedumpfile, crash: HAVE.crash, zstd: HAVE.zstd, [`VMCORE_VMLINUX (${RELEASE} -dbg)`]: !!VMLINUX })) return;
  await withTmp(async (dir) => {
    for (const d of await corpusDumps()) {
      let input = d.path;
      if (d.zst) {
        input = join(dir, 'qemu.elf');
        await rm(input, { force: true });
        assert.equal(run('zstd', ['-q', '-d', d.path, '-o', input]).rc, 0);
      }
      const out = join(dir, 'converted.kdump');
      const refiltered = join(dir, 'refiltered.kdump');
      await rm(out, { force: true });
      await rm(refiltered, { force: true });
      vmcore('convert', '--quiet', '-c', input, out);
      const r = run('makedumpfile', ['-c', '-d', '31', out, refiltered]);
      assert.equal(r.rc, 0, `${d.name}: makedumpfile -d 31 on the converted file: ${r.out}${r.err}`);
      // dump level 31 drops pages (free, cache, user): what is left must be the same bytes
      const kept = await presentRanges([refiltered]);
      assert.ok(kept.length > 0);
      const a = await openDumpFiles([out]);
      const b = await openDumpFiles([refiltered]);
      try {
        let n = 0;
        for (const [s, e] of kept) {
          for (let pfn = s; pfn < e && n < 4000; pfn += 7, n++) {
            // the bytes (a reader may give a Buffer or a plain Uint8Array)
            assert.deepEqual(new Uint8Array(await b.readPage(pfn)), new Uint8Array(await a.readPage(pfn)), `${d.name}: pfn 0x${pfn.toString(16)} after re-filtering`);
          }
        }
      } finally {
        await a.close();
        await b.close();
      }
      crashSession([out]);
    }
  });
});

test('makedumpfile takes phys_base from the kdump header, not from VMCOREINFO (what fix and info say)', async (t) => {
  if (!need(t, { makedumpfile: HAVE.makedumpfile })) return;
  await withTmp(async (dir) => {
    const f = join(dir, 'pb.kdump');
    assert.equal(sh(`cp "${SAMPLE}" "${f}" && chmod u+w "${f}"`).rc, 0);
    // a wrong header (VMCOREINFO keeps the right NUMBER(phys_base)=0): makedumpfile fails
    const fix = run(process.execPath, [CLI, 'fix', '--in-place', '--phys-base', '0x2000000', f]);
    assert.equal(fix.rc, 0, fix.err);
    assert.match(fix.err, /makedumpfile \(re-filtering, --dump-dmesg\) uses the header's 0x2000000/);
    assert.match(vmcore('info', f) + run(process.execPath, [CLI, 'info', f]).err, /makedumpfile \(re-filtering, --dump-dmesg\) trusts it/);
    const bad = run('makedumpfile', ['--dump-dmesg', f, join(dir, 'bad.txt')]);
    assert.notEqual(bad.rc, 0, 'makedumpfile read the log through a wrong header phys_base');
    // the proved value restored: makedumpfile reads the log
    vmcore('fix', '--in-place', f);
    const good = run('makedumpfile', ['--dump-dmesg', f, join(dir, 'good.txt')]);
    assert.equal(good.rc, 0, good.out + good.err);
  });
});
