// Messages quote bytes of the dump; on a terminal they must stay one inert line.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { printable, printableText } from '../../src/cli/util.js';
import { vmcore } from '../helpers/cli.js';

const SAMPLE = fileURLToPath(new URL('../../../samples/seabios-128M.md-c-d31.kdump', import.meta.url));

test('printable: control characters (C0, DEL, C1) as \\xNN, the rest untouched', () => {
  assert.equal(printable('machine \x1b[31mX\r\nvmcore: fake line\x07'), 'machine \\x1b[31mX\\x0d\\x0avmcore: fake line\\x07');
  assert.equal(printable('\x7f\x9b\x00'), '\\x7f\\x9b\\x00');
  assert.equal(printable('x86_64 é — ok'), 'x86_64 é — ok');
});

test('printableText: tab and newline kept, every other control character escaped', () => {
  assert.equal(printableText('a\tb\nc\r\x1b[2J\x9b'), 'a\tb\nc\\x0d\\x1b[2J\\x9b');
});

test('info: a hostile utsname in the header is printed escaped on stdout, and kept whole in --json', () => {
  const dir = mkdtempSync(join(tmpdir(), 'vmcore-printable-'));
  try {
    // disk_dump_header.utsname.version: new_utsname at byte 12, version its 4th 65-byte field
    const b = readFileSync(SAMPLE);
    const version = '#1 \x1b[2J\x1b[Hforged\rline';
    b.fill(0, 12 + 3 * 65, 12 + 4 * 65);
    b.write(version, 12 + 3 * 65, 'latin1');
    const f = join(dir, 'hostile.kdump');
    writeFileSync(f, b);
    const r = vmcore('info', f);
    assert.equal(r.rc, 0, r.err);
    assert.ok(!/[\x00-\x08\x0b-\x1f\x7f]/.test(r.out), 'no control character on stdout');
    assert.match(r.out, /#1 \\x1b\[2J\\x1b\[Hforged\\x0dline/);
    const j = vmcore('info', f, '--json');
    assert.equal(j.rc, 0, j.err);
    assert.ok(j.out.includes(JSON.stringify(version).slice(1, -1)), 'JSON carries the string, JSON-escaped');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
