/**
 * The public API is a deliberate list: an `export *` of an internal module, or a name added or
 * dropped by accident, changes what `import … from 'vmcore'` offers and fails here. Adding a
 * name on purpose means adding it to the list below and to README's "Library API" section.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '../../..');

/** The values of `vmcore/core` (and the browser build). Types are not values and are not listed. */
const CORE = [
  'BlobSource',
  'BufferSource',
  'HttpSource',
  'VmcoreError',
  'analyzeKernel',
  'backtraceReport',
  'createBacktracer',
  'describeDump',
  'diffMemory',
  'dmesgToJson',
  'formatDmesg',
  'formatTaskBacktrace',
  'hashMemory',
  'hex64',
  'isVmcoreError',
  'listTasks',
  'loadKernelBtf',
  'loadKernelSymbols',
  'openDump',
  'panicSummary',
  'portableCodecs',
  'portableSha256',
  'readDmesg',
  'taskBacktraceToJSON',
];

/** What `vmcore` (Node) adds to the core's values. */
const NODE_ONLY = ['FileSource', 'convertDump', 'dumpViaQmp', 'fixDump', 'hashDumpParallel', 'nodeCodecs', 'nodeSha256', 'openDumpFiles'];

test("the core's public values are exactly the listed ones", async () => {
  const core = await import('../../src/core/index.js');
  assert.deepEqual(Object.keys(core).sort(), [...CORE].sort());
});

test('the Node entry point is the core plus files, native codecs, convert, fix and dump', async () => {
  const node = await import('../../src/node/index.js');
  assert.deepEqual(Object.keys(node).sort(), [...CORE, ...NODE_ONLY].sort());
});

test('the entry points re-export named values only (no export * of an internal module)', async () => {
  const core = await readFile(join(ROOT, 'src/core/index.ts'), 'utf8');
  const node = await readFile(join(ROOT, 'src/node/index.ts'), 'utf8');
  assert.doesNotMatch(core, /^export \*/m);
  // the one wildcard: the Node entry point is a superset of the core's explicit list
  assert.deepEqual(node.match(/^export \*.*$/gm), ["export * from '../core/index.js';"]);
});

test("README's Library API section names every public value", async () => {
  const md = await readFile(join(ROOT, 'README.md'), 'utf8');
  const start = md.indexOf('\n### Library API');
  assert.ok(start >= 0, 'README has a ### Library API section');
  const end = md.indexOf('\n## ', start + 1);
  const section = md.slice(start, end < 0 ? undefined : end);
  const missing = [...CORE, ...NODE_ONLY].filter((n) => !new RegExp('`' + n + '\\b').test(section));
  assert.deepEqual(missing, []);
});
