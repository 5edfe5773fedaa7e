/** The CLI on http:// URLs: every reading command, --stats, the fetch JSON key. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { startRangeServer } from '../helpers/range-server.js';
import { vmcoreAsync as vmcore } from '../helpers/cli.js';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '../../..');
const SAMPLE = join(ROOT, 'samples/seabios-128M.md-c-d31.kdump');


test('info, dmesg, read, vmcoreinfo, hash and convert take a URL; --stats and --json say what was fetched', async () => {
  const file = await readFile(SAMPLE);
  const srv = await startRangeServer(file);
  const url = `${srv.url}/sample.kdump?sig=secret`;
  try {
    const info = await vmcore('info', '--json', '--stats', url);
    assert.equal(info.rc, 0, info.err);
    const j = JSON.parse(info.out);
    const local = JSON.parse((await vmcore('info', '--json', SAMPLE)).out);
    assert.equal(j.physBase.verdict, 'header correct');
    assert.deepEqual(j.panic, local.panic);
    // over HTTP the pages are counted from the bitmaps (info-pages.test.ts), locally from every descriptor
    assert.equal(j.pageCount, 'bitmaps');
    assert.equal(local.pageCount, 'full');
    assert.deepEqual(j.pages, { ...local.pages, data: null, zeroShared: null, damaged: null });
    assert.equal(j.files[0].name, `${srv.url}/sample.kdump?…`, 'the query (credentials) is not shown');
    assert.equal(j.fetch.remoteBytes, file.length);
    // The kernel analysis (kallsyms, BTF, ORC tables for the panic backtrace) reads a fixed few
    // MiB of the kernel image whatever the dump's size: on this 14.5 MiB sample that is a third
    // of the file, on a multi-GiB dump well under 1 %. Bound it in bytes, and the format-level
    // reading (headers, bitmap, descriptors) as a fraction.
    assert.ok(j.fetch.bytesFetched > 0 && j.fetch.bytesFetched < 8 << 20, JSON.stringify(j.fetch));
    const bare = JSON.parse((await vmcore('info', '--json', '--no-kernel', url)).out);
    assert.ok(bare.fetch.bytesFetched > 0 && bare.fetch.fraction < 0.1, JSON.stringify(bare.fetch));
    assert.match(info.err, /^stats: fetched .* \(\d+ bytes, \d+\.\d\d% of 14\.5 MiB\) in \d+ HTTP requests\n$/);
    assert.equal(local.fetch, undefined, 'no fetch key for a local file');

    const dm = await vmcore('dmesg', url);
    assert.equal(dm.rc, 0, dm.err);
    assert.equal(dm.out, await readFile(join(ROOT, 'test/fixtures/dmesg/seabios-128M.makedumpfile-dump-dmesg.txt'), 'utf8'), 'byte-identical to makedumpfile --dump-dmesg');
    assert.match(dm.out, /Kernel panic - not syncing: sysrq triggered crash/);
    const rd = await vmcore('read', url, '--phys', '0x1000000', '--length', '64', '--hex');
    const rl = await vmcore('read', SAMPLE, '--phys', '0x1000000', '--length', '64', '--hex');
    assert.equal(rd.rc, 0, rd.err);
    assert.equal(rd.out, rl.out);
    const vi = await vmcore('vmcoreinfo', '-q', url);
    assert.match(vi.out, /^OSRELEASE=6\.1\.0-56-cloud-amd64$/m);
    const h = await vmcore('hash', '--json', url);
    const hj = JSON.parse(h.out);
    assert.equal(hj.sha256, '03c2b8685986e5ee4bcfee31fc94ef61c42dfed7ec5029f6194829dc174feacb');
    assert.equal(hj.fetch.bytesFetched, file.length, 'the whole file once');
    const fx = await vmcore('fix', '--in-place', url);
    assert.equal(fx.rc, 2);
    assert.match(fx.err, /--in-place needs a local file/);
    assert.doesNotMatch(fx.err, /secret/);
  } finally {
    await srv.close();
  }
  const bad = await startRangeServer(file);
  bad.ignoreRange = true;
  try {
    const r = await vmcore('info', bad.url + '/x');
    assert.equal(r.rc, 1);
    assert.match(r.err, /^vmcore: HTTP: .*ignored the Range request/);
  } finally {
    await bad.close();
  }
});
