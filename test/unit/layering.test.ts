/** The portable core must not depend on Node: no node: imports, Buffer, process, or src/node. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readdir, readFile } from 'node:fs/promises';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '../../..');

async function* walk(dir: string): AsyncGenerator<string> {
  for (const e of await readdir(dir, { withFileTypes: true })) {
    const p = join(dir, e.name);
    if (e.isDirectory()) yield* walk(p);
    else if (p.endsWith('.ts')) yield p;
  }
}

test('src/core uses no Node APIs (it also runs in browsers)', async () => {
  const bad: string[] = [];
  for await (const f of walk(join(ROOT, 'src/core'))) {
    const text = await readFile(f, 'utf8');
    text.split('\n').forEach((line, i) => {
      const code = line.replace(/\/\/.*$/, '');
      if (/from ['"]node:|require\(|\bBuffer\b|\bprocess\.|from ['"][./]*\/node\//.test(code) && !/^\s*\*/.test(line)) bad.push(`${f.slice(ROOT.length + 1)}:${i + 1}: ${line.trim()}`);
    });
  }
  assert.deepEqual(bad, []);
});
