import { test } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { QmpClient, QmpCommandError, parseQmpTarget } from '../../src/node/qmp.js';
import { VmcoreError } from '../../src/core/errors.js';

type Handler = (msg: { execute: string; id?: unknown; arguments?: Record<string, unknown> }, send: (o: unknown) => void, sock: net.Socket) => void;

/** A minimal QMP server speaking the protocol as QEMU documents it (docs/interop/qmp-spec). */
async function fakeQemu(handler: Handler, opts: { greet?: boolean } = {}) {
  const dir = mkdtempSync(join(tmpdir(), 'qmp-test-'));
  const path = join(dir, 'qmp.sock');
  const server = net.createServer((sock) => {
    const send = (o: unknown) => sock.write(JSON.stringify(o) + '\r\n');
    if (opts.greet !== false) send({ QMP: { version: { qemu: { major: 7, minor: 2, micro: 22 }, package: 'test' }, capabilities: ['oob'] } });
    let buf = '';
    let negotiated = false;
    sock.on('data', (d) => {
      buf += d.toString();
      let nl;
      while ((nl = buf.indexOf('\n')) >= 0) {
        const msg = JSON.parse(buf.slice(0, nl));
        buf = buf.slice(nl + 1);
        if (!negotiated) {
          if (msg.execute !== 'qmp_capabilities') {
            send({ error: { class: 'CommandNotFound', desc: 'Expecting capabilities negotiation with qmp_capabilities' }, id: msg.id });
          } else {
            negotiated = true;
            send({ return: {}, id: msg.id });
          }
          continue;
        }
        handler(msg, send, sock);
      }
    });
  });
  await new Promise<void>((r) => server.listen(path, r));
  return {
    path,
    async close() {
      await new Promise<void>((r) => server.close(() => r()));
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

test('parses monitor addresses', () => {
  assert.deepEqual(parseQmpTarget('/run/qmp.sock'), { path: '/run/qmp.sock' });
  assert.deepEqual(parseQmpTarget('unix:/run/qmp.sock'), { path: '/run/qmp.sock' });
  assert.deepEqual(parseQmpTarget('localhost:4444'), { host: 'localhost', port: 4444 });
  assert.deepEqual(parseQmpTarget('tcp:10.0.0.1:4444'), { host: '10.0.0.1', port: 4444 });
  assert.deepEqual(parseQmpTarget('[::1]:4444'), { host: '::1', port: 4444 });
  assert.deepEqual(parseQmpTarget('qmp.sock'), { path: 'qmp.sock' });
  assert.throws(() => parseQmpTarget('host:99999'), (e) => e instanceof VmcoreError && e.code === 'USAGE');
});

test('greeting, negotiation, out-of-order answers matched by id, events, refused commands', async () => {
  const held: { id: unknown; send: (o: unknown) => void }[] = [];
  const srv = await fakeQemu((msg, send) => {
    if (msg.execute === 'slow') held.push({ id: msg.id, send });
    else if (msg.execute === 'fast') {
      send({ event: 'STOP', timestamp: { seconds: 1, microseconds: 2 } });
      send({ return: { n: msg.arguments?.n }, id: msg.id });
      for (const h of held.splice(0)) h.send({ return: 'slow-done', id: h.id });
    } else send({ error: { class: 'CommandNotFound', desc: `The command ${msg.execute} has not been found` }, id: msg.id });
  });
  const c = await QmpClient.connect(srv.path);
  assert.equal(c.greeting.QMP.version.qemu.major, 7);
  const ev = c.waitEvent('STOP', { timeoutMs: 5000 });
  const slow = c.execute('slow');
  const fast = await c.execute<{ n: number }>('fast', { n: 42 });
  assert.deepEqual(fast, { n: 42 });
  assert.equal(await slow, 'slow-done');
  assert.equal((await ev).timestamp?.seconds, 1);
  await assert.rejects(c.execute('nope'), (e) => {
    assert.ok(e instanceof QmpCommandError);
    assert.equal(e.code, 'QMP');
    assert.equal(e.errorClass, 'CommandNotFound');
    assert.match(e.message, /refused nope: The command nope has not been found/);
    return true;
  });
  c.close();
  await srv.close();
});

test('a closed connection fails pending commands and event waits with QMP errors', async () => {
  const srv = await fakeQemu((msg, _send, sock) => {
    if (msg.execute === 'die') sock.destroy();
  });
  const c = await QmpClient.connect(srv.path);
  const ev = c.waitEvent('DUMP_COMPLETED');
  await assert.rejects(c.execute('die'), (e) => e instanceof VmcoreError && e.code === 'QMP' && /closed the QMP connection/.test(e.message));
  await assert.rejects(ev, (e) => e instanceof VmcoreError && e.code === 'QMP');
  await assert.rejects(c.execute('query-status'), (e) => e instanceof VmcoreError && e.code === 'QMP');
  c.close();
  await srv.close();
});

test('clear errors for a missing socket and a silent server', async () => {
  await assert.rejects(QmpClient.connect('/nonexistent/dir/qmp.sock'), (e) => e instanceof VmcoreError && e.code === 'QMP' && /no such socket/.test(e.message));
  const srv = await fakeQemu(() => {}, { greet: false });
  await assert.rejects(QmpClient.connect(srv.path, { timeoutMs: 200 }), (e) => e instanceof VmcoreError && /no QMP greeting/.test(e.message));
  await srv.close();
});
