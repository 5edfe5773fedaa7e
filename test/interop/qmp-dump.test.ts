/**
 * `vmcore dump --qmp` against a real QEMU guest (TCG): the current Debian cloud kernel and a
 * busybox initramfs (scripts/guest/), OVMF firmware with KASLR and WITHOUT the vmcoreinfo device,
 * so the true phys_base is non-zero and the guest gives QEMU no VMCOREINFO: both must come
 * from vmcore's analysis of the guest memory.
 *
 * One guest is booted and paused; it is dumped several ways. Checks:
 *  - the memory digest (non-zero pages) of every output equals the digest of QEMU's own ELF
 *    dump of the same paused guest, computed here from that file at the offsets readelf
 *    lists, and (kdump) also as libkdumpfile reads the output;
 *  - crash opens the output with the debug vmlinux, finds the guest's console lines in `log`
 *    and the true phys_base; drgn reads the release and the guest's log; libkdumpfile reports
 *    the true phys_base and the release;
 *  - `vmcore dmesg` shows the guest's marker lines;
 *  - the true phys_base, from the guest's own /proc/kallsyms and /proc/iomem on the serial log;
 *  - failures: an interrupted dump removes the output and leaves QEMU answering and the guest
 *    in its former state; QEMU dying mid-dump is reported as such (--keep-incomplete keeps a
 *    file marked incomplete); a guest that never started and a missing socket give clear errors.
 *
 * Needs qemu-system-x86, ovmf, busybox-static, binutils and apt access to Debian's archive (the
 * kernel packages are downloaded, never installed, into $VMCORE_GUEST_CACHE or
 * /tmp/vmcore-guest). crash / libkdumpfile checks skip when those tools are absent.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, openSync, readFileSync, readSync, closeSync, rmSync, readdirSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { createHash } from 'node:crypto';
import net from 'node:net';
import { QmpClient } from '../../src/node/qmp.js';
import { dumpViaQmp } from '../../src/node/dump-qmp.js';
import { VmcoreError } from '../../src/core/errors.js';

const repo = fileURLToPath(new URL('../../../', import.meta.url));
const CLI = process.env['VMCORE_CLI'] ?? join(repo, 'dist/src/cli/vmcore.js');
const guestScripts = join(repo, 'scripts/guest');
const PY = existsSync('/usr/bin/python3') ? '/usr/bin/python3' : 'python3';
const has = (cmd: string, args: string[]) => spawnSync(cmd, args, { stdio: 'ignore' }).status === 0;

const missing: string[] = [];
if (!has('qemu-system-x86_64', ['--version'])) missing.push('qemu-system-x86_64 (apt-get install qemu-system-x86)');
if (!existsSync('/usr/share/ovmf/OVMF.fd')) missing.push('/usr/share/ovmf/OVMF.fd (apt-get install ovmf)');
if (!has('readelf', ['--version'])) missing.push('readelf (binutils)');
if (!has('apt-get', ['--version'])) missing.push('apt-get (to download the Debian kernel)');
const haveCrash = has('crash', ['--version']);
const haveLkdf = has(PY, ['-c', 'import kdumpfile']);
const haveDrgn = has(PY, ['-c', 'import drgn']);
const skip = missing.length ? `missing: ${missing.join(', ')}` : false;

const work = mkdtempSync(join(tmpdir(), 'vmcore-qmp-test-'));
const TAG = 'qmptest';
let qmpSock = '';
let qemuPid = 0;
let truePhysBase = 0n;
let vmlinux: string | undefined;
let refDigest = '';
let bootError: string | undefined;

function sh(cmd: string, args: string[], opts: { timeoutMs?: number; input?: string } = {}) {
  const r = spawnSync(cmd, args, { encoding: 'utf8', timeout: opts.timeoutMs ?? 600000, input: opts.input ?? '', maxBuffer: 64 << 20 });
  return { status: r.status, stdout: r.stdout ?? '', stderr: r.stderr ?? '' };
}

function vars(text: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const l of text.split('\n')) {
    const m = /^([A-Z_]+)=(.*)$/.exec(l.trim());
    if (m) out[m[1]!] = m[2]!;
  }
  return out;
}

/** Non-zero-page digest of a QEMU ELF dump, from readelf's program headers (independent of vmcore). */
function elfDigest(path: string): { sha256: string; pages: number } {
  const re = sh('readelf', ['-lW', path]);
  assert.equal(re.status, 0, re.stderr);
  const loads: { offset: number; paddr: number; filesz: number }[] = [];
  for (const line of re.stdout.split('\n')) {
    const m = /^\s+LOAD\s+0x([0-9a-f]+)\s+0x[0-9a-f]+\s+0x([0-9a-f]+)\s+0x([0-9a-f]+)/.exec(line);
    if (m) loads.push({ offset: parseInt(m[1]!, 16), paddr: parseInt(m[2]!, 16), filesz: parseInt(m[3]!, 16) });
  }
  assert.ok(loads.length > 0, 'readelf lists PT_LOADs');
  loads.sort((a, b) => a.paddr - b.paddr);
  const h = createHash('sha256');
  const fd = openSync(path, 'r');
  const page = Buffer.alloc(4096);
  const zero = Buffer.alloc(4096);
  const pfn = Buffer.alloc(8);
  let pages = 0;
  try {
    for (const l of loads) {
      for (let o = 0; o + 4096 <= l.filesz; o += 4096) {
        readSync(fd, page, 0, 4096, l.offset + o);
        if (page.equals(zero)) continue;
        pfn.writeBigUInt64LE(BigInt((l.paddr + o) / 4096));
        h.update(pfn).update(page);
        pages++;
      }
    }
  } finally {
    closeSync(fd);
  }
  return { sha256: h.digest('hex'), pages };
}

