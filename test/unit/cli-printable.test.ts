// Messages quote bytes of the dump; on a terminal they must stay one inert line.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { printable } from '../../src/cli/util.js';

test('printable: control characters (C0, DEL, C1) as \\xNN, the rest untouched', () => {
  assert.equal(printable('machine \x1b[31mX\r\nvmcore: fake line\x07'), 'machine \\x1b[31mX\\x0d\\x0avmcore: fake line\\x07');
  assert.equal(printable('\x7f\x9b\x00'), '\\x7f\\x9b\\x00');
  assert.equal(printable('x86_64 é — ok'), 'x86_64 é — ok');
});
