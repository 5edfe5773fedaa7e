/**
 * The web page in a real browser: Debian's chromium (VMCORE_CHROMIUM, default /usr/bin/chromium)
 * driven by playwright-core (nothing downloaded). The page (dist/web, built by
 * `npm run build:web`) opens the bundled sample
 *  - from `vmcore serve` (the page opens the named dump by itself, over Range requests),
 *  - through the file input, from the page served as plain static files,
 *  - from ?url= in the page address,
 * and must show the panic line, the phys_base verdict, a log search hit, the memory map drawn,
 * a hex view, the panic backtrace (the guest's own console call trace), the task list with a
 * backtrace on click and the modules (what `vmcore ps`, `bt` and `mod` read from the same file). A corrupt file dropped on the page gives an error, not a blank page, and a
 * dump whose log holds HTML shows it as text. Screenshots go to VMCORE_ARTIFACTS (default: a
 * temporary directory, printed). Without chromium the tests fail under CI=true and skip
 * otherwise.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:http';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { AddressInfo } from 'node:net';
import { serve, type ServeHandle } from '../../src/node/serve.js';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '../../..');
const SAMPLE = join(ROOT, 'samples/seabios-128M.md-c-d31.kdump');
const CLI = join(ROOT, 'dist/src/cli/vmcore.js');
const WEB = join(ROOT, 'dist/web');
const CHROMIUM = process.env.VMCORE_CHROMIUM ?? '/usr/bin/chromium';
const ARTIFACTS = process.env.VMCORE_ARTIFACTS ? join(process.env.VMCORE_ARTIFACTS, 'web') : mkdtempSync(join(tmpdir(), 'vmcore-web-artifacts-'));
mkdirSync(ARTIFACTS, { recursive: true });
const missing = !existsSync(CHROMIUM) ? `no chromium at ${CHROMIUM} (apt-get install chromium)` : !existsSync(join(WEB, 'index.html')) ? 'the page is not built (npm run build:web)' : null;
if (missing && process.env.CI === 'true') throw new Error(missing);
const skip = missing ?? false;

// playwright-core is a devDependency of this package only: loaded at run time, so that the
// type check does not need it.
/* eslint-disable @typescript-eslint/no-explicit-any */
type Browser = any;
type Page = any;
let browser: Browser;
let staticSrv: Server;
let staticUrl = '';
const tmp = mkdtempSync(join(tmpdir(), 'vmcore-web-'));