function cli(args: string[], timeoutMs = 300000) {
  return sh(process.execPath, [CLI, ...args], { timeoutMs });
}

async function qmpDo<T>(cmd: string, args?: Record<string, unknown>): Promise<T> {
  const c = await QmpClient.connect(qmpSock);
  try {
    return await c.execute<T>(cmd, args, { timeoutMs: 120000 });
  } finally {
    c.close();
  }
}

before(async () => {
  if (skip) return;
  const k = sh(join(guestScripts, 'fetch-kernel.sh'), ['--dbg'], { timeoutMs: 900000 });
  if (k.status !== 0) {
    // the debug package is large; without it only the crash check is lost
    const k2 = sh(join(guestScripts, 'fetch-kernel.sh'), [], { timeoutMs: 600000 });
    if (k2.status !== 0) {
      bootError = `cannot fetch the Debian kernel: ${k2.stderr.trim().split('\n').pop()}`;
      return;
    }
  } else {
    vmlinux = vars(k.stdout)['VMLINUX'];
    if (vmlinux && !existsSync(vmlinux)) vmlinux = undefined;
  }
  const b = sh(join(guestScripts, 'boot.sh'), ['--dir', join(work, 'guest'), '--bios', 'ovmf', '--kaslr', '--ram', '256M', '--fill', '16', '--tag', TAG, '--timeout', '240'], {
    timeoutMs: 300000,
  });
  if (b.status !== 0) {
    bootError = `guest did not boot: ${b.stderr.trim().split('\n').slice(-3).join(' | ')}`;
    return;
  }
  const v = vars(b.stdout);
  qmpSock = v['QMP_SOCKET']!;
  qemuPid = Number(v['QEMU_PID']);
  const pb = sh(join(guestScripts, 'phys-base.sh'), [v['SERIAL_LOG']!]);
  assert.equal(pb.status, 0, pb.stderr);
  truePhysBase = BigInt(pb.stdout.trim());
  // Pause the guest: every dump below sees the same memory.
  await qmpDo('stop');
  const ref = join(work, 'qemu.elf');
  await qmpDo('dump-guest-memory', { paging: false, protocol: `file:${ref}` });
  refDigest = elfDigest(ref).sha256;
  rmSync(ref);
});

after(() => {
  if (qemuPid) {
    try {
      process.kill(qemuPid, 'SIGKILL');
    } catch {
      /* already gone */
    }
  }
  rmSync(work, { recursive: true, force: true });
});

function needGuest(t: { skip: (m: string) => void }): boolean {
  if (bootError) {
    t.skip(bootError);
    return false;
  }
  return true;
}

function vmcoreHash(file: string): string {
  const r = cli(['hash', '--skip-zero', '--json', file]);
  assert.equal(r.status, 0, r.stderr);
  return (JSON.parse(r.stdout) as { sha256: string }).sha256;
}

