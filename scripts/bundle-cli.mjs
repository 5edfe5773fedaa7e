// Bundles the `vmcore` command and its worker threads (esbuild), each one file with the project's
// modules and its JavaScript-only npm packages inside (the native ones stay packages), in
// dist/src/cli: the launcher vmcore.js (package.json "bin"), the command command.cjs (from
// src/cli/command.ts), the triage thread triage-worker.js (an entry like the launcher) with
// triage-worker.cjs, and the compression and read threads {compress,read}-worker.js; then the
// code caches of the two .cjs bundles (src/cli/code-cache.ts). The compiler's dist/src/cli/main.js
// stays the same command as modules. Node then starts the command from one file instead of
// resolving and compiling ~150 modules: ~80 ms less for every command, and ~70 ms less for each
// worker thread a command starts (bench/README.md). The library (dist/src/node, dist/src/core)
// stays the compiler's modules. No source map: the package holds no TypeScript sources for one
// to name, and the bundle is not minified (stack traces read). The bundles sit where the
// modules' relative paths still hold: dist/src/cli is as deep as dist/src/node (build/Release,
// package.json, dist/web), and src/node/workers/url.ts names a worker beside the module that
// holds it.
import { build } from 'esbuild';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const pkg = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8'));
// The bin is a small launcher (src/cli/launch.ts) that starts the worker threads the command
// line shows the command will need, then runs the command's own bundle (command.cjs, from
// src/cli/command.ts): the threads start while the command loads (~0.1 s earlier than from it).
// The triage thread's entry (triage-worker.js, src/cli/triage-launch.ts) is as small.
await build({
  entryPoints: { vmcore: join(root, 'src/cli/launch.ts'), 'triage-worker': join(root, 'src/cli/triage-launch.ts') },
  outdir: join(root, 'dist/src/cli'),
  bundle: true,
  packages: 'external',
  format: 'esm',
  platform: 'node',
  target: 'node20',
  logLevel: 'warning',
});
// the JavaScript-only packages are bundled too: resolving and loading five packages as modules
// cost each command and each worker thread ~45 ms (bench/README.md, "Packages in the bundle");
// the native addons (optional dependencies, loaded with require when installed) and
// cli-progress (imported only when a progress bar is shown) stay packages
const external = [...Object.keys(pkg.optionalDependencies ?? {}), 'cli-progress'];
// The compression and read threads: ES modules (their start is a small part of the seconds they
// work).
await build({
  entryPoints: {
    'compress-worker': join(root, 'src/node/workers/compress-worker.ts'),
    'read-worker': join(root, 'src/node/workers/read-worker.ts'),
  },
  outdir: join(root, 'dist/src/cli'),
  bundle: true,
  external,
  // the bundled CommonJS packages call require() for Node's built-in modules
  banner: { js: "import { createRequire as __vmcoreCreateRequire } from 'node:module';\nconst require = __vmcoreCreateRequire(import.meta.url);" },
  format: 'esm',
  platform: 'node',
  target: 'node20',
  logLevel: 'warning',
});
// The command and the triage thread, whose start is on the path of every command and of every
// filtering convert: CommonJS scripts that src/cli/code-cache.ts runs with V8's code cache
// (import.meta.url is the script's own file URL; import() of a package is require()).
await build({
  entryPoints: {
    command: join(root, 'src/cli/command.ts'),
    'triage-worker': join(root, 'src/node/workers/triage-worker.ts'),
  },
  outdir: join(root, 'dist/src/cli'),
  outExtension: { '.js': '.cjs' },
  bundle: true,
  external,
  supported: { 'dynamic-import': false },
  define: { 'import.meta.url': '__vmcoreModuleUrl' },
  banner: { js: "const __vmcoreModuleUrl = require('node:url').pathToFileURL(__filename).href;" },
  format: 'cjs',
  platform: 'node',
  target: 'node20',
  logLevel: 'warning',
});
// esbuild escapes non-ASCII characters in code (charset 'ascii') but keeps a few comments as they
// are: escaped too (\uXXXX in a comment is text), the bundles are ASCII, which code-cache.ts reads
// as Latin-1 (UTF-8 decoding of the 1 MB command bundle cost 10-15 ms of every start).
for (const f of ['command', 'triage-worker']) {
  const file = join(root, 'dist/src/cli', `${f}.cjs`);
  const text = readFileSync(file, 'utf8');
  const ascii = text.replace(/[^\x00-\x7f]/g, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`);
  if (ascii !== text) writeFileSync(file, ascii);
}
// Their code caches: made by one run of what the bench measures most, a filtering convert of the
// bundled sample (the command, the triage thread and the output check it runs), with a fresh
// cache written at the end (code-cache.ts). A machine with one processor runs triage on the main
// thread: the triage bundle then has no cache, and compiles as any script.
const work = mkdtempSync(join(tmpdir(), 'vmcore-code-cache-'));
try {
  for (const f of ['command', 'triage-worker']) rmSync(join(root, 'dist/src/cli', `${f}.cjs.cache`), { force: true });
  const r = spawnSync(process.execPath, [join(root, 'dist/src/cli/vmcore.js'), 'convert', '-d', '31', '--quiet', join(root, 'samples/seabios-128M.md-c-d31.kdump'), join(work, 'out.kdump')], {
    env: { ...process.env, VMCORE_CODE_CACHE: 'write' },
    encoding: 'utf8',
  });
  // the cache only saves time: without it the bundles compile as any script
  if (r.status !== 0) console.warn(`bundle-cli: warning: the run that makes the code cache failed (status ${r.status}), no code cache: ${r.stderr.trim()}`);
} finally {
  rmSync(work, { recursive: true, force: true });
  // a thread ended while it wrote its cache leaves its temporary file (code-cache.ts)
  for (const f of readdirSync(join(root, 'dist/src/cli'))) if (/\.cjs\.cache\.\d+\./.test(f)) rmSync(join(root, 'dist/src/cli', f), { force: true });
}
