/**
 * `vmcore fix` against the peer tools on the real QEMU corpus (env VMCORE_CORPUS, default
 * ../shared/corpus next to the repository; skips with a message when absent). For every case:
 *  - QEMU's kdump-zlib output (flattened): libkdumpfile cannot open the original; on the fixed
 *    file it reports the true phys_base (truth/index.json, from the guest's own /proc/iomem and
 *    /proc/kallsyms) and reads the same memory as from `makedumpfile -R` of the original
 *    (below the fixed max_mapnr); makedumpfile -d 31 re-filters the fixed file (the result
 *    still says the true phys_base) and fails on the original; drgn (with the matching
 *    vmlinux) opens the fixed file and its dmesg has the guest's marker line, and refuses the
 *    original; crash shows the true phys_base and the kernel's utsname in the fixed header;
 *  - QEMU's ELF (paging=false): vmcore-dmesg, makedumpfile and drgn fail on the original and
 *    work on the fixed file.
 * drgn needs the -dbg vmlinux of the corpus kernel: VMCORE_VMLINUX, or the guest-script cache
 * (scripts/guest/fetch-kernel.sh --dbg fills it); those subtests skip without it.
 * Peers run as /usr/bin/python3 test/interop/fix-peers.py (Debian's python3-libkdumpfile/drgn).
 */
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { closeSync, existsSync, mkdtempSync, openSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { fixDump } from '../../src/node/fix.js';

const root = fileURLToPath(new URL('../../../', import.meta.url));
const corpus = process.env['VMCORE_CORPUS'] ?? resolve(root, '../shared/corpus');
const haveCorpus = existsSync(join(corpus, 'truth', 'index.json'));
const PEERS = join(root, 'test/interop/fix-peers.py');
const PY = '/usr/bin/python3';
const tmp = mkdtempSync(join(process.env['VMCORE_SCRATCH'] ?? tmpdir(), 'vmcore-fix-corpus-'));
after(() => rmSync(tmp, { recursive: true, force: true }));

function has(cmd: string, args: string[]): boolean {
  return spawnSync(cmd, args, { stdio: 'ignore' }).error === undefined;
}
const haveMakedumpfile = has('makedumpfile', ['-v']);
const haveVmcoreDmesg = has('vmcore-dmesg', ['--help']);
const haveCrash = has('crash', ['--version']);
const haveZstd = has('zstd', ['--version']);
const pyHas = (mod: string) => spawnSync(PY, ['-c', `import ${mod}`], { stdio: 'ignore' }).status === 0;
const haveLkdf = existsSync(PY) && pyHas('kdumpfile');
const haveDrgn = existsSync(PY) && pyHas('drgn');

function run(cmd: string, args: string[], o: { stdin?: string; stdout?: string } = {}): { status: number | null; out: string; err: string } {
  const fds: number[] = [];
  const stdio: ['ignore' | number, 'pipe' | number, 'pipe'] = ['ignore', 'pipe', 'pipe'];
  if (o.stdin) fds.push((stdio[0] = openSync(o.stdin, 'r')));
  if (o.stdout) fds.push((stdio[1] = openSync(o.stdout, 'w')));
  try {
    const r = spawnSync(cmd, args, { stdio, maxBuffer: 64 << 20 });
    return { status: r.status, out: r.stdout?.toString() ?? '', err: r.stderr?.toString() ?? String(r.error) };
  } finally {
    for (const f of fds) closeSync(f);
  }
}

interface PeerResult {
  error?: string;
  phys_base?: string | null;
  release?: string | null;
  max_pfn?: number;
  sha256?: string;
  pages?: number;
  records?: number;
  marker?: string[];
}

function peer(args: string[]): PeerResult {
  const r = run(PY, [PEERS, ...args]);
  const line = r.out.trim().split('\n').pop() ?? '';
  try {
    return JSON.parse(line) as PeerResult;
  } catch {
    return { error: `no JSON from fix-peers.py (status ${r.status}): ${r.err.slice(-500)}` };
  }
}

function vmlinuxFor(release: string | undefined): string | undefined {
  const env = process.env['VMCORE_VMLINUX'];
  if (env) return existsSync(env) ? env : undefined;
  if (!release) return undefined;
  const cache = process.env['VMCORE_GUEST_CACHE'] ?? '/tmp/vmcore-guest';
  for (const p of [`dbg-${release}/usr/lib/debug/boot/vmlinux-${release}`, `dbg-${release}/usr/lib/debug/vmlinux-${release}`]) {
    if (existsSync(join(cache, p))) return join(cache, p);
  }
  return undefined;
}

/** makedumpfile -c -d 31 IN OUT: {ok, err}. */
function refilter(input: string, out: string): { ok: boolean; err: string } {
  rmSync(out, { force: true });
  const r = run('makedumpfile', ['-c', '-d', '31', input, out]);
  return { ok: r.status === 0 && existsSync(out), err: (r.out + r.err).slice(-400) };
}

interface CaseTruth {
  truth_phys_base: string;
  vmcoreinfo_device: boolean;
}
const cases: [string, CaseTruth][] = haveCorpus
  ? Object.entries((JSON.parse(readFileSync(join(corpus, 'truth', 'index.json'), 'utf8')) as { cases: Record<string, CaseTruth> }).cases)
  : [];

if (!haveCorpus) test('fix on the corpus', { skip: `corpus not found at ${corpus} (set VMCORE_CORPUS)` }, () => {});

const u64hex = (s: string) => '0x' + BigInt.asUintN(64, BigInt(s)).toString(16);

for (const [name, truth] of cases) {
  const dir = join(corpus, name);
  const serial = existsSync(join(dir, 'serial.log')) ? readFileSync(join(dir, 'serial.log'), 'latin1') : '';
  const release = /Linux version (\S+)/.exec(serial)?.[1];
  const marker = `VMCORE-CORPUS-MARKER ${name}`;
  const truePb = u64hex(truth.truth_phys_base);
  const vmlinux = vmlinuxFor(release);
  const noDrgn = !haveDrgn ? 'python3-drgn not installed' : !vmlinux ? `no vmlinux for ${release} (set VMCORE_VMLINUX or run scripts/guest/fetch-kernel.sh --dbg)` : false;

  const kdumpIn = join(dir, 'qemu-kdump-zlib.vmcore');
  if (existsSync(kdumpIn)) {
    const fixed = join(tmp, `${name}.kdump`);
    let fixedOk: Promise<void> | undefined;
    const ensureFixed = () =>
      (fixedOk ??= (async () => {
        const r = await fixDump(kdumpIn, { out: fixed, threads: 1 });
        assert.equal(r.physBase.after, truePb, 'fix writes the true phys_base');
        assert.equal(r.outputFormat, 'kdump');
      })());

    test(`${name} kdump: libkdumpfile reads the true phys_base ${truePb} and the same memory after fix; cannot open the original`, { skip: haveLkdf ? false : 'python3-libkdumpfile not installed' }, async () => {
      await ensureFixed();
      const orig = peer(['lkdf', kdumpIn]);
      assert.ok(orig.error, `libkdumpfile opened QEMU's flattened file (${JSON.stringify(orig)})`);
      const got = peer(['lkdf', fixed, '--digest']);
      assert.equal(got.error, undefined, got.error);
      assert.equal(got.phys_base, truePb);
      assert.equal(got.release, release);
      // the same memory as the original reassembled by makedumpfile -R, read by libkdumpfile
      if (!haveMakedumpfile) return;
      const raw = join(tmp, `${name}.raw`);
      assert.equal(run('makedumpfile', ['-R', raw], { stdin: kdumpIn }).status, 0);
      const want = peer(['lkdf', raw, '--digest', '--max-pfn', String(got.max_pfn)]);
      assert.equal(want.error, undefined, want.error);
      assert.equal(got.pages, want.pages);
      assert.equal(got.sha256, want.sha256);
      if (!truth.vmcoreinfo_device) assert.notEqual(want.phys_base, truePb, 'without VMCOREINFO libkdumpfile repeats the wrong header value');
      // --in-place on the seekable (reassembled) file: only the phys_base bytes change
      const before = readFileSync(raw);
      await fixDump(raw, { inPlace: true });
      const after = readFileSync(raw);
      assert.equal(after.length, before.length);
      let changed = 0;
      for (let i = 0; i < after.length; i++) if (after[i] !== before[i]) changed++, assert.ok(i >= 4096 && i < 4104, `byte ${i} changed`);
      assert.equal(after.readBigUInt64LE(4096), BigInt(truePb));
      assert.equal(changed > 0, before.readBigUInt64LE(4096) !== BigInt(truePb));
      assert.equal(peer(['lkdf', raw]).phys_base, truePb, 'libkdumpfile reads the true phys_base after --in-place');
      rmSync(raw, { force: true });
    });

    test(`${name} kdump: makedumpfile -d 31 re-filters the fixed file, not the original`, { skip: haveMakedumpfile ? false : 'makedumpfile not installed' }, async () => {
      await ensureFixed();
      const bad = refilter(kdumpIn, join(tmp, `${name}.orig.d31`));
      assert.equal(bad.ok, false, 'makedumpfile re-filtered the original flattened file');
      const out = join(tmp, `${name}.d31`);
      const good = refilter(fixed, out);
      assert.ok(good.ok, good.err);
      if (haveLkdf) {
        const r = peer(['lkdf', out]);
        assert.equal(r.phys_base, truePb, 'the re-filtered file keeps the true phys_base');
      }
      rmSync(out, { force: true });
    });

    test(`${name} kdump: crash shows the true phys_base in the fixed header, utsname filled, log readable`, { skip: !vmlinux ? `no vmlinux for ${release}` : haveCrash ? false : 'crash not installed' }, async () => {
      await ensureFixed();
      const cmds = join(tmp, 'crash-cmds');
      writeFileSync(cmds, 'help -D\nlog\nquit\n');
      const r = run('crash', ['-s', '-i', cmds, vmlinux!, fixed]);
      assert.equal(r.status, 0, r.err.slice(-500));
      const pbLine = /^\s+phys_base: ([0-9a-f]+)$/m.exec(r.out)?.[1];
      assert.equal('0x' + pbLine, truePb, 'help -D sub-header phys_base');
      assert.match(r.out, new RegExp(`^\\s+release: ${release!.replace(/[.]/g, '\\.')}$`, 'm'));
      assert.ok(r.out.includes(marker), 'marker in crash log');
    });

    test(`${name} kdump: drgn opens the fixed file and reads the guest's marker from dmesg; refuses the original`, { skip: noDrgn }, async () => {
      await ensureFixed();
      const orig = peer(['drgn', kdumpIn, vmlinux!, marker]);
      assert.ok(orig.error, 'drgn opened the original');
      const got = peer(['drgn', fixed, vmlinux!, marker]);
      assert.equal(got.error, undefined, got.error);
      assert.equal(got.release, release);
      assert.ok(got.marker!.includes(marker), `marker in drgn's dmesg: ${JSON.stringify(got.marker)}`);
    });
  }

  const elfZst = join(dir, 'qemu-elf.vmcore.zst');
  if (existsSync(elfZst)) {
    const elf = join(tmp, `${name}.elf`);
    const fixed = join(tmp, `${name}.fixed.elf`);
    let ready: Promise<void> | undefined;
    const ensure = () =>
      (ready ??= (async () => {
        assert.equal(run('zstd', ['-d', '-q', '-f', elfZst, '-o', elf]).status, 0);
        const r = await fixDump(elf, { out: fixed, threads: 1 });
        assert.equal(r.physBase.after, truePb);
        assert.equal(r.outputFormat, 'elf');
        // /proc/vmcore layout: program headers right after the 64-byte ELF header
        const h = readFileSync(fixed).subarray(0, 64);
        assert.equal(h.readBigUInt64LE(32), 64n, 'e_phoff');
        assert.equal(h.readUInt16LE(52), 64, 'e_ehsize');
      })());
    const noZstd = haveZstd ? false : 'zstd not installed';

    test(`${name} ELF: vmcore-dmesg works on the fixed file, fails on the original`, { skip: noZstd || (haveVmcoreDmesg ? false : 'vmcore-dmesg (kexec-tools) not installed') }, async () => {
      await ensure();
      const orig = run('vmcore-dmesg', [elf]);
      assert.ok(orig.status !== 0 || !orig.out.includes(marker), 'vmcore-dmesg read the original');
      const got = run('vmcore-dmesg', [fixed]);
      assert.equal(got.status, 0, got.err);
      assert.ok(got.out.includes(marker), 'marker line in vmcore-dmesg output');
      // every kernel line of the guest's console that carries the marker
      const consoleLines = serial.split('\n').filter((l) => l.includes(marker) && l.startsWith('['));
      for (const l of consoleLines) assert.ok(got.out.includes(l.replace(/\r$/, '').replace(/^\[[ .0-9]+\] /, '')), l);
    });

    test(`${name} ELF: makedumpfile -d 31 reads the fixed file, not the original`, { skip: noZstd || (haveMakedumpfile ? false : 'makedumpfile not installed') }, async () => {
      await ensure();
      assert.equal(refilter(elf, join(tmp, `${name}.elf.orig.d31`)).ok, false, 'makedumpfile read the original QEMU ELF');
      const out = join(tmp, `${name}.elf.d31`);
      const good = refilter(fixed, out);
      assert.ok(good.ok, good.err);
      if (haveLkdf) assert.equal(peer(['lkdf', out]).phys_base, truePb);
      rmSync(out, { force: true });
    });

    test(`${name} ELF: libkdumpfile phys_base and drgn dmesg on the fixed file; drgn fails on the original`, { skip: noZstd || noDrgn }, async () => {
      await ensure();
      if (haveLkdf) assert.equal(peer(['lkdf', fixed]).phys_base, truePb);
      const orig = peer(['drgn', elf, vmlinux!, marker]);
      assert.ok(orig.error, 'drgn opened the original ELF');
      const got = peer(['drgn', fixed, vmlinux!, marker]);
      assert.equal(got.error, undefined, got.error);
      assert.ok(got.marker!.includes(marker));
    });
  }
}
