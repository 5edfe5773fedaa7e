/**
 * `vmcore dmesg` against the peers, live:
 *  - makedumpfile --dump-dmesg on the sample and on makedumpfile's own re-filterings of it (LZO,
 *    flattened, split): our text must be byte-identical;
 *  - the real QEMU corpus (env VMCORE_CORPUS, default ../shared/corpus next to the repository):
 *    every kernel line of each guest's serial console must be in the log we read (these dumps
 *    need the true phys_base, and the OVMF no-vmcoreinfo case the VMCOREINFO recovered from
 *    memory); where makedumpfile can read a dump (after -R for QEMU's flattened output) its
 *    output must equal ours; drgn's dmesg from the corpus truth must equal our records.
 * Skips with a message when a tool or the corpus is absent.
 */
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, openSync, closeSync, readdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { openDumpFiles } from '../../src/node/open.js';
import { analyzeKernel } from '../../src/core/kernel/kernel.js';
import { readDmesg, formatDmesg, type DmesgLog } from '../../src/core/kernel/dmesg.js';

const root = fileURLToPath(new URL('../../../', import.meta.url));
const SAMPLE = join(root, 'samples/seabios-128M.md-c-d31.kdump');
const corpus = process.env.VMCORE_CORPUS ?? resolve(root, '../shared/corpus');
const tmp = mkdtempSync(join(tmpdir(), 'vmcore-dmesg-'));
after(() => rmSync(tmp, { recursive: true, force: true }));

function has(cmd: string, args: string[]): boolean {
  const r = spawnSync(cmd, args, { stdio: 'ignore' });
  return r.error === undefined;
}
const haveMakedumpfile = has('makedumpfile', ['-v']);
const haveZstd = has('zstd', ['--version']);

function run(cmd: string, args: string[], opts: { stdout?: string; stdin?: string } = {}): { ok: boolean; err: string } {
  const fds: number[] = [];
  const stdio: ['ignore' | number, 'ignore' | number, 'pipe'] = ['ignore', 'ignore', 'pipe'];
  if (opts.stdin) fds.push((stdio[0] = openSync(opts.stdin, 'r')));
  if (opts.stdout) fds.push((stdio[1] = openSync(opts.stdout, 'w')));
  try {
    const r = spawnSync(cmd, args, { stdio, maxBuffer: 16 << 20 });
    return { ok: r.status === 0, err: r.stderr?.toString() ?? String(r.error) };
  } finally {
    for (const f of fds) closeSync(f);
  }
}

async function ours(paths: string[]): Promise<{ log: DmesgLog; text: Buffer; source: string }> {
  const dump = await openDumpFiles(paths);
  try {
    const k = await analyzeKernel(dump);
    assert.ok(k.vmcoreinfo, `no VMCOREINFO for ${paths.join(' ')}`);
    const log = await readDmesg({ vmcoreinfo: k.vmcoreinfo, readVirt: (a, l) => k.readVirt(a, l) });
    return { log, text: Buffer.from(formatDmesg(log)), source: k.vmcoreinfoSource };
  } finally {
    await dump.close();
  }
}

function makedumpfileDmesg(dump: string, name: string): Buffer | undefined {
  const out = join(tmp, name);
  const r = run('makedumpfile', ['--dump-dmesg', dump, out]);
  return r.ok && existsSync(out) ? readFileSync(out) : undefined;
}

function consoleKernelLines(serial: string): string[] {
  const out: string[] = [];
  for (const raw of serial.split('\n')) {
    const m = /\[ *\d+\.\d{6}\] .*/.exec(raw.replace(/\r$/, ''));
    if (m) out.push(m[0]);
  }
  return out;
}

function consoleForm(log: DmesgLog): string[] {
  const dec = new TextDecoder('latin1');
  const out: string[] = [];
  for (const r of log.records) {
    if (r.lost || r.empty) continue;
    const s = (r.tsNsec / 1_000_000_000n).toString().padStart(5, ' ');
    const us = ((r.tsNsec % 1_000_000_000n) / 1000n).toString().padStart(6, '0');
    out.push(...dec.decode(r.text).split('\n').map((line) => `[${s}.${us}] ${line}`));
  }
  return out;
}

test('makedumpfile --dump-dmesg (live) equals ours on the sample and on its LZO, flattened and split re-filterings', { skip: (!haveMakedumpfile && 'makedumpfile is not installed') || (!existsSync(SAMPLE) && 'sample absent') }, async () => {
  const md = makedumpfileDmesg(SAMPLE, 'sample.md.txt');
  assert.ok(md, 'makedumpfile --dump-dmesg failed on the sample');
  assert.ok((await ours([SAMPLE])).text.equals(md));

  const lzo = join(tmp, 'sample.lzo.kdump');
  assert.ok(run('makedumpfile', ['-l', '-d', '31', SAMPLE, lzo]).ok);
  assert.ok((await ours([lzo])).text.equals(md), 'LZO re-filtering');
  const mdLzo = makedumpfileDmesg(lzo, 'lzo.md.txt');
  assert.ok(mdLzo?.equals(md));

  const flat = join(tmp, 'sample.flat');
  assert.ok(run('makedumpfile', ['-F', '-c', '-d', '31', SAMPLE], { stdout: flat }).ok);
  assert.ok((await ours([flat])).text.equals(md), 'flattened');

  const parts = [join(tmp, 'split.1'), join(tmp, 'split.2'), join(tmp, 'split.3')];
  assert.ok(run('makedumpfile', ['--split', '-c', '-d', '31', SAMPLE, ...parts]).ok);
  assert.ok((await ours(parts)).text.equals(md), 'split set');
});

