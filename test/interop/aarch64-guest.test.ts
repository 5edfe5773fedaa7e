/**
 * Real arm64 guests (qemu-system-aarch64, machine virt, cpu max, TCG; Debian's arm64 cloud
 * kernel 6.1.0-56 and busybox-static arm64, downloaded, never installed) booted by
 * scripts/guest/boot.sh, panicked with sysrq-c and dumped by QEMU through QMP as ELF and
 * kdump-zlib (the only kdump codec this QEMU build offers on arm). Two placements beside the
 * corpus's (direct boot, KASLR, vmcoreinfo device):
 *  - UEFI firmware (qemu-efi-aarch64) with KASLR and no vmcoreinfo device: the linear map is
 *    randomised (memstart_addr 0 below RAM at 0x40000000), QEMU writes the lowest RAM address
 *    into the kdump header and no VMCOREINFO;
 *  - direct boot with nokaslr and the vmcoreinfo device.
 * Truth comes from the guest's console: _stext from /proc/kallsyms and the "Kernel code" start
 * from /proc/iomem give kimage_voffset; the panic's own "PHYS_OFFSET:" line gives memstart_addr.
 * libkdumpfile and drgn (with the arm64 -dbg vmlinux) fail on QEMU's files and read them after
 * `vmcore fix`, with the same memory digest as vmcore reads from the original.
 * Needs qemu-system-arm (+ qemu-efi-aarch64), the arm64 packages (`dpkg --add-architecture
 * arm64`); under CI=true anything missing fails.
 */
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { openDumpFiles } from '../../src/node/open.js';
import { hashMemory } from '../../src/core/hash.js';
import { nodeSha256 } from '../../src/node/hash.js';
import { withPageSize } from '../../src/core/reblock.js';

const root = fileURLToPath(new URL('../../../', import.meta.url));
const CLI = join(root, 'dist/src/cli/main.js');
const PEERS = join(root, 'test/interop/fix-peers.py');
const PY = '/usr/bin/python3';
const CI = process.env['CI'] === 'true';
const ENV = { ...process.env, VMCORE_KERNEL_ARCH: 'arm64', VMCORE_KERNEL_ABI: process.env['VMCORE_ARM64_KERNEL_ABI'] ?? '6.1.0-56' };
const tmp = mkdtempSync(join(process.env['VMCORE_SCRATCH'] ?? tmpdir(), 'vmcore-arm64-guest-'));
const pids: string[] = [];
after(() => {
  for (const p of pids) spawnSync('kill', [p]);
  rmSync(tmp, { recursive: true, force: true });
});

const haveQemu = spawnSync('qemu-system-aarch64', ['--version'], { stdio: 'ignore' }).status === 0;
const haveEfi = existsSync('/usr/share/qemu-efi-aarch64/QEMU_EFI.fd');
if (CI && (!haveQemu || !haveEfi)) throw new Error('qemu-system-aarch64 or qemu-efi-aarch64 missing');
const skip = !haveQemu ? 'qemu-system-aarch64 not installed' : false;

function vmcore(args: string[]) {
  const r = spawnSync(process.execPath, [CLI, ...args], { maxBuffer: 64 << 20 });
  return { status: r.status, out: r.stdout.toString(), err: r.stderr.toString() };
}
function peer(args: string[]): Record<string, unknown> {
  const r = spawnSync(PY, [PEERS, ...args], { maxBuffer: 64 << 20 });
  try {
    return JSON.parse(r.stdout.toString().trim().split('\n').pop() ?? '') as Record<string, unknown>;
  } catch {
    return { error: `no JSON from fix-peers.py: ${r.stderr.toString().slice(0, 400)}` };
  }
}
function vmlinux(): string | undefined {
  const r = spawnSync('bash', [join(root, 'scripts/guest/fetch-kernel.sh'), '--dbg'], { env: ENV, maxBuffer: 16 << 20 });
  const m = /^VMLINUX=(.*)$/m.exec(r.stdout?.toString() ?? '');
  return m && existsSync(m[1]!) ? m[1] : undefined;
}

/** What the guest printed about itself. */
function consoleTruth(serial: string) {
  const stext = /^([0-9a-f]{16}) T _stext$/m.exec(serial)?.[1];
  const code = /^\s*([0-9a-f]+)-[0-9a-f]+ : Kernel code$/m.exec(serial)?.[1];
  const physOffset = /PHYS_OFFSET: (0x[0-9a-f]+)/.exec(serial)?.[1];
  assert.ok(stext && code && physOffset, 'the console shows _stext, Kernel code and PHYS_OFFSET');
  return { kimageVoffset: '0x' + BigInt.asUintN(64, BigInt('0x' + stext) - BigInt('0x' + code)).toString(16), physOffset: BigInt(physOffset) };
}