/** libkdumpfile: phys_base, release and the non-zero-page digest over the given RAM ranges. */
function lkdf(file: string): { physBase: bigint; release: string; sha256: string } {
  const script = `
import kdumpfile, hashlib, struct, sys, json
k = kdumpfile.kdumpfile(sys.argv[1])
k.attr['addrxlat.ostype'] = 'linux'
h = hashlib.sha256(); z = bytes(4096); n = 0
for line in sys.stdin:
    a, b = (int(x, 16) for x in line.split())
    for pfn in range(a, b):
        try:
            p = k.read(kdumpfile.KDUMP_MACHPHYSADDR, pfn * 4096, 4096)
        except kdumpfile.exceptions.NoDataException:
            continue
        if p != z:
            h.update(struct.pack('<Q', pfn)); h.update(p); n += 1
print(json.dumps({'phys_base': k.attr['linux.phys_base'] & (2**64 - 1), 'release': str(k.attr['linux.uts.release']), 'sha256': h.hexdigest(), 'pages': n}))
`;
  // RAM ranges: everything below 4 GiB that a 256 MiB OVMF guest can have (pages libkdumpfile
  // does not have raise NoDataException and are skipped).
  const ranges = `0 ${(0x10000).toString(16)}\n${(0xffc00).toString(16)} ${(0x100000).toString(16)}\n`;
  const r = sh(PY, ['-c', script, file], { input: ranges, timeoutMs: 300000 });
  assert.equal(r.status, 0, r.stderr);
  const j = JSON.parse(r.stdout) as { phys_base: number | string; release: string; sha256: string };
  return { physBase: BigInt(j.phys_base), release: j.release, sha256: j.sha256 };
}

test('vmcore dump -z: digest as QEMU ELF, true phys_base and recovered VMCOREINFO for crash, drgn, libkdumpfile and vmcore dmesg', { skip }, async (t) => {
  if (!needGuest(t)) return;
  const out = join(work, 'z.kdump');
  const r = cli(['dump', '--qmp', qmpSock, out, '-z', '--detach-check', '--json']);
  assert.equal(r.status, 0, r.stderr);
  const s = JSON.parse(r.stdout) as { physBase: { value: string }; vmcoreinfo: { added: boolean; source: string }; guestStatusBefore: string; guestStatusAfter: string };
  assert.equal(s.guestStatusBefore, 'paused');
  assert.equal(s.guestStatusAfter, 'paused', 'a paused guest stays paused');
  assert.equal(BigInt(s.physBase.value), truePhysBase);
  assert.equal(s.vmcoreinfo.added, true, 'no vmcoreinfo device: VMCOREINFO recovered from memory and added');
  assert.ok(!existsSync(join(work, 'z.kdump.partial')));

  assert.equal(vmcoreHash(out), refDigest, 'vmcore hash --skip-zero equals the QEMU ELF digest');

  const dm = cli(['dmesg', out]);
  assert.equal(dm.status, 0, dm.stderr);
  assert.match(dm.stdout, new RegExp(`VMCORE-GUEST-MARKER ${TAG}`));
  assert.match(dm.stdout, new RegExp(`VMCORE-GUEST-READY ${TAG}`));

  if (haveLkdf) {
    const l = lkdf(out);
    assert.equal(l.physBase, truePhysBase, 'libkdumpfile phys_base');
    assert.match(l.release, /cloud-amd64/);
    assert.equal(l.sha256, refDigest, 'libkdumpfile reads the same memory');
  } else t.diagnostic('libkdumpfile not installed: skipped');

  if (haveDrgn && vmlinux) {
    const script = `
import drgn, sys
from drgn.helpers.linux.printk import get_dmesg
p = drgn.Program()
p.set_core_dump(sys.argv[1])
p.load_debug_info([sys.argv[2]])
print(p['init_uts_ns'].name.release.string_().decode())
print(get_dmesg(p).decode())
`;
    const d = sh(PY, ['-c', script, out, vmlinux], { timeoutMs: 300000 });
    assert.equal(d.status, 0, `drgn: ${d.stderr}`);
    assert.match(d.stdout, /cloud-amd64/);
    assert.match(d.stdout, new RegExp(`VMCORE-GUEST-MARKER ${TAG}`), 'drgn reads the guest log');
  } else t.diagnostic('drgn or the debug vmlinux not available: skipped');

  if (haveCrash && vmlinux) {
    const c = sh('crash', ['-s', vmlinux, out], { input: 'sys\nlog\nhelp -D\nquit\n', timeoutMs: 300000 });
    assert.match(c.stdout, /RELEASE: \S+-cloud-amd64/, c.stderr);
    assert.match(c.stdout, new RegExp(`VMCORE-GUEST-MARKER ${TAG}`));
    const m = /^\s*phys_base: ([0-9a-f]+)/m.exec(c.stdout);
    assert.ok(m, 'crash help -D shows phys_base');
    assert.equal(BigInt('0x' + m[1]), truePhysBase, 'crash phys_base');
  } else t.diagnostic('crash or the debug vmlinux not available: skipped');
});

