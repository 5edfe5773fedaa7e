/**
 * Page filtering against makedumpfile 1.7.2 on the real corpus (env VMCORE_CORPUS, default
 * ../shared/corpus; in CI a missing corpus or makedumpfile fails instead of skipping).
 * Every case is a Debian 6.1 guest dumped by QEMU. makedumpfile cannot read QEMU's own files,
 * so `vmcore fix` first makes the kdump one readable (true phys_base, VMCOREINFO recovered from
 * memory when QEMU had no vmcoreinfo device). Then, for dump levels 2, 4, 8, 16 and 31,
 * `makedumpfile -c -d N` and `vmcore convert -c -d N` of that same file must hold exactly the
 * same page frames with the same content: the memory digest (SHA-256 over pfn ‖ page of every
 * present page) and the page counts are compared. vmcore also filters QEMU's original file
 * directly, with the same result.
 */
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { fixDump } from '../../src/node/fix.js';
import { openDumpFiles } from '../../src/node/open.js';
import { hashMemory } from '../../src/core/hash.js';
import { nodeSha256 } from '../../src/node/hash.js';

const root = fileURLToPath(new URL('../../../', import.meta.url));
const CLI = join(root, 'dist/src/cli/vmcore.js');
const corpus = process.env['VMCORE_CORPUS'] ?? resolve(root, '../shared/corpus');
const haveCorpus = existsSync(join(corpus, 'truth', 'index.json'));
const haveMakedumpfile = spawnSync('makedumpfile', ['-v'], { stdio: 'ignore' }).error === undefined;
const CI = process.env['CI'] === 'true';
const tmp = mkdtempSync(join(process.env['VMCORE_SCRATCH'] ?? tmpdir(), 'vmcore-filter-corpus-'));
after(() => rmSync(tmp, { recursive: true, force: true }));

const LEVELS = [2, 4, 8, 16, 31];

async function digest(path: string): Promise<{ sha256: string; pages: number; excluded: number }> {
  const d = await openDumpFiles([path]);
  try {
    const h = await hashMemory(d, { hasher: nodeSha256 });
    let excluded = 0;
    for await (const r of d.pageRuns()) if (r.state === 'excluded') excluded += r.endPfn - r.startPfn;
    return { sha256: h.sha256, pages: h.pages, excluded };
  } finally {
    await d.close();
  }
}

function run(cmd: string, args: string[]): { status: number | null; out: string; err: string } {
  const r = spawnSync(cmd, args, { maxBuffer: 64 << 20 });
  return { status: r.status, out: r.stdout?.toString() ?? '', err: r.stderr?.toString() ?? String(r.error) };
}

const missing = !haveCorpus ? `corpus not found at ${corpus} (set VMCORE_CORPUS)` : !haveMakedumpfile ? 'makedumpfile not installed' : '';
if (missing) {
  test('page filtering against makedumpfile on the corpus', CI ? {} : { skip: missing }, () => assert.fail(missing));
} else {
  const cases = Object.keys((JSON.parse(readFileSync(join(corpus, 'truth', 'index.json'), 'utf8')) as { cases: Record<string, unknown> }).cases);
  for (const name of cases) {
    test(`${name}: vmcore -d N holds the same pages as makedumpfile 1.7.2 -d N (N = ${LEVELS.join(', ')})`, async () => {
      const orig = join(corpus, name, 'qemu-kdump-zlib.vmcore');
      const fixed = join(tmp, `${name}.fixed.kdump`);
      await fixDump(orig, { out: fixed, threads: 1 });
      for (const level of LEVELS) {
        const m = join(tmp, `${name}.m${level}.kdump`);
        const v = join(tmp, `${name}.v${level}.kdump`);
        const mr = run('makedumpfile', ['-c', '-d', String(level), fixed, m]);
        assert.equal(mr.status, 0, `makedumpfile -d ${level}: ${mr.out}${mr.err}`);
        const vr = run(process.execPath, [CLI, 'convert', '-c', '-d', String(level), '--threads', '1', '--json', fixed, v]);
        assert.equal(vr.status, 0, `vmcore convert -d ${level}: ${vr.err}`);
        const [dm, dv] = [await digest(m), await digest(v)];
        assert.ok(dm.excluded > 0, `makedumpfile -d ${level} left something out`);
        assert.deepEqual(dv, dm, `level ${level}: vmcore ${JSON.stringify(dv)} vs makedumpfile ${JSON.stringify(dm)}`);
        const s = JSON.parse(vr.out) as { filtered: Record<string, number> };
        assert.ok(Object.values(s.filtered).some((n) => n > 0));
        const od = await openDumpFiles([v]);
        const hdr = (await od.details().finally(() => od.close())).header as { dump_level: number };
        // the level asked for, plus the source's own (pages it already left out stay out)
        assert.equal(hdr.dump_level & level, level, 'the header records the level');
        rmSync(m);
        if (level !== 31) rmSync(v);
      }
      // straight from QEMU's flattened file (which makedumpfile cannot read): the same pages
      const direct = join(tmp, `${name}.direct31.kdump`);
      const r = run(process.execPath, [CLI, 'convert', '-c', '-d', '31', '--threads', '1', '--quiet', orig, direct]);
      assert.equal(r.status, 0, r.err);
      const a = await digest(direct);
      const b = await digest(join(tmp, `${name}.v31.kdump`));
      // convert leaves out QEMU's firmware pages above the kernel's memory map, as fix does
      assert.equal(a.pages, b.pages);
      assert.equal(a.sha256, b.sha256);
      rmSync(fixed);
    });
  }
}
