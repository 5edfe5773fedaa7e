/**
 * vmcore convert against the real tools. Every output is judged by programs we did not write:
 * libkdumpfile (python3-libkdumpfile, /usr/bin/python3) re-reads each kdump page and hashes it,
 * crash 8.0.2 opens the files (and, with the matching debug vmlinux, runs `sys` and `log`),
 * makedumpfile 1.7.2 re-filters our kdump-zlib/lzo and ELF output, readelf checks program
 * headers and notes, vmcore-dmesg prints the log from our ELF output.
 *
 * Inputs: a synthetic machine (generated here: RAM above 4 GiB, a hole, excluded pages, zero
 * runs) with its digest computed from the generator; the repo sample
 * samples/seabios-128M.md-c-d31.kdump (makedumpfile -c -d 31 of a real guest) with the digest
 * libkdumpfile computed from it; with the dump corpus (VMCORE_CORPUS, default ../shared/corpus), QEMU's own ELF
 * and flattened kdump-zlib files too. VMCORE_VMLINUX (or the Debian dbg package path) enables
 * the crash `sys`/`log` checks. Tools that are missing make their checks skip with a message.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, readFile, rm, stat, readdir } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { createHash } from 'node:crypto';
import { SparseMemory } from '../../src/core/memory.js';
import type { Dump, FormatDetails } from '../../src/core/dump.js';
import type { ElfNote } from '../../src/core/format/elf/notes.js';
import { hashMemory } from '../../src/core/hash.js';
import { VmcoreError } from '../../src/core/errors.js';
import { convertDump, type ConvertOptions } from '../../src/node/convert/index.js';
import { openDumpFiles } from '../../src/node/open.js';
import { nodeSha256 } from '../../src/node/hash.js';
import { nodeCodecs } from '../../src/node/codecs.js';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '../../..');
const LKDF = join(ROOT, 'test/interop/convert-lkdf.py');
const CLI = join(ROOT, 'dist/src/cli/vmcore.js');
const SAMPLE = join(ROOT, 'samples/seabios-128M.md-c-d31.kdump');
/** What libkdumpfile reads from the sample (corpus truth md__md-c-d31.kdump.json). */
const SAMPLE_SHA = '03c2b8685986e5ee4bcfee31fc94ef61c42dfed7ec5029f6194829dc174feacb';
const SAMPLE_NONZERO_SHA = '9c170c51849794cc7dd8514ac085fd4bfc0685ca6851606e5b16664c4fd19088';
const RELEASE = '6.1.0-56-cloud-amd64';
const PY = '/usr/bin/python3';

function run(cmd: string, args: string[], opts: { input?: string; timeout?: number } = {}) {
  const r = spawnSync(cmd, args, { encoding: 'utf8', input: opts.input, timeout: opts.timeout ?? 300_000, maxBuffer: 64 << 20 });
  return { rc: r.status, out: r.stdout ?? '', err: r.stderr ?? '', error: r.error };
}
const have = (cmd: string) => run('sh', ['-c', `command -v ${cmd}`]).rc === 0;
const HAVE = {
  lkdf: existsSync(PY) && run(PY, ['-c', 'import kdumpfile']).rc === 0,
  crash: have('crash'),
  makedumpfile: have('makedumpfile'),
  readelf: have('readelf'),
  vmcoreDmesg: have('vmcore-dmesg'),
  zstd: have('zstd'),
};
const cliHasConvert = existsSync(CLI) && /^\s+convert\b/m.test(run(process.execPath, [CLI, '--help']).out);
const VMLINUX = [process.env.VMCORE_VMLINUX, `/usr/lib/debug/boot/vmlinux-${RELEASE}`].find((p) => p && existsSync(p));
const CORPUS_DIR = process.env.VMCORE_CORPUS ?? resolve(ROOT, '../shared/corpus');
const CORPUS = existsSync(join(CORPUS_DIR, 'truth')) ? CORPUS_DIR : undefined;
const CODECS = (['zlib', 'lzo', 'snappy', 'zstd'] as const).filter((c) => nodeCodecs().get(c)?.compress);