test('other codecs and formats keep the memory (zlib, lzo, snappy kdump; ELF; celf)', { skip }, async (t) => {
  if (!needGuest(t)) return;
  for (const [name, args] of [
    ['c.kdump', ['-c']],
    ['l.kdump', ['-l']],
    ['p.kdump', ['-p', '--threads', '1']],
    ['e.elf', ['--format', 'elf']],
    ['x.celf', ['--format', 'celf']],
  ] as const) {
    const out = join(work, name);
    const r = cli(['dump', '--qmp', qmpSock, out, ...args, '--quiet']);
    assert.equal(r.status, 0, `${name}: ${r.stderr}`);
    assert.equal(vmcoreHash(out), refDigest, `${name}: digest`);
    if (name === 'e.elf') {
      const dm = cli(['dmesg', out]);
      assert.equal(dm.status, 0, dm.stderr);
      assert.match(dm.stdout, new RegExp(`VMCORE-GUEST-MARKER ${TAG}`), 'ELF output has the recovered VMCOREINFO');
      // the kernel-text PT_LOAD filled in after the write lets p_vaddr readers work too
      const vd = sh('vmcore-dmesg', [out], { timeoutMs: 120000 });
      assert.equal(vd.status, 0, `vmcore-dmesg: ${vd.stderr}`);
      assert.match(vd.stdout, new RegExp(`VMCORE-GUEST-MARKER ${TAG}`), 'vmcore-dmesg reads the ELF output');
      if (haveCrash && vmlinux) {
        // crash reads the notes only near the ELF headers: the VMCOREINFO must be there
        const c = sh('crash', ['-s', vmlinux, out], { input: 'log\nhelp -D\nquit\n', timeoutMs: 300000 });
        assert.match(c.stdout, new RegExp(`VMCORE-GUEST-MARKER ${TAG}`), `crash reads the ELF output: ${c.stderr}`);
        assert.match(c.stdout, /NUMBER\(phys_base\)=/, 'crash sees the added VMCOREINFO');
      }
    }
    rmSync(out);
  }
});

