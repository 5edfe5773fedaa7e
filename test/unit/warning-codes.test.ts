/**
 * Warnings carry a stable code (src/core/warnings.ts): every command's --json gives each warning
 * as {code, text} with a declared code, on inputs built to produce warnings (damaged variants of
 * the bundled sample); README lists every code; and nothing in src/ or web/ decides on a
 * warning's (or a proof step's) text.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { WARNING_CODES, isWarningCode } from '../../src/core/warnings.js';
import { sampleWithCpuNotes, sampleWithDamagedDescs } from '../helpers/sample-variants.js';

const root = fileURLToPath(new URL('../../../', import.meta.url));
const CLI = join(root, 'dist/src/cli/vmcore.js');

/** Pages of the sample whose loss the analyses see: kernel text, kallsyms_names, a printk text ring page. */
const DAMAGED = [0x1000, 0x1001, 0x2200, 0x32f7];

function run(args: string[]): { status: number | null; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, [CLI, ...args], { encoding: 'utf8' });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

/** The warnings of a --json answer: an array of {code, text}, each code declared. */
function checkedWarnings(what: string, ws: unknown): { code: string; text: string }[] {
  assert.ok(Array.isArray(ws), `${what}: warnings is not an array: ${JSON.stringify(ws)}`);
  for (const w of ws) {
    assert.ok(w && typeof w === 'object', `${what}: a warning is not an object: ${JSON.stringify(w)}`);
    const { code, text } = w as { code: unknown; text: unknown };
    assert.ok(isWarningCode(code), `${what}: warning without a declared code: ${JSON.stringify(w)}`);
    assert.equal(typeof text, 'string', `${what}: ${JSON.stringify(w)}`);
    assert.deepEqual(Object.keys(w as object).sort(), ['code', 'text'], `${what}: ${JSON.stringify(w)}`);
  }
  return ws as { code: string; text: string }[];
}

test('--json warnings of info, dmesg, bt, usage, convert and fix are {code, text} with declared codes, on a dump with damaged pages', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'vmcore-codes-'));
  try {
    const f = join(dir, 'damaged.kdump');
    writeFileSync(f, sampleWithDamagedDescs(DAMAGED));
    const stale = join(dir, 'stale.kdump');
    // two idle CPUs' notes only: the panicking task's CPU has none (as test/unit/cpu-notes.test.ts)
    const idle = (i: number) => ({ pid: 0, rip: 0xffffffff81e00000n + BigInt(i), rsp: 0xffffffff82a03e00n + BigInt(i * 0x100) });
    writeFileSync(stale, sampleWithCpuNotes([idle(2), idle(3)], 8));
    // the header's status with DUMP_DH_COMPRESSED_INCOMPLETE (0x8; disk_dump_header.status at byte 424 of the 64-bit layout)
    const marked = join(dir, 'marked.kdump');
    const mb = sampleWithDamagedDescs([]);
    new DataView(mb.buffer).setInt32(424, new DataView(mb.buffer).getInt32(424, true) | 0x8, true);
    writeFileSync(marked, mb);
    const cases: { args: string[]; pick: (j: Record<string, unknown>) => unknown; want: string; not?: string }[] = [
      { args: ['info', f, '--json'], pick: (j) => j.warnings, want: 'PAGES_DAMAGED' },
      { args: ['dmesg', f, '--json'], pick: (j) => j.warnings, want: 'PRINTK_DAMAGED' },
      { args: ['bt', f, '--json'], pick: (j) => j.warnings, want: 'SYMBOLS_DAMAGED' },
      { args: ['bt', stale, '--json'], pick: (j) => j.warnings, want: 'REGISTERS_STALE' },
      { args: ['usage', marked, '--json', '--sample', '16'], pick: (j) => j.warnings, want: 'MARKED_INCOMPLETE' },
      { args: ['convert', f, join(dir, 'out.kdump'), '--json', '--quiet'], pick: (j) => j.warnings, want: 'PAGES_DAMAGED', not: 'PAGES_MISSING' },
      { args: ['fix', f, '-o', join(dir, 'fixed.kdump'), '--json', '--phys-base', '0x1000000'], pick: (j) => j.warnings, want: 'PHYS_BASE_GIVEN_DIFFERS' },
    ];
    for (const c of cases) {
      const what = c.args.slice(0, 2).join(' ');
      const r = run(c.args);
      assert.equal(r.status, 0, `${what}: ${r.stderr}`);
      const ws = checkedWarnings(what, c.pick(JSON.parse(r.stdout) as Record<string, unknown>));
      assert.ok(ws.some((w) => w.code === c.want), `${what}: no ${c.want} among ${JSON.stringify(ws)}`);
      if (c.not) assert.ok(!ws.some((w) => w.code === c.not), `${what}: ${c.not} among ${JSON.stringify(ws)} (the pages are damaged, not missing)`);
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('a warning whose code is not declared is caught', () => {
  assert.throws(() => checkedWarnings('test', [{ code: 'NOT_A_CODE', text: 'x' }]), /without a declared code/);
  assert.throws(() => checkedWarnings('test', ['a sentence']), /not an object/);
  assert.doesNotThrow(() => checkedWarnings('test', [{ code: 'PAGES_DAMAGED', text: 'x' }]));
});

test('README lists every warning code, and no other', () => {
  const readme = readFileSync(join(root, 'README.md'), 'utf8');
  const at = readme.indexOf('### Warnings in `--json`');
  assert.ok(at >= 0, 'README has no "Warnings in `--json`" section');
  const section = readme.slice(at, readme.indexOf('\n#', at + 5));
  const listed = [...section.matchAll(/^\| `([A-Z0-9_]+)` \|/gm)].map((m) => m[1]);
  assert.deepEqual([...listed].sort(), Object.keys(WARNING_CODES).sort());
});

function sources(dir: string): string[] {
  const out: string[] = [];
  for (const e of readdirSync(dir)) {
    const p = join(dir, e);
    if (statSync(p).isDirectory()) out.push(...sources(p));
    else if (p.endsWith('.ts')) out.push(p);
  }
  return out;
}

test('src/ and web/ make warnings only through warning() and never decide on their text', () => {
  const bad: string[] = [];
  for (const f of [...sources(join(root, 'src')), ...sources(join(root, 'web'))]) {
    if (f.endsWith(join('core', 'warnings.ts'))) continue;
    readFileSync(f, 'utf8')
      .split('\n')
      .forEach((l, i) => {
        const at = `${f.slice(root.length)}:${i + 1}: ${l.trim()}`;
        // matching a text: a regex over it, or includes/startsWith/endsWith/match on it
        if (/\.test\(\w+\.text\)|\.text\.(includes|startsWith|endsWith|match|indexOf)\(|\.text ===|=== \w+\.text\b/.test(l)) bad.push(at);
        // a warning built by hand instead of through warning()
        if (/warnings?\??\.push\(\s*[`'"]/.test(l) || /onWarning\?\.\(\s*[`'"]/.test(l)) bad.push(at);
      });
  }
  assert.deepEqual(bad, []);
});
