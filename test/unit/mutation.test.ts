/**
 * Mutation smoke test: a few thousand randomly corrupted versions of small fixtures (kdump with
 * every structure, flattened, split part, ELF with notes). Each must end in a result or a typed
 * VmcoreError, within a generous time bound, with no crash and no runaway memory.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Worker } from 'node:worker_threads';
import { fixtures } from '../helpers/mutation-fixtures.js';

test('3000 corrupted fixtures: a result or a typed error, no crash, hang or runaway memory; the intact fixtures of each kind read right', async () => {
  const count = 3000;
  const res = await new Promise<{ wrong: string[]; typed: number; clean: number; failures: string[]; nFailures: number; codes: Record<string, number>; maxMs: number; maxArrayBuffers: number }>((resolve, reject) => {
    const w = new Worker(new URL('../helpers/mutate-worker.js', import.meta.url), {
      workerData: { fixtures: fixtures(), count, seed: 20261126 },
      resourceLimits: { maxOldGenerationSizeMb: 512 },
    });
    // hang guard: generous, the whole batch normally takes a few seconds
    const timer = setTimeout(() => {
      void w.terminate();
      reject(new Error('mutation worker did not finish within 240 s (a hang?)'));
    }, 240_000);
    w.once('message', (m) => {
      clearTimeout(timer);
      resolve(m);
    });
    w.once('error', (e) => {
      clearTimeout(timer);
      reject(e);
    });
  });
  // the kinds of input once read wrong (32-bit layouts, 64 KiB pages, CPU notes by task, damaged descriptors)
  assert.deepEqual(res.wrong, []);
  assert.deepEqual(res.failures, [], `${res.nFailures} cases raised untyped errors`);
  assert.equal(res.typed + res.clean, count);
  assert.ok(res.typed > count / 10, `only ${res.typed} typed errors: are the mutations reaching the parsers?`);
  assert.ok(res.maxMs < 10_000, `one case took ${res.maxMs} ms`);
  assert.ok(res.maxArrayBuffers < 256 * 2 ** 20, `array buffers reached ${res.maxArrayBuffers} bytes`);
});
