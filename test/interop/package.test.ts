/**
 * The published package as a new user gets it: `npm pack`, install the tarball into a fresh
 * consumer project, then compile (TypeScript, strict) and run the README's library example
 * verbatim on the repo sample. Also: the tarball leaves the sample out, and the install prints
 * no compiler error when the optional libdeflate addon cannot be built.
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

for (const [what, env, want] of [
  ['libdeflate-dev is missing', { VMCORE_NO_LIBDEFLATE: '1' }, /^vmcore: zlib pages are compressed with Node's zlib [^ ]+ in the native addon; libdeflate, about twice as fast, is not built \(libdeflate-dev is not installed\)\. To get it: .*npm rebuild vmcore\.$/],
  ["libdeflate-dev is missing and Node's zlib is left out", { VMCORE_NO_LIBDEFLATE: '1', VMCORE_NO_NODE_ZLIB: '1' }, /^vmcore: using node:zlib; the optional faster zlib \(libdeflate\) is not built \(libdeflate-dev is not installed\)\. To get it: .*npm rebuild vmcore\.$/],
  ['there is no C compiler', { CC: '/bin/false', CXX: '/bin/false' }, /^vmcore: using node:zlib and the lzo package; the optional native addon .* is not built \(.*\)\. To get it: .*npm rebuild vmcore\.$/],
] as const) {
  test(`the install line: one calm line, no compiler error, when ${what}`, async () => {
    const dir = await mkdtemp(join(tmpdir(), 'vmcore-native-'));
    try {
      // a copy of the addon sources, so that the build does not touch the checkout's build/
      await cp(join(ROOT, 'native'), join(dir, 'native'), { recursive: true });
      await copyFile(join(ROOT, 'binding.gyp'), join(dir, 'binding.gyp'));
      const r = run(process.execPath, [join(dir, 'native/build.mjs')], dir, { ...env });
      assert.equal(r.rc, 0);
      const lines = r.err.trim().split('\n');
      assert.equal(lines.length, 1, r.err);
      assert.match(lines[0]!, want);
      assert.doesNotMatch(r.err, /fatal|error/i);
      // without libdeflate the addon still builds: the batch path, zlib with Node's own zlib
      // (unless left out too), and lzo with the lzo package's minilzo when that is installed
      if ('VMCORE_NO_LIBDEFLATE' in env) {
        const a = createRequire(import.meta.url)(join(dir, 'build/Release/vmcore_native.node')) as NativeAddon;
        assert.equal(typeof a.compressPages, 'function');
        if ('VMCORE_NO_NODE_ZLIB' in env) assert.ok(!a.codecs.includes('zlib'));
        else {
          assert.match(a.zlibImpl ?? '', /^Node's zlib /);
          // a page of text compressed by it inflates back
          const page = new TextEncoder().encode('task_struct pt_regs '.repeat(205)).subarray(0, 4096);
          const out = new Uint8Array(4096);
          const n = a.zlibCompress!(page, out, 0, 4095, 1);
          assert.ok(n > 0 && n < 4096);
          assert.deepEqual(new Uint8Array(inflateSync(out.subarray(0, n))), page);
        }
      }
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
}

test('an installation without libdeflate-dev: convert -c compresses with Node\'s zlib in the addon; libkdumpfile reads every page with the input\'s digest, makedumpfile re-filters it', async (t) => {
  const py = spawnSync('/usr/bin/python3', ['-c', 'import kdumpfile'], { encoding: 'utf8' });
  const mdf = spawnSync('makedumpfile', ['-v'], { encoding: 'utf8' });
  if (py.status !== 0 || mdf.error) return t.skip('needs python3-libkdumpfile and makedumpfile');
  const dir = await mkdtemp(join(tmpdir(), 'vmcore-nolibdeflate-'));
  try {
    // the checkout's build (dist, node_modules) with an addon built as without libdeflate-dev
    await cp(join(ROOT, 'native'), join(dir, 'native'), { recursive: true });
    await copyFile(join(ROOT, 'binding.gyp'), join(dir, 'binding.gyp'));
    await copyFile(join(ROOT, 'package.json'), join(dir, 'package.json'));
    await cp(join(ROOT, 'dist/src'), join(dir, 'dist/src'), { recursive: true });
    await symlink(join(ROOT, 'node_modules'), join(dir, 'node_modules'));
    assert.equal(run(process.execPath, [join(dir, 'native/build.mjs')], dir, { VMCORE_NO_LIBDEFLATE: '1' }).rc, 0);
    const out = join(dir, 'nz.kdump');
    const c = run(process.execPath, [join(dir, 'dist/src/cli/vmcore.js'), 'convert', '-c', '-d', '1', '--json', SAMPLE, out], dir);
    assert.equal(c.rc, 0, c.err);
    assert.match((JSON.parse(c.out) as { codecImpl: string }).codecImpl, /^Node's zlib .*\(native addon\)$/);
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
