/** The CLI as a user runs it: output, JSON keys, exit codes, one-line errors. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { mkdtemp, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { vmcore } from '../helpers/cli.js';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '../../..');
const CLI = join(ROOT, 'dist/src/cli/vmcore.js');
const SAMPLE = join(ROOT, 'samples/seabios-128M.md-c-d31.kdump');


test('info --json on the real sample: stable keys and the values crash/libkdumpfile read', () => {
  const r = vmcore('info', '--json', SAMPLE);
  assert.equal(r.rc, 0, r.err);
  const j = JSON.parse(r.out);
  assert.equal(j.format, 'kdump');
  assert.equal(j.producer, 'makedumpfile');
  assert.equal(j.kernel.release, '6.1.0-56-cloud-amd64');
  assert.equal(j.physBase.header, '0x0');
  assert.equal(j.physBase.vmcoreinfo, '0x0');
  assert.equal(j.physBase.value, '0x0');
  assert.equal(j.physBase.verdict, 'header correct');
  // the proof steps by their stable codes (kernel/proof.ts); the text is for people
  const codes = (j.physBase.proof as { code: string; text: string }[]).map((p) => p.code);
  for (const c of ['PGD_IN_RAM', 'PGD_MAPS_ITSELF', 'STEXT_MAPS', 'UTSNAME_MATCHES']) assert.ok(codes.includes(c), c);
  assert.ok(j.physBase.proof.every((p: { text: unknown }) => typeof p.text === 'string' && p.text.length > 0));
  // libkdumpfile's page map of this file: 15374 present pages, max_pfn 32768
  assert.equal(j.pages.dumped, 15374);
  assert.equal(j.pages.ram, 32768);
  // mem_section of the kernel ends at 128 MiB: the whole range is kernel RAM
  assert.deepEqual(j.ranges, [{ start: '0x0', end: '0x8000000', pages: 32768, kernelRam: true }]);
  assert.equal(j.vmcoreinfo.source, 'note');
  assert.match(j.panic.message, /Kernel panic - not syncing: sysrq triggered crash/);
  // the console shows "[    6.200217] Kernel panic - not syncing: sysrq triggered crash" from init (pid 1)
  assert.equal(j.panic.uptime, '6.200217');
  assert.equal(j.panic.task, 1);
  assert.equal(j.panic.cpu, 0);
  assert.deepEqual(j.notes.map((n: { type: string }) => n.type), ['NT_PRSTATUS', 'QEMU CPU state', 'VMCOREINFO']);
});

test('hash and read', async () => {
  const h = vmcore('hash', '--json', SAMPLE);
  assert.equal(h.rc, 0, h.err);
  assert.deepEqual(JSON.parse(h.out), { sha256: '03c2b8685986e5ee4bcfee31fc94ef61c42dfed7ec5029f6194829dc174feacb', pages: 15374, zeroPages: 2990, missingPages: 0, damagedPages: 0 });
  const dir = await mkdtemp(join(tmpdir(), 'vmcore-cli-'));
  try {
    const out = join(dir, 'banner.bin');
    // linux_banner-like utsname text lives in the kernel image; read through the text mapping
    const r = vmcore('read', SAMPLE, '--phys', '0x1000000', '--length', '4k', '-o', out);
    assert.equal(r.rc, 0, r.err);
    assert.equal((await readFile(out)).length, 4096);
    const v = vmcore('read', SAMPLE, '--virt', '0xffffffff81000000', '--length', '4096', '-o', join(dir, 'v.bin'));
    assert.equal(v.rc, 0, v.err);
    assert.deepEqual(await readFile(join(dir, 'v.bin')), await readFile(out), 'phys_base 0: _text maps to 16 MiB');
    const hx = vmcore('read', SAMPLE, '--phys', '0x1000000', '--length', '32', '--hex');
    assert.match(hx.out, /^000001000000 {2}[0-9a-f]{2} /);
    // the hex dump is the bytes read, line by line, written in pieces (a large one as it is made)
    const raw = await readFile(out);
    const big = vmcore('read', SAMPLE, '--phys', '0x1000000', '--length', '1m', '--hex');
    assert.equal(big.rc, 0, big.err);
    const lines = big.out.split('\n');
    assert.equal(lines.length, 65536 + 1);
    assert.equal(lines[65536], '');
    for (const n of [0, 1, 4095, 4096, 65535]) {
      const m = /^([0-9a-f]{12}) {2}((?:[0-9a-f]{2} ){15}[0-9a-f]{2}) {2}\|(.{16})\|$/.exec(lines[n]!);
      assert.ok(m, `line ${n}: ${lines[n]}`);
      assert.equal(parseInt(m[1]!, 16), 0x1000000 + n * 16);
      if (n * 16 < raw.length) assert.deepEqual(m[2]!.split(' ').map((x) => parseInt(x, 16)), [...raw.subarray(n * 16, n * 16 + 16)], `line ${n}: the bytes`);
    }
    const short = vmcore('read', SAMPLE, '--phys', '0x1000000', '--length', '20', '--hex');
    assert.match(short.out, /^000001000010 {2}(?:[0-9a-f]{2} ){3}[0-9a-f]{2} {38}\|.{4}\|$/m, 'a last line of 4 bytes keeps the columns');
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test('errors: one line naming code, file and field; no stack trace without --debug', async () => {
  const r = vmcore('read', SAMPLE, '--phys', '0x10000000', '--length', '16');
  assert.equal(r.rc, 1);
  assert.match(r.err, /^vmcore: PAGE_NOT_PRESENT: .*seabios-128M\.md-c-d31\.kdump: field pfn 0x10000: page frame 0x10000/);
  assert.equal(r.err.trim().split('\n').length, 1);
  const dir = await mkdtemp(join(tmpdir(), 'vmcore-cli-'));
  try {
    const bad = join(dir, 'bad.vmcore');
    await writeFile(bad, 'hello, this is not a dump');
    const b = vmcore('info', bad);
    assert.equal(b.rc, 1);
    assert.match(b.err, /^vmcore: BAD_MAGIC: .*bad\.vmcore: offset 0x0: field magic: /);
    assert.doesNotMatch(b.err, /\n\s+at /);
    const d = vmcore('info', '--debug', bad);
    assert.match(d.err, /\n\s+at /);
    const u = vmcore('read', SAMPLE, '--length', '16');
    assert.equal(u.rc, 2);
    assert.match(u.err, /USAGE/);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test('exit codes: every parser error is a usage error (2); help and --version exit 0', () => {
  for (const args of [
    ['info', '--bogus', SAMPLE], // unknown option
    ['read', SAMPLE, '--phys', '0', '--length'], // missing option argument
    ['convert', '--format', 'xx', SAMPLE, 'out'], // bad choice
    ['info'], // missing argument
    ['no-such-command'],
    ['serve', SAMPLE, '--port', '99999'], // a value out of range
    ['serve', SAMPLE, '--port', '-1'],
  ]) {
    const r = vmcore(...args);
    assert.equal(r.rc, 2, `${args.join(' ')}: ${r.err}`);
    if (args[0] === 'serve') assert.match(r.err, /^vmcore: USAGE: --port wants/);
  }
  assert.equal(vmcore('--version').rc, 0);
  assert.equal(vmcore('info', '--help').rc, 0);
});

test('a closed stdout (| head) ends the command quietly with 141, as SIGPIPE does to cat', async () => {
  // `read ... | head -c 10`: the reader goes away after 10 bytes of 8 MiB
  const r = await new Promise<{ rc: number | null; err: string }>((res) => {
    const c = spawn(process.execPath, [CLI, 'read', SAMPLE, '--phys', '0', '--length', '8m', '--fill-missing'], { stdio: ['ignore', 'pipe', 'pipe'] });
    let err = '';
    c.stderr.on('data', (d) => (err += d));
    c.stdout.once('data', () => c.stdout.destroy());
    c.on('close', (rc) => res({ rc, err }));
  });
  assert.equal(r.err, '', 'no stack trace, no message');
  assert.equal(r.rc, 141);
});

test('the process ends when the command is done, after all it wrote to a slow pipe has gone out', async () => {
  // 8 MiB through a pipe read slowly: every byte arrives, then the status
  const r = await new Promise<{ rc: number | null; bytes: number; err: string }>((res) => {
    const c = spawn(process.execPath, [CLI, 'read', SAMPLE, '--phys', '0', '--length', '8m', '--fill-missing'], { stdio: ['ignore', 'pipe', 'pipe'] });
    let bytes = 0;
    let err = '';
    c.stderr.on('data', (d) => (err += d));
    c.stdout.on('data', (d: Buffer) => {
      bytes += d.length;
      c.stdout.pause();
      setTimeout(() => c.stdout.resume(), 1);
    });
    c.on('close', (rc) => res({ rc, bytes, err }));
  });
  assert.equal(r.err, '');
  assert.equal(r.rc, 0);
  assert.equal(r.bytes, 8 << 20);
});

test('SIGINT exits 130', async () => {
  const rc = await new Promise<number | null>((res) => {
    const c = spawn(process.execPath, [CLI, 'read', SAMPLE, '--phys', '0', '--length', '256m', '--fill-missing'], { stdio: ['ignore', 'pipe', 'pipe'] });
    // once output flows, the command is running (its handlers are installed)
    c.stdout.once('data', () => c.kill('SIGINT'));
    c.stdout.resume();
    c.on('close', (code) => res(code));
  });
  assert.equal(rc, 130);
});

test('convert: an output name that names no file is a usage error before the input is read; a bad OUT is refused before the kernel analysis, nothing left behind', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'vmcore-cli-'));
  try {
    const empty = vmcore('convert', '-d', '31', SAMPLE, '');
    assert.equal(empty.rc, 2, empty.err);
    assert.equal(empty.err, 'vmcore: USAGE: the output name is empty\n');
    const slash = vmcore('convert', '-d', '31', SAMPLE, join(dir, 'sub') + '/');
    assert.equal(slash.rc, 2, slash.err);
    assert.match(slash.err, /the output name ends in "\/": give a file name/);
    // refused before the input is opened: a missing input is not what is reported
    const exists = join(dir, 'x.kdump');
    await writeFile(exists, 'keep me');
    const e = vmcore('convert', '-d', '31', join(dir, 'absent.kdump'), exists);
    assert.equal(e.rc, 1, e.err);
    assert.match(e.err, /EXISTS/);
    const nodir = vmcore('convert', '-d', '31', SAMPLE, join(dir, 'no', 'such', 'x.kdump'));
    assert.equal(nodir.rc, 1);
    assert.match(nodir.err, /the directory .* does not exist/);
    assert.deepEqual((await readdir(dir)).sort(), ['x.kdump'], 'no partial file left');
    assert.equal(await readFile(exists, 'utf8'), 'keep me');
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test('convert --json: outputs[].bytes and bytesOut are the size of the file written, an ELF with gaps included (it reported the bytes written, 6.5 MB short)', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'vmcore-cli-'));
  try {
    for (const [fmt, name] of [['-E', 'e.elf'], ['-l', 'l.kdump']] as const) {
      const out = join(dir, name);
      const r = vmcore('convert', fmt, '-d', '31', '--json', SAMPLE, out);
      assert.equal(r.rc, 0, r.err);
      const j = JSON.parse(r.out) as { outputs: { bytes: number }[]; bytesOut: number };
      const size = (await stat(out)).size;
      assert.equal(j.outputs[0]!.bytes, size, name);
      assert.equal(j.bytesOut, size, name);
    }
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test('read -o keeps an existing file unless --force', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'vmcore-cli-'));
  try {
    const out = join(dir, 'x.bin');
    await writeFile(out, 'keep me');
    const r = vmcore('read', SAMPLE, '--phys', '0x1000000', '--length', '16', '-o', out);
    assert.equal(r.rc, 1);
    assert.match(r.err, /EXISTS/);
    assert.equal(await readFile(out, 'utf8'), 'keep me');
    const f = vmcore('read', SAMPLE, '--phys', '0x1000000', '--length', '16', '-o', out, '--force');
    assert.equal(f.rc, 0, f.err);
    assert.equal((await readFile(out)).length, 16);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test('info text: uptime at the panic from its log record (makedumpfile --dump-dmesg prints it at 6.200217), not the stale tk_core figure', () => {
  const r = vmcore('info', SAMPLE);
  assert.equal(r.rc, 0, r.err);
  const m = /^Uptime +6\.200 s at the panic  \[its log timestamp; tk_core last updated at (\d+\.\d{3}) s\]$/m.exec(r.out);
  assert.ok(m, r.out);
  assert.ok(Number(m[1]) < 6.2);
});

test('info names vmcore (version and command) as the producer of what convert writes, kdump and ELF', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'vmcore-cli-'));
  try {
    const version = JSON.parse(await readFile(join(ROOT, 'package.json'), 'utf8')).version as string;
    for (const args of [['-c'], ['-E', '-d', '1']]) {
      const out = join(dir, `o-${args[0]}`);
      const c = vmcore('convert', '--quiet', ...args, SAMPLE, out);
      assert.equal(c.rc, 0, c.err);
      const j = JSON.parse(vmcore('info', '--json', out).out);
      assert.equal(j.producer, 'vmcore');
      assert.deepEqual(j.producerEvidence, [`vmcore producer note: written by vmcore ${version} convert`]);
      // converting vmcore's output again keeps one producer note
      const again = join(dir, `again-${args[0]}`);
      assert.equal(vmcore('convert', '--quiet', '-l', out, again).rc, 0);
      const n = JSON.parse(vmcore('info', '--json', again).out).notes.filter((x: { name: string }) => x.name === 'VMCORE');
      assert.equal(n.length, 1);
    }
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test('README: after a build, `npx --no-install vmcore` runs the command from the checkout (the bin stays executable) without rebuilding dist/', async () => {
  // npx installs the checkout into its cache as a file: link, which runs the package's
  // "prepare" and "install" scripts in the checkout: tsc and the web build rewrite dist/ while
  // the other unit tests (run two at a time) load modules from it, and their CLI children die
  // with "does not provide an export named ...". A cache of its own makes npx install every
  // time (so a rebuild would show here, not only on a checkout's first run); ignore-scripts
  // keeps dist/ as the build left it.
  const cache = await mkdtemp(join(tmpdir(), 'vmcore-npx-'));
  try {
    const before = (await stat(CLI)).mtimeMs;
    const r = spawnSync('npx', ['--no-install', 'vmcore', '--version'], {
      cwd: ROOT,
      encoding: 'utf8',
      env: { ...process.env, npm_config_cache: cache, npm_config_ignore_scripts: 'true' },
    });
    assert.equal(r.status, 0, `${r.stdout}${r.stderr}`);
    const pkg = JSON.parse(await readFile(join(ROOT, 'package.json'), 'utf8')) as { version: string };
    assert.equal(r.stdout.trim(), pkg.version);
    assert.equal((await stat(CLI)).mtimeMs, before, 'npx rebuilt dist/ (ran the package scripts)');
  } finally {
    await rm(cache, { recursive: true, force: true });
  }
});

for (const [sig, want, times] of [['SIGTERM', 143, 1], ['SIGINT', 130, 1], ['SIGINT', 130, 2]] as const)
  test(`convert stopped by ${times === 2 ? 'two ' : ''}${sig}${times === 2 ? 's' : ''} mid-write: its partial output removed, exit ${want}`, async () => {
    const dir = await mkdtemp(join(tmpdir(), 'vmcore-sig-'));
    try {
      const out = join(dir, 'out.kdump');
      const r = await new Promise<{ rc: number | null; err: string }>((res) => {
        // slow on purpose (zlib level 9 on one thread), so that the signal comes while it writes
        const c = spawn(process.execPath, [CLI, 'convert', '-c', '--level', '9', '--no-native', '--threads', '0', '--quiet', SAMPLE, out], { stdio: ['ignore', 'pipe', 'pipe'] });
        let err = '';
        c.stderr.on('data', (d) => (err += d));
        const poll = setInterval(() => {
          void readdir(dir).then((names) => {
            if (names.some((n) => n.includes('.partial-')) && c.exitCode === null && !c.killed) {
              clearInterval(poll);
              c.kill(sig);
              // a second Ctrl-C while it cleans up must not leave the partial file behind
              if (times === 2) setTimeout(() => c.exitCode === null && process.kill(c.pid!, sig), 15);
            }
          });
        }, 10);
        c.on('close', (rc) => {
          clearInterval(poll);
          res({ rc, err });
        });
      });
      assert.equal(r.rc, want, r.err);
      assert.match(r.err, /INTERRUPTED: interrupted: output removed/);
      assert.deepEqual(await readdir(dir), []);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
