/** vmcore serve: only the named files, Range/ETag/If-Range, read-only, loopback Host check, path traversal. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { request } from 'node:http';
import { mkdtemp, rm, symlink, unlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { serve, PAGE_CSP } from '../../src/node/serve.js';
import { HttpSource } from '../../src/core/io/http.js';
import { openDumpFiles } from '../../src/node/open.js';
import { isVmcoreError } from '../../src/core/errors.js';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '../../..');
const SAMPLE = join(ROOT, 'samples/seabios-128M.md-c-d31.kdump');

/** A raw request: the path goes out exactly as written (no URL normalisation). */
function raw(base: string, path: string, opts: { method?: string; headers?: Record<string, string> } = {}): Promise<{ status: number; headers: Record<string, string | string[] | undefined>; body: Buffer }> {
  const u = new URL(base);
  return new Promise((ok, fail) => {
    const r = request({ host: u.hostname, port: u.port, path, method: opts.method ?? 'GET', headers: opts.headers ?? {} }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => ok({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks) }));
    });
    r.on('error', fail);
    r.end();
  });
}

test('serve: the page with the dump list, the dumps with Range, and nothing else', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'vmcore-serve-'));
  const web = join(dir, 'web');
  await (await import('node:fs/promises')).mkdir(web);
  await writeFile(join(web, 'index.html'), '<html><head><meta name="vmcore-dumps" content="[]"></head></html>');
  await writeFile(join(web, 'app.js'), 'console.log(1)');
  await writeFile(join(dir, 'secret.txt'), 'secret');
  const small = join(dir, 'small "<dump>".bin');
  const bytes = Buffer.from(Array.from({ length: 10000 }, (_, i) => i & 255));
  await writeFile(small, bytes);
  const h = await serve({ dumps: [small, SAMPLE], webDir: web });
  try {
    assert.match(h.url, /^http:\/\/127\.0\.0\.1:\d+\/$/);
    const page = await raw(h.url, '/');
    assert.equal(page.status, 200);
    assert.equal(page.headers['content-security-policy'], PAGE_CSP);
    const meta = /content="([^"]*)"/.exec(page.body.toString())![1]!;
    const list = JSON.parse(meta.replace(/&quot;/g, '"').replace(/&lt;/g, '<').replace(/&amp;/g, '&'));
    assert.deepEqual(list[0], { name: 'small "<dump>".bin', url: '/dumps/0/small%20%22%3Cdump%3E%22.bin', size: 10000 });
    assert.doesNotMatch(page.body.toString(), /<dump>/, 'names are escaped in the page');
    assert.equal((await raw(h.url, '/app.js')).status, 200);

    const r = await raw(h.url, list[0].url, { headers: { Range: 'bytes=100-199' } });
    assert.equal(r.status, 206);
    assert.equal(r.headers['content-range'], 'bytes 100-199/10000');
    assert.deepEqual(r.body, bytes.subarray(100, 200));
    const etag = r.headers.etag as string;
    assert.deepEqual((await raw(h.url, list[0].url, { headers: { Range: 'bytes=-10' } })).body, bytes.subarray(9990));
    assert.equal((await raw(h.url, list[0].url, { headers: { Range: 'bytes=10000-' } })).status, 416);
    assert.equal((await raw(h.url, list[0].url, { headers: { Range: 'bytes=0-1,5-6' } })).status, 416, 'several ranges are refused, not answered with the whole file');
    assert.equal((await raw(h.url, list[0].url, { headers: { Range: 'bytes=0-1', 'If-Range': '"other"' } })).status, 200);
    const hd = await raw(h.url, list[0].url, { method: 'HEAD' });
    assert.equal(hd.status, 200);
    assert.equal(hd.headers['content-length'], '10000');
    assert.equal(hd.body.length, 0);

    // read-only, only loopback host names, and no other path reaches a file
    for (const m of ['PUT', 'POST', 'DELETE']) assert.equal((await raw(h.url, list[0].url, { method: m })).status, 405);
    assert.equal((await raw(h.url, '/', { headers: { Host: 'evil.example' } })).status, 403, 'DNS rebinding');
    for (const p of [
      '/index.html',
      '/dumps/',
      '/dumps/0/',
      '/dumps/0',
      '/dumps/2/x',
      '/dumps/0/secret.txt',
      '/dumps/0/../secret.txt',
      '/dumps/0/..%2fsecret.txt',
      '/dumps/0/%2e%2e/%2e%2e/secret.txt',
      '/../secret.txt',
      '/..%2f..%2fsecret.txt',
      '/web/../secret.txt',
      '//etc/passwd',
      '/%2fetc%2fpasswd',
      '/dumps/1/seabios-128M.md-c-d31.kdump/../../../../etc/passwd',
      '/dumps/0/small%20%22%3Cdump%3E%22.bin/..',
      '/app.js/../../secret.txt',
      '/.%2e/secret.txt',
    ]) {
      const x = await raw(h.url, p);
      assert.equal(x.status, 404, p);
      assert.doesNotMatch(x.body.toString(), /secret|root:/, p);
    }

    // the sample through the server, with the range source
    const dump = await openDumpFiles([h.dumpUrls[1]!]);
    assert.equal(dump.maxPfn, 32768);
    await dump.close();

    // a file replaced while it is read: a new ETag, and the range source says so
    const src = await HttpSource.open(h.dumpUrls[0]!, { blockSize: 4096, backoffMs: 1 });
    assert.equal(etag, (await raw(h.url, list[0].url, { method: 'HEAD' })).headers.etag);
    await new Promise((r) => setTimeout(r, 20));
    await writeFile(small, Buffer.alloc(10000, 7));
    await assert.rejects(src.read(8192, 10), (e: unknown) => isVmcoreError(e) && e.code === 'HTTP' && /changed/.test(e.message));
  } finally {
    await h.close();
    await rm(dir, { recursive: true, force: true });
  }
});

