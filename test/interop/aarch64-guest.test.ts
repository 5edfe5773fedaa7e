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
 * Truth comes from the guest's console: __init_begin from /proc/kallsyms and the "Kernel code" end
 * from /proc/iomem give kimage_voffset; the panic's own "PHYS_OFFSET:" line gives memstart_addr.
 * A third guest runs Debian's 16 KiB-page kernel (arm64-16k flavour, 6.12, 52-bit VAs with LPA2
 * tables under -cpu max; only kdump-zlib and ELF are offered by QEMU 7.2 on arm).
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
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { openDumpFiles } from '../../src/node/open.js';
import { hashMemory } from '../../src/core/hash.js';
import { nodeSha256 } from '../../src/node/hash.js';
import { withPageSize } from '../../src/core/reblock.js';

const root = fileURLToPath(new URL('../../../', import.meta.url));
const CLI = join(root, 'dist/src/cli/vmcore.js');
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
function vmlinux(env: NodeJS.ProcessEnv = ENV): string | undefined {
  const r = spawnSync('bash', [join(root, 'scripts/guest/fetch-kernel.sh'), '--dbg'], { env, maxBuffer: 16 << 20 });
  const m = /^VMLINUX=(.*)$/m.exec(r.stdout?.toString() ?? '');
  return m && existsSync(m[1]!) ? m[1] : undefined;
}

/**
 * What the guest printed about itself. "Kernel code" in /proc/iomem ends at
 * __pa_symbol(__init_begin - 1) (arch/arm64/kernel/setup.c); its start moved from _stext (6.1) to
 * _text (later kernels), so the end is compared with __init_begin, as kexec-tools does.
 */
function consoleTruth(serial: string) {
  const initBegin = /^([0-9a-f]{16}) T __init_begin\r?$/m.exec(serial)?.[1];
  const codeEnd = /^\s*[0-9a-f]+-([0-9a-f]+) : Kernel code\r?$/m.exec(serial)?.[1];
  const physOffset = /PHYS_OFFSET: (0x[0-9a-f]+)/.exec(serial)?.[1];
  assert.ok(initBegin && codeEnd && physOffset, 'the console shows __init_begin, Kernel code and PHYS_OFFSET');
  return { kimageVoffset: '0x' + BigInt.asUintN(64, BigInt('0x' + initBegin) - BigInt('0x' + codeEnd) - 1n).toString(16), physOffset: BigInt(physOffset) };
}

/**
 * Debian's 16 KiB-page arm64 kernel (flavour arm64-16k, 52-bit VAs: LPA2 tables under -cpu max;
 * KALLSYMS_ALL set, unlike the cloud flavour). Its guest is also unwound (`bt: true`): every walk
 * complete, the panicking task's frames below panic() the console's call trace (function,
 * offset and size), every sleeping task drgn's stack_trace (drgn 0.0.22 unwinds 6.12 arm64), ELF
 * and kdump-zlib alike.
 */
const ENV_16K = { ...ENV, VMCORE_KERNEL_FLAVOUR: 'arm64-16k', VMCORE_KERNEL_ABI: process.env['VMCORE_ARM64_16K_KERNEL_ABI'] ?? '6.12.107+deb12' };

