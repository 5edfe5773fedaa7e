// read --hex writes its dump in pieces as it makes them (src/cli/util.ts hexdumpChunks): a large
// read made into one string passed V8's string length limit after 3 GB of memory.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { hexdumpChunks } from '../../src/cli/util.js';

test('hexdumpChunks: pieces of at most 4096 lines, together the whole dump, addresses from the base', () => {
  const data = Uint8Array.from({ length: (1 << 20) + 5 }, (_, i) => (i * 7) & 0xff);
  const pieces = [...hexdumpChunks(data, 0xffff880000000000n)];
  assert.equal(pieces.length, 17, '65,537 lines in pieces of 4096');
  for (const p of pieces) assert.ok(p.split('\n').length - 1 <= 4096);
  const lines = pieces.join('').split('\n');
  assert.equal(lines.length, 65537 + 1);
  assert.equal(lines[0], 'ffff880000000000  00 07 0e 15 1c 23 2a 31 38 3f 46 4d 54 5b 62 69  |.....#*18?FMT[bi|');
  assert.equal(lines[65536], 'ffff880000100000  00 07 0e 15 1c                                   |.....|');
  assert.deepEqual([...hexdumpChunks(new Uint8Array(0), 0)], []);
});
