/**
 * arm64 against the peers on the real arm64 QEMU dump (env VMCORE_CORPUS_ARM64, default
 * ../shared/corpus-arm64 next to the repository): QEMU 7.2 kdump-zlib of a Debian 6.1 arm64
 * guest with KASLR (64 KiB blocks, machine "Unknown", flattened).
 *  - libkdumpfile 0.5.1 and drgn 0.0.22 cannot open QEMU's file;
 *  - vmcore proves PHYS_OFFSET and kimage_voffset equal to what the guest printed on its console
 *    (case.json truth), reads the kernel log with the marker and panic lines;
 *  - after `vmcore fix`, libkdumpfile reads every page with the same digest as vmcore reads from
 *    the original (in the kernel's 4 KiB pages) and the true PHYS_OFFSET, and drgn with the arm64
 *    -dbg vmlinux reads init_uts_ns and the kernel log with the marker;
 *  - the fixed file with NUMBER(kimage_voffset) and NUMBER(VA_BITS) altered in its VMCOREINFO:
 *    drgn cannot read kernel memory from it; after `vmcore fix` (kdump) and `vmcore convert`
 *    (ELF and kdump), which write the proven layout, libkdumpfile reads the same memory digest
 *    and drgn the same release and kernel log as from the intact fixed file;
 *  - the kernel's kallsyms has no `modules` symbol (no CONFIG_KALLSYMS_ALL): `vmcore mod` finds
 *    the list in the image and lists the module the guest loaded (console: "qemu_fw_cfg loaded")
 *    as drgn with the -dbg vmlinux reads it (name, struct module, base, size), and `vmcore sym`
 *    names each of the module's own symbols (mod->kallsyms as drgn reads it) with [module].
 * The arm64 -dbg vmlinux: VMCORE_VMLINUX_ARM64, or scripts/guest/fetch-kernel.sh with
 * VMCORE_KERNEL_ARCH=arm64 (cached). Under CI=true a missing corpus or vmlinux fails.
 */
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { openDumpFiles } from '../../src/node/open.js';
import { hashMemory } from '../../src/core/hash.js';
import { nodeSha256 } from '../../src/node/hash.js';
import { withPageSize } from '../../src/core/reblock.js';

const root = fileURLToPath(new URL('../../../', import.meta.url));
const corpus = process.env['VMCORE_CORPUS_ARM64'] ?? resolve(root, '../shared/corpus-arm64');
const CASE = 'direct-max-kaslr-1cpu-256M-vmci-panic';
const dumpPath = join(corpus, CASE, 'qemu-kdump-zlib.vmcore');
const CLI = join(root, 'dist/src/cli/vmcore.js');
const PEERS = join(root, 'test/interop/fix-peers.py');
const PY = '/usr/bin/python3';
const CI = process.env['CI'] === 'true';
const tmp = mkdtempSync(join(process.env['VMCORE_SCRATCH'] ?? tmpdir(), 'vmcore-arm64-'));
after(() => rmSync(tmp, { recursive: true, force: true }));

const haveCorpus = existsSync(dumpPath);
if (CI && !haveCorpus) throw new Error(`arm64 corpus missing: ${dumpPath}`);

function vmcore(args: string[]) {
  const r = spawnSync(process.execPath, [CLI, ...args], { maxBuffer: 64 << 20 });
  return { status: r.status, out: r.stdout.toString(), err: r.stderr.toString() };
}
function peer(args: string[]): Record<string, unknown> {
  const r = spawnSync(PY, [PEERS, ...args], { maxBuffer: 64 << 20 });
  const line = r.stdout.toString().trim().split('\n').pop() ?? '';
  try {
    return JSON.parse(line) as Record<string, unknown>;
  } catch {
    return { error: `no JSON from fix-peers.py: ${r.stderr.toString().slice(0, 400)}` };
  }
}

function arm64Vmlinux(): string | undefined {
  const env = process.env['VMCORE_VMLINUX_ARM64'];
  if (env && existsSync(env)) return env;
  const r = spawnSync('bash', [join(root, 'scripts/guest/fetch-kernel.sh'), '--dbg'], {
    env: { ...process.env, VMCORE_KERNEL_ARCH: 'arm64', VMCORE_KERNEL_ABI: '6.1.0-56' },
    maxBuffer: 16 << 20,
  });
  const m = /^VMLINUX=(.*)$/m.exec(r.stdout?.toString() ?? '');
  return m && existsSync(m[1]!) ? m[1] : undefined;
}

