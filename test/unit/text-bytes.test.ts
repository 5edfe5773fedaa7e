// A dump's strings as text and back: ISO-8859-1 where bytes must come back (VMCOREINFO, note
// names), UTF-8 where the field is text (a header's utsname); windows-1252, which the WHATWG
// label 'latin1' names, gives neither.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { dumpText, dumpTextBytes, latin1, latin1Bytes } from '../../src/core/text.js';
import { vmcore } from '../helpers/cli.js';

const SAMPLE = fileURLToPath(new URL('../../../samples/seabios-128M.md-c-d31.kdump', import.meta.url));

test('latin1: every byte value is one character U+0000..U+00FF and comes back as the same byte', () => {
  const all = Uint8Array.from({ length: 256 }, (_, i) => i);
  const s = latin1(all);
  assert.equal(s.length, 256);
  for (let i = 0; i < 256; i++) assert.equal(s.charCodeAt(i), i);
  assert.deepEqual(latin1Bytes(s), all);
  // windows-1252 would have made 0x80 the euro sign
  assert.equal(latin1(Uint8Array.of(0x41, 0x80)), 'A\u0080');
  assert.equal(latin1(Uint8Array.of(0x41, 0xe9)), 'Aé');
});

test('dumpText: UTF-8 when the bytes are valid UTF-8, else one character per byte; dumpTextBytes cuts at a character', () => {
  const utf8 = new TextEncoder().encode('hôte-ü');
  assert.equal(dumpText(utf8), 'hôte-ü');
  assert.deepEqual(dumpTextBytes('hôte-ü', 64), utf8);
  assert.equal(dumpText(Uint8Array.of(0x68, 0xf4, 0x74)), 'hôt'); // ISO-8859-1 bytes, not UTF-8
  assert.equal(dumpText(Uint8Array.of(0x9b, 0x41)), '\u009bA');
  // 'ô' is two bytes: a cut at 2 leaves 'h', never half a character
  assert.deepEqual(dumpTextBytes('hôte', 2), Uint8Array.of(0x68));
  assert.deepEqual(dumpTextBytes('hôte', 3), Uint8Array.of(0x68, 0xc3, 0xb4));
});

test('a header utsname in UTF-8 reads as its text, and conversions keep the header and a VMCOREINFO byte 0x80 byte for byte', () => {
  const dir = mkdtempSync(join(tmpdir(), 'vmcore-text-'));
  try {
    const b = readFileSync(SAMPLE);
    // disk_dump_header.utsname.nodename: new_utsname at byte 12, nodename its 2nd 65-byte field
    const nodename = new TextEncoder().encode('hôte-ü');
    b.fill(0, 12 + 65, 12 + 2 * 65);
    b.set(nodename, 12 + 65);
    // a byte 0x80 in a key no reader uses, inside the VMCOREINFO note
    const key = b.indexOf('OFFSET(vmap_area.va_start)=');
    assert.ok(key > 0);
    b[key + 12] = 0x80;
    const vmci = Buffer.from(b.subarray(key, key + 40));
    const f = join(dir, 'in.kdump');
    writeFileSync(f, b);
    const j = vmcore('info', f, '--json');
    assert.equal(j.rc, 0, j.err);
    assert.equal(JSON.parse(j.out).header.utsname.nodename, 'hôte-ü');
    for (const fmt of ['kdump', 'elf']) {
      const out = join(dir, `out.${fmt}`);
      const r = vmcore('convert', '--no-kernel', '--format', fmt, f, out);
      assert.equal(r.rc, 0, r.err);
      const o = readFileSync(out);
      assert.ok(o.indexOf(vmci) > 0, `${fmt}: the VMCOREINFO note keeps byte 0x80`);
      if (fmt === 'kdump') assert.deepEqual(o.subarray(12, 12 + 6 * 65), b.subarray(12, 12 + 6 * 65), 'utsname byte for byte');
      const back = vmcore('vmcoreinfo', out);
      assert.equal(back.rc, 0, back.err);
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
