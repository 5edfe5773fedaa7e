/**
 * Every file of the real dump corpus (VMCORE_CORPUS, default ../shared/corpus next to the
 * repository): `vmcore info` and `vmcore hash` must agree with what libkdumpfile, crash and the
 * corpus's own header parser read (truth/<case>/<file>.json), and the QEMU ELF and QEMU kdump of
 * one guest must hash the same. Compressed corpus files (.zst) are decompressed to a temp dir.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '../../..');
const CLI = join(ROOT, 'dist/src/cli/vmcore.js');
const corpus = process.env['VMCORE_CORPUS'] ?? resolve(ROOT, '../shared/corpus');
const index = existsSync(join(corpus, 'truth/index.json')) ? JSON.parse(readFileSync(join(corpus, 'truth/index.json'), 'utf8')) : undefined;

function vmcore(...args: string[]) {
  const r = spawnSync(process.execPath, [CLI, ...args], { encoding: 'utf8', maxBuffer: 64 << 20, timeout: 600_000 });
  assert.equal(r.status, 0, `vmcore ${args.join(' ')}: ${r.stderr}`);
  return r.stdout;
}

interface Truth {
  expected: { pages_sha256: string; nonzero_pages_sha256: string; present_pages: number };
  sniffed_format: string;
  kdump_header_own_parser?: { header_version: number; utsname: { release: string; machine: string }; sub: { phys_base_hex: string; dump_level: number }; nr_cpus: number };
}

test('corpus: info and hash agree with the truth of every file', { skip: !index && `corpus not found at ${corpus} (set VMCORE_CORPUS)` }, async (t) => {
  const tmp = await mkdtemp(join(tmpdir(), 'vmcore-corpus-'));
  try {
    for (const name of Object.keys(index.cases)) {
      const truthDir = join(corpus, 'truth', name);
      const digests = new Set<string>();
      for (const tf of readdirSync(truthDir).filter((f) => f.endsWith('.vmcore.json') || f.endsWith('.kdump.json'))) {
        const rel = tf.replace(/\.json$/, '').replace('__', '/');
        let file = join(corpus, name, rel);
        if (!existsSync(file) && existsSync(file + '.zst')) {
          const out = join(tmp, rel.replace('/', '_'));
          assert.equal(spawnSync('zstd', ['-dqf', file + '.zst', '-o', out]).status, 0);
          file = out;
        }
        if (!existsSync(file)) continue;
        const truth = JSON.parse(readFileSync(join(truthDir, tf), 'utf8')) as Truth;
        const info = JSON.parse(vmcore('info', '--json', file));
        // the kernel the guest booted (case.json); crash --osrelease says "unknown" without VMCOREINFO
        const release = JSON.parse(readFileSync(join(corpus, name, 'case.json'), 'utf8')).kernel as string;
        assert.equal(info.kernel.release, release, `${name}/${rel}: release`);
        assert.equal(info.format, truth.sniffed_format === 'elf' ? 'elf' : 'kdump', `${name}/${rel}: format`);
        assert.equal(info.physBase.value, index.cases[name].truth_phys_base, `${name}/${rel}: proven phys_base`);
        const h = truth.kdump_header_own_parser;
        if (h) {
          assert.equal(info.header.header_version, h.header_version);
          assert.equal(info.physBase.header, h.sub.phys_base_hex, `${name}/${rel}: header phys_base as written`);
          assert.equal(info.header.dump_level, h.sub.dump_level);
          assert.equal(info.nrCpus, h.nr_cpus);
          assert.equal(info.producer, h.utsname.release ? 'makedumpfile' : 'qemu', `${name}/${rel}: producer`);
          assert.equal(info.variant.includes('flattened'), truth.sniffed_format === 'flattened');
        } else assert.equal(info.producer, 'qemu');
        assert.equal(info.pages.dumped, truth.expected.present_pages, `${name}/${rel}: present pages`);
        // QEMU dumps also hold the firmware ROM below 4 GiB; it is not the kernel's RAM
        const rom = info.ranges.find((r: { end: string }) => r.end === '0x100000000');
        if (rom) assert.equal(rom.kernelRam, false, `${name}/${rel}: firmware range`);
        assert.equal(info.ranges[0].kernelRam, true, `${name}/${rel}: low RAM`);
        const hash = JSON.parse(vmcore('hash', '--json', file));
        assert.equal(hash.sha256, truth.expected.pages_sha256, `${name}/${rel}: digest`);
        const nz = JSON.parse(vmcore('hash', '--json', '--skip-zero', file));
        assert.equal(nz.sha256, truth.expected.nonzero_pages_sha256, `${name}/${rel}: non-zero digest`);
        if (!rel.startsWith('md/')) digests.add(hash.sha256);
        t.diagnostic(`${name}/${rel}: ${info.variant}, producer ${info.producer}, phys_base ${info.physBase.value} (${info.physBase.verdict}), ${hash.pages} pages`);
      }
      assert.ok(digests.size <= 1, `${name}: QEMU's ELF and kdump of one guest must hold the same pages`);
    }
  } finally {
    await rm(tmp, { recursive: true, force: true });
  }
});