const truth = haveCorpus
  ? (JSON.parse(readFileSync(join(corpus, CASE, 'case.json'), 'utf8')) as { truth: { placement: Record<string, string>; marker: string; release: string } }).truth
  : undefined;

test('arm64 QEMU dump: libkdumpfile and drgn cannot read the original', { skip: !haveCorpus && 'no arm64 corpus' }, () => {
  assert.ok(peer(['lkdf', dumpPath])['error'], 'libkdumpfile opened QEMU\'s flattened arm64 file');
  const vml = arm64Vmlinux();
  if (vml) assert.ok(peer(['drgn', dumpPath, vml])['error'], 'drgn read QEMU\'s arm64 file');
});

test('arm64 QEMU dump: vmcore proves PHYS_OFFSET and kimage_voffset as the guest printed them, and reads its log', { skip: !haveCorpus && 'no arm64 corpus' }, () => {
  const r = vmcore(['info', '--json', dumpPath]);
  assert.equal(r.status, 0, r.err);
  const info = JSON.parse(r.out) as { arch: string; physBase: { name: string; value: string; verdict: string; aarch64: Record<string, unknown> }; kernel: { release: string } };
  const P = truth!.placement;
  assert.equal(info.arch, 'aarch64');
  assert.equal(info.physBase.name, 'PHYS_OFFSET');
  assert.equal(BigInt(info.physBase.value), BigInt(P['phys_offset']!));
  assert.equal(info.physBase.verdict, 'header correct');
  assert.equal(info.physBase.aarch64['kimageVoffset'], P['kimage_voffset']);
  assert.equal(info.physBase.aarch64['swapperPgDir'], P['swapper_pg_dir_phys']);
  assert.equal(info.kernel.release, truth!.release);
  const d = vmcore(['dmesg', dumpPath]);
  assert.equal(d.status, 0, d.err);
  assert.ok(d.out.includes(truth!.marker), 'marker line in the log');
  assert.ok(d.out.includes('Kernel panic - not syncing: sysrq triggered crash'));
  const v = vmcore(['read', dumpPath, '--virt', P['init_uts_ns_vaddr']!, '--length', '5']);
  assert.equal(v.out, 'Linux');
});

test('arm64 QEMU dump: after vmcore fix, libkdumpfile and drgn read the same memory and the true PHYS_OFFSET', { skip: !haveCorpus && 'no arm64 corpus' }, async () => {
  const fixed = join(tmp, 'fixed.kdump');
  const f = vmcore(['fix', dumpPath, '-o', fixed, '--json']);
  assert.equal(f.status, 0, f.err);
  const want = await (async () => {
    const d = await openDumpFiles([dumpPath]);
    try {
      return await hashMemory(withPageSize(d, 4096), { hasher: nodeSha256 });
    } finally {
      await d.close();
    }
  })();
  const lk = peer(['lkdf', fixed, '--digest']);
  assert.equal(lk['error'], undefined, String(lk['error']));
  assert.equal(lk['sha256'], want.sha256);
  assert.equal(lk['pages'], want.pages);
  assert.equal(lk['release'], truth!.release);
  assert.equal(BigInt(String(lk['phys_base'])), BigInt(truth!.placement['phys_offset']!));
  const vml = arm64Vmlinux();
  if (!vml) {
    if (CI) assert.fail('the arm64 -dbg vmlinux could not be fetched');
    return;
  }
  const dr = peer(['drgn', fixed, vml, truth!.marker]);
  assert.equal(dr['error'], undefined, String(dr['error']));
  assert.equal(dr['release'], truth!.release);
  assert.ok((dr['marker'] as string[]).length > 0, 'drgn finds the marker line');
});

