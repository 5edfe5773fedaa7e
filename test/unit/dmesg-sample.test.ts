/**
 * `vmcore dmesg` on the real makedumpfile sample (samples/seabios-128M.md-c-d31.kdump, a Debian
 * 6.1 guest that panicked through sysrq-c). Truth:
 *  - test/fixtures/dmesg/seabios-128M.makedumpfile-dump-dmesg.txt: written by
 *    `makedumpfile --dump-dmesg` 1.7.2 from that file (the output must be byte-identical);
 *  - test/fixtures/dmesg/seabios-128M.serial.log: the guest's serial console; every kernel line
 *    on it, the panic message included, must be in the log read from the dump.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, existsSync } from 'node:fs';
import { execFileSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { openDumpFiles } from '../../src/node/open.js';
import { analyzeKernel } from '../../src/core/kernel/kernel.js';
import { readDmesg, formatDmesg, type DmesgLog } from '../../src/core/kernel/dmesg.js';

const root = fileURLToPath(new URL('../../../', import.meta.url));
const SAMPLE = root + 'samples/seabios-128M.md-c-d31.kdump';
const EXPECTED = readFileSync(root + 'test/fixtures/dmesg/seabios-128M.makedumpfile-dump-dmesg.txt');
const SERIAL = readFileSync(root + 'test/fixtures/dmesg/seabios-128M.serial.log', 'latin1');

/** Kernel console lines of a serial log: `[ssss.uuuuuu] text`, CR stripped. */
function consoleKernelLines(serial: string): string[] {
  const out: string[] = [];
  for (const raw of serial.split('\n')) {
    const m = /\[ *\d+\.\d{6}\] .*/.exec(raw.replace(/\r$/, ''));
    if (m) out.push(m[0]);
  }
  return out;
}

/** The console form of the records: every line of a record carries the timestamp prefix. */
function consoleForm(log: DmesgLog): Set<string> {
  const dec = new TextDecoder('latin1');
  const set = new Set<string>();
  for (const r of log.records) {
    if (r.lost) continue;
    const s = (r.tsNsec / 1_000_000_000n).toString().padStart(5, ' ');
    const us = ((r.tsNsec % 1_000_000_000n) / 1000n).toString().padStart(6, '0');
    for (const line of dec.decode(r.text).split('\n')) set.add(`[${s}.${us}] ${line}`);
  }
  return set;
}

const present = existsSync(SAMPLE);

test('sample: text output is byte-identical to makedumpfile --dump-dmesg and holds every console line', { skip: !present && 'samples/seabios-128M.md-c-d31.kdump is absent' }, async () => {
  const dump = await openDumpFiles([SAMPLE]);
  try {
    const k = await analyzeKernel(dump);
    assert.ok(k.vmcoreinfo);
    const log = await readDmesg({ vmcoreinfo: k.vmcoreinfo, readVirt: (a, l) => k.readVirt(a, l) });
    assert.equal(log.kind, 'lockless');
    assert.deepEqual(log.warnings, []);
    const out = formatDmesg(log);
    assert.equal(Buffer.from(out).toString('latin1'), EXPECTED.toString('latin1'));
    assert.ok(Buffer.from(out).equals(EXPECTED));

    const lines = consoleKernelLines(SERIAL);
    assert.ok(lines.length > 300);
    const have = consoleForm(log);
    const missing = lines.filter((l) => !have.has(l));
    assert.deepEqual(missing, []);
    assert.ok(lines.some((l) => l.includes('Kernel panic - not syncing: sysrq triggered crash')));
    assert.ok(lines.some((l) => l.includes('VMCORE-CORPUS-MARKER')));
    // the caller column: the panic ran in pid 1 (init), "CPU: 0 PID: 1 Comm: init"
    const panic = log.records.find((r) => new TextDecoder().decode(r.text).startsWith('Kernel panic - not syncing'));
    assert.equal(panic?.callerId, 1);
    assert.equal(panic?.level, 0);
  } finally {
    await dump.close();
  }
});

test('sample: the dmesg command prints the same bytes', { skip: !present && 'samples/seabios-128M.md-c-d31.kdump is absent' }, () => {
  // run the command module through commander in a child process (independent of main.ts wiring)
  const harness = `
    import { Command } from 'commander';
    import { register } from ${JSON.stringify(root + 'dist/src/cli/commands/dmesg.js')};
    const p = new Command(); p.exitOverride(); register(p);
    await p.parseAsync(['node', 'vmcore', 'dmesg', ${JSON.stringify(SAMPLE)}]);`;
  const out = execFileSync(process.execPath, ['--input-type=module', '-e', harness], { cwd: root, maxBuffer: 64 << 20 });
  assert.ok(out.equals(EXPECTED));
});
