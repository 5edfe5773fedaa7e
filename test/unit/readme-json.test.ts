/**
 * Every key a command prints with `--json` is documented in the README (the project's rule for
 * every CLI command). The commands run on the real sample; each key, and the keys of the
 * objects nested in it that the README lists, must appear in that command's README text.
 * A key added to an output without documenting it fails here.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '../../..');
const CLI = join(ROOT, 'dist/src/cli/vmcore.js');
const SAMPLE = join(ROOT, 'samples/seabios-128M.md-c-d31.kdump');
const README = readFileSync(join(ROOT, 'README.md'), 'utf8');

function json(...args: string[]): Record<string, unknown> {
  const r = spawnSync(process.execPath, [CLI, ...args], { encoding: 'utf8', maxBuffer: 64 << 20 });
  assert.equal(r.status, 0, `vmcore ${args.join(' ')}: ${r.stderr}`);
  return JSON.parse(r.stdout) as Record<string, unknown>;
}

/** The README's table row for `cmd` in the JSON keys tables: `| \`cmd\` | ... |`. */
function row(cmd: string): string {
  const m = new RegExp('^\\| `' + cmd + '` \\| (.*)\\|$', 'm').exec(README);
  assert.ok(m, `README has a JSON keys row for ${cmd}`);
  return m[1]!;
}

/** Keys of `o` that the README text does not name as `key` or inside a `{...}` list. */
function undocumented(o: Record<string, unknown>, text: string): string[] {
  return Object.keys(o).filter((k) => !new RegExp('[`{ ,]' + k.replace(/[$]/g, '\\$') + '[`}, ]').test(text));
}

function check(name: string, o: Record<string, unknown>, text: string) {
  assert.deepEqual(undocumented(o, text), [], `${name}: keys missing from the README`);
}

test('README documents every dmesg --json key: top level, ring, stats and record keys', () => {
  const j = json('dmesg', '--json', SAMPLE);
  const t = row('dmesg');
  check('dmesg', j, t);
  check('dmesg ring', j.ring as Record<string, unknown>, t);
  check('dmesg stats', j.stats as Record<string, unknown>, t);
  const records = j.records as Record<string, unknown>[];
  assert.ok(records.length > 300);
  for (const r of records) check('dmesg record', r, t);
});

test('README documents every vmcoreinfo --json key', () => {
  const j = json('vmcoreinfo', '--json', SAMPLE);
  check('vmcoreinfo', j, row('vmcoreinfo'));
});

test('README documents every convert --json and fix --json key', () => {
  const dir = mkdtempSync(join(tmpdir(), 'vmcore-readme-json-'));
  try {
    const c = json('convert', '--json', '--quiet', '--split', '2', SAMPLE, join(dir, 'set'));
    const ct = row('convert');
    check('convert', c, ct);
    check('convert pages', c.pages as Record<string, unknown>, ct);
    for (const o of c.outputs as Record<string, unknown>[]) check('convert outputs', o, ct);
    const f = json('fix', '--json', SAMPLE, '-o', join(dir, 'fixed.kdump'));
    const ft = row('fix');
    check('fix', f, ft);
    check('fix physBase', f.physBase as Record<string, unknown>, ft);
    check('fix vmcoreinfo', f.vmcoreinfo as Record<string, unknown>, ft);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test("README documents the keys of info's panic.registers and of bt's exception_frames[].regs (x86_64)", () => {
  const i = json('info', '--json', SAMPLE);
  const panic = i.panic as Record<string, unknown>;
  const regs = panic.registers as Record<string, unknown>;
  assert.equal(regs.rip, '0xffffffff819c3643');
  check('info panic.registers', regs, row('panic'));
  const b = json('bt', '--json', SAMPLE);
  const frames = ((b.tasks as Record<string, unknown>[])[0]!.exception_frames as Record<string, unknown>[]);
  assert.ok(frames.length > 0, 'the panicking task entered from user mode through a pt_regs');
  const t = row('exception_frames\\[\\]');
  for (const f of frames) {
    check('bt exception_frames', f, t);
    check('bt exception_frames regs', f.regs as Record<string, unknown>, t);
  }
});