test('arm64 QEMU dump with kimage_voffset and VA_BITS altered in VMCOREINFO: fix and convert write the proven layout; libkdumpfile and drgn read as from the intact dump', { skip: !haveCorpus && 'no arm64 corpus' }, () => {
  const vml = arm64Vmlinux();
  if (!vml) {
    if (CI) assert.fail('the arm64 -dbg vmlinux could not be fetched');
    return;
  }
  const intact = join(tmp, 'intact.kdump');
  const f = vmcore(['fix', dumpPath, '-o', intact, '--force']);
  assert.equal(f.status, 0, f.err);
  // the same file with two VMCOREINFO values changed in place (same lengths)
  const kv = truth!.placement['kimage_voffset']!;
  const badKv = '0x' + (BigInt(kv) + 0x200000n).toString(16);
  const b = Buffer.from(readFileSync(intact));
  for (const [from, to] of [[`NUMBER(kimage_voffset)=${kv}`, `NUMBER(kimage_voffset)=${badKv}`], ['NUMBER(VA_BITS)=48', 'NUMBER(VA_BITS)=52']] as const) {
    const i = b.indexOf(from, 0, 'latin1');
    assert.ok(i > 0 && b.indexOf(from, i + 1, 'latin1') === -1, `${from} once in the fixed file`);
    b.write(to, i, 'latin1');
  }
  const altered = join(tmp, 'altered.kdump');
  writeFileSync(altered, b);
  const want = { lk: peer(['lkdf', intact, '--digest']), dr: peer(['drgn', intact, vml, truth!.marker]) };
  assert.equal(want.lk['error'], undefined, String(want.lk['error']));
  assert.equal(want.dr['error'], undefined, String(want.dr['error']));
  assert.ok((want.dr['marker'] as string[]).length > 0, 'drgn finds the marker line in the intact file');
  // the peers take the layout from VMCOREINFO: drgn cannot read the altered file
  assert.ok(peer(['drgn', altered, vml, truth!.marker])['error'], 'drgn read kernel memory with the altered kimage_voffset');
  const outs = {
    fixed: join(tmp, 'altered-fixed.kdump'),
    elf: join(tmp, 'altered.elf'),
    kdump: join(tmp, 'altered-converted.kdump'),
  };
  const fx = vmcore(['fix', altered, '-o', outs.fixed, '--json']);
  assert.equal(fx.status, 0, fx.err);
  const changes = (JSON.parse(fx.out) as { changes: string[] }).changes;
  assert.ok(changes.some((c) => c.startsWith(`VMCOREINFO NUMBER(kimage_voffset) ${badKv} -> ${kv}`)), changes.join('\n'));
  assert.ok(changes.some((c) => c.startsWith('VMCOREINFO NUMBER(VA_BITS) 52 -> 48')), changes.join('\n'));
  for (const [out, args] of [[outs.elf, ['--format', 'elf']], [outs.kdump, []]] as const) {
    const c = vmcore(['convert', ...args, altered, out]);
    assert.equal(c.status, 0, c.err);
    assert.match(c.err, /written with the proven value: VMCOREINFO NUMBER\(kimage_voffset\)/);
  }
  for (const out of Object.values(outs)) {
    const lk = peer(['lkdf', out, '--digest']);
    assert.equal(lk['error'], undefined, `${out}: ${String(lk['error'])}`);
    assert.equal(lk['sha256'], want.lk['sha256'], out);
    assert.equal(lk['pages'], want.lk['pages'], out);
    assert.equal(lk['release'], truth!.release, out);
    const dr = peer(['drgn', out, vml, truth!.marker]);
    assert.equal(dr['error'], undefined, `${out}: ${String(dr['error'])}`);
    assert.equal(dr['release'], truth!.release, out);
    assert.equal(dr['records'], want.dr['records'], out);
    assert.deepEqual(dr['marker'], want.dr['marker'], out);
  }
});

