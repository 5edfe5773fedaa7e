/**
 * The published package as a new user gets it: `npm pack`, install the tarball into a fresh
 * consumer project, then compile (TypeScript, strict) and run the README's library example
 * verbatim on the repo sample. Also: the tarball leaves the sample out, its install builds the
 * native addon with the libdeflate sources it carries (no system library), and the install prints
 * one calm line and no compiler error when the addon cannot be built.
 * Needs npm and the registry (or its cache) for the consumer's dependencies.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { copyFile, cp, mkdir, mkdtemp, readFile, rm, stat, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { createRequire } from 'node:module';
import { inflateSync } from 'node:zlib';
import type { NativeAddon } from '../../src/node/native.js';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '../../..');
const SAMPLE = join(ROOT, 'samples/seabios-128M.md-c-d31.kdump');
const SAMPLE_SHA = '03c2b8685986e5ee4bcfee31fc94ef61c42dfed7ec5029f6194829dc174feacb';

function run(cmd: string, args: string[], cwd: string, env: Record<string, string> = {}) {
  const r = spawnSync(cmd, args, { cwd, encoding: 'utf8', timeout: 600_000, maxBuffer: 64 << 20, env: { ...process.env, ...env } });
  return { rc: r.status, out: r.stdout ?? '', err: r.stderr ?? '' };
}

/** The ```ts block of the README's "## Library" section. */
export async function readmeExample(): Promise<string> {
  const md = await readFile(join(ROOT, 'README.md'), 'utf8');
  const sec = md.slice(md.indexOf('\n## Library'));
  const m = /```ts\n([\s\S]*?)```/.exec(sec);
  assert.ok(m, 'README has a ```ts block under ## Library');
  return m[1]!;
}

