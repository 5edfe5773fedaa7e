// The `vmcore` command runs from bundled files (the launcher, the package's bin, and the command
// it runs with its code cache) and starts its worker threads from the bundles beside them
// (scripts/bundle-cli.mjs, src/cli/code-cache.ts): a command that loaded the project's modules
// one by one, a worker path that no longer resolves from the bundle, or a code cache that is not
// used, fails here.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { isAscii } from 'node:buffer';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { availableParallelism, tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { CLI, vmcore } from '../helpers/cli.js';

const SAMPLE = fileURLToPath(new URL('../../../samples/seabios-128M.md-c-d31.kdump', import.meta.url));

test('the command is bundled: the launcher and the triage entry import no project module; the command and the triage thread are CommonJS bundles, the other workers ES module bundles, none importing an npm package when it loads', () => {
  const dir = dirname(CLI);
  const relative = /(?:from|import\()\s*["'](\.\.?\/[^"']*)["']/;
  for (const f of ['vmcore.js', 'triage-worker.js', 'compress-worker.js', 'read-worker.js']) {
    assert.ok(!relative.test(readFileSync(join(dir, f), 'utf8')), `${f} imports no relative module`);
  }
  for (const f of ['command.cjs', 'triage-worker.cjs']) {
    const text = readFileSync(join(dir, f), 'utf8');
    // code-cache.ts reads an ASCII bundle as Latin-1 (a tenth of the cost of UTF-8 decoding)
    assert.ok(isAscii(readFileSync(join(dir, f))), `${f} is ASCII (scripts/bundle-cli.mjs escapes the rest)`);
    assert.ok(!/\brequire\(["']\.\.?\//.test(text), `${f} requires no relative module`);
    assert.ok(!/\bimport\(/.test(text.replace(/\/\/.*|\/\*[\s\S]*?\*\//g, '')), `${f}: no import() (a vm script has no module loader)`);
  }
  // the JavaScript-only packages are inside the bundles: a static import names a Node module only
  for (const f of ['compress-worker.js', 'read-worker.js', 'triage-worker.js', 'vmcore.js']) {
    const text = readFileSync(join(dir, f), 'utf8');
    const imported = [...text.matchAll(/^import [^;]*?from\s*["']([^"']+)["']/gm)].map((m) => m[1]!).filter((m) => !m.startsWith('node:') && m !== 'module');
    assert.deepEqual(imported, [], `${f} imports no npm package when it loads`);
  }
  for (const f of ['command.cjs', 'triage-worker.cjs']) {
    const required = [...readFileSync(join(dir, f), 'utf8').matchAll(/\brequire\(["']([^"'./][^"']*)["']\)/g)].map((m) => m[1]!).filter((m) => !m.startsWith('node:') && m !== 'module');
    assert.deepEqual([...new Set(required)].filter((m) => !['lzo', 'snappy', 'zstd-napi', 'cli-progress'].includes(m)), [], `${f} requires only Node's modules and the optional native packages`);
  }
});

test('the command and the triage thread run with the code cache made at build time', () => {
  const env = { ...process.env, VMCORE_CODE_CACHE: 'report' };
  const v = spawnSync(process.execPath, [CLI, '--version'], { env, encoding: 'utf8' });
  assert.equal(v.status, 0);
  assert.match(v.stderr, /^vmcore: command: code cache used$/m);
  const dir = mkdtempSync(join(tmpdir(), 'vmcore-cache-'));
  try {
    const r = spawnSync(process.execPath, [CLI, 'convert', '-d', '31', '--quiet', SAMPLE, join(dir, 'o.kdump')], { env, encoding: 'utf8' });
    assert.equal(r.status, 0, r.stderr);
    assert.match(r.stderr, /^vmcore: command: code cache used$/m);
    if (availableParallelism() > 1) assert.match(r.stderr, /^vmcore: triage-worker: code cache used$/m);
    const off = spawnSync(process.execPath, [CLI, '--version'], { env: { ...env, VMCORE_CODE_CACHE: 'off' }, encoding: 'utf8' });
    assert.equal(off.status, 0);
    assert.equal(off.stderr, '', 'off: no cache read, nothing said');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('a code cache made from another build of the bundle, or whose data is damaged, is not used (V8 checks only the length and no checksum)', () => {
  const dir = mkdtempSync(join(tmpdir(), 'vmcore-cache-'));
  try {
    const codeCache = pathToFileURL(join(dirname(CLI), 'code-cache.js')).href;
    const base = pathToFileURL(join(dir, 'entry.js')).href;
    const run = (mode: string) =>
      spawnSync(process.execPath, ['--input-type=module', '-e', `import { runBundle } from ${JSON.stringify(codeCache)}; runBundle('x', ${JSON.stringify(base)});`], { env: { ...process.env, VMCORE_CODE_CACHE: mode }, encoding: 'utf8' });
    writeFileSync(join(dir, 'x.cjs'), 'function f(a) { return a + 1; }\nprocess.stdout.write(String(f(41)));\n');
    const w = run('write');
    assert.equal(w.status, 0, w.stderr);
    assert.equal(w.stdout, '42');
    assert.ok(existsSync(join(dir, 'x.cjs.cache')));
    const used = run('report');
    assert.equal(used.stdout, '42');
    assert.match(used.stderr, /x: code cache used/);
    // damaged data (four bytes at offset 100, where V8 found nothing wrong and ran broken code or
    // stopped): not used, the bundle runs as compiled
    const good = readFileSync(join(dir, 'x.cjs.cache'));
    const bad = Buffer.from(good);
    bad.set([0xff, 0x00, 0xaa, 0x55], 100);
    writeFileSync(join(dir, 'x.cjs.cache'), bad);
    const damaged = run('report');
    assert.equal(damaged.status, 0, damaged.stderr);
    assert.equal(damaged.stdout, '42');
    assert.match(damaged.stderr, /x: code cache damaged/);
    writeFileSync(join(dir, 'x.cjs.cache'), good);
    // another build, the same length: its own code runs, the old cache is not taken
    writeFileSync(join(dir, 'x.cjs'), 'function f(a) { return a - 1; }\nprocess.stdout.write(String(f(41)));\n');
    const stale = run('report');
    assert.equal(stale.status, 0, stale.stderr);
    assert.equal(stale.stdout, '40');
    assert.match(stale.stderr, /x: code cache stale/);
    // a bundle that is not ASCII (UTF-8 in a string) is read as UTF-8, not as Latin-1
    writeFileSync(join(dir, 'x.cjs'), 'process.stdout.write(String("\u00e9\u2229".length) + "\u00e9\u2229");\n');
    const utf8 = run('report');
    assert.equal(utf8.status, 0, utf8.stderr);
    assert.equal(utf8.stdout, '2\u00e9\u2229');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('the bundled command runs its workers: convert -d 31 with two compression threads and the triage thread, hash with its read threads', () => {
  const dir = mkdtempSync(join(tmpdir(), 'vmcore-bundle-'));
  try {
    const out = join(dir, 'out.kdump');
    // -d 31 of a dump makedumpfile wrote at -d 31: the same pages, judged by the input's triage
    // on its own thread (two cores and more), compressed by two workers
    const r = vmcore('convert', '-d', '31', '--threads', '2', '--json', SAMPLE, out);
    assert.equal(r.rc, 0, r.err);
    const s = JSON.parse(r.out) as { threads: number; pages: { total: number; zero: number } };
    assert.equal(s.threads, 2);
    assert.equal(s.pages.total, 15374);
    const a = JSON.parse(vmcore('hash', '--json', SAMPLE).out) as { sha256: string };
    const b = vmcore('hash', '--json', out);
    assert.equal(b.rc, 0, b.err);
    assert.equal((JSON.parse(b.out) as { sha256: string }).sha256, a.sha256);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