for (const g of [
  { tag: 'a64-uefi-kaslr-novmci', args: ['--bios', 'ovmf', '--kaslr'], env: ENV, pageSize: 4096 },
  { tag: 'a64-direct-nokaslr-vmci', args: ['--nokaslr', '--vmcoreinfo'], env: ENV, pageSize: 4096 },
  { tag: 'a64-16k-direct-kaslr-vmci', args: ['--kaslr', '--vmcoreinfo'], env: ENV_16K, pageSize: 16384, bt: true },
] as { tag: string; args: string[]; env: NodeJS.ProcessEnv; pageSize: number; bt?: boolean }[]) {
  test(`arm64 guest ${g.tag}: location proven as the guest printed it; peers read the fixed dumps`, { skip, timeout: 900_000 }, async () => {
    const dir = join(tmp, g.tag);
    const b = spawnSync('bash', [join(root, 'scripts/guest/boot.sh'), '--dir', dir, '--ram', '256M', '--mode', 'panic', '--tag', g.tag, '--timeout', '600', ...g.args], {
      env: g.env,
      maxBuffer: 16 << 20,
    });
    assert.equal(b.status, 0, b.stderr.toString().slice(-2000));
    const env = Object.fromEntries(b.stdout.toString().trim().split('\n').map((l) => l.split('=', 2) as [string, string]));
    pids.push(env['QEMU_PID']!);
    const truth = consoleTruth(readFileSync(join(dir, 'serial.log'), 'latin1'));
    const btKeys = new Map<string, string[]>();
    const vml = vmlinux(g.env);
    if (!vml && CI) assert.fail('the arm64 -dbg vmlinux could not be fetched');
    // both dumps first, of the stopped guest, then the guest goes (a panicked TCG guest keeps a core busy)
    assert.equal(spawnSync(PY, [join(root, 'scripts/guest/qmp.py'), env['QMP_SOCKET']!, 'stop']).status, 0);
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
      const info = JSON.parse(r.out) as { arch: string; pageSize: number; physBase: { header: string | null; value: string; verdict: string; aarch64: Record<string, unknown> }; vmcoreinfo: { source: string } };
      assert.equal(info.arch, 'aarch64', format);
      assert.equal(info.physBase.aarch64['granule'], g.pageSize, `${format}: the translation granule`);
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
          return await hashMemory(withPageSize(dump, g.pageSize), { hasher: nodeSha256 });
        } finally {
          await dump.close();
        }
      })();
      const lk = peer(['lkdf', fixed, '--digest']);
      assert.equal(lk['error'], undefined, String(lk['error']));
      assert.equal(lk['sha256'], want.sha256, `${format}: libkdumpfile reads the fixed file's memory as vmcore reads the original`);
      assert.equal(lk['release'], env['KVER']);
      if (format !== 'elf') assert.equal(BigInt(String(lk['phys_base'])), truth.physOffset);
      if (vml) {
        const dr = peer(['drgn', fixed, vml, `VMCORE-GUEST-MARKER ${g.tag}`]);
        assert.equal(dr['error'], undefined, `${format}: ${String(dr['error'])}`);
        assert.ok((dr['marker'] as string[]).length > 0, `${format}: drgn finds the marker line`);
      }
      // 16 KiB pages (6.12: THREAD_SIZE 16 KiB = one page, frame_record_meta in pt_regs): bt -a
      if (g.bt) {
        const r2 = vmcore(['bt', '-a', '--json', file]);
        assert.equal(r2.status, 0, r2.err);
        const bt = JSON.parse(r2.out) as BtJson;
        assert.deepEqual(bt.warnings, [], format);
        for (const t of bt.tasks) assert.ok(t.stop === 'end_of_stack' || t.stop === 'user_mode', `${format}: ${t.pid} ${t.comm}: ${t.stop} ${t.stop_detail}`);
        btKeys.set(format, bt.tasks.map((t) => `${t.pid} ${t.stop} ${t.frames.map((x) => `${x.pc}:${x.function}`).join(',')}`));
        // the panicking task below panic(): the call trace the kernel printed, as function+offset/size
        const consoleTrace = consoleCallTrace(readFileSync(join(dir, 'serial.log'), 'latin1'));
        const pt = bt.tasks.find((t) => t.panic);
        assert.ok(pt, `${format}: the panicking task`);
        assert.equal(pt.stop, 'user_mode');
        const fr = pt.frames.filter((f) => f.reliable).map((f) => `${f.function}+0x${f.offset.toString(16)}/0x${f.size.toString(16)}`);
        assert.deepEqual(fr.slice(fr.findIndex((f) => f.startsWith('panic+')) + 1), consoleTrace.slice(consoleTrace.findIndex((f) => f.startsWith('panic+')) + 1), `${format}: the frames below panic are the console's`);
        if (vml && format === 'elf') {
          // drgn (6.12 arm64 reads fine with drgn 0.0.22) on the fixed ELF: every sleeping task
          const dr = spawnSync(PY, [join(root, 'scripts/guest/truth-drgn.py'), fixed, vml], { maxBuffer: 256 << 20 });
          assert.equal(dr.status, 0, dr.stderr.toString().slice(-1000));
          const drgn = JSON.parse(dr.stdout.toString()) as DrgnTruth;
          assert.equal(bt.tasks.length, drgn.tasks.length, 'every task drgn lists');
          assert.ok(compareSleeping(bt, drgn) > 20, 'sleeping tasks compared with drgn');
        }
      }
      rmSync(file);
      rmSync(fixed);
    }
    if (g.bt) assert.deepEqual(btKeys.get('kdump-zlib'), btKeys.get('elf'), 'ELF and kdump-zlib give the same backtraces');
  });
}