/** The page as plain static files (no `vmcore serve`), plus /sample.kdump with Range. */
function startStatic(): Promise<void> {
  const types: Record<string, string> = { html: 'text/html', js: 'text/javascript', css: 'text/css', map: 'application/json' };
  staticSrv = createServer((req, res) => {
    const p = (req.url ?? '/').replace(/[?#].*$/, '');
    if (p === '/sample.kdump') {
      const data = readFileSync(SAMPLE);
      const m = /^bytes=(\d+)-(\d+)$/.exec(req.headers.range ?? '');
      if (!m) return void res.writeHead(200, { 'Content-Length': data.length }).end(data);
      const a = Number(m[1]);
      const b = Math.min(Number(m[2]), data.length - 1);
      res.writeHead(206, { 'Content-Range': `bytes ${a}-${b}/${data.length}`, ETag: '"s"' }).end(data.subarray(a, b + 1));
      return;
    }
    const name = p === '/' ? 'index.html' : p.slice(1);
    if (!/^[a-z]+\.(html|js|css|map)$/.test(name) || !existsSync(join(WEB, name))) return void res.writeHead(404).end();
    res.writeHead(200, { 'Content-Type': types[name.split('.').pop()!]! }).end(readFileSync(join(WEB, name)));
  });
  return new Promise((r) =>
    staticSrv.listen(0, '127.0.0.1', () => {
      staticUrl = `http://127.0.0.1:${(staticSrv.address() as AddressInfo).port}/`;
      r();
    }),
  );
}

before(async () => {
  if (skip) return;
  const pw = 'playwright-core';
  const { chromium } = (await import(pw)) as { chromium: { launch(o: object): Promise<Browser> } };
  browser = await chromium.launch({ executablePath: CHROMIUM, args: ['--no-sandbox', '--disable-gpu', '--disable-dev-shm-usage'] });
  await startStatic();
  process.stderr.write(`web screenshots: ${ARTIFACTS}\n`);
});
after(async () => {
  await browser?.close();
  await new Promise((r) => (staticSrv ? staticSrv.close(r) : r(undefined)));
  rmSync(tmp, { recursive: true, force: true });
});

async function newPage(): Promise<{ page: Page; problems: string[] }> {
  const page = await browser.newPage({ viewport: { width: 1200, height: 900 } });
  const problems: string[] = [];
  page.on('pageerror', (e: Error) => problems.push(`page error: ${e.message}`));
  page.on('dialog', (d: any) => {
    problems.push(`dialog: ${d.message()}`);
    void d.dismiss();
  });
  page.on('console', (m: any) => {
    if (m.type() === 'error') problems.push(`console: ${m.text()}`);
  });
  return { page, problems };
}

/**
 * Waits until `expr` is true in the page. Polled from here: the page's CSP forbids the string
 * evaluation that waitForFunction does inside the page.
 */
async function until(page: Page, expr: string, timeoutMs = 15000): Promise<void> {
  const end = Date.now() + timeoutMs;
  for (;;) {
    if (await page.evaluate(expr)) return;
    if (Date.now() > end) throw new Error(`timed out waiting for ${expr}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

/** The checks every way of opening the sample must pass. */
async function checkSample(page: Page, shot: string): Promise<void> {
  try {
    await checks(page);
  } finally {
    await page.screenshot({ path: join(ARTIFACTS, shot), fullPage: true });
  }
}

async function checks(page: Page): Promise<void> {
  await page.locator('#panicmsg').waitFor({ timeout: 60000 });
  assert.equal(await page.locator('#panicmsg').textContent(), 'Kernel panic - not syncing: sysrq triggered crash');
  assert.equal(await page.locator('#verdict').textContent(), 'HEADER CORRECT');
  assert.match((await page.locator('#panic').textContent()) ?? '', /CPU 0, task 1, 6\.200217 s after boot/);
  // the log: every record, then a search
  await until(page, `/\\(\\d+ lines\\)/.test(document.getElementById('logcount').textContent)`, 60000);
  const total = Number(/\((\d+) lines\)/.exec((await page.locator('#logcount').textContent())!)![1]);
  assert.ok(total > 300, `${total} log lines`);
  await page.fill('#search', 'KERNEL command LINE: console');
  await until(page, `/of \\d+ lines/.test(document.getElementById('logcount').textContent)`);
  const hits = await page.locator('#logrows .row').allTextContents();
  assert.equal(hits.length, 1, hits.join('\n'));
  assert.match(hits[0]!, /^\[\s+0\.043097\] Kernel command line: console=ttyS0 panic=0 /, 'found whatever the case');
  await page.fill('#search', '');
  await page.selectOption('#level', '3');
  const errs = await page.locator('#logcount').textContent();
  assert.ok(Number(/\((\d+) of/.exec(errs!)![1]) < total, errs!);
  await page.selectOption('#level', '7');
  // virtual scrolling: only the visible rows are in the document
  assert.ok((await page.locator('#logrows .row').count()) < 80);
  await page.evaluate(`document.getElementById('logview').scrollTop = 1e9`);
  await until(page, `/end Kernel panic/.test(document.getElementById('logrows').textContent)`);
  // the memory map: drawn, with data (blue) and excluded (grey) cells
  await until(page, `Number(document.getElementById('map').dataset.drawn || 0) > 0`, 60000);
  // the page counts once the map is read are `vmcore info`'s full count of the file (over HTTP
  // the summary first counts from the bitmaps; the map's walk of the descriptors completes them)
  const info = JSON.parse(spawnSync(process.execPath, [CLI, 'info', '--json', '--no-kernel', SAMPLE], { encoding: 'utf8' }).stdout);
  const p = info.pages as Record<string, number>;
  const counts = `frames ${p.ram}  dumped ${p.dumped} (data ${p.data}, zero-shared ${p.zeroShared})  excluded ${p.excluded}  missing ${p.missing}`;
  await until(page, `document.getElementById('pages').textContent.startsWith(${JSON.stringify(counts)})`);
  const colours: Record<string, number> = await page.evaluate(`(() => {
    const c = document.getElementById('map');
    const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
    const seen = {};
    for (let i = 0; i < d.length; i += 4) {
      const k = d[i] + ',' + d[i + 1] + ',' + d[i + 2];
      seen[k] = (seen[k] || 0) + 1;
    }
    return seen;
  })()`);
  assert.ok((colours['47,111,208'] ?? 0) > 1000, `data cells: ${JSON.stringify(colours)}`);
  assert.ok((colours['176,180,186'] ?? 0) > 1000, `excluded cells: ${JSON.stringify(colours)}`);
  // zoom in at the centre, then the hex view of kernel text through the page tables
  await page.locator('#map').scrollIntoViewIfNeeded();
  const box = (await page.locator('#map').boundingBox())!;
  await page.mouse.move(box.x + 20, box.y + 10);
  await page.mouse.wheel(0, -100);
  await until(page, `Number(document.getElementById('map').dataset.drawn) > 1`);
  assert.match((await page.locator('#mapinfo').textContent()) ?? '', /^pfn 0x[0-9a-f]+ {2}phys 0x[0-9a-f]+ {2}(data|zero|excluded|hole|missing)$/);
  await page.selectOption('#space', 'virt');
  await page.fill('#addr', '0xffffffff81000000');
  await page.click('#hexform button');
  await until(page, `document.getElementById('hexout').textContent.startsWith('ffffffff81000000')`);
  const virt = await page.locator('#hexout').textContent();
  await page.selectOption('#space', 'phys');
  await page.fill('#addr', '0x1000000');
  await page.click('#hexform button');
  await until(page, `document.getElementById('hexout').textContent.startsWith('0000000001000000')`);
  const phys = await page.locator('#hexout').textContent();
  const body = (t: string) => t.split('\n').map((l) => l.slice(16));
  assert.equal(body(virt!).length, 16, '256 bytes');
  assert.deepEqual(body(virt!), body(phys!), 'phys_base 0: _text is at 16 MiB');
  await checkTasks(page);
}

/** The guest's own call trace of the panic, as its kernel printed it on the console (no "?" guesses). */
function consoleTrace(): string[] {
  const log = readFileSync(join(ROOT, 'test/fixtures/excerpts/seabios-nokaslr-1cpu-128M-vmci-panic.serial.log'), 'latin1');
  assert.match(log, /\[ {4}6\.200217\] Kernel panic - not syncing: sysrq triggered crash/, 'the console of the guest the sample was taken from');
  const trace = log.slice(log.indexOf('Call Trace:'), log.indexOf('</TASK>'));
  return [...trace.matchAll(/^\[[ \d.]+\] {2}([a-z_][\w.]*\+0x[0-9a-f]+\/0x[0-9a-f]+)$/gm)].map((m) => m[1]!);
}

/** The panic backtrace (against the guest's console) and the task list (against `vmcore ps` / `bt`). */
async function checkTasks(page: Page): Promise<void> {
  // the panic section: the kernel's own trace from sysrq_handle_crash to the syscall entry,
  // frame by frame, where the panic happened (the frames above it are the panic's delay loop)
  await until(page, `!/Waiting/.test(document.getElementById('backtrace').textContent)`, 120000);
  const bt = (await page.locator('#backtrace').textContent())!;
  assert.match(bt, /^PID: 1 +TASK: ffff888003dec800 +CPU: 0 +COMMAND: "init" +STATE: R {2}\(panic\)/, bt);
  const kernel = consoleTrace();
  const from = kernel.indexOf('sysrq_handle_crash+0x16/0x20');
  assert.ok(from > 0, kernel.join('\n'));
  const ours = [...bt.matchAll(/^ #\d+ \[[0-9a-f]+\] (\S+)$/gm)].map((m) => m[1]!);
  assert.deepEqual(ours.slice(ours.indexOf('sysrq_handle_crash+0x16/0x20')), kernel.slice(from), 'the panic backtrace is the kernel\'s own call trace');
  assert.match(bt, /RIP: 000000000047b7a0 {2}RSP: 00007ffe8f9cb798/, 'user registers at the syscall entry, as on the console');
  // the task list: the tasks `vmcore ps` finds in the same file, the panicking one marked
  const ps = spawnSync(process.execPath, [CLI, 'ps', '--json', SAMPLE], { encoding: 'utf8' });
  assert.equal(ps.status, 0, ps.stderr);
  const want = (JSON.parse(ps.stdout) as { pid: number; comm: string; task: string }[]).map((t) => `${t.pid} ${t.comm} ${t.task.replace(/^0x/, '')}`).sort();
  await until(page, `document.querySelectorAll('#taskrows tr').length > 0`, 60000);
  const rows: string[][] = await page.evaluate(`[...document.querySelectorAll('#taskrows tr')].map((r) => [...r.children].map((c) => c.textContent))`);
  assert.deepEqual(rows.map((r) => `${r[0]} ${r[5]} ${r[4]}`).sort(), want, 'the task list is what vmcore ps reads');
  assert.ok(rows.length > 20, `${rows.length} tasks`);
  assert.equal(await page.locator('#taskrows tr.panic').count(), 1);
  assert.match((await page.locator('#taskrows tr.panic').textContent())!, /^10.*init$/);
  // a sleeping task's backtrace on click: the one `vmcore bt 2` prints
  await page.fill('#taskfilter', 'kthreadd');
  assert.equal(await page.locator('#taskrows tr').count(), 1);
  await page.locator('#taskrows tr').first().click();
  await until(page, `/^PID: 2 /.test(document.getElementById('taskbt').textContent)`, 60000);
  const cli = spawnSync(process.execPath, [CLI, 'bt', SAMPLE, '2'], { encoding: 'utf8' });
  assert.equal(cli.status, 0, cli.stderr);
  assert.equal(await page.locator('#taskbt').textContent(), cli.stdout.trimEnd());
  assert.match(cli.stdout, / #\d+ \[[0-9a-f]+\] kthreadd\+0x/, 'kthreadd sleeps in kthreadd()');
  await page.fill('#taskfilter', '');
  await page.locator('#tasksbox').scrollIntoViewIfNeeded();
  // the modules: what `vmcore mod` reads, and the module the guest's init loaded (its console)
  await until(page, `!/Waiting/.test(document.getElementById('modules').textContent)`, 60000);
  const mod = spawnSync(process.execPath, [CLI, 'mod', '--json', SAMPLE], { encoding: 'utf8' });
  assert.equal(mod.status, 0, mod.stderr);
  const wantMods = (JSON.parse(mod.stdout) as { module: string; name: string; base: string; size: number; state: string }[]).map((m) =>
    [m.module.replace(/^0x/, ''), m.name, m.base.replace(/^0x/, ''), String(m.size), m.state].join(' '),
  );
  const modRows: string[][] = await page.evaluate(`[...document.querySelectorAll('#modtable tbody tr')].map((r) => [...r.children].map((c) => c.textContent))`);
  assert.deepEqual(modRows.map((r) => r.slice(0, 5).join(' ')), wantMods, 'the module list is what vmcore mod reads');
  const serial = readFileSync(join(ROOT, 'test/fixtures/excerpts/seabios-nokaslr-1cpu-128M-vmci-panic.serial.log'), 'latin1');
  assert.match(serial, /CORPUS: qemu_fw_cfg loaded/);
  assert.deepEqual(modRows.map((r) => r[1]), ['qemu_fw_cfg'], 'the one module the guest loaded');
}

test('vmcore serve: the page opens the named dump by itself', { skip }, async () => {
  const h: ServeHandle = await serve({ dumps: [SAMPLE], webDir: WEB });
  try {
    const { page, problems } = await newPage();
    const t0 = Date.now();
    await page.goto(h.url);
    await checkSample(page, 'serve.png');
    const status = (await page.locator('#status').textContent())!;
    assert.match(status, /fetched [\d.]+ [KM]iB of 14\.5 MiB \([\d.]+ %\) in \d+ requests/);
    process.stderr.write(`serve: ${Date.now() - t0} ms; ${status}\n`);
    assert.deepEqual(problems, []);
    await page.close();
  } finally {
    await h.close();
  }
});

test('static page: the file input, and ?url=', { skip }, async () => {
  const { page, problems } = await newPage();
  const requests: string[] = [];
  page.on('request', (r: any) => requests.push(r.url()));
  await page.goto(staticUrl);
  assert.equal(await page.locator('#main').isHidden(), true);
  await page.setInputFiles('#file', SAMPLE);
  await checkSample(page, 'file-input.png');
  assert.deepEqual(
    requests.filter((u) => !/\/(|app\.js|worker\.js|style\.css)$/.test(new URL(u).pathname)),
    [],
    'a local file is read in the page: no request but the page itself',
  );
  await page.goto(`${staticUrl}?url=${encodeURIComponent(staticUrl + 'sample.kdump')}`);
  await checkSample(page, 'url-param.png');
  assert.deepEqual(problems, []);
  await page.close();
});

test('?url= on another origin whose server allows no CORS: the error says what that server must allow', { skip }, async () => {
  const { page } = await newPage();
  // the same static server by another host name is another origin, and it sends no CORS headers
  const other = staticUrl.replace('127.0.0.1', 'localhost');
  await page.goto(`${staticUrl}?url=${encodeURIComponent(other + 'sample.kdump')}`);
  await page.locator('#error').waitFor({ state: 'visible', timeout: 60000 });
  const msg = (await page.locator('#error').textContent())!;
  assert.match(msg, /^Cannot open this dump: IO: /);
  assert.match(msg, /another origin \(http:\/\/localhost:\d+\); if that server is up, it must allow this page to read it \(CORS/);
  await page.screenshot({ path: join(ARTIFACTS, 'cross-origin.png'), fullPage: true });
  await page.close();
});

test('a corrupt dump dropped on the page is an error message; a log holding HTML is shown as text', { skip }, async () => {
  const { page, problems } = await newPage();
  await page.goto(staticUrl);
  // a kdump header whose block size is absurd, dropped like a file from the desktop
  const bad = new Uint8Array(8192);
  bad.set(new TextEncoder().encode('KDUMP   '), 0);
  bad.set([6, 0, 0, 0], 8);
  bad.fill(0xff, 12, 400);
  await page.evaluate(`(() => {
    const dt = new DataTransfer();
    dt.items.add(new File([new Uint8Array(${JSON.stringify(Array.from(bad))})], 'hostile.kdump'));
    document.dispatchEvent(new DragEvent('drop', { dataTransfer: dt, bubbles: true, cancelable: true }));
  })()`);
  await page.locator('#error').waitFor({ state: 'visible', timeout: 30000 });
  const msg = (await page.locator('#error').textContent())!;
  assert.match(msg, /^Cannot open this dump: [A-Z_]+: /);
  await page.screenshot({ path: join(ARTIFACTS, 'corrupt.png'), fullPage: true });

  // the sample with its panic text replaced by HTML (an ELF copy, so that the log bytes are plain)
  const elf = join(tmp, 'hostile.elf');
  const conv = spawnSync(process.execPath, [CLI, 'convert', SAMPLE, elf, '--format', 'elf', '-d', '1', '--quiet'], { encoding: 'utf8' });
  assert.equal(conv.status, 0, conv.stderr);
  const buf = readFileSync(elf);
  const from = Buffer.from('sysrq triggered crash');
  const to = Buffer.from('<img src=x onerror=1>');
  assert.equal(from.length, to.length);
  let n = 0;
  for (let i = buf.indexOf(from); i >= 0; i = buf.indexOf(from, i + 1), n++) to.copy(buf, i);
  assert.ok(n >= 2, `${n} copies replaced`);
  writeFileSync(elf, buf);
  assert.equal(statSync(elf).size, buf.length);
  await page.setInputFiles('#file', elf);
  await page.locator('#panicmsg').waitFor({ timeout: 60000 });
  assert.equal(await page.locator('#panicmsg').textContent(), 'Kernel panic - not syncing: <img src=x onerror=1>');
  await page.fill('#search', 'onerror');
  await until(page, `/of \\d+ lines/.test(document.getElementById('logcount').textContent)`);
  assert.ok((await page.locator('#logrows .row').count()) >= 1);
  assert.equal(await page.locator('main img').count(), 0, 'no element made from dump content');
  await page.screenshot({ path: join(ARTIFACTS, 'hostile-log.png'), fullPage: true });
  assert.deepEqual(problems, []);
  await page.close();
});