interface LkdfDigest {
  sha256: string;
  pages: number;
  phys_base?: string;
}
function lkdf(files: string[], skipZero = false, maxPfn?: number): LkdfDigest {
  const r = run(PY, [LKDF, ...files, ...(skipZero ? ['--skip-zero'] : []), ...(maxPfn !== undefined ? [`--max-pfn=${maxPfn}`] : [])]);
  assert.equal(r.rc, 0, `libkdumpfile failed on ${files.join(' ')}: ${r.err}`);
  return JSON.parse(r.out) as LkdfDigest;
}

async function ourHash(files: string[], skipZero = false): Promise<string> {
  const d = await openDumpFiles(files);
  try {
    return (await hashMemory(d, { skipZero, hasher: nodeSha256 })).sha256;
  } finally {
    await d.close();
  }
}

/** makedumpfile -R: rebuild a seekable file from a flattened stream. */
function reassembleFlat(flat: string, out: string): void {
  const r = spawnSync('sh', ['-c', `makedumpfile -R "${out}" < "${flat}"`], { encoding: 'utf8' });
  assert.equal(r.status, 0, `makedumpfile -R: ${r.stderr}`);
}

function crashOsrelease(files: string[]): string {
  return run('crash', ['--osrelease', ...files]).out.trim();
}

/** crash with the debug vmlinux: `sys` and `log` must run; returns the session output. */
function crashSysLog(files: string[]): string {
  const r = run('crash', ['-s', VMLINUX!, ...files], { input: 'sys\nlog\nquit\n', timeout: 600_000 });
  assert.equal(r.rc, 0, `crash rc ${r.rc}: ${r.err}`);
  const text = r.out + r.err;
  const bad = text.split('\n').filter((l) => /^(crash: |.*\b(error|invalid|cannot)\b)/i.test(l) && !/DMA domain TLB invalidation/.test(l));
  assert.deepEqual(bad, [], `crash reported problems:\n${bad.join('\n')}`);
  assert.match(text, new RegExp(`RELEASE: ${RELEASE}`));
  assert.match(text, /PANIC: "Kernel panic - not syncing: sysrq triggered crash"/);
  return text;
}

// ---------------------------------------------------------------------------------------------
// Synthetic machine

const PS = 4096;
const VMCI = 'OSRELEASE=6.1.0-synthetic\nPAGESIZE=4096\nNUMBER(phys_base)=0\n';
function pageFor(pfn: number): Uint8Array | undefined {
  const k = pfn % 5;
  if (k === 2) return undefined;
  const p = new Uint8Array(PS);
  if (k === 4) {
    let x = pfn * 2654435761 + 1;
    for (let i = 0; i < PS; i++) {
      x = (x ^ (x << 13)) >>> 0;
      x = (x ^ (x >>> 17)) >>> 0;
      x = (x ^ (x << 5)) >>> 0;
      p[i] = x & 0xff;
    }
  } else p.set(new TextEncoder().encode(`synthetic page ${pfn} kind ${k} `.repeat(150)).subarray(0, PS));
  return p;
}

function synthetic(): { dump: Dump; sha: string; nonzeroSha: string } {
  const ranges: [number, number][] = [
    [0, 160],
    [256, 2048],
    [(1 << 20) - 128, (1 << 20) + 1024], // across 4 GiB
  ];
  const maxPfn = ranges[ranges.length - 1]![1];
  const mem = new SparseMemory(maxPfn, PS);
  const h = createHash('sha256');
  const hz = createHash('sha256');
  const pfnb = Buffer.alloc(8);
  for (const [s, e] of ranges) {
    for (let p = s; p < e; p++) {
      if (p >= 1000 && p < 1100) {
        mem.setState(p, 'excluded');
        continue;
      }
      const d = p >= 1500 && p < 1900 ? undefined : pageFor(p); // a long zero run
      if (d) mem.set(p, d);
      else mem.setState(p, 'zero');
      pfnb.writeBigUInt64LE(BigInt(p));
      h.update(pfnb);
      h.update(d ?? new Uint8Array(PS));
      if (d) {
        hz.update(pfnb);
        hz.update(d);
      }
    }
  }
  const notes: ElfNote[] = [
    { name: 'CORE', type: 1, desc: new Uint8Array(336) },
    { name: 'VMCOREINFO', type: 0, desc: new TextEncoder().encode(VMCI) },
  ];
  const dump: Dump = {
    pageSize: PS,
    maxPfn,
    pageState: (p) => mem.pageState(p),
    pageRuns: (s, e) => mem.pageRuns(s, e),
    readPage: (p) => mem.readPage(p),
    readPhys: (a, l, o) => mem.readPhys(a, l, o),
    format: 'elf',
    variant: 'synthetic',
    files: [{ name: 'synthetic', size: 0 }],
    arch: 'x86_64',
    littleEndian: true,
    is64: true,
    notes,
    vmcoreinfoText: VMCI,
    warnings: [],
    details: async (): Promise<FormatDetails> => ({ header: {}, producerHints: [] }),
    close: async () => undefined,
  };
  return { dump, sha: h.digest('hex'), nonzeroSha: hz.digest('hex') };
}

