// A dump's strings as text and back: ISO-8859-1 where bytes must come back (VMCOREINFO, note
// names), UTF-8 where the field is text (a header's utsname); windows-1252, which the WHATWG
// label 'latin1' names, gives neither.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { charCodes, dumpText, headerText, latin1, latin1Bytes } from '../../src/core/text.js';
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
  // long inputs (made 4096 bytes a call), with and without bytes 0x80-0x9f, short ones directly
  for (const n of [10, 64, 65, 4096, 4097, 10000]) {
    for (const withC1 of [false, true]) {
      const b = Uint8Array.from({ length: n }, (_, i) => (withC1 && i === n - 1 ? 0x85 : 0xa0 + (i % 96)));
      const t = latin1(b);
      assert.equal(t.length, n);
      assert.deepEqual(latin1Bytes(t), b, `${n} bytes, ${withC1 ? 'with' : 'without'} a C1 byte`);
      assert.equal(charCodes(b), t);
    }
  }
});

test('dumpText: UTF-8 when the bytes are valid UTF-8 (a leading BOM kept), else one character per byte; headerText of a field read byte by byte', () => {
  const utf8 = new TextEncoder().encode('hôte-ü');
  assert.equal(dumpText(utf8), 'hôte-ü');
  assert.equal(headerText(latin1(utf8)), 'hôte-ü');
  assert.equal(dumpText(Uint8Array.of(0xef, 0xbb, 0xbf, 0x61)), '\ufeffa');
  assert.equal(dumpText(Uint8Array.of(0x68, 0xf4, 0x74)), 'hôt'); // ISO-8859-1 bytes, not UTF-8
  assert.equal(dumpText(Uint8Array.of(0x9b, 0x41)), '\u009bA');
});

test('a header utsname reads as text (UTF-8 when valid), and conversions keep its bytes, valid UTF-8 or not, and a VMCOREINFO byte 0x80', () => {
  const dir = mkdtempSync(join(tmpdir(), 'vmcore-text-'));
  try {
    const b = readFileSync(SAMPLE);
    // disk_dump_header.utsname: new_utsname at byte 12, six 65-byte fields
    const field = (i: number, bytes: Uint8Array) => {
      b.fill(0, 12 + i * 65, 12 + (i + 1) * 65);
      b.set(bytes, 12 + i * 65);
    };
    field(1, new TextEncoder().encode('hôte-ü')); // nodename: UTF-8
    field(5, new Uint8Array(65).fill(0xe9)); // domainname: 65 ISO-8859-1 bytes, no NUL
    // a byte 0x80 in a key no reader uses, inside the VMCOREINFO note
    const key = b.indexOf('OFFSET(vmap_area.va_start)=');
    assert.ok(key > 0);
    b[key + 12] = 0x80;
    const vmci = Buffer.from(b.subarray(key, key + 40));
    const f = join(dir, 'in.kdump');
    writeFileSync(f, b);
    const j = vmcore('info', f, '--json');
    assert.equal(j.rc, 0, j.err);
    const uts = JSON.parse(j.out).header.utsname;
    assert.equal(uts.nodename, 'hôte-ü');
    assert.equal(uts.domainname, 'é'.repeat(65));
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