const cases = existsSync(corpus) ? readdirSync(corpus).filter((c) => existsSync(join(corpus, c, 'serial.log'))).sort() : [];

test('QEMU corpus: every kernel console line is in the log; makedumpfile and drgn agree where they can read the dump', { skip: cases.length === 0 && `corpus not found at ${corpus} (set VMCORE_CORPUS)` }, async (t) => {
  assert.equal(cases.length, 3);
  for (const c of cases) {
    const dir = join(corpus, c);
    const lines = consoleKernelLines(readFileSync(join(dir, 'serial.log'), 'latin1'));
    assert.ok(lines.some((l) => l.includes('Kernel panic - not syncing')), `${c}: serial log has the panic`);
    const files: Array<[string, string]> = [];
    if (existsSync(join(dir, 'qemu-kdump-zlib.vmcore'))) files.push(['qemu-kdump-zlib.vmcore', join(dir, 'qemu-kdump-zlib.vmcore')]);
    if (existsSync(join(dir, 'md/md-c-d31.kdump'))) files.push(['md/md-c-d31.kdump', join(dir, 'md/md-c-d31.kdump')]);
    if (existsSync(join(dir, 'qemu-elf.vmcore.zst'))) {
      if (haveZstd) {
        const elf = join(tmp, `${c}.elf`);
        assert.ok(run('zstd', ['-q', '-d', '-f', join(dir, 'qemu-elf.vmcore.zst'), '-o', elf]).ok);
        files.push(['qemu-elf.vmcore', elf]);
      } else t.diagnostic(`${c}: zstd not installed, QEMU ELF skipped`);
    }
    assert.ok(files.length > 0);
    let first: Buffer | undefined;
    for (const [name, path] of files) {
      const { log, text, source } = await ours([path]);
      const have = new Set(consoleForm(log));
      const missing = lines.filter((l) => !have.has(l));
      assert.deepEqual(missing, [], `${c}/${name}: console lines missing from the dump's log`);
      assert.deepEqual(log.warnings, [], `${c}/${name}`);
      if (c.includes('novmci')) assert.match(source, /memory scan/, `${c}/${name}: VMCOREINFO recovered from memory`);
      // every file of one case holds the same memory: the same log
      if (first) assert.ok(text.equals(first), `${c}/${name}: same log as the case's other files`);
      else first = text;
      t.diagnostic(`${c}/${name}: ${log.records.length} records, ${lines.length} console lines all present (VMCOREINFO: ${source})`);
    }

    if (haveMakedumpfile && first) {
      // makedumpfile reads QEMU's flattened output only after -R; it fails where phys_base or VMCOREINFO is missing
      const rearranged = join(tmp, `${c}.kdump`);
      const r = run('makedumpfile', ['-R', rearranged], { stdin: join(dir, 'qemu-kdump-zlib.vmcore') });
      const md = r.ok ? makedumpfileDmesg(rearranged, `${c}.md.txt`) : undefined;
      if (md) assert.ok(md.equals(first), `${c}: makedumpfile --dump-dmesg output differs from ours`);
      else t.diagnostic(`${c}: makedumpfile cannot print this dump's log (ours can)`);
      rmSync(rearranged, { force: true });
    }

    const drgn = join(corpus, 'truth', c, 'md__md-c-d31.kdump.drgn-dmesg.txt');
    if (existsSync(drgn) && first) {
      const { log } = await ours([files.find(([n]) => n.startsWith('md/'))?.[1] ?? files[0]![1]]);
      const drgnLines = readFileSync(drgn, 'latin1').split('\n').filter((l) => l !== '');
      // drgn prints "[%5d.%06d] text" per record (continuation lines unprefixed)
      const dec = new TextDecoder('latin1');
      const drgnForm = log.records
        .filter((r) => !r.lost)
        .map((r) => `[${((r.tsNsec / 1_000_000_000n).toString()).padStart(5, ' ')}.${((r.tsNsec % 1_000_000_000n) / 1000n).toString().padStart(6, '0')}] ${dec.decode(r.text)}`)
        .join('\n')
        .split('\n');
      assert.deepEqual(drgnForm, drgnLines, `${c}: drgn get_dmesg`);
    }
    for (const f of readdirSync(tmp)) if (f.startsWith(c)) rmSync(join(tmp, f), { force: true });
  }
});
