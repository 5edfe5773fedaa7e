// A kdump header's machine string (utsname.machine, byte 12 + 4 × 65) that names no
// architecture does not switch the kernel analysis off when the kernel's VMCOREINFO names it:
// info, bt and ps analyse the dump as x86_64 and say that the header was ignored (bt had
// refused it: "backtraces are implemented for x86_64 and aarch64 only").
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { vmcore } from '../helpers/cli.js';

const SAMPLE = fileURLToPath(new URL('../../../samples/seabios-128M.md-c-d31.kdump', import.meta.url));

function withMachine(dir: string, machine: string): string {
  const b = readFileSync(SAMPLE);
  b.fill(0, 12 + 4 * 65, 12 + 5 * 65);
  b.write(machine, 12 + 4 * 65, 'latin1');
  const f = join(dir, 'machine.kdump');
  writeFileSync(f, b);
  return f;
}

test('a damaged header machine string: the kernel analysed as VMCOREINFO says, with a warning', () => {
  const dir = mkdtempSync(join(tmpdir(), 'vmcore-machine-'));
  try {
    const f = withMachine(dir, 'x86_64\x1b[K');
    const info = JSON.parse(vmcore('info', f, '--json').out) as { kernelState: { tasks: number } | null; warnings: { code: string; text: string }[] };
    assert.equal(info.kernelState?.tasks, 47);
    assert.ok(info.warnings.some((w) => w.code === 'HEADER_FIELD_IGNORED' && /analysed as x86_64/.test(w.text)), JSON.stringify(info.warnings));
    const bt = vmcore('bt', f);
    assert.equal(bt.rc, 0, bt.err);
    assert.match(bt.out, /^ #2 \[[0-9a-f]+\] sysrq_handle_crash\+0x16\/0x20$/m);
    assert.equal(vmcore('ps', f).rc, 0);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