test('npm pack: a fresh ES module project installs the tarball, compiles and runs the README example verbatim', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'vmcore-pack-'));
  try {
    const p = run('npm', ['pack', '--pack-destination', dir, '--ignore-scripts'], ROOT);
    assert.equal(p.rc, 0, p.err);
    const tgz = join(dir, p.out.trim().split('\n').pop()!);
    const size = (await stat(tgz)).size;
    assert.ok(size < 2 << 20, `tarball is ${size} bytes: the 15 MB sample must stay out of it`);
    const list = run('tar', ['tzf', tgz], dir).out;
    assert.doesNotMatch(list, /\.kdump$/m, 'no dump files in the package');
    assert.match(list, /^package\/dist\/src\/node\/index\.js$/m);

    const app = join(dir, 'app');
    await mkdir(app);
    await writeFile(join(app, 'package.json'), JSON.stringify({ name: 'consumer', private: true, type: 'module' }, null, 2));
    await writeFile(
      join(app, 'tsconfig.json'),
      JSON.stringify({ compilerOptions: { target: 'es2022', module: 'nodenext', moduleResolution: 'nodenext', strict: true, skipLibCheck: false, types: ['node'] } }, null, 2),
    );
    const ins = run('npm', ['install', '--no-audit', '--no-fund', '--prefer-offline', tgz, 'typescript@5', '@types/node@20'], app);
    assert.equal(ins.rc, 0, ins.err);
    assert.doesNotMatch(ins.out + ins.err, /fatal error|libdeflate\.h/, 'the install prints no compiler error');
    // the addon is built from the package alone: zlib by the libdeflate it carries
    const installed = createRequire(import.meta.url)(join(app, 'node_modules/vmcore/build/Release/vmcore_native.node')) as NativeAddon;
    assert.equal(installed.zlibImpl, `libdeflate ${await vendoredLibdeflate()}`);
    assert.deepEqual([...installed.codecs].sort(), ['lzo', 'zlib']);

    await writeFile(join(app, 'example.ts'), await readmeExample());
    await copyFile(SAMPLE, join(app, 'vmcore')); // the example opens a file named "vmcore"
    const tsc = run(process.execPath, [join(app, 'node_modules/typescript/bin/tsc'), '-p', '.'], app);
    assert.equal(tsc.rc, 0, `the README example does not compile:\n${tsc.out}${tsc.err}`);
    const r = run(process.execPath, ['example.js'], app);
    assert.equal(r.rc, 0, `the README example fails:\n${r.err}`);
    assert.match(r.out, /Linux version 6\.1\.0-56-cloud-amd64/, 'the kernel log');
    assert.match(r.out, /verdict: 'header correct'/, 'describeDump().physBase');
    assert.ok(r.out.includes(SAMPLE_SHA), 'hashMemory digest');
    assert.ok((await stat(join(app, 'out.kdump'))).size > 0, 'convertDump wrote out.kdump');
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

/** LIBDEFLATE_VERSION_STRING of the sources in native/libdeflate. */
async function vendoredLibdeflate(): Promise<string> {
  const h = await readFile(join(ROOT, 'native/libdeflate/libdeflate.h'), 'utf8');
  const m = /#define LIBDEFLATE_VERSION_STRING\s+"([^"]+)"/.exec(h);
  assert.ok(m, 'native/libdeflate/libdeflate.h names its version');
  return m[1]!;
}

/** native/ and binding.gyp copied to a new directory, so that a build does not touch the checkout's build/. */
async function addonSources(dir: string): Promise<void> {
  await cp(join(ROOT, 'native'), join(dir, 'native'), { recursive: true });
  await copyFile(join(ROOT, 'binding.gyp'), join(dir, 'binding.gyp'));
}

test('the install builds the addon from its own sources: zlib with the libdeflate it carries, not a system header; silent', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'vmcore-native-'));
  try {
    await addonSources(dir);
    // a system libdeflate.h, if the machine has one, must not be the one compiled: the include
    // path names the copy first, and the version it reports is the copy's
    const r = run(process.execPath, [join(dir, 'native/build.mjs')], dir);
    assert.equal(r.rc, 0);
    assert.equal(r.err.trim(), '', 'a build that succeeds prints nothing');
    const a = createRequire(import.meta.url)(join(dir, 'build/Release/vmcore_native.node')) as NativeAddon;
    assert.equal(a.zlibImpl, `libdeflate ${await vendoredLibdeflate()}`);
    // a page of text compressed by it (levels 1 and 12) inflates back with zlib itself
    const page = new TextEncoder().encode('task_struct pt_regs '.repeat(205)).subarray(0, 4096);
    for (const level of [1, 12]) {
      const out = new Uint8Array(4096);
      const n = a.zlibCompress!(page, out, 0, 4095, level);
      assert.ok(n > 0 && n < 4096);
      assert.deepEqual(new Uint8Array(inflateSync(out.subarray(0, n))), page);
    }
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test('the install line: one calm line, no compiler error, when there is no C compiler', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'vmcore-native-'));
  try {
    await addonSources(dir);
    const r = run(process.execPath, [join(dir, 'native/build.mjs')], dir, { CC: '/bin/false', CXX: '/bin/false' });
    assert.equal(r.rc, 0);
    const lines = r.err.trim().split('\n');
    assert.equal(lines.length, 1, r.err);
    assert.match(lines[0]!, /^vmcore: using node:zlib and the lzo package; the optional native addon .* is not built \(.*\)\. To get it: .*npm rebuild vmcore\.$/);
    assert.doesNotMatch(r.err, /fatal|error/i);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test('an addon built from the package alone: convert -c compresses with its libdeflate; libkdumpfile reads every page with the input\'s digest, makedumpfile re-filters it', async (t) => {
  const py = spawnSync('/usr/bin/python3', ['-c', 'import kdumpfile'], { encoding: 'utf8' });
  const mdf = spawnSync('makedumpfile', ['-v'], { encoding: 'utf8' });
  if (py.status !== 0 || mdf.error) return t.skip('needs python3-libkdumpfile and makedumpfile');
  const dir = await mkdtemp(join(tmpdir(), 'vmcore-addon-'));
  try {
    // the checkout's build (dist, node_modules) with an addon built here from native/
    await addonSources(dir);
    await copyFile(join(ROOT, 'package.json'), join(dir, 'package.json'));
    await cp(join(ROOT, 'dist/src'), join(dir, 'dist/src'), { recursive: true });
    await symlink(join(ROOT, 'node_modules'), join(dir, 'node_modules'));
    assert.equal(run(process.execPath, [join(dir, 'native/build.mjs')], dir).rc, 0);
    const out = join(dir, 'nz.kdump');
    const c = run(process.execPath, [join(dir, 'dist/src/cli/vmcore.js'), 'convert', '-c', '-d', '1', '--json', SAMPLE, out], dir);
    assert.equal(c.rc, 0, c.err);
    assert.equal((JSON.parse(c.out) as { codecImpl: string }).codecImpl, `libdeflate ${await vendoredLibdeflate()} (native addon)`);
    const l = run('/usr/bin/python3', [join(ROOT, 'test/interop/convert-lkdf.py'), out], dir);
    assert.equal(l.rc, 0, l.err);
    assert.equal((JSON.parse(l.out) as { sha256: string }).sha256, SAMPLE_SHA);
    const m = run('makedumpfile', ['-c', '-d', '31', out, join(dir, 'refiltered.kdump')], dir);
    assert.equal(m.rc, 0, m.out + m.err);
    const h = run(process.execPath, [join(ROOT, 'dist/src/cli/vmcore.js'), 'hash', join(dir, 'refiltered.kdump')], dir);
    assert.equal(h.rc, 0, h.err);
    assert.equal(h.out.split(' ')[0], SAMPLE_SHA, 'the sample is -d 31 already: re-filtering keeps every page');
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});