test('dump -d 31: the same page frames and contents as convert -d 31 of a full dump of the same stopped guest (libkdumpfile reads both); dmesg, info and bt -a unchanged', { skip }, async (t) => {
  if (!needGuest(t)) return;
  const full = join(work, 'full.kdump');
  const d31 = join(work, 'd31.kdump');
  const conv = join(work, 'conv31.kdump');
  let r = cli(['dump', '--qmp', qmpSock, full, '--quiet']);
  assert.equal(r.status, 0, r.stderr);
  r = cli(['dump', '--qmp', qmpSock, d31, '-d', '31', '--json']);
  assert.equal(r.status, 0, r.stderr);
  const s = JSON.parse(r.stdout) as { dumpLevel: number; filtered: Record<string, number>; classification: { requests: number; bytes: number }; guestStatusAfter?: string; warnings: { code: string; text: string }[] };
  assert.equal(s.dumpLevel, 31);
  assert.ok(s.filtered['free']! > 1000 && s.filtered['cache']! > 0, `free and page-cache pages left out: ${JSON.stringify(s.filtered)}`);
  assert.ok(s.classification.requests > 0 && s.classification.bytes > 0);
  // the guest is paused for every dump here; QEMU's dump leaves it so
  assert.equal((await qmpDo<{ status: string }>('query-status')).status, 'paused');
  r = cli(['convert', '-d', '31', full, conv, '--quiet']);
  assert.equal(r.status, 0, r.stderr);

  // vmcore: the same present pages (zero pages included) with the same bytes
  const h = (f: string) => {
    const x = cli(['hash', '--json', f]);
    assert.equal(x.status, 0, x.stderr);
    return JSON.parse(x.stdout) as { sha256: string; pages: number; zeroPages: number };
  };
  const hf = h(full);
  const hd = h(d31);
  const hc = h(conv);
  assert.deepEqual(hd, hc, 'dump -d 31 holds the page frames and contents of convert -d 31');
  assert.ok(hd.pages < hf.pages / 2, `filtering left out most pages (${hd.pages} of ${hf.pages})`);
  // a peer reads the same memory from both (non-zero pages), and not the full dump's
  if (haveLkdf) {
    const ld = lkdf(d31);
    const lc = lkdf(conv);
    assert.equal(ld.sha256, lc.sha256, 'libkdumpfile: same non-zero pages in both');
    assert.equal(ld.physBase, truePhysBase, 'libkdumpfile: true phys_base in the filtered dump');
    assert.notEqual(ld.sha256, lkdf(full).sha256, 'libkdumpfile: the filtered dump lacks pages of the full one');
  } else t.diagnostic('libkdumpfile not installed: peer digest skipped');
  if (has('makedumpfile', ['-v'])) {
    // makedumpfile reads the header's dump level and the log from the filtered file
    const md = join(work, 'd31.dmesg');
    const m = sh('makedumpfile', ['--dump-dmesg', d31, md]);
    assert.equal(m.status, 0, m.stderr);
    assert.match(readFileSync(md, 'latin1'), new RegExp(`VMCORE-GUEST-MARKER ${TAG}`), 'makedumpfile --dump-dmesg reads the guest log');
  }

  // triage survives: the whole log, the kernel facts and every backtrace
  const out = (args: string[]) => {
    const x = cli(args);
    assert.equal(x.status, 0, `${args.join(' ')}: ${x.stderr}`);
    return x.stdout;
  };
  const dmFull = out(['dmesg', full]);
  assert.match(dmFull, new RegExp(`VMCORE-GUEST-READY ${TAG}`));
  assert.equal(out(['dmesg', d31]), dmFull, 'dmesg identical');
  const facts = (f: string) => {
    const j = JSON.parse(out(['info', '--json', f])) as Record<string, unknown>;
    return JSON.stringify([j['kernel'], j['physBase'], j['nrCpus'], j['vmcoreinfo']]);
  };
  assert.equal(facts(d31), facts(full), 'info: kernel, phys_base, CPUs, VMCOREINFO');
  assert.equal(out(['bt', '-a', d31]), out(['bt', '-a', full]), 'bt -a identical');
  if (haveCrash && vmlinux) {
    const c = sh('crash', ['-s', vmlinux, d31], { input: 'log\nquit\n', timeoutMs: 300000 });
    assert.match(c.stdout, new RegExp(`VMCORE-GUEST-MARKER ${TAG}`), `crash reads the filtered dump's log: ${c.stderr}`);
  }
  for (const f of [full, d31, conv]) rmSync(f);
});

