#!/usr/bin/env node
// Install step for the OPTIONAL native addon (native/pages.c with libdeflate's sources from
// native/libdeflate; no system library): try node-gyp; on any failure (no compiler, no make)
// print one line and succeed, so the package still installs and every codec falls back to its
// npm package (node:zlib, lzo).
//   VMCORE_NO_NATIVE=1 skips the build; VMCORE_NATIVE_VERBOSE=1 shows the build log.
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
if (process.env.VMCORE_NO_NATIVE) process.exit(0);
const require = createRequire(import.meta.url);
let gyp;
try {
  gyp = require.resolve('node-gyp/bin/node-gyp.js');
} catch {
  const npmDir = process.env.npm_execpath ? dirname(dirname(process.env.npm_execpath)) : undefined;
  const candidates = [
    npmDir && join(npmDir, 'node_modules', 'node-gyp', 'bin', 'node-gyp.js'),
    join(dirname(dirname(process.execPath)), 'lib', 'node_modules', 'npm', 'node_modules', 'node-gyp', 'bin', 'node-gyp.js'),
  ].filter(Boolean);
  gyp = candidates.find((c) => existsSync(c));
}
// Use the installed Node headers when present (no download needed).
const prefix = dirname(dirname(process.execPath));
const dirArg = !process.env.npm_config_nodedir && existsSync(join(prefix, 'include', 'node', 'node_api.h')) ? [`--nodedir=${prefix}`] : [];
// `configure` then `build`, not `rebuild`: rebuild first deletes build/, so an install stopped
// half-way (a killed npx, a timeout) would leave no addon at all. make replaces
// build/Release/vmcore_native.node only once the new one is linked.
const gypRun = (step) => spawnSync(process.execPath, [gyp, step, ...dirArg], { cwd: root, stdio: ['ignore', 'ignore', 'pipe'] });
let r = { status: 1, stderr: Buffer.from('node-gyp not found') };
if (gyp) {
  r = gypRun('configure');
  if (r.status === 0) r = gypRun('build');
}
const log = String(r.stderr ?? '');
const HOW = 'To get it: install a C compiler and make (Debian: apt-get install gcc g++ make), then npm rebuild vmcore.';
if (r.status !== 0) {
  // One calm line: the addon is optional, nothing failed. The build log is not shown (it reads
  // like a failure).
  const why = /\b(cc|gcc|g\+\+|c\+\+|make)\b.*(not found|No such file)/i.test(log) ? 'no C compiler or make' : !gyp ? 'node-gyp not found' : 'its build did not succeed';
  console.error(`vmcore: using node:zlib and the lzo package; the optional native addon (libdeflate zlib, minilzo) is not built (${why}). ${HOW}`);
}
if (process.env.VMCORE_NATIVE_VERBOSE) console.error(log);
process.exit(0);