test('serve: a named dump replaced by a symlink (or a rename) after start still serves the file it opened', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'vmcore-serve-swap-'));
  const dump = join(dir, 'vmcore');
  const secret = join(dir, 'secret');
  await writeFile(dump, Buffer.alloc(8192, 0x4b));
  await writeFile(secret, 'root:x:0:0:secret\n');
  const h = await serve({ dumps: [dump], webDir: dir });
  try {
    await unlink(dump);
    await symlink(secret, dump);
    const x = await raw(h.url, new URL(h.dumpUrls[0]!).pathname, { headers: { Range: 'bytes=0-15' } });
    assert.equal(x.status, 206);
    assert.equal(x.headers['content-range'], 'bytes 0-15/8192');
    assert.deepEqual(x.body, Buffer.alloc(16, 0x4b));
    const whole = await raw(h.url, new URL(h.dumpUrls[0]!).pathname);
    assert.equal(whole.body.length, 8192);
    assert.doesNotMatch(whole.body.toString(), /secret|root:/);
  } finally {
    await h.close();
    await rm(dir, { recursive: true, force: true });
  }
});

test('serve refuses a missing dump and an empty list', async () => {
  await assert.rejects(serve({ dumps: ['/nonexistent/vmcore'] }), (e: unknown) => isVmcoreError(e) && e.code === 'IO');
  await assert.rejects(serve({ dumps: [] }), (e: unknown) => isVmcoreError(e) && e.code === 'USAGE');
});

test('vmcore serve --json: the page and dump URLs, then the range source reads the dump; Ctrl-C ends it with exit 0', async () => {
  const { spawn } = await import('node:child_process');
  const p = spawn(process.execPath, [join(ROOT, 'dist/src/cli/vmcore.js'), 'serve', '--json', '--quiet', SAMPLE]);
  try {
    const line = await new Promise<string>((ok, fail) => {
      let out = '';
      p.stdout.on('data', (d: Buffer) => {
        out += d;
        if (out.includes('\n')) ok(out.split('\n')[0]!);
      });
      p.on('exit', (c) => fail(new Error(`exited ${c}`)));
    });
    const j = JSON.parse(line) as { url: string; dumps: string[] };
    assert.match(j.url, /^http:\/\/127\.0\.0\.1:\d+\/$/);
    assert.deepEqual(j.dumps, [j.url + 'dumps/0/seabios-128M.md-c-d31.kdump']);
    const src = await HttpSource.open(j.dumps[0]!);
    assert.equal(src.size, 15221246);
    // Ctrl-C is how a server is stopped: it exits 0 (README), not 130
    const exited = new Promise<[number | null, string | null]>((r) => p.once('exit', (c, sig) => r([c, sig])));
    p.kill('SIGINT');
    assert.deepEqual(await exited, [0, null]);
  } finally {
    p.kill('SIGTERM');
  }
});