test('an interrupted dump removes the output; QEMU answers and the guest keeps its state', { skip }, async (t) => {
  if (!needGuest(t)) return;
  const out = join(work, 'int.kdump');
  const ac = new AbortController();
  await assert.rejects(
    dumpViaQmp({
      qmp: qmpSock,
      output: out,
      signal: ac.signal,
      onProgress: (p) => {
        if (p.memoryRead > 0) ac.abort();
      },
    }),
    (e) => e instanceof VmcoreError && e.code === 'INTERRUPTED' && /removed/.test(e.message),
  );
  assert.ok(!existsSync(out));
  assert.deepEqual(readdirSync(work).filter((f) => f.includes('int.kdump')), [], 'no partial file left');
  const st = await qmpDo<{ status: string }>('query-status');
  assert.equal(st.status, 'paused');
  const qd = await qmpDo<{ status: string }>('query-dump');
  assert.equal(qd.status, 'failed', 'QEMU saw the dump end');
  // and QEMU can dump again
  const r = cli(['dump', '--qmp', qmpSock, out, '-l', '--quiet']);
  assert.equal(r.status, 0, r.stderr);
  rmSync(out);

  // Ctrl-C on the command line: SIGINT once the output's temporary file exists.
  const sigOut = join(work, 'sig.kdump');
  const child = spawn(process.execPath, [CLI, 'dump', '--qmp', qmpSock, sigOut, '-c', '--threads', '1'], { stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  child.stderr!.on('data', (d) => (stderr += d));
  const exited = new Promise<number | null>((res) => child.on('exit', (code) => res(code)));
  let signalled = false;
  let done = false;
  void exited.then(() => (done = true));
  while (!done && !signalled) {
    if (readdirSync(work).some((f) => f.startsWith('.sig.kdump.partial'))) {
      child.kill('SIGINT');
      signalled = true;
    } else await new Promise((res) => setTimeout(res, 10));
  }
  const code = await exited;
  if (!signalled) {
    t.diagnostic('the dump finished before SIGINT could be sent; CLI interrupt not checked');
    rmSync(sigOut, { force: true });
  } else {
    assert.notEqual(code, 0);
    assert.match(stderr, /INTERRUPTED/);
    assert.ok(!existsSync(sigOut));
    assert.deepEqual(readdirSync(work).filter((f) => f.includes('sig.kdump')), []);
    assert.equal((await qmpDo<{ status: string }>('query-status')).status, 'paused');
  }
});

test('a full disk: the error says so, nothing is left behind, QEMU stays usable', { skip }, async (t) => {
  if (!needGuest(t)) return;
  const small = join(work, 'small');
  sh('mkdir', ['-p', small]);
  const m = sh('mount', ['-t', 'tmpfs', '-o', 'size=4m', 'tmpfs', small]);
  if (m.status !== 0) {
    t.skip(`cannot mount a small tmpfs to fill (${m.stderr.trim()}); needs root`);
    return;
  }
  try {
    const r = cli(['dump', '--qmp', qmpSock, join(small, 'full.kdump'), '-l', '--quiet']);
    assert.notEqual(r.status, 0);
    assert.match(r.stderr, /no space left/i);
    assert.match(r.stderr, /removed/);
    assert.deepEqual(readdirSync(small), [], 'partial output removed');
    const st = await qmpDo<{ status: string }>('query-status');
    assert.equal(st.status, 'paused', 'QEMU answers, the guest is as it was');
    const qd = await qmpDo<{ status: string }>('query-dump');
    assert.equal(qd.status, 'failed');
  } finally {
    sh('umount', [small]);
  }
});

test('clear errors: no socket, a guest that never started (monitor on TCP)', { skip }, async (t) => {
  if (!needGuest(t)) return;
  const r = cli(['dump', '--qmp', join(work, 'nonexistent.sock'), join(work, 'x.kdump')]);
  assert.notEqual(r.status, 0);
  assert.match(r.stderr, /QMP.*no such socket/);

  // A guest that never started (-S), its monitor on TCP: also proves the TCP transport.
  const port = await new Promise<number>((res) => {
    const srv = net.createServer().listen(0, '127.0.0.1', () => {
      const p = (srv.address() as net.AddressInfo).port;
      srv.close(() => res(p));
    });
  });
  const q = spawn('qemu-system-x86_64', ['-machine', 'pc,accel=tcg', '-m', '16M', '-nodefaults', '-display', 'none', '-S', '-qmp', `tcp:127.0.0.1:${port},server=on,wait=off`], {
    stdio: 'ignore',
  });
  try {
    let c: QmpClient | undefined;
    for (let i = 0; i < 100 && !c; i++) {
      c = await QmpClient.connect(`127.0.0.1:${port}`).catch(() => undefined);
      if (!c) await new Promise((res) => setTimeout(res, 100));
    }
    assert.ok(c, 'QMP over TCP');
    assert.equal((await c.execute<{ status: string }>('query-status')).status, 'prelaunch');
    c.close();
    const r2 = cli(['dump', '--qmp', `127.0.0.1:${port}`, join(work, 'pre.kdump')]);
    assert.notEqual(r2.status, 0);
    assert.match(r2.stderr, /not been started/);
    assert.ok(!existsSync(join(work, 'pre.kdump')));
  } finally {
    q.kill('SIGKILL');
  }
});

test('QEMU dying mid-dump is reported; --keep-incomplete keeps a file marked incomplete (runs last: kills the guest)', { skip }, async (t) => {
  if (!needGuest(t)) return;
  const out = join(work, 'dead.kdump');
  let killed = false;
  await assert.rejects(
    dumpViaQmp({
      qmp: qmpSock,
      output: out,
      keepIncomplete: true,
      threads: 1,
      onProgress: (p) => {
        if (!killed && p.memoryRead > 16 << 20) {
          killed = true;
          process.kill(qemuPid, 'SIGKILL');
        }
      },
    }),
    (e) => e instanceof VmcoreError && /QEMU/.test(e.message) && /kept/.test(e.message),
  );
  qemuPid = 0;
  assert.ok(killed, 'QEMU was killed during the dump');
  assert.ok(existsSync(out) && statSync(out).size > 0, 'partial file kept');
  const hdr = readFileSync(out).subarray(0, 464);
  assert.equal(hdr.subarray(0, 5).toString('latin1'), 'KDUMP');
  const status = hdr.readUInt32LE(424);
  assert.ok(status & 0x8, 'DUMP_DH_COMPRESSED_INCOMPLETE set');
});