async function withTmp(fn: (dir: string) => Promise<void>): Promise<void> {
  const dir = await mkdtemp(join(tmpdir(), 'vmcore-convert-interop-'));
  try {
    await fn(dir);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

// ---------------------------------------------------------------------------------------------

test('synthetic machine (RAM above 4 GiB, hole, excluded and zero runs): kdump per codec, flattened, split, ELF', async (t) => {
  if (!HAVE.lkdf) return t.skip('python3-libkdumpfile not installed (/usr/bin/python3 -c "import kdumpfile" failed)');
  await withTmp(async (dir) => {
    const { dump, sha, nonzeroSha } = synthetic();
    for (const codec of [...CODECS, 'none' as const]) {
      const out = join(dir, `s-${codec}.kdump`);
      await convertDump(dump, out, { codec, dumpLevel: 1 });
      assert.equal(lkdf([out]).sha256, sha, `libkdumpfile digest of the ${codec} kdump`);
      assert.equal(await ourHash([out]), sha, `vmcore hash of the ${codec} kdump`);
    }
    const flat = join(dir, 's.flat');
    await convertDump(dump, flat, { codec: 'zlib', dumpLevel: 1, flatten: true });
    assert.equal(await ourHash([flat]), sha, 'vmcore reads the flattened stream directly');
    if (HAVE.makedumpfile) {
      reassembleFlat(flat, join(dir, 's.flat.R'));
      assert.equal(lkdf([join(dir, 's.flat.R')]).sha256, sha, 'makedumpfile -R of our flattened stream');
    }
    await convertDump(dump, join(dir, 's.split'), { codec: 'lzo', dumpLevel: 1, split: 3 });
    const parts = [1, 2, 3].map((i) => join(dir, `s.split.${i}`));
    assert.equal(lkdf(parts).sha256, sha, 'libkdumpfile reads the split set');
    assert.equal(await ourHash(parts), sha);
    const elf = join(dir, 's.elf');
    await convertDump(dump, elf, { format: 'elf', dumpLevel: 1 });
    assert.equal(await ourHash([elf], true), nonzeroSha, 'ELF -d 1: equal with zero pages skipped');
    assert.equal(lkdf([elf], true).sha256, nonzeroSha, 'libkdumpfile reads our ELF');
    if (HAVE.readelf) {
      const r = run('readelf', ['-lnW', elf]);
      assert.equal(r.rc, 0);
      assert.equal(r.err.trim(), '', 'readelf prints no warnings');
      const loads = [...r.out.matchAll(/^\s+LOAD\s+(0x[0-9a-f]+)\s+(0x[0-9a-f]+)\s+(0x[0-9a-f]+)\s+(0x[0-9a-f]+)\s+(0x[0-9a-f]+)/gm)].map((m) => ({
        paddr: BigInt(m[3]!),
        filesz: BigInt(m[4]!),
        memsz: BigInt(m[5]!),
      }));
      assert.ok(loads.some((l) => l.paddr + l.memsz > 1n << 32n), 'a PT_LOAD reaching above 4 GiB');
      assert.ok(loads.every((l) => l.memsz >= l.filesz));
      const zeroRun = 1600n * 4096n;
      assert.ok(!loads.some((l) => l.paddr <= zeroRun && l.paddr + l.memsz > zeroRun), 'the long zero run splits the segment');
      assert.match(r.out, /VMCOREINFO\s+0x[0-9a-f]+\s+Unknown note type|VMCOREINFO/);
      assert.match(r.out, /CORE\s+0x00000150\s+NT_PRSTATUS/);
    }
  });
});

test('real dump (makedumpfile -c -d 31 of a 128 MiB guest): every codec, flattened, split, ELF, read by libkdumpfile, crash, makedumpfile, vmcore-dmesg', async (t) => {
  if (!existsSync(SAMPLE)) return t.skip('samples/seabios-128M.md-c-d31.kdump is not in this checkout');
  if (!HAVE.lkdf) return t.skip('python3-libkdumpfile not installed');
  await withTmp(async (dir) => {
    const input = await openDumpFiles([SAMPLE]);
    try {
      const outs: Record<string, string> = {};
      for (const codec of CODECS) {
        const out = join(dir, `r-${codec}.kdump`);
        await convertDump(input, out, { codec, dumpLevel: 1 });
        outs[codec] = out;
        const d = lkdf([out]);
        assert.equal(d.sha256, SAMPLE_SHA, `libkdumpfile digest of our ${codec} kdump`);
        assert.equal(d.phys_base, '0x0');
        if (HAVE.crash) assert.equal(crashOsrelease([out]), RELEASE, `crash --osrelease on ${codec}`);
      }
      // the header keeps what makedumpfile wrote (utsname, notes, VMCOREINFO location)
      const src = await readFile(SAMPLE);
      const ours = await readFile(outs[CODECS[0]!]!);
      assert.deepEqual(ours.subarray(12, 402), src.subarray(12, 402), 'utsname copied');
      assert.equal(ours.readInt32LE(432), src.readInt32LE(432), 'sub_hdr_size');
      assert.equal(ours.readUInt32LE(436), src.readUInt32LE(436), 'bitmap_blocks');
      assert.equal(ours.readInt32LE(460), src.readInt32LE(460), 'nr_cpus');
      // size_note (at 56) grows by vmcore's own producer note, which the notes now carry
      assert.ok(ours.readBigUInt64LE(4096 + 56) > src.readBigUInt64LE(4096 + 56), 'size_note: the producer note is added');
      for (const off of [4096 + 32, 4096 + 40, 4096 + 48, 4096 + 96]) {
        assert.equal(ours.readBigUInt64LE(off), src.readBigUInt64LE(off), `sub header field at ${off - 4096}`);
      }
      // flattened to stdout through the CLI (the `ssh host vmcore convert ... - > file` case)
      const flat = join(dir, 'r.flat');
      if (cliHasConvert) {
        const r = spawnSync('sh', ['-c', `node "${CLI}" convert -l -d 1 --quiet "${SAMPLE}" - > "${flat}"`], { encoding: 'utf8' });
        assert.equal(r.status, 0, r.stderr);
      } else {
        t.diagnostic('CLI has no convert command yet: flattened stream made through the library');
        await convertDump(input, flat, { codec: 'lzo', dumpLevel: 1, flatten: true });
      }
      assert.equal(await ourHash([flat]), SAMPLE_SHA, 'vmcore reads its flattened stream (makedumpfile -R equivalent)');
      if (HAVE.crash) assert.equal(crashOsrelease([flat]), RELEASE, 'crash reads the flattened stream');
      if (HAVE.makedumpfile) {
        reassembleFlat(flat, join(dir, 'r.flat.R'));
        assert.equal(lkdf([join(dir, 'r.flat.R')]).sha256, SAMPLE_SHA);
      }
      // split set, and reassembling it into one file (makedumpfile --reassemble)
      await convertDump(input, join(dir, 'r.split'), { codec: 'zlib', dumpLevel: 1, split: 3 });
      const parts = [1, 2, 3].map((i) => join(dir, `r.split.${i}`));
      assert.equal(lkdf(parts).sha256, SAMPLE_SHA, 'libkdumpfile reads the split set');
      if (HAVE.crash) assert.equal(crashOsrelease(parts), RELEASE, 'crash opens the split set');
      const set = await openDumpFiles(parts);
      try {
        await convertDump(set, join(dir, 'r.reassembled'), { codec: 'lzo', dumpLevel: 1 });
      } finally {
        await set.close();
      }
      assert.equal(lkdf([join(dir, 'r.reassembled')]).sha256, SAMPLE_SHA, 'split set converted back into one file');
      // ELF
      const elf0 = join(dir, 'r0.elf');
      const elf1 = join(dir, 'r1.elf');
      await convertDump(input, elf0, { format: 'elf', dumpLevel: 0 });
      await convertDump(input, elf1, { format: 'elf', dumpLevel: 1 });
      assert.equal(await ourHash([elf0]), SAMPLE_SHA);
      assert.equal(await ourHash([elf1], true), SAMPLE_NONZERO_SHA);
      assert.equal(lkdf([elf0]).sha256, SAMPLE_SHA, 'libkdumpfile reads our ELF');
      assert.ok((await stat(elf1)).size < (await stat(elf0)).size);
      if (HAVE.crash) assert.equal(crashOsrelease([elf1]), RELEASE);
      if (HAVE.readelf) {
        const r = run('readelf', ['-lnW', elf1]);
        assert.equal(r.rc, 0);
        assert.equal(r.err.trim(), '');
        assert.match(r.out, /There are \d+ program headers, starting at offset 64/);
        assert.match(r.out, /^\s+NOTE\s/m);
        assert.match(r.out, /LOAD\s+0x[0-9a-f]+\s+0xffff888000000000\s+0x0000000000000000/, 'direct-map p_vaddr for RAM');
        assert.match(r.out, /LOAD\s+0x[0-9a-f]+\s+0xffffffff81000000\s+0x0000000001000000/, 'kernel-image PT_LOAD at _stext');
        assert.match(r.out, /VMCOREINFO/);
      }
      if (HAVE.vmcoreDmesg) {
        const r = run('vmcore-dmesg', [elf1]);
        assert.equal(r.rc, 0, r.err);
        assert.match(r.out, /VMCORE-CORPUS-MARKER/);
        assert.match(r.out, /Kernel panic - not syncing: sysrq triggered crash/);
      }
      if (HAVE.makedumpfile) {
        for (const f of [outs.zlib, outs.lzo, elf0, elf1].filter((x): x is string => !!x)) {
          const o = join(dir, 'refiltered.kdump');
          await rm(o, { force: true });
          const r = run('makedumpfile', ['-c', '-d', '31', f, o]);
          assert.equal(r.rc, 0, `makedumpfile -d 31 ${f}: ${r.out}${r.err}`);
          const d = lkdf([o], f === elf1);
          assert.equal(d.sha256, f === elf1 ? SAMPLE_NONZERO_SHA : SAMPLE_SHA, `makedumpfile re-filtered ${f}`);
        }
      }
      if (HAVE.crash && VMLINUX) {
        for (const f of Object.values(outs)) {
          const text = crashSysLog(Array.isArray(f) ? f : [f]);
          assert.match(text, /VMCORE-CORPUS-MARKER/, 'log shows the guest marker');
        }
      } else t.diagnostic('crash sys/log skipped: set VMCORE_VMLINUX to the linux-image-6.1.0-56-cloud-amd64-dbg vmlinux');
    } finally {
      await input.close();
    }
  });
});

test('CLI: makedumpfile-style options, refusal to overwrite, rejected dump levels, --json summary', async (t) => {
  if (!cliHasConvert) return t.skip('the convert command is not registered in dist/src/cli/vmcore.js yet');
  await withTmp(async (dir) => {
    const out = join(dir, 'c.kdump');
    let r = run(process.execPath, [CLI, 'convert', '-z', '-d', '1', '--json', SAMPLE, out]);
    assert.equal(r.rc, 0, r.err);
    const s = JSON.parse(r.out) as { codec: string; pages: { total: number; zero: number } };
    assert.equal(s.codec, 'zstd');
    assert.equal(s.pages.total, 15374);
    r = run(process.execPath, [CLI, 'convert', '-l', SAMPLE, out]);
    assert.notEqual(r.rc, 0);
    assert.match(r.err, /exists/);
    r = run(process.execPath, [CLI, 'convert', '-d', '32', SAMPLE, join(dir, 'x.kdump')]);
    assert.equal(r.rc, 2);
    assert.match(r.err, /dump level 32: must be 0-31/);
    r = run(process.execPath, [CLI, 'convert', '-d', '31', '--no-kernel', SAMPLE, join(dir, 'x.kdump')]);
    assert.equal(r.rc, 2);
    assert.match(r.err, /cannot be combined with --no-kernel/);
    r = run(process.execPath, [CLI, 'convert', '-E', '-d', '1', '--quiet', SAMPLE, join(dir, 'c.elf')]);
    assert.equal(r.rc, 0, r.err);
    assert.deepEqual((await readdir(dir)).sort(), ['c.elf', 'c.kdump'], 'no temporary files left');
    if (CORPUS && HAVE.lkdf) {
      // A QEMU dump without VMCOREINFO and with a wrong header phys_base: the CLI's kernel
      // analysis proves phys_base and recovers VMCOREINFO from memory into the output's notes.
      const ck = 'ovmf-nokaslr-1cpu-256M-novmci-panic';
      const idx = JSON.parse(await readFile(join(CORPUS, 'truth', 'index.json'), 'utf8')) as { cases: Record<string, { truth_phys_base: string }> };
      const truthK = JSON.parse(await readFile(join(CORPUS, 'truth', ck, 'qemu-kdump-zlib.vmcore.json'), 'utf8')) as { expected: { pages_sha256: string } };
      const o = join(dir, 'nv.kdump');
      // --keep-all-pages: the truth digest covers QEMU's firmware ROM pages too
      r = run(process.execPath, [CLI, 'convert', '-l', '-d', '1', '--keep-all-pages', '--quiet', join(CORPUS, ck, 'qemu-kdump-zlib.vmcore'), o]);
      assert.equal(r.rc, 0, r.err);
      const lk = lkdf([o]);
      assert.equal(lk.sha256, truthK.expected.pages_sha256);
      assert.equal(BigInt(lk.phys_base!), BigInt(idx.cases[ck]!.truth_phys_base), 'proven phys_base in the header');
      if (HAVE.crash) assert.equal(crashOsrelease([o]), RELEASE, 'crash finds the recovered VMCOREINFO');
    }
  });
});

test('QEMU-made corpus dumps (VMCORE_CORPUS): QEMU ELF and QEMU flattened kdump-zlib to kdump, phys_base from VMCOREINFO', async (t) => {
  if (!CORPUS) return t.skip(`corpus not found at ${CORPUS_DIR} (set VMCORE_CORPUS)`);
  if (!HAVE.lkdf || !HAVE.zstd) return t.skip('needs python3-libkdumpfile and zstd');
  await withTmp(async (dir) => {
    const cs = 'seabios-nokaslr-1cpu-128M-vmci-panic';
    const elf = join(dir, 'qemu.elf');
    assert.equal(run('zstd', ['-q', '-d', join(CORPUS, cs, 'qemu-elf.vmcore.zst'), '-o', elf]).rc, 0);
    const truth = JSON.parse(await readFile(join(CORPUS, 'truth', cs, 'qemu-elf.vmcore.json'), 'utf8')) as { expected: { pages_sha256: string } };
    const d = await openDumpFiles([elf]);
    try {
      // keepAllPages: the truth digest counts QEMU's ROM pages, which a conversion leaves out by default
      await convertDump(d, join(dir, 'q.kdump'), { codec: 'lzo', dumpLevel: 1, keepAllPages: true } as ConvertOptions);
      await convertDump(d, join(dir, 'q.elf'), { format: 'elf', dumpLevel: 0 });
    } finally {
      await d.close();
    }
    assert.equal(lkdf([join(dir, 'q.kdump')]).sha256, truth.expected.pages_sha256);
    if (HAVE.makedumpfile) {
      // makedumpfile 1.7.2 cannot read QEMU's ELF (program headers not at 64); it reads ours.
      // It keeps only the kernel's memory (max_mapnr 32768: the BIOS ROM block at 0xfffc0000 is
      // dropped), so compare with libkdumpfile's reading of QEMU's ELF below that pfn.
      const r = run('makedumpfile', ['-l', '-d', '1', join(dir, 'q.elf'), join(dir, 'q.md.kdump')]);
      assert.equal(r.rc, 0, r.out + r.err);
      const md = lkdf([join(dir, 'q.md.kdump')]);
      assert.equal(md.sha256, lkdf([elf], false, 32768).sha256);
    }
    // KASLR guest: QEMU's flattened kdump-zlib has a wrong header phys_base; ours is the kernel's
    const ck = 'ovmf-kaslr-1cpu-256M-vmci-panic';
    const idx = JSON.parse(await readFile(join(CORPUS, 'truth', 'index.json'), 'utf8')) as { cases: Record<string, { truth_phys_base: string }> };
    const truthK = JSON.parse(await readFile(join(CORPUS, 'truth', ck, 'qemu-kdump-zlib.vmcore.json'), 'utf8')) as { expected: { pages_sha256: string } };
    const q = await openDumpFiles([join(CORPUS, ck, 'qemu-kdump-zlib.vmcore')]);
    try {
      await convertDump(q, join(dir, 'k.kdump'), { codec: CODECS.includes('zstd') ? 'zstd' : 'zlib', dumpLevel: 1, keepAllPages: true });
    } finally {
      await q.close();
    }
    const lk = lkdf([join(dir, 'k.kdump')]);
    assert.equal(lk.sha256, truthK.expected.pages_sha256);
    assert.equal(BigInt(lk.phys_base!), BigInt(idx.cases[ck]!.truth_phys_base), 'header phys_base is the true one');
  });
});

test('a full disk: clear error, no temporary file left; --keep-incomplete keeps a file marked incomplete', async (t) => {
  if (process.getuid?.() !== 0 || !have('mount')) return t.skip('needs root to mount a small tmpfs');
  await withTmp(async (dir) => {
    const mnt = join(dir, 'small');
    await mkdir(mnt);
    if (run('mount', ['-t', 'tmpfs', '-o', 'size=2M', 'tmpfs', mnt]).rc !== 0) return t.skip('cannot mount a tmpfs here');
    try {
      const input = await openDumpFiles([SAMPLE]);
      try {
        await assert.rejects(
          convertDump(input, join(mnt, 'x.kdump'), { codec: 'lzo', dumpLevel: 1 }),
          (e: unknown) => e instanceof VmcoreError && e.code === 'IO' && /no space left/.test(e.message),
        );
        assert.deepEqual(await readdir(mnt), [], 'temporary file removed');
        await assert.rejects(convertDump(input, join(mnt, 'x.kdump'), { codec: 'lzo', dumpLevel: 1, keepIncomplete: true }), VmcoreError);
        const kept = await readFile(join(mnt, 'x.kdump'));
        assert.equal(kept.readUInt32LE(424), 0x2 | 0x8, 'status: lzo | incomplete');
        if (HAVE.lkdf) {
          // readers still open it; libkdumpfile sees only the pages that were written
          const d = lkdf([join(mnt, 'x.kdump')]);
          assert.ok(d.pages > 0 && d.pages < 15374);
        }
        // ELF and celf kept on the full disk: a header, marked incomplete, the pages they hold
        // those of the input (libkdumpfile reads the ELF with vmcore's digest)
        const { celfOutput } = await import('../../src/node/convert/celf.js');
        for (const [name, opts] of [
          ['x.elf', { format: 'elf', dumpLevel: 0, keepIncomplete: true }],
          ['x.celf', { dumpLevel: 0, keepIncomplete: true, outputFormat: celfOutput({}) }],
        ] as const) {
          await rm(join(mnt, 'x.kdump'), { force: true });
          for (const f of await readdir(mnt)) await rm(join(mnt, f), { force: true });
          await assert.rejects(convertDump(input, join(mnt, name), opts as ConvertOptions), /no space left/);
          const d = await openDumpFiles([join(mnt, name)]);
          let pages = 0;
          try {
            assert.ok(d.warnings.some((w) => w.code === 'MARKED_INCOMPLETE'), `${name}: ${d.warnings.map((w) => w.code).join()}`);
            for await (const r of d.pageRuns(0, d.maxPfn)) {
              if (r.state !== 'data' && r.state !== 'zero') continue;
              for (let p = r.startPfn; p < r.endPfn; p++, pages++) assert.deepEqual(new Uint8Array(await d.readPage(p)), new Uint8Array(await input.readPage(p)), `${name} pfn 0x${p.toString(16)}`);
            }
          } finally {
            await d.close();
          }
          assert.ok(pages > 100, `${name}: ${pages} pages kept`);
          if (HAVE.lkdf && name.endsWith('.elf')) assert.equal(lkdf([join(mnt, name)]).sha256, await ourHash([join(mnt, name)]), 'libkdumpfile reads the kept ELF as vmcore does');
        }
      } finally {
        await input.close();
      }
    } finally {
      run('umount', [mnt]);
    }
  });
});

test('an input that lacks pages (descriptors beyond the end of the file): the kdump written is marked incomplete, and crash, makedumpfile and libkdumpfile use it', async (t) => {
  if (!HAVE.lkdf || !HAVE.makedumpfile) return t.skip('needs python3-libkdumpfile and makedumpfile');
  await withTmp(async (dir) => {
    // 64 pages in the middle of RAM lose their data: their descriptors point past the end
    const bytes = Buffer.from(await readFile(SAMPLE));
    const k = await openDumpFiles([SAMPLE]);
    let lost = 0;
    try {
      const part = (k as unknown as { parts: { desc(pfn: number): Promise<{ offset: number; size: number; flags: number; pageFlags: bigint } | undefined> }[] }).parts[0]!;
      for (let pfn = 0x3000; pfn < 0x3040; pfn++) {
        const d = await part.desc(pfn);
        if (!d || d.size === 0) continue;
        const pat = Buffer.alloc(16);
        pat.writeBigUInt64LE(BigInt(d.offset), 0);
        pat.writeUInt32LE(d.size, 8);
        pat.writeUInt32LE(d.flags, 12);
        const at = bytes.indexOf(pat);
        assert.ok(at > 0, `descriptor of pfn 0x${pfn.toString(16)}`);
        bytes.writeBigUInt64LE(BigInt(bytes.length + 0x100000), at);
        lost++;
      }
    } finally {
      await k.close();
    }
    assert.ok(lost > 32, `${lost} pages made missing`);
    const input = join(dir, 'lacks.kdump');
    const { writeFile } = await import('node:fs/promises');
    await writeFile(input, bytes);
    const out = join(dir, 'out.kdump');
    const r = run(process.execPath, [CLI, 'convert', '-l', '--json', input, out]);
    assert.equal(r.rc, 0, r.err);
    const summary = JSON.parse(r.out) as { pages: { missing: number }; warnings: { text: string }[] };
    assert.equal(summary.pages.missing, lost);
    assert.ok(summary.warnings.some((w) => /pages are missing/.test(w.text)), JSON.stringify(summary.warnings));
    assert.equal((await readFile(out)).readUInt32LE(424), 0x2 | 0x8, 'status: lzo | incomplete');
    // libkdumpfile reads every page vmcore reads, and they are the input's readable pages
    const want = await ourHash([input]);
    assert.equal(await ourHash([out]), want);
    assert.equal(lkdf([out]).sha256, want);
    // makedumpfile re-filters it; the result holds the same pages at -d 1 as vmcore's -d 1
    const re = join(dir, 're.kdump');
    const m = run('makedumpfile', ['-l', '-d', '1', out, re]);
    assert.equal(m.rc, 0, m.err + m.out);
    assert.equal(await ourHash([re], true), await ourHash([out], true));
    // crash: sys and log on it
    if (VMLINUX && HAVE.crash) crashSysLog([out]);
    else t.diagnostic('crash check skipped: no debug vmlinux or no crash');
  });
});
