/**
 * `vmcore fix` on fresh dumps of a live guest: the current Debian cloud kernel booted by
 * scripts/guest/boot.sh under OVMF *without* -device vmcoreinfo, panicked, then dumped by QEMU
 * (dump-guest-memory, paging=false) as kdump-zlib (flattened) and as ELF. Neither dump has
 * VMCOREINFO, so drgn refuses both and vmcore-dmesg and makedumpfile fail on the ELF. After
 * `vmcore fix`: drgn (with the kernel's -dbg vmlinux) opens both and its dmesg has the guest's
 * marker line, libkdumpfile reports the true phys_base (from the guest's serial console,
 * scripts/guest/phys-base.sh), vmcore-dmesg reads the fixed ELF and makedumpfile re-filters
 * both fixed files.
 *
 * Needs qemu-system-x86_64, OVMF, busybox-static, python3-drgn/libkdumpfile and the -dbg
 * vmlinux in the guest-script cache (run `scripts/guest/fetch-kernel.sh --dbg` once; the test
 * never downloads it). Skips with a message otherwise.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { fixDump } from '../../src/node/fix.js';
import { QmpClient } from '../../src/node/qmp.js';

const root = fileURLToPath(new URL('../../../', import.meta.url));
const GUEST = join(root, 'scripts/guest');
const PEERS = join(root, 'test/interop/fix-peers.py');
const CLI = join(root, 'dist/src/cli/vmcore.js');
const PY = '/usr/bin/python3';
const TAG = 'fixguest';
const MARKER = `VMCORE-GUEST-MARKER ${TAG}`;

function has(cmd: string, args: string[]): boolean {
  return spawnSync(cmd, args, { stdio: 'ignore' }).error === undefined;
}
const pyHas = (mod: string) => existsSync(PY) && spawnSync(PY, ['-c', `import ${mod}`], { stdio: 'ignore' }).status === 0;

function kernelFromCache(): { kver?: string; vmlinux?: string; why?: string } {
  const r = spawnSync('bash', [join(GUEST, 'fetch-kernel.sh')], { encoding: 'utf8' });
  if (r.status !== 0) return { why: `scripts/guest/fetch-kernel.sh failed: ${r.stderr.slice(-300)}` };
  const kver = /^KVER=(.*)$/m.exec(r.stdout)?.[1];
  const cache = process.env['VMCORE_GUEST_CACHE'] ?? '/tmp/vmcore-guest';
  for (const p of [`dbg-${kver}/usr/lib/debug/boot/vmlinux-${kver}`, `dbg-${kver}/usr/lib/debug/vmlinux-${kver}`]) {
    if (existsSync(join(cache, p))) return { kver: kver!, vmlinux: join(cache, p) };
  }
  return { why: `no -dbg vmlinux for ${kver} in ${cache} (run scripts/guest/fetch-kernel.sh --dbg once)` };
}

function whyNot(): string | false {
  if (!has('qemu-system-x86_64', ['--version'])) return 'qemu-system-x86_64 not installed';
  if (!existsSync('/usr/share/ovmf/OVMF.fd')) return 'ovmf not installed';
  if (!pyHas('drgn') || !pyHas('kdumpfile')) return 'python3-drgn / python3-libkdumpfile not installed';
  if (!has('makedumpfile', ['-v']) || !has('vmcore-dmesg', ['--help'])) return 'makedumpfile / kexec-tools not installed';
  return false;
}

interface Peer {
  error?: string;
  phys_base?: string | null;
  release?: string;
  marker?: string[];
}
function peer(args: string[]): Peer {
  const r = spawnSync(PY, [PEERS, ...args], { encoding: 'utf8', maxBuffer: 64 << 20 });
  try {
    return JSON.parse(r.stdout.trim().split('\n').pop() ?? '') as Peer;
  } catch {
    return { error: `fix-peers.py: ${r.stderr.slice(-300)}` };
  }
}

function refilters(input: string, out: string): boolean {
  rmSync(out, { force: true });
  const ok = spawnSync('makedumpfile', ['-c', '-d', '31', input, out], { stdio: 'ignore' }).status === 0 && existsSync(out);
  rmSync(out, { force: true });
  return ok;
}

const skipReason = whyNot();
const kernel = skipReason ? {} : kernelFromCache();
const skip = skipReason || kernel.why || false;

test('fresh OVMF guest without -device vmcoreinfo: fixed dumps open in drgn, libkdumpfile, vmcore-dmesg, makedumpfile', { skip }, async () => {
  const dir = mkdtempSync(join(process.env['VMCORE_SCRATCH'] ?? tmpdir(), 'vmcore-fix-guest-'));
  let pid: number | undefined;
  try {
    const boot = spawnSync('bash', [join(GUEST, 'boot.sh'), '--dir', dir, '--bios', 'ovmf', '--ram', '256M', '--mode', 'panic', '--tag', TAG, '--timeout', '300'], {
      encoding: 'utf8',
      maxBuffer: 16 << 20,
    });
    const pidText = existsSync(join(dir, 'qemu.pid')) ? readFileSync(join(dir, 'qemu.pid'), 'utf8').trim() : '';
    if (/^\d+$/.test(pidText)) pid = Number(pidText);
    assert.equal(boot.status, 0, `boot.sh: ${boot.stderr.slice(-800)}`);
    const serial = join(dir, 'serial.log');
    const pb = spawnSync('bash', [join(GUEST, 'phys-base.sh'), serial], { encoding: 'utf8' });
    assert.equal(pb.status, 0, pb.stderr);
    const truePb = pb.stdout.trim();
    assert.ok(readFileSync(serial, 'latin1').includes(MARKER), 'the guest logged its marker');

    const kdump = join(dir, 'qemu-kdump-zlib.vmcore');
    const elf = join(dir, 'qemu-elf.vmcore');
    const q = await QmpClient.connect({ path: join(dir, 'qmp.sock') });
    try {
      await q.execute('dump-guest-memory', { paging: false, protocol: `file:${kdump}`, format: 'kdump-zlib' }, { timeoutMs: 300000 });
      await q.execute('dump-guest-memory', { paging: false, protocol: `file:${elf}`, format: 'elf' }, { timeoutMs: 300000 });
      await q.execute('quit').catch(() => undefined);
    } finally {
      q.close();
    }
    pid = undefined;

    // the originals: drgn refuses both (no VMCOREINFO), vmcore-dmesg and makedumpfile fail on the ELF
    assert.ok(peer(['drgn', kdump, kernel.vmlinux!, MARKER]).error, 'drgn opened the original kdump');
    assert.ok(peer(['drgn', elf, kernel.vmlinux!, MARKER]).error, 'drgn opened the original ELF');
    const vdOrig = spawnSync('vmcore-dmesg', [elf], { encoding: 'utf8', maxBuffer: 64 << 20 });
    assert.ok(vdOrig.status !== 0 || !vdOrig.stdout.includes(MARKER), 'vmcore-dmesg read the original ELF');
    assert.equal(refilters(elf, join(dir, 'o.d31')), false, 'makedumpfile read the original ELF');
    assert.equal(refilters(kdump, join(dir, 'o2.d31')), false, 'makedumpfile re-filtered the original flattened kdump');

    // fix the kdump through the library, the ELF through the CLI
    const fk = join(dir, 'fixed.kdump');
    const r = await fixDump(kdump, { out: fk, threads: 1 });
    assert.equal(r.physBase.after, truePb);
    assert.equal(r.vmcoreinfo.added, true);
    rmSync(kdump);
    const fe = join(dir, 'fixed.elf');
    const cli = spawnSync(process.execPath, [CLI, 'fix', elf, '-o', fe, '--json', '--threads', '1'], { encoding: 'utf8', maxBuffer: 16 << 20 });
    assert.equal(cli.status, 0, cli.stderr);
    const rep = JSON.parse(cli.stdout) as { physBase: { after: string }; vmcoreinfo: { added: boolean } };
    assert.equal(rep.physBase.after, truePb);
    assert.equal(rep.vmcoreinfo.added, true);
    rmSync(elf);

    for (const f of [fk, fe]) {
      const d = peer(['drgn', f, kernel.vmlinux!, MARKER]);
      assert.equal(d.error, undefined, `${f}: ${d.error}`);
      assert.equal(d.release, kernel.kver);
      assert.ok(d.marker!.includes(MARKER), `marker in drgn's dmesg of ${f}`);
      assert.equal(peer(['lkdf', f]).phys_base, truePb, `libkdumpfile phys_base of ${f}`);
      assert.ok(refilters(f, join(dir, 'f.d31')), `makedumpfile -d 31 ${f}`);
    }
    const vd = spawnSync('vmcore-dmesg', [fe], { encoding: 'utf8', maxBuffer: 64 << 20 });
    assert.equal(vd.status, 0, vd.stderr);
    assert.ok(vd.stdout.includes(MARKER));
  } finally {
    if (pid !== undefined) {
      try {
        process.kill(pid);
      } catch {
        /* already gone */
      }
    }
    rmSync(dir, { recursive: true, force: true });
  }
});