test('arm64 QEMU dump without a kallsyms `modules` symbol: vmcore mod finds the module list as drgn reads it with the -dbg vmlinux, and names the module\'s symbols', { skip: !haveCorpus && 'no arm64 corpus' }, () => {
  const serial = readFileSync(join(corpus, CASE, 'serial.log'), 'utf8');
  assert.match(serial, /qemu_fw_cfg loaded/, 'the guest loaded qemu_fw_cfg');
  const vml = arm64Vmlinux();
  if (!vml) {
    if (CI) assert.fail('the arm64 -dbg vmlinux could not be fetched');
    return;
  }
  // no `modules` in the dump's kallsyms: the lookup fails, so the list head must be searched for
  const noSym = vmcore(['sym', dumpPath, 'modules', '--json']);
  assert.notEqual(noSym.status, 0, 'kallsyms of this kernel names `modules`: the search is not exercised');
  const r = vmcore(['mod', dumpPath, '--json']);
  assert.equal(r.status, 0, r.err);
  assert.match(r.err, /modules: memory search \(modules\)/);
  const mods = JSON.parse(r.out) as { name: string; module: string; base: string; size: number; state: string; symbols: number }[];
  const fixed = join(tmp, 'modules-fixed.kdump');
  const f = vmcore(['fix', dumpPath, '-o', fixed, '--force']);
  assert.equal(f.status, 0, f.err);
  const dr = peer(['drgn-modules', fixed, vml]) as { error?: string; modules: { name: string; module: string; base: string; size: number; symbols: [string, string][] }[] };
  assert.equal(dr.error, undefined, String(dr.error));
  assert.ok(dr.modules.some((m) => m.name === 'qemu_fw_cfg'), JSON.stringify(dr.modules.map((m) => m.name)));
  assert.deepEqual(
    mods.map((m) => [m.name, BigInt(m.module), BigInt(m.base), m.size, m.state]),
    dr.modules.map((m) => [m.name, BigInt(m.module), BigInt(m.base), m.size, 'Live']),
  );
  // the module's own symbols (mapping symbols such as $x apart, as the kernel skips them)
  for (const m of dr.modules) {
    const syms = m.symbols.filter(([n]) => !n.startsWith('$'));
    assert.equal(mods.find((x) => x.name === m.name)!.symbols, syms.length, m.name);
    const byAddr = new Map<string, string[]>();
    for (const [n, a] of syms) byAddr.set(a, [...(byAddr.get(a) ?? []), n]);
    const q = vmcore(['sym', dumpPath, '--json', ...byAddr.keys()]);
    assert.equal(q.status, 0, q.err);
    const rows = JSON.parse(q.out) as { name: string | null; offset?: number; module?: string | null }[];
    assert.equal(rows.length, byAddr.size);
    [...byAddr.values()].forEach((names, i) => {
      assert.ok(names.includes(rows[i]!.name ?? ''), `${names.join('/')}: ${JSON.stringify(rows[i])}`);
      assert.equal(rows[i]!.module, m.name);
    });
  }
});

test('arm64 QEMU dump in 64 KiB blocks: usage classifies the kernel\'s 4 KiB pages, as convert -d 31 leaves them out and as on the fixed file', { skip: !haveCorpus && 'no arm64 corpus' }, () => {
  type Usage = { pageSize: number; types: Record<string, { pages: number }> };
  const kinds = (u: Usage) => ({ cache: u.types['cache']!.pages, cachePrivate: u.types['cachePrivate']!.pages, user: u.types['user']!.pages, free: u.types['free']!.pages });
  const u = vmcore(['usage', dumpPath, '--json']);
  assert.equal(u.status, 0, u.err);
  const onQemu = JSON.parse(u.out) as Usage;
  assert.equal(onQemu.pageSize, 4096);
  // the guest had free memory: a classification of the 64 KiB blocks had found none
  assert.ok(onQemu.types['free']!.pages > 1000, `free pages: ${onQemu.types['free']!.pages}`);
  const out = join(tmp, 'd31.kdump');
  const c = vmcore(['convert', dumpPath, out, '-d', '31', '--force', '--json']);
  assert.equal(c.status, 0, c.err);
  const filtered = (JSON.parse(c.out) as { filtered: Record<string, number> }).filtered;
  assert.deepEqual(kinds(onQemu), { cache: filtered['cache'], cachePrivate: filtered['cachePrivate'], user: filtered['user'], free: filtered['free'] });
  const fixed = join(tmp, 'usage-fixed.kdump');
  assert.equal(vmcore(['fix', dumpPath, '-o', fixed, '--force']).status, 0);
  const f = vmcore(['usage', fixed, '--json']);
  assert.equal(f.status, 0, f.err);
  assert.deepEqual(kinds(JSON.parse(f.out) as Usage), kinds(onQemu));
});
