/**
 * kallsyms read from each corpus dump (no vmlinux) against the symbol table of the matching
 * -dbg vmlinux (`nm -n`, binutils), shifted by the KASLR offset that the guest printed on its
 * console (`_text` from its own /proc/kallsyms): every kallsyms symbol must be an nm symbol of
 * the same name, type letter and address (per-CPU symbols: type A, not shifted, as
 * CONFIG_KALLSYMS_ABSOLUTE_PERCPU makes them), and every global text symbol of nm must be there.
 *
 * Needs the corpus (VMCORE_CORPUS, default ../shared/corpus) and the corpus kernel's -dbg
 * package: taken from the guest cache (VMCORE_GUEST_CACHE), else downloaded with
 * scripts/guest/fetch-kernel.sh --dbg (VMCORE_KERNEL_ABI = the corpus release). Skips with a
 * message when either is missing, and fails instead under CI=true.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { openDumpFiles } from '../../src/node/open.js';
import { analyzeKernel } from '../../src/core/kernel/kernel.js';

const repo = resolve(fileURLToPath(new URL('../../../', import.meta.url)));
const corpus = process.env['VMCORE_CORPUS'] ?? resolve(repo, '../shared/corpus');
const haveCorpus = existsSync(join(corpus, 'truth', 'index.json'));
const CI = process.env['CI'] === 'true';

/** The -dbg vmlinux of `release` (…-cloud-amd64) from the cache, fetched when absent. */
function vmlinuxFor(release: string): string | { error: string } {
  const cache = process.env['VMCORE_GUEST_CACHE'] ?? '/tmp/vmcore-guest';
  const cands = [`dbg-${release}/usr/lib/debug/boot/vmlinux-${release}`, `dbg-${release}/usr/lib/debug/vmlinux-${release}`].map((p) => join(cache, p));
  const have = cands.find((p) => existsSync(p));
  if (have) return have;
  const abi = release.replace(/-cloud-amd64$/, '');
  const r = spawnSync(join(repo, 'scripts/guest/fetch-kernel.sh'), ['--dbg'], { env: { ...process.env, VMCORE_KERNEL_ABI: abi }, encoding: 'utf8', timeout: 900_000 });
  const got = /^VMLINUX=(.*)$/m.exec(r.stdout ?? '')?.[1];
  if (r.status === 0 && got && existsSync(got)) return got;
  return { error: `no -dbg vmlinux for ${release}: fetch-kernel.sh: ${(r.stderr ?? '').trim().split('\n').pop()}` };
}

interface NmSym {
  addr: bigint;
  type: string;
}

function nmTable(vmlinux: string): Map<string, NmSym[]> {
  const r = spawnSync('nm', ['-n', vmlinux], { encoding: 'utf8', maxBuffer: 256 << 20 });
  assert.equal(r.status, 0, `nm: ${r.stderr}`);
  const m = new Map<string, NmSym[]>();
  for (const l of r.stdout.split('\n')) {
    const [a, type, name] = l.split(' ');
    if (!a || !type || !name || !/^[0-9a-f]{16}$/.test(a)) continue;
    const e = { addr: BigInt('0x' + a), type };
    const cur = m.get(name);
    if (cur) cur.push(e);
    else m.set(name, [e]);
  }
  return m;
}

if (!haveCorpus) test('kallsyms against nm', { skip: CI ? false : `corpus not found at ${corpus} (set VMCORE_CORPUS)` }, () => assert.fail(`corpus not found at ${corpus}`));

const cases = haveCorpus ? Object.keys((JSON.parse(readFileSync(join(corpus, 'truth', 'index.json'), 'utf8')) as { cases: Record<string, unknown> }).cases) : [];
const nmCache = new Map<string, Map<string, NmSym[]>>();

for (const name of cases) {
  const dir = join(corpus, name);
  const serial = existsSync(join(dir, 'serial.log')) ? readFileSync(join(dir, 'serial.log'), 'latin1') : '';
  const release = /Linux version (\S+)/.exec(serial)?.[1];
  const text = /^([0-9a-f]{16}) T _text\r?$/m.exec(serial)?.[1];
  for (const f of ['qemu-kdump-zlib.vmcore', 'md/md-c-d31.kdump']) {
    const path = join(dir, f);
    if (!existsSync(path)) continue;
    test(`${name}/${f}: every kallsyms symbol is the vmlinux's (nm) shifted by KASLR`, async (t) => {
      assert.ok(release && text, 'the serial log names the release and _text');
      const vm = vmlinuxFor(release);
      if (typeof vm !== 'string') {
        if (CI) assert.fail(vm.error);
        return t.skip(vm.error);
      }
      let nm = nmCache.get(vm);
      if (!nm) nmCache.set(vm, (nm = nmTable(vm)));
      const stext = nm.get('_text')?.[0]?.addr;
      assert.ok(stext !== undefined);
      const kaslr = BigInt('0x' + text) - stext;
      const dump = await openDumpFiles([path]);
      try {
        const k = await analyzeKernel(dump);
        const t0 = performance.now();
        const ks = await k.symbols();
        t.diagnostic(`${ks.count} symbols (${ks.addressMode}, ${ks.source}) in ${(performance.now() - t0).toFixed(0)} ms; KASLR offset 0x${kaslr.toString(16)}`);
        assert.deepEqual(ks.warnings, []);
        const bad: string[] = [];
        for (const s of ks) {
          const percpu = s.address < 0x80000000n;
          const c = nm.get(s.name) ?? [];
          const m = c.find((x) => (percpu ? x.addr : x.addr + kaslr) === s.address);
          if (!m || (percpu ? s.type !== 'A' : m.type !== s.type)) bad.push(`${s.name} ${s.type} 0x${s.address.toString(16)} (nm: ${c.map((x) => `${x.type} ${x.addr.toString(16)}`).join(', ') || 'none'})`);
        }
        assert.deepEqual(bad.slice(0, 20), [], `${bad.length} of ${ks.count} differ`);
        // coverage: every global function of the vmlinux is in the table
        const missing: string[] = [];
        for (const [n, list] of nm) if (list.some((x) => x.type === 'T') && ks.addressOf(n) === undefined) missing.push(n);
        assert.deepEqual(missing.slice(0, 20), [], `${missing.length} global functions missing`);
        // symbolize the panic path: sysrq_handle_crash+off resolves to itself
        const crash = ks.addressOf('sysrq_handle_crash')!;
        assert.equal(crash, nm.get('sysrq_handle_crash')![0]!.addr + kaslr);
        const r = ks.symbolize(crash + 5n)!;
        assert.deepEqual([r.name, r.offset], ['sysrq_handle_crash', 5n]);
      } finally {
        await dump.close();
      }
    });
  }
}
