/**
 * Progress on a terminal: `hash` (and `convert`) draw a bar on stderr when it is a terminal
 * and stay silent otherwise or with --quiet / --json. The terminal is a real pseudo-terminal
 * from util-linux `script`.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { buildElf, patternPage } from '../helpers/build.js';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '../../..');
const CLI = join(ROOT, 'dist/src/cli/vmcore.js');
const HAVE_SCRIPT = spawnSync('sh', ['-c', 'command -v script']).status === 0;

/** Run the CLI with stdin, stdout and stderr on a pseudo-terminal; returns what the terminal showed. */
function onTerminal(args: string[]): { rc: number | null; screen: string } {
  const cmd = [process.execPath, CLI, ...args].map((a) => `'${a.replace(/'/g, `'\\''`)}'`).join(' ');
  const r = spawnSync('script', ['-qfec', cmd, '/dev/null'], { encoding: 'utf8', env: { ...process.env, COLUMNS: '100', LINES: '30', TERM: 'xterm' }, timeout: 300_000 });
  return { rc: r.status, screen: r.stdout };
}

/** A 1 GiB machine in a small ELF: a few pages of data, the rest a p_memsz zero tail (present zero pages). */
async function bigSparseElf(dir: string): Promise<string> {
  const data = new Uint8Array(16 * 4096);
  for (let i = 0; i < 16; i++) data.set(patternPage(i), i * 4096);
  const f = join(dir, 'big.elf');
  await writeFile(f, buildElf({ segments: [{ paddr: 0, data, memsz: 2 ** 30 }] }));
  return f;
}

test('hash draws a progress bar on a terminal for a large dump (1 GiB, 262144 pages), and none without one or with --quiet/--json', { skip: HAVE_SCRIPT ? false : process.env.CI === 'true' ? false : 'util-linux script is not installed' }, async () => {
  const dir = await mkdtemp(join(tmpdir(), 'vmcore-tty-'));
  try {
    const f = await bigSparseElf(dir);
    const t = onTerminal(['hash', f]);
    assert.equal(t.rc, 0, t.screen);
    assert.match(t.screen, / hash \[[^\]]*\] \d+% \| ETA \d/, 'a bar with percentage and ETA');
    assert.match(t.screen, /[0-9a-f]{64} {2}262144 pages/);
    const q = onTerminal(['hash', '--quiet', f]);
    assert.equal(q.rc, 0);
    assert.doesNotMatch(q.screen, /hash \[/);
    const j = onTerminal(['hash', '--json', f]);
    assert.doesNotMatch(j.screen, /hash \[/);
    // stderr not a terminal: nothing but the digest
    const p = spawnSync(process.execPath, [CLI, 'hash', f], { encoding: 'utf8' });
    assert.equal(p.stderr, '');
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});
