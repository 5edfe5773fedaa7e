// The `vmcore` command runs from two bundled files (the launcher, the package's bin, and the
// command it imports) and starts its worker threads from the bundles beside them
// (scripts/bundle-cli.mjs): a command that loaded the project's modules one by one, or a worker
// path that no longer resolves from the bundle, fails here.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { CLI, vmcore } from '../helpers/cli.js';

const SAMPLE = fileURLToPath(new URL('../../../samples/seabios-128M.md-c-d31.kdump', import.meta.url));

test('the command is bundled: the launcher imports only the command bundle, which imports no project module; its workers beside it', () => {
  const relative = /(?:from|import\()\s*["'](\.\.?\/[^"']*)["']/g;
  const text = readFileSync(CLI, 'utf8');
  assert.deepEqual([...text.matchAll(relative)].map((m) => m[1]), ['./command.js'], 'the launcher (vmcore.js) imports the command bundle and nothing else of the project');
  assert.ok(!/(?:from|import\()\s*["']\.\.?\//.test(readFileSync(join(dirname(CLI), 'command.js'), 'utf8')), 'command.js imports no relative module');
  for (const w of ['compress-worker', 'read-worker', 'triage-worker']) {
    const f = join(dirname(CLI), `${w}.js`);
    assert.ok(existsSync(f), f);
    assert.ok(!/(?:from|import\()\s*["']\.\.?\//.test(readFileSync(f, 'utf8')), `${w}.js imports no relative module`);
  }
  // the JavaScript-only packages are inside the bundles: a static import names a Node module only
  for (const b of ['command', 'compress-worker', 'read-worker', 'triage-worker']) {
    const text = readFileSync(join(dirname(CLI), `${b}.js`), 'utf8');
    const imported = [...text.matchAll(/^import [^;]*?from\s*["']([^"']+)["']/gm)].map((m) => m[1]!).filter((m) => !m.startsWith('node:') && m !== 'module');
    assert.deepEqual(imported, [], `${b}.js imports no npm package when it loads`);
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
