/**
 * `dumpViaQmp` against a fake QEMU monitor that behaves as QEMU 7.2 does for
 * dump-guest-memory with detach: it opens the FIFO, answers, writes an ELF core (a real
 * QEMU dump, test/fixtures/qemu-prelaunch-2m.elf.gz) into it, then sends DUMP_COMPLETED.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import { createWriteStream, existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gunzipSync } from 'node:zlib';
import { createHash } from 'node:crypto';
import { dumpViaQmp } from '../../src/node/dump-qmp.js';
import { VmcoreError } from '../../src/core/errors.js';
import { openDumpFiles } from '../../src/node/open.js';

const fixture = (n: string) => new URL(`../../../test/fixtures/${n}`, import.meta.url);
const elf = gunzipSync(readFileSync(fixture('qemu-prelaunch-2m.elf.gz')));

interface FakeOpts {
  status?: string;
  refuse?: string;
  /** Stop writing (and close the connection) after this many bytes: QEMU dying. */
  dieAfter?: number;
}

async function fakeQemu(o: FakeOpts = {}) {
  const dir = mkdtempSync(join(tmpdir(), 'fake-qemu-'));
  const path = join(dir, 'qmp.sock');
  const state = { dump: { status: 'none', completed: 0, total: elf.length }, writeError: undefined as string | undefined };
  const server = net.createServer((sock) => {
    const send = (x: unknown) => sock.write(JSON.stringify(x) + '\r\n');
    const event = (event: string, data?: unknown) => send({ event, timestamp: { seconds: Math.floor(Date.now() / 1000), microseconds: 0 }, ...(data ? { data } : {}) });
    send({ QMP: { version: { qemu: { major: 7, minor: 2, micro: 22 }, package: 'fake' }, capabilities: [] } });
    let buf = '';
    sock.on('data', (d) => {
      buf += d.toString();
      let nl;
      while ((nl = buf.indexOf('\n')) >= 0) {
        const m = JSON.parse(buf.slice(0, nl));
        buf = buf.slice(nl + 1);
        const id = m.id;
        switch (m.execute) {
          case 'qmp_capabilities':
            send({ return: {}, id });
            break;
          case 'query-status':
            send({ return: { status: o.status ?? 'running', running: (o.status ?? 'running') === 'running', singlestep: false }, id });
            break;
          case 'query-dump':
            send({ return: state.dump, id });
            break;
          case 'dump-guest-memory': {
            if (o.refuse) {
              send({ error: { class: 'GenericError', desc: o.refuse }, id });
              break;
            }
            const file = String(m.arguments.protocol).replace(/^file:/, '');
            const ws = createWriteStream(file);
            ws.on('open', () => {
              send({ return: {}, id });
              event('STOP');
              state.dump = { status: 'active', completed: 0, total: elf.length };
              const finish = (err?: string) => {
                state.dump.status = err ? 'failed' : 'completed';
                event('DUMP_COMPLETED', { result: state.dump, ...(err ? { error: err } : {}) });
                event('RESUME');
              };
              ws.on('error', (e) => {
                state.writeError = e.message;
                finish(`dump: failed to save memory: ${e.message}`);
              });
              (async () => {
                for (let p = 0; p < elf.length; p += 65536) {
                  if (o.dieAfter !== undefined && p >= o.dieAfter) {
                    ws.destroy();
                    sock.destroy();
                    return;
                  }
                  if (!ws.write(elf.subarray(p, p + 65536))) await new Promise<void>((r) => ws.once('drain', () => r()));
                  if (ws.destroyed) return;
                  state.dump.completed = Math.min(elf.length, p + 65536);
                }
                ws.end(() => finish());
              })().catch(() => undefined);
            });
            break;
          }
          default:
            send({ error: { class: 'CommandNotFound', desc: `The command ${m.execute} has not been found` }, id });
        }
      }
    });
  });
  await new Promise<void>((r) => server.listen(path, r));
  return {
    path,
    dir,
    state,
    async close() {
      server.close();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** Digest (pfn, page) of the fixture's PT_LOADs, from the readelf listing. */
function fixtureDigest(): string {
  const h = createHash('sha256');
  const re = readFileSync(fixture('qemu-prelaunch-2m.readelf.txt'), 'utf8');
  for (const line of re.split('\n')) {
    const m = /^\s+LOAD\s+0x([0-9a-f]+)\s+0x[0-9a-f]+\s+0x([0-9a-f]+)\s+0x([0-9a-f]+)/.exec(line);
    if (!m) continue;
    const [off, pa, sz] = [parseInt(m[1]!, 16), parseInt(m[2]!, 16), parseInt(m[3]!, 16)];
    for (let o = 0; o < sz; o += 4096) {
      const pfn = Buffer.alloc(8);
      pfn.writeBigUInt64LE(BigInt((pa + o) / 4096));
      h.update(pfn).update(elf.subarray(off + o, off + o + 4096));
    }
  }
  return h.digest('hex');
}

async function outputDigest(path: string): Promise<string> {
  const d = await openDumpFiles([path]);
  try {
    const h = createHash('sha256');
    for await (const r of d.pageRuns()) {
      if (r.state !== 'data' && r.state !== 'zero') continue;
      for (let p = r.startPfn; p < r.endPfn; p++) {
        const pfn = Buffer.alloc(8);
        pfn.writeBigUInt64LE(BigInt(p));
        h.update(pfn).update(await d.readPage(p));
      }
    }
    return h.digest('hex');
  } finally {
    await d.close();
  }
}

test('dumps through the FIFO into kdump and ELF with the memory of QEMU\'s stream', async () => {
  const q = await fakeQemu();
  // the FIFO's directory goes under a temporary directory of this test's own (os.tmpdir() reads
  // TMPDIR), so that other test processes' dumps in the shared one are not taken for ours
  const ownTmp = mkdtempSync(join(tmpdir(), 'qmp-tmp-'));
  const savedTmp = process.env['TMPDIR'];
  process.env['TMPDIR'] = ownTmp;
  try {
    const want = fixtureDigest();
    for (const format of ['kdump', 'elf'] as const) {
      const out = join(q.dir, `out.${format}`);
      const phases = new Set<string>();
      const s = await dumpViaQmp({ qmp: q.path, output: out, format, threads: 0, onProgress: (p) => phases.add(p.phase), pollMs: 5 });
      assert.equal(s.guestStatusBefore, 'running');
      assert.equal(s.guestMemory, 0xc0000 + 0x20000 + 0x20000 + 0x100000 + 0x40000);
      assert.equal(s.streamBytes, elf.length);
      assert.equal(s.qemuVersion, '7.2.22 (fake)');
      assert.ok(s.guestPausedMs !== undefined && s.guestPausedMs >= 0);
      assert.ok(phases.has('dumping') && phases.has('finishing'));
      assert.equal(await outputDigest(out), want, `${format}: same memory as the stream`);
    }
    assert.deepEqual(readdirSync(ownTmp), [], 'FIFO directory removed');
  } finally {
    if (savedTmp === undefined) delete process.env['TMPDIR'];
    else process.env['TMPDIR'] = savedTmp;
    rmSync(ownTmp, { recursive: true, force: true });
    await q.close();
  }
});

test('a refused dump command and a guest that never started give QMP errors', async () => {
  const q = await fakeQemu({ refuse: 'dump: There is a dump in process' });
  try {
    await assert.rejects(dumpViaQmp({ qmp: q.path, output: join(q.dir, 'x.kdump') }), (e) => e instanceof VmcoreError && e.code === 'QMP' && /dump in process/.test(e.message));
    assert.ok(!existsSync(join(q.dir, 'x.kdump')));
  } finally {
    await q.close();
  }
  const p = await fakeQemu({ status: 'prelaunch' });
  try {
    await assert.rejects(dumpViaQmp({ qmp: p.path, output: join(p.dir, 'x.kdump') }), (e) => e instanceof VmcoreError && /not been started/.test(e.message));
  } finally {
    await p.close();
  }
});

test('QEMU dying mid-stream: error says so, partial output removed (or kept, marked incomplete)', async () => {
  for (const keep of [false, true]) {
    const q = await fakeQemu({ dieAfter: 0x100000 });
    try {
      const out = join(q.dir, 'dead.kdump');
      await assert.rejects(dumpViaQmp({ qmp: q.path, output: out, keepIncomplete: keep, threads: 0 }), (e) => {
        assert.ok(e instanceof VmcoreError, String(e));
        assert.match(e.message, /QEMU stopped writing the dump/);
        assert.match(e.message, keep ? /kept and marked incomplete/ : /removed/);
        return true;
      });
      assert.equal(existsSync(out), keep);
      if (keep) assert.ok(readFileSync(out).readUInt32LE(424) & 0x8, 'kdump status has DUMP_DH_COMPRESSED_INCOMPLETE');
      assert.deepEqual(readdirSync(q.dir).filter((f) => f.includes('partial')), []);
    } finally {
      await q.close();
    }
  }
});

test('interrupt: output removed, QEMU sees its write fail and reports the dump failed', async () => {
  const q = await fakeQemu();
  try {
    const out = join(q.dir, 'int.kdump');
    const ac = new AbortController();
    await assert.rejects(
      dumpViaQmp({ qmp: q.path, output: out, signal: ac.signal, threads: 0, onProgress: (p) => p.memoryRead > 0 && ac.abort() }),
      (e) => e instanceof VmcoreError && e.code === 'INTERRUPTED',
    );
    assert.ok(!existsSync(out));
    assert.equal(q.state.dump.status, 'failed', 'the writer saw the pipe close');
  } finally {
    await q.close();
  }
});

test('an existing output is refused before QEMU is asked to dump (no needless pause)', async () => {
  const q = await fakeQemu();
  try {
    const out = join(q.dir, 'exists.kdump');
    writeFileSync(out, 'keep me');
    await assert.rejects(dumpViaQmp({ qmp: q.path, output: out }), (e) => e instanceof VmcoreError && e.code === 'EXISTS');
    assert.equal(q.state.dump.status, 'none', 'dump-guest-memory was never sent');
    assert.equal(readFileSync(out, 'utf8'), 'keep me');
  } finally {
    await q.close();
  }
});

test('vmcore dump --format celf compresses with zstd by default, as convert and the library do', async () => {
  const { execFile } = await import('node:child_process');
  const { promisify } = await import('node:util');
  const cli = new URL('../../src/cli/vmcore.js', import.meta.url).pathname;
  const q = await fakeQemu();
  try {
    const codecOf = async (format: string, extra: string[] = []) => {
      const out = join(q.dir, `cli.${format}${extra.length}`);
      const r = await promisify(execFile)(process.execPath, [cli, 'dump', '--qmp', q.path, '--format', format, '--threads', '0', '--json', ...extra, out]);
      return (JSON.parse(r.stdout) as { codec: string }).codec;
    };
    assert.equal(await codecOf('celf'), 'zstd');
    assert.equal(await codecOf('kdump'), 'zlib');
    assert.equal(await codecOf('celf', ['-c']), 'zlib');
  } finally {
    await q.close();
  }
});