/** Assembly entry code drgn 0.0.22 cannot name on arm64 (no DWARF subprogram): left out of ours. */
const A64_ASM = /^(ret_from_fork|el0t_64_sync|el1h_64_irq|call_on_irq_stack)$/;
const bareFn = (name: string) => name.replace(/\.(cold|isra|constprop|part|llvm)(\.\d+)*.*$/, '');

interface BtJson {
  tasks: {
    pid: number;
    comm: string;
    task: string;
    active: boolean;
    panic: boolean;
    start: string;
    stop: string;
    stop_detail: string;
    user: { pc: string; sp: string } | null;
    frames: { pc: string; function: string | null; offset: number; size: number; reliable: boolean; stack: string; method: string }[];
    exception_frames: { level: number; user: boolean }[];
  }[];
  warnings: { code: string; text: string }[];
}

/** scripts/guest/truth-drgn.py's tasks. */
interface DrgnTruth {
  tasks: { pid: number; comm: string; state: string; task: string; on_cpu: number | null; stack?: { function: string | null; inline: boolean }[] }[];
}

/** The console's "Call trace:" lines as function+offset/size. */
function consoleCallTrace(serial: string): string[] {
  const lines = serial.split('\n').map((l) => l.replace(/^\[\s*[\d.]+\]\s?/, ''));
  const at = lines.findIndex((l) => /^Call trace:/.test(l));
  assert.ok(at >= 0, 'the console shows the call trace');
  const out: string[] = [];
  for (const l of lines.slice(at + 1)) {
    const m = /^\s*([A-Za-z0-9_.$]+\+0x[0-9a-f]+\/0x[0-9a-f]+)\s*$/.exec(l);
    if (!m) break;
    out.push(m[1]!);
  }
  return out;
}

/**
 * Every sleeping task's reliable function sequence against drgn's stack_trace (drgn's inlined
 * frames left out, and the entry code drgn cannot name left out of ours); drgn gives no useful
 * stack for the running tasks of QEMU's dump, nor for the tasks whose pid equals a note's pr_pid
 * (vCPU + 1). Returns how many tasks were compared.
 */
function compareSleeping(bt: BtJson, drgn: DrgnTruth): number {
  const byTask = new Map(bt.tasks.map((t) => [t.task, t]));
  let compared = 0;
  for (const t of drgn.tasks) {
    const ours = byTask.get(t.task);
    assert.ok(ours, `task ${t.pid} ${t.comm}`);
    if (t.on_cpu !== null || (t.pid >= 1 && t.pid <= 2) || !t.stack) continue;
    assert.equal(ours.start, 'cpu_context');
    assert.deepEqual(
      ours.frames.filter((x) => x.reliable).map((x) => bareFn(x.function ?? '?')).filter((n) => !A64_ASM.test(n)),
      t.stack.filter((x) => !x.inline && x.function !== null).map((x) => x.function),
      `pid ${t.pid} ${t.comm} equals drgn's stack_trace`,
    );
    compared++;
  }
  return compared;
}

