// Messages quote bytes of the dump; on a terminal they must stay one inert line.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { jsonText, printable, printableText } from '../../src/cli/util.js';
import { vmcore } from '../helpers/cli.js';

const SAMPLE = fileURLToPath(new URL('../../../samples/seabios-128M.md-c-d31.kdump', import.meta.url));

test('printable: control characters (C0, DEL, C1) as \\xNN, the rest untouched', () => {
  assert.equal(printable('machine \x1b[31mX\r\nvmcore: fake line\x07'), 'machine \\x1b[31mX\\x0d\\x0avmcore: fake line\\x07');
  assert.equal(printable('\x7f\x9b\x00'), '\\x7f\\x9b\\x00');
  assert.equal(printable('x86_64 é — ok'), 'x86_64 é — ok');
});

test('printable: the bidirectional formatting characters (a right-to-left override) as \\uNNNN', () => {
  assert.equal(printable('init\u202egnp.exe'), 'init\\u202egnp.exe');
  assert.equal(printableText('a\u2066b\u2069\u200f\n'), 'a\\u2066b\\u2069\\u200f\n');
});

test('jsonText: DEL, C1 controls and bidirectional formatting characters written as \\uXXXX, the same value parsed back', () => {
  const v = { comm: 'x\u009b2J\u0085\u202e\u007fy', n: 1n << 40n };
  const t = jsonText(v);
  assert.ok(!/[\u007f-\u009f\u202e]/.test(t), t);
  assert.match(t, /x\\u009b2J\\u0085\\u202e\\u007fy/);
  assert.deepEqual(JSON.parse(t), { comm: v.comm, n: '0x10000000000' });
  assert.equal(jsonText({ a: 1 }, 0), '{"a":1}');
});

test('printableText: tab and newline kept, every other control character escaped', () => {
  assert.equal(printableText('a\tb\nc\r\x1b[2J\x9b'), 'a\tb\nc\\x0d\\x1b[2J\\x9b');
});

test('info: a hostile utsname in the header is printed escaped on stdout, and kept whole in --json', () => {
  const dir = mkdtempSync(join(tmpdir(), 'vmcore-printable-'));
  try {
    // disk_dump_header.utsname.version: new_utsname at byte 12, version its 4th 65-byte field
    const b = readFileSync(SAMPLE);
    const version = '#1 \x1b[2J\x1b[Hforged\rline\nTaint         TAINTED: P O';
    b.fill(0, 12 + 3 * 65, 12 + 4 * 65);
    b.write(version, 12 + 3 * 65, 'latin1');
    const f = join(dir, 'hostile.kdump');
    writeFileSync(f, b);
    const r = vmcore('info', f);
    assert.equal(r.rc, 0, r.err);
    assert.ok(!/[\x00-\x08\x0b-\x1f\x7f]/.test(r.out), 'no control character on stdout');
    assert.match(r.out, /#1 \\x1b\[2J\\x1b\[Hforged\\x0dline\\x0aTaint {9}TAINTED: P O/);
    // the newline does not forge a report line of its own
    assert.deepEqual(r.out.split('\n').filter((l) => l.startsWith('Taint')), ['Taint         not tainted']);
    const j = vmcore('info', f, '--json');
    assert.equal(j.rc, 0, j.err);
    assert.ok(j.out.includes(JSON.stringify(version).slice(1, -1)), 'JSON carries the string, JSON-escaped');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('ps and bt: a comm holding a newline or an escape sequence stays on its own line, escaped', async () => {
  const { formatTasks } = await import('../../src/cli/commands/ps.js');
  const { formatTaskBacktrace } = await import('../../src/core/kernel/backtrace.js');
  const task = { pid: 42, tgid: 42, ppid: 1, cpu: 0, state: 'S', comm: 'x\n  43 1 0 0 R evil\x1b[2J', task: 0xffff888000001000n, kthread: false, active: false, panic: false };
  const out = formatTasks([task as never]);
  assert.equal(out.split('\n').length, 3, out); // the header, the task, the final newline
  assert.ok(out.includes('x\\x0a  43 1 0 0 R evil\\x1b[2J'), out);
  const bt = formatTaskBacktrace({ task: { ...task, activeCpu: null }, frames: [], exceptionFrames: [], stop: 'end_of_stack', stopDetail: '', start: 'none', arch: 'x86_64' } as never, undefined);
  assert.ok(!/[\x00-\x09\x0b-\x1f]/.test(bt.split('\n')[0]!), bt);
  assert.match(bt, /COMMAND: "x\\x0a {2}43 1 0 0 R evil\\x1b\[2J"/);
});