for (const g of [
  { tag: 'a64-uefi-kaslr-novmci', args: ['--bios', 'ovmf', '--kaslr'] },
  { tag: 'a64-direct-nokaslr-vmci', args: ['--nokaslr', '--vmcoreinfo'] },
]) {
  test(`arm64 guest ${g.tag}: location proven as the guest printed it; peers read the fixed dumps`, { skip, timeout: 900_000 }, async () => {
    const dir = join(tmp, g.tag);
    const b = spawnSync('bash', [join(root, 'scripts/guest/boot.sh'), '--dir', dir, '--ram', '256M', '--mode', 'panic', '--tag', g.tag, '--timeout', '600', ...g.args], {
      env: ENV,
      maxBuffer: 16 << 20,
    });
    assert.equal(b.status, 0, b.stderr.toString().slice(-2000));
    const env = Object.fromEntries(b.stdout.toString().trim().split('\n').map((l) => l.split('=', 2) as [string, string]));
    pids.push(env['QEMU_PID']!);
    const truth = consoleTruth(readFileSync(join(dir, 'serial.log'), 'latin1'));
    const vml = vmlinux();
    if (!vml && CI) assert.fail('the arm64 -dbg vmlinux could not be fetched');
    // both dumps first, then the guest goes (a panicked TCG guest keeps a core busy)
    const formats = ['elf', 'kdump-zlib'];
    for (const format of formats) {
      const file = join(dir, `${format}.vmcore`);
      const q = spawnSync(PY, [join(root, 'scripts/guest/qmp.py'), env['QMP_SOCKET']!, 'dump-guest-memory', JSON.stringify({ paging: false, protocol: `file:${file}`, format })]);
      assert.equal(q.status, 0, q.stderr.toString());
    }
    spawnSync('kill', [env['QEMU_PID']!]);
    for (const format of formats) {
      const file = join(dir, `${format}.vmcore`);
      const r = vmcore(['info', '--json', file]);
      assert.equal(r.status, 0, r.err);
      const info = JSON.parse(r.out) as { arch: string; physBase: { header: string | null; value: string; verdict: string; aarch64: Record<string, unknown> }; vmcoreinfo: { source: string } };
      assert.equal(info.arch, 'aarch64', format);
      assert.equal(BigInt(info.physBase.value), truth.physOffset, `${format}: PHYS_OFFSET`);
      assert.equal(info.physBase.aarch64['kimageVoffset'], truth.kimageVoffset, `${format}: kimage_voffset`);
      const headerRight = info.physBase.header !== null && BigInt(info.physBase.header) === truth.physOffset;
      assert.equal(info.physBase.verdict, info.physBase.header === null ? 'header absent' : headerRight ? 'header correct' : 'header wrong');
      if (!g.args.includes('--vmcoreinfo')) assert.match(info.vmcoreinfo.source, /^memory scan at 0x/);
      const d = vmcore(['dmesg', file]);
      assert.ok(d.out.includes(`VMCORE-GUEST-MARKER ${g.tag}`), `${format}: marker in the log`);
      assert.ok(d.out.includes('Kernel panic - not syncing: sysrq triggered crash'));

      // the peers on QEMU's file, then on the fixed one
      if (format !== 'elf') assert.ok(peer(['lkdf', file])['error'], 'libkdumpfile opened QEMU\'s flattened file');
      if (vml) assert.ok(peer(['drgn', file, vml])['error'], 'drgn read QEMU\'s arm64 file');
      const fixed = join(dir, `${format}.fixed`);
      const f = vmcore(['fix', file, '-o', fixed]);
      assert.equal(f.status, 0, f.err);
      const want = await (async () => {
        const dump = await openDumpFiles([file]);
        try {
          return await hashMemory(withPageSize(dump, 4096), { hasher: nodeSha256 });
        } finally {
          await dump.close();
        }
      })();
      const lk = peer(['lkdf', fixed, '--digest']);
      assert.equal(lk['error'], undefined, String(lk['error']));
      assert.equal(lk['sha256'], want.sha256, `${format}: libkdumpfile reads the fixed file's memory as vmcore reads the original`);
      assert.equal(lk['release'], '6.1.0-56-cloud-arm64');
      if (format !== 'elf') assert.equal(BigInt(String(lk['phys_base'])), truth.physOffset);
      if (vml) {
        const dr = peer(['drgn', fixed, vml, `VMCORE-GUEST-MARKER ${g.tag}`]);
        assert.equal(dr['error'], undefined, `${format}: ${String(dr['error'])}`);
        assert.ok((dr['marker'] as string[]).length > 0, `${format}: drgn finds the marker line`);
      }
      rmSync(file);
      rmSync(fixed);
    }
  });
}
