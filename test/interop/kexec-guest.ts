/**
 * The kdump guest of the interop tests: a dump made by the kernel itself (Debian's 6.1.0-56 cloud
 * kernel, 2 vCPUs, crashkernel=, kexec -p, sysrq-c on CPU 0 while CPU 1 is busy in the kernel),
 * saved by the capture kernel as ELF (/proc/vmcore) and through makedumpfile -d 31 -c, with the
 * truth of drgn and crash. Made once by scripts/guest/kexec-guest.sh and cached under
 * $VMCORE_GUEST_CACHE (keyed by kernel and script hash).
 *
 * What is missing (QEMU, busybox-static, kexec-tools, makedumpfile, python3-drgn, crash, the built
 * CLI) gives `{skip}` with the reason; under CI=true it throws instead, so a CI run never passes by
 * skipping.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseConsole, type DrgnTruth, type GuestConsole } from './analysis-guest.js';

const root = fileURLToPath(new URL('../../../', import.meta.url));
const SCRIPT = join(root, 'scripts/guest/kexec-guest.sh');

export interface KexecGuest {
  dir: string;
  kver: string;
  vmlinux: string;
  /** /proc/vmcore as the capture kernel read it. */
  elf: string;
  /** makedumpfile -d 31 -c run in the capture kernel. */
  kdump: string;
  drgn: DrgnTruth;
  crash: { sys: string; btA: string; ps: string; log: string };
  /** The first kernel's console (up to the capture kernel's boot), parsed. */
  console: GuestConsole;
  /** The capture kernel's console. */
  captureConsole: string;
  timings: Record<string, number>;
}

function has(cmd: string, args: string[]): boolean {
  return spawnSync(cmd, args, { stdio: 'ignore' }).error === undefined;
}

function missing(): string | undefined {
  if (!has('qemu-system-x86_64', ['--version'])) return 'qemu-system-x86_64 not installed';
  if (!existsSync('/bin/busybox')) return 'busybox-static not installed';
  if (!has('kexec', ['--version'])) return 'kexec-tools not installed';
  if (!has('makedumpfile', ['--version'])) return 'makedumpfile not installed';
  if (spawnSync('/usr/bin/python3', ['-c', 'import drgn'], { stdio: 'ignore' }).status !== 0) return 'python3-drgn not installed';
  if (!has('crash', ['--version'])) return 'crash not installed';
  if (!existsSync(join(root, 'dist/src/cli/vmcore.js'))) return 'the CLI is not built (npm run build)';
  return undefined;
}

/** The serial log split at the capture kernel's boot (its "Linux version" banner, the second one). */
export function splitConsole(serial: string): { first: string; capture: string } {
  const re = /^.*\] Linux version .*$/gm;
  re.exec(serial);
  const second = re.exec(serial);
  if (!second) return { first: serial, capture: '' };
  return { first: serial.slice(0, second.index), capture: serial.slice(second.index) };
}

/**
 * Boot (or take from the cache) the kdump guest of Debian's 6.1.0-56 kernel and read its truth.
 * About 3 minutes on 2 cores the first time, then nothing. Throws when the script fails.
 */
export function kexecGuest(abi = '6.1.0-56'): KexecGuest | { skip: string } {
  const why = missing();
  if (why) {
    if (process.env['CI'] === 'true') throw new Error(`kdump guest ${abi}: ${why} (required in CI)`);
    return { skip: why };
  }
  const r = spawnSync('bash', [SCRIPT], {
    encoding: 'utf8',
    env: { ...process.env, VMCORE_KERNEL_ABI: abi },
    maxBuffer: 64 << 20,
    timeout: 1_200_000,
  });
  if (r.status !== 0) throw new Error(`scripts/guest/kexec-guest.sh (${abi}) failed: ${(r.stderr ?? '').slice(-1500)}`);
  const env = new Map([...r.stdout.matchAll(/^(\w+)=(.*)$/gm)].map((m) => [m[1]!, m[2]!] as const));
  const dir = env.get('KEXEC_DIR')!;
  const read = (f: string) => readFileSync(join(dir, f), 'utf8');
  const timings: Record<string, number> = {};
  for (const m of read('timings.env').matchAll(/^(\w+)=(\d+)$/gm)) timings[m[1]!] = Number(m[2]);
  const { first, capture } = splitConsole(readFileSync(join(dir, 'serial.log'), 'latin1'));
  return {
    dir,
    kver: env.get('KVER')!,
    vmlinux: env.get('VMLINUX')!,
    elf: join(dir, 'kernel-elf.vmcore'),
    kdump: join(dir, 'makedumpfile.kdump'),
    drgn: JSON.parse(read('truth-drgn.json')) as DrgnTruth,
    crash: { sys: read('crash-sys.txt'), btA: read('crash-bt-a.txt'), ps: read('crash-ps.txt'), log: read('crash.log') },
    console: parseConsole(first),
    captureConsole: capture,
    timings,
  };
}
