/**
 * Real kernel memory from three QEMU dumps (excerpts, see test/fixtures/excerpts/README.md):
 * the true phys_base must be found and proven (including the OVMF case without the vmcoreinfo
 * device, where VMCOREINFO must be recovered from memory and the header says 0), and the kernel
 * log must hold every kernel line of the guest's serial console, the panic included.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { openDumpFiles } from '../../src/node/open.js';
import { analyzeKernel } from '../../src/core/kernel/kernel.js';
import { readDmesg } from '../../src/core/kernel/dmesg.js';
import { describeDump } from '../../src/core/info.js';

const DIR = join(resolve(dirname(fileURLToPath(import.meta.url)), '../../..'), 'test/fixtures/excerpts');
const truth = JSON.parse(readFileSync(join(DIR, 'truth.json'), 'utf8')).cases as Record<string, { truth_phys_base: string; vmcoreinfo_device: boolean }>;

function consoleKernelLines(serial: string): string[] {
  const out: string[] = [];
  for (const raw of serial.split('\n')) {
    const m = /\[ *\d+\.\d{6}\] .*/.exec(raw.replace(/\r$/, ''));
    if (m) out.push(m[0].trimEnd());
  }
  return out;
}

for (const [name, t] of Object.entries(truth)) {
  test(`${name}: true phys_base proven, console log recovered`, async () => {
    const dump = await openDumpFiles([join(DIR, `${name}.kdump`)]);
    try {
      const k = await analyzeKernel(dump);
      const info = await describeDump(dump, k);
      assert.equal(info.physBase.value, t.truth_phys_base);
      const headerRight = info.physBase.header === t.truth_phys_base;
      assert.equal(info.physBase.verdict, headerRight ? 'header correct' : 'header wrong');
      assert.ok(info.physBase.proof.some((p) => p.code === 'UTSNAME_MATCHES'), JSON.stringify(info.physBase.proof));
      assert.equal(info.vmcoreinfo.source.startsWith('memory scan'), !t.vmcoreinfo_device);
      assert.equal(info.kernel.release, '6.1.0-56-cloud-amd64');
      const log = await readDmesg({ vmcoreinfo: k.vmcoreinfo!, readVirt: (a, n) => k.readVirt(a, n) });
      const dec = new TextDecoder('latin1');
      const have = new Set<string>();
      for (const r of log.records) {
        if (r.lost) continue;
        const s = (r.tsNsec / 1_000_000_000n).toString().padStart(5, ' ');
        const us = ((r.tsNsec % 1_000_000_000n) / 1000n).toString().padStart(6, '0');
        for (const line of dec.decode(r.text).split('\n')) have.add(`[${s}.${us}] ${line}`.trimEnd());
      }
      const lines = consoleKernelLines(readFileSync(join(DIR, `${name}.serial.log`), 'latin1'));
      assert.ok(lines.length > 300);
      const missing = lines.filter((l) => !have.has(l));
      assert.deepEqual(missing, []);
      assert.ok(lines.some((l) => l.includes('Kernel panic - not syncing: sysrq triggered crash')));
      assert.ok(lines.some((l) => l.includes(`VMCORE-CORPUS-MARKER ${name}`)));
    } finally {
      await dump.close();
    }
  });
}