/**
 * `vmcore bt` on a 2-CPU arm64 guest (KASLR, pointer authentication on: -cpu max) with sleeping
 * user processes, panicked by sysrq-c:
 *  - the panicking task's frames below `panic` are, address for address, the call trace the
 *    kernel printed on its console (its own frame-record unwinder; the console prints return
 *    addresses as %pS, so they are compared as addresses through the -dbg System.map);
 *  - every sleeping task's function sequence equals drgn's stack_trace (drgn's inlined frames left
 *    out, and the entry code drgn cannot name left out of ours); drgn gives no useful stack for
 *    the running tasks of QEMU's dump (it reads no per-CPU registers from QEMU's notes: "stack
 *    pointer is not known"), nor for the tasks whose pid equals a note's pr_pid (vCPU + 1);
 *  - the other CPU, stopped by the panic's IPI, is unwound from its IRQ stack across the
 *    interrupted idle loop's pt_regs back to its idle task's stack;
 *  - `ps --system-map` lists drgn's tasks (address, pid, comm, state);
 *  - QEMU's ELF and kdump-zlib dumps give the same backtraces; `info --system-map` gives the
 *    panic's signature;
 *  - `convert -d 31` of the fixed kdump (page filtering through mem_section, the vmemmap and
 *    VMCOREINFO's struct page layout) keeps the kernel log, every backtrace, drgn's task walk and
 *    drgn's stack traces. makedumpfile 1.7.2 (Debian's x86_64 build) cannot filter arm64 dumps at
 *    all (it reads kernel addresses with x86_64 page tables: "Can't convert a virtual address"),
 *    so there is no peer output to compare page by page.
 * Debian's arm64 kernel has no CONFIG_KALLSYMS_ALL: with the System.map as above, and without it
 * (init_task and the per-CPU data found in the dump, task-symbols.ts) `ps` lists drgn's tasks and
 * `bt -a` gives the same tasks and frames, `info` the same signature.
 */
