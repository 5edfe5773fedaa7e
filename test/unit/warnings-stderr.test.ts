/**
 * Data on stdout, messages on stderr: in text mode every command prints its warnings on stderr as
 * `warning: TEXT` and none on stdout (`--json` keeps them in `warnings[]`). Input: the bundled
 * sample with three damaged page descriptors (as damaged-pages.test.ts) and the header's status
 * marked DUMP_DH_COMPRESSED_INCOMPLETE (0x8, disk_dump_header.status at byte 424 of the 64-bit
 * layout), which every command that opens the file has to pass on.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { sampleWithDamagedDescs } from '../helpers/sample-variants.js';
import { vmcore } from '../helpers/cli.js';

const root = fileURLToPath(new URL('../../../', import.meta.url));
const SAMPLE = join(root, 'samples/seabios-128M.md-c-d31.kdump');

test('text mode: every command prints the dump\'s warnings on stderr, never on stdout', () => {
  const dir = mkdtempSync(join(tmpdir(), 'vmcore-warn-'));
  try {
    const f = join(dir, 'marked.kdump');
    const b = sampleWithDamagedDescs([0x1000, 0x1001, 0x32f7]);
    const dv = new DataView(b.buffer, b.byteOffset, b.byteLength);
    dv.setInt32(424, dv.getInt32(424, true) | 0x8, true);
    writeFileSync(f, b);
    const MARKED = /^warning: (\S+: )?the dump is marked incomplete \(DUMP_DH_COMPRESSED_INCOMPLETE\)/m;
    const cases: string[][] = [
      ['info', f],
      ['bt', f],
      ['ps', f],
      ['mod', f],
      ['sym', f, 'sysrq_handle_crash'],
      ['dmesg', f],
      ['usage', f, '--sample', '16'],
      ['hash', '--quiet', f],
      ['vmcoreinfo', f],
      ['struct', f, 'task_struct', '-o'],
      ['read', f, '--phys', '0x2000000', '--length', '16', '--hex'],
      ['diff', '--quiet', f, SAMPLE],
      // --quiet drops the progress bar and the summary, never a warning
      ['convert', '--quiet', '-l', f, join(dir, 'out.kdump')],
    ];
    const failures: string[] = [];
    for (const args of cases) {
      const r = vmcore(...args);
      const what = args[0]!;
      if (r.rc !== 0) failures.push(`${what}: exit ${r.rc}: ${r.err}`);
      if (/warning/i.test(r.out)) failures.push(`${what}: a warning on stdout: ${r.out.split('\n').filter((l) => /warning/i.test(l)).join(' | ')}`);
      if (!MARKED.test(r.err)) failures.push(`${what}: the dump's warning is not on stderr: ${JSON.stringify(r.err.slice(0, 400))}`);
    }
    assert.deepEqual(failures, []);
    // info: the damaged pages' warning too, on stderr, after the report on stdout
    const i = vmcore('info', f);
    assert.match(i.err, /^warning: 3 pages have damaged page descriptors/m);
    assert.match(i.out, /^Pages +frames \d+ .* damaged 3$/m);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
