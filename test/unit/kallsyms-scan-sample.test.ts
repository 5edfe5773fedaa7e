/**
 * The kallsyms scan on a real dump: the bundled sample (Debian 6.1 guest, makedumpfile -c -d 31)
 * with the SYMBOL(kallsyms_*) entries taken out of its VMCOREINFO, as a kernel before 6.0 writes
 * it. The scan must find the very table that VMCOREINFO names in the intact sample: every
 * symbol's name, type letter and address equal (that table is itself checked against the -dbg
 * vmlinux's nm in test/interop/kallsyms-corpus.test.ts), and `info` must say "scan".
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { BufferSource } from '../../src/core/io/source.js';
import { openDump } from '../../src/core/format/open.js';
import { nodeCodecs } from '../../src/node/codecs.js';
import { analyzeKernel } from '../../src/core/kernel/kernel.js';
import { sampleBytes, sampleWithoutKallsymsVmcoreinfo } from '../helpers/sample-variants.js';

const ROOT = fileURLToPath(new URL('../../../', import.meta.url));
const CLI = join(ROOT, 'dist/src/cli/vmcore.js');

test('kallsyms scan on the sample: the same table as through VMCOREINFO, every symbol equal', async () => {
  const intact = await analyzeKernel(await openDump([new BufferSource(sampleBytes(), 'sample.kdump')], nodeCodecs()));
  const stripped = await analyzeKernel(await openDump([new BufferSource(sampleWithoutKallsymsVmcoreinfo(), 'stripped.kdump')], nodeCodecs()));
  assert.ok(intact.vmcoreinfo!.symbol('kallsyms_names') !== undefined);
  assert.equal(stripped.vmcoreinfo!.symbol('kallsyms_names'), undefined, 'the stripped VMCOREINFO names no kallsyms table');
  const a = await intact.symbols();
  const b = await stripped.symbols();
  assert.equal(a.source, 'VMCOREINFO');
  assert.equal(b.source, 'scan');
  assert.equal(b.addressMode, a.addressMode);
  assert.ok(a.count > 50_000, `${a.count} symbols`);
  assert.equal(b.count, a.count);
  assert.deepEqual(b.warnings, []);
  for (let i = 0; i < a.count; i++) {
    if (a.names[i] !== b.names[i] || a.addresses[i] !== b.addresses[i] || a.types[i] !== b.types[i]) {
      assert.fail(`symbol ${i}: VMCOREINFO ${a.types[i]} ${a.names[i]} 0x${a.addresses[i]!.toString(16)}, scan ${b.types[i]} ${b.names[i]} 0x${b.addresses[i]!.toString(16)}`);
    }
  }
});

test('kallsyms scan on the sample: info and info --json say "scan"; sym resolves', () => {
  const dir = mkdtempSync(join(tmpdir(), 'vmcore-scan-'));
  try {
    const f = join(dir, 'stripped.kdump');
    writeFileSync(f, sampleWithoutKallsymsVmcoreinfo());
    const run = (...args: string[]) => spawnSync(process.execPath, [CLI, ...args], { encoding: 'utf8', maxBuffer: 64 << 20 });
    const txt = run('info', f);
    assert.equal(txt.status, 0, txt.stderr);
    assert.match(txt.stdout, /Symbols +kallsyms, \d+ symbols {2}\[scan\]/);
    const j = run('info', f, '--json');
    assert.equal(j.status, 0, j.stderr);
    const ks = (JSON.parse(j.stdout) as { kernelState: { symbols: { source: string; count: number } } }).kernelState.symbols;
    assert.equal(ks.source, 'scan');
    const orig = JSON.parse(run('info', join(ROOT, 'samples/seabios-128M.md-c-d31.kdump'), '--json').stdout) as { kernelState: { symbols: { source: string; count: number } } };
    assert.deepEqual(orig.kernelState.symbols.source, 'VMCOREINFO');
    assert.equal(ks.count, orig.kernelState.symbols.count);
    const s = run('sym', f, 'sysrq_handle_crash', '--json');
    assert.equal(s.status, 0, s.stderr);
    const so = run('sym', join(ROOT, 'samples/seabios-128M.md-c-d31.kdump'), 'sysrq_handle_crash', '--json');
    assert.equal(s.stdout, so.stdout);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