test('arm64 guest bt: console call trace, drgn stack traces of sleeping tasks, IRQ stack, ELF = kdump', { skip, timeout: 900_000 }, async () => {
  const tag = 'a64-bt-smp2';
  const dir = join(tmp, tag);
  const b = spawnSync('bash', [join(root, 'scripts/guest/boot.sh'), '--dir', dir, '--ram', '256M', '--smp', '2', '--mode', 'panic', '--tag', tag, '--timeout', '600', '--kaslr', '--vmcoreinfo', '--append', 'vmcore_procs=3'], {
    env: ENV,
    maxBuffer: 16 << 20,
  });
  assert.equal(b.status, 0, b.stderr.toString().slice(-2000));
  const env = Object.fromEntries(b.stdout.toString().trim().split('\n').map((l) => l.split('=', 2) as [string, string]));
  pids.push(env['QEMU_PID']!);
  // stopped, so that both files hold the same CPU state (the panicking CPU runs panic's loop)
  assert.equal(spawnSync(PY, [join(root, 'scripts/guest/qmp.py'), env['QMP_SOCKET']!, 'stop']).status, 0);
  const formats = ['elf', 'kdump-zlib'];
  for (const format of formats) {
    const file = join(dir, `${format}.vmcore`);
    const q = spawnSync(PY, [join(root, 'scripts/guest/qmp.py'), env['QMP_SOCKET']!, 'dump-guest-memory', JSON.stringify({ paging: false, protocol: `file:${file}`, format })]);
    assert.equal(q.status, 0, q.stderr.toString());
  }
  spawnSync('kill', [env['QEMU_PID']!]);
  const vml = vmlinux();
  if (!vml) {
    if (CI) assert.fail('the arm64 -dbg vmlinux could not be fetched');
    return;
  }
  const systemMap = join(dirname(vml), `System.map-${env['KVER']}`);
  const serial = readFileSync(join(dir, 'serial.log'), 'latin1');
  const bt = (file: string): BtJson => {
    const r = vmcore(['bt', '-a', '--json', '--system-map', systemMap, file]);
    assert.equal(r.status, 0, r.err);
    return JSON.parse(r.out) as BtJson;
  };
  const elf = bt(join(dir, 'elf.vmcore'));
  assert.deepEqual(elf.warnings, []);
  for (const t of elf.tasks) assert.ok(t.stop === 'end_of_stack' || t.stop === 'user_mode', `${t.pid} ${t.comm}: ${t.stop} ${t.stop_detail}`);

  // the panicking task against the kernel's own call trace
  const lines = serial.split('\n').map((l) => l.replace(/^\[\s*[\d.]+\]\s?/, ''));
  const at = lines.findIndex((l) => /^Call trace:/.test(l));
  assert.ok(at >= 0, 'the console shows the call trace');
  const consoleFrames: { fn: string; off: bigint }[] = [];
  for (const l of lines.slice(at + 1)) {
    const m = /^\s*([A-Za-z0-9_.$]+)\+(0x[0-9a-f]+)\/0x[0-9a-f]+\s*$/.exec(l);
    if (!m) break;
    consoleFrames.push({ fn: m[1]!, off: BigInt(m[2]!) });
  }
  const kernelOffset = BigInt(`0x${/^Kernel Offset: 0x([0-9a-f]+)/m.exec(lines.join('\n'))![1]!}`);
  const symbols = new Map<string, bigint>();
  for (const l of readFileSync(systemMap, 'latin1').split('\n')) {
    const m = /^([0-9a-f]{16}) \S (\S+)$/.exec(l);
    if (m && !symbols.has(m[2]!)) symbols.set(m[2]!, BigInt(`0x${m[1]!}`) + kernelOffset);
  }
  const consoleAfterPanic = consoleFrames.slice(consoleFrames.findIndex((f) => f.fn === 'panic') + 1).map((f) => `0x${(symbols.get(f.fn)! + f.off).toString(16)}`);
  assert.ok(consoleAfterPanic.length >= 5, `console frames: ${consoleFrames.map((f) => f.fn).join(' ')}`);
  const panicTask = elf.tasks.find((t) => t.panic)!;
  assert.ok(panicTask, 'bt finds the panicking task');
  assert.equal(panicTask.start, 'cpu registers');
  assert.equal(panicTask.stop, 'user_mode');
  const pf = panicTask.frames.filter((f) => f.reliable);
  assert.deepEqual(
    pf.slice(pf.findIndex((f) => f.function === 'panic') + 1).map((f) => f.pc),
    consoleAfterPanic,
    'the frames below panic are the console trace, address for address',
  );
  assert.ok(panicTask.exception_frames.some((e) => e.user), 'the user pt_regs at the entry from EL0');

  // the other CPU: stopped by the panic's IPI, on its IRQ stack, back on its task stack
  const other = elf.tasks.find((t) => t.active && !t.panic)!;
  assert.ok(other, 'the task running on the other CPU');
  assert.equal(other.start, 'cpu registers');
  assert.equal(other.frames[0]!.stack, 'irq');
  assert.ok(other.frames.some((f) => f.function === 'ipi_handler'), 'the IPI handler');
  assert.ok(other.frames.some((f) => f.stack === 'task'), 'back on the task stack');
  assert.ok(other.exception_frames.some((e) => !e.user), 'crossed the interrupted context\'s pt_regs');

  // drgn on the fixed ELF: the sleeping tasks
  const fixed = join(dir, 'elf.fixed');
  const f = vmcore(['fix', join(dir, 'elf.vmcore'), '-o', fixed]);
  assert.equal(f.status, 0, f.err);
  const dr = spawnSync(PY, [join(root, 'scripts/guest/truth-drgn.py'), fixed, vml], { maxBuffer: 256 << 20 });
  assert.equal(dr.status, 0, dr.stderr.toString().slice(-1000));
  const drgn = JSON.parse(dr.stdout.toString()) as DrgnTruth;
  assert.equal(elf.tasks.length, drgn.tasks.length, 'every task drgn lists');
  const ps = vmcore(['ps', '--json', '--system-map', systemMap, join(dir, 'elf.vmcore')]);
  assert.equal(ps.status, 0, ps.err);
  assert.deepEqual(
    (JSON.parse(ps.out) as { pid: number; comm: string; state: string; task: string }[]).map((t) => `${t.task} ${t.pid} ${t.comm} ${t.state}`).sort(),
    drgn.tasks.map((t) => `${t.task} ${t.pid} ${t.comm} ${t.state}`).sort(),
    'ps lists the tasks drgn lists',
  );
  // without the System.map: init_task and the per-CPU data found in the dump (no KALLSYMS_ALL)
  const psFound = vmcore(['ps', '--json', join(dir, 'elf.vmcore')]);
  assert.equal(psFound.status, 0, psFound.err);
  assert.deepEqual(
    (JSON.parse(psFound.out) as { pid: number; comm: string; state: string; task: string }[]).map((t) => `${t.task} ${t.pid} ${t.comm} ${t.state}`).sort(),
    drgn.tasks.map((t) => `${t.task} ${t.pid} ${t.comm} ${t.state}`).sort(),
    'ps without the System.map lists the tasks drgn lists',
  );
  const btFound = vmcore(['bt', '-a', '--json', join(dir, 'elf.vmcore')]);
  assert.equal(btFound.status, 0, btFound.err);
  const found = JSON.parse(btFound.out) as BtJson & { symbol_sources?: Record<string, string> };
  assert.deepEqual(found.warnings, []);
  assert.deepEqual(found.symbol_sources, {
    init_task: 'memory search (init_task)',
    irq_stack_ptr: 'BTF .data..percpu + runqueue proof',
    overflow_stack: 'BTF .data..percpu + runqueue proof',
    runqueues: 'BTF .data..percpu + runqueue proof',
    __per_cpu_offset: 'BTF .data..percpu + runqueue proof',
    modules: 'memory search (modules)',
  });
  // the modules list found by the search is the System.map's `modules`: the same modules
  const modFound = vmcore(['mod', '--json', join(dir, 'elf.vmcore')]);
  const modMap = vmcore(['mod', '--json', '--system-map', systemMap, join(dir, 'elf.vmcore')]);
  assert.equal(modFound.status, 0, modFound.err);
  assert.equal(modMap.status, 0, modMap.err);
  type ModRow = { name: string; module: string; btf: boolean; btf_source: string | null };
  const withMap = JSON.parse(modMap.out) as ModRow[];
  const without = JSON.parse(modFound.out) as ModRow[];
  assert.ok(withMap.length > 0, 'the guest has modules loaded');
  // the module's BTF is on btf_modules only (btf_data is cleared after init), a symbol this
  // kallsyms lacks: without the map it is not found, and a warning says so (never a silent "no")
  const strip = (r: ModRow[]) => r.map(({ btf: _b, btf_source: _s, ...rest }) => rest);
  assert.deepEqual(strip(without), strip(withMap), 'mod without the System.map lists the modules found through it');
  assert.ok(withMap.every((m) => m.btf && m.btf_source === 'btf_modules'), modMap.out);
  assert.ok(without.every((m) => !m.btf));
  assert.match(modFound.err, /warning: btf_modules: no kallsyms symbol .*cannot be found from the dump alone/);
  const btKey = (o: BtJson) => o.tasks.map((t) => `${t.task} ${t.pid} ${t.active} ${t.panic} ${t.start} ${t.stop} ${t.frames.map((x) => `${x.pc}:${x.function}:${x.stack}`).join(',')}`);
  assert.deepEqual(btKey(found), btKey(elf), 'bt -a without the System.map: the same tasks and frames (checked against the console and drgn below)');
  const infoFound = JSON.parse(vmcore(['info', '--json', join(dir, 'elf.vmcore')]).out) as { panic: { signatureChain?: string[]; symbolSources?: Record<string, string>; backtraceError?: string } };
  assert.deepEqual(infoFound.panic.signatureChain, ['sysrq_handle_crash', '__handle_sysrq', 'write_sysrq_trigger', 'proc_reg_write', 'vfs_write'], infoFound.panic.backtraceError);
  assert.equal(infoFound.panic.symbolSources?.['init_task'], 'memory search (init_task)');

  const compared = compareSleeping(elf, drgn);
  assert.ok(compared > 40, `compared ${compared} tasks with drgn`);
  assert.ok(elf.tasks.some((t) => !t.active && t.stop === 'user_mode' && t.user !== null), 'a sleeping user process reaches its entry from EL0');

  // kdump-zlib: the same backtraces
  const kd = bt(join(dir, 'kdump-zlib.vmcore'));
  const key = (o: BtJson) => o.tasks.map((t) => `${t.pid} ${t.stop} ${t.frames.map((x) => `${x.pc}:${x.function}`).join(',')}`);
  assert.deepEqual(key(kd), key(elf));

  // page filtering on arm64 (mem_section and struct page from VMCOREINFO, the struct pages read
  // through the vmemmap mapping of the translation tables): -d 31 of the fixed kdump keeps the
  // kernel log byte for byte, every backtrace, drgn's task walk and drgn's stack traces
  const fixedKdump = join(dir, 'kdump.fixed');
  const fk = vmcore(['fix', join(dir, 'kdump-zlib.vmcore'), '-o', fixedKdump]);
  assert.equal(fk.status, 0, fk.err);
  const d31 = join(dir, 'd31.kdump');
  const c = vmcore(['convert', '-d', '31', fixedKdump, d31]);
  assert.equal(c.status, 0, c.err);
  const pages = (JSON.parse(vmcore(['info', '--json', d31]).out) as { pages: { ram: number; excluded: number } }).pages;
  assert.ok(pages.excluded > pages.ram / 2, `-d 31 excluded ${pages.excluded} of ${pages.ram} pages`);
  const log = vmcore(['dmesg', fixedKdump]).out;
  assert.ok(log.includes(`VMCORE-GUEST-MARKER ${tag}`));
  assert.equal(vmcore(['dmesg', d31]).out, log, 'the kernel log survives -d 31');
  assert.deepEqual(key(bt(d31)), key(kd), 'every backtrace survives -d 31');
  const walk = (file: string) => spawnSync(PY, [join(root, 'test/interop/filter-tasks.py'), file, vml], { encoding: 'utf8' }).stdout.trim();
  assert.equal(walk(d31), walk(fixedKdump), "drgn's task walk");
  assert.match(walk(d31), /"error": null/);
  const drD31 = spawnSync(PY, [join(root, 'scripts/guest/truth-drgn.py'), d31, vml], { maxBuffer: 256 << 20 });
  assert.equal(drD31.status, 0, drD31.stderr.toString().slice(-1000));
  const sleeping = (j: typeof drgn) => j.tasks.filter((t) => t.on_cpu === null).map((t) => `${t.pid} ${(t.stack ?? []).map((x) => x.function).join(',')}`);
  assert.deepEqual(sleeping(JSON.parse(drD31.stdout.toString()) as typeof drgn), sleeping(drgn), "drgn's stack traces on the -d 31 output");
  // makedumpfile 1.7.2 as Debian builds it on x86_64 translates with x86_64 page tables only
  const md = spawnSync('makedumpfile', ['-d', '31', fixedKdump, join(dir, 'md31.kdump')], { encoding: 'utf8' });
  if (md.status !== 0) process.stderr.write(`note: makedumpfile cannot filter the arm64 dump: ${(md.stdout + md.stderr).trim().split('\n')[0]}\n`);

  // info: the panic's backtrace and signature from the same chain
  const info = vmcore(['info', '--json', '--system-map', systemMap, join(dir, 'elf.vmcore')]);
  assert.equal(info.status, 0, info.err);
  const panic = (JSON.parse(info.out) as { panic: { signatureChain?: string[]; backtraceError?: string } }).panic;
  assert.deepEqual(panic.signatureChain, ['sysrq_handle_crash', '__handle_sysrq', 'write_sysrq_trigger', 'proc_reg_write', 'vfs_write'], panic.backtraceError);
});
