// Bundles the `vmcore` command and its worker threads (esbuild): dist/src/cli/vmcore.js (package.json
// "bin": the launcher, below) with dist/src/cli/command.js (the command, from src/cli/main.ts) and
// dist/src/cli/{compress,read,triage}-worker.js, each one file with the project's modules and
// its JavaScript-only npm packages inside (the native ones stay packages); the compiler's dist/src/cli/main.js
// stays the same command as modules. Node then starts the
// command from one file instead of resolving and compiling ~150 modules: ~80 ms less for every
// command, and ~70 ms less for each worker thread a command starts (bench/README.md). The
// library (dist/src/node, dist/src/core) stays the compiler's modules. No source map: the package
// holds no TypeScript sources for one to name, and the bundle is not minified (stack traces read).
// The bundles sit where the modules' relative paths still hold: dist/src/cli is as deep as
// dist/src/node (build/Release, package.json, dist/web), and src/node/workers/url.ts names a
// worker beside the module that holds it.
import { build } from 'esbuild';
import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const pkg = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8'));
// The bin is a small launcher (src/cli/launch.ts) that starts the worker threads the command
// line shows the command will need, then imports the command's own bundle (command.js, from
// src/cli/command.ts): the threads start while the command loads (~0.1 s earlier than from it).
await build({
  entryPoints: { vmcore: join(root, 'src/cli/launch.ts') },
  outdir: join(root, 'dist/src/cli'),
  bundle: true,
  packages: 'external',
  external: ['./command.js'],
  format: 'esm',
  platform: 'node',
  target: 'node20',
  logLevel: 'warning',
});
await build({
  entryPoints: {
    command: join(root, 'src/cli/command.ts'),
    'compress-worker': join(root, 'src/node/workers/compress-worker.ts'),
    'read-worker': join(root, 'src/node/workers/read-worker.ts'),
    'triage-worker': join(root, 'src/node/workers/triage-worker.ts'),
  },
  outdir: join(root, 'dist/src/cli'),
  bundle: true,
  // the JavaScript-only packages are bundled too: resolving and loading five packages as modules
  // cost each command and each worker thread ~45 ms (bench/README.md, "Packages in the bundle");
  // the native addons (optional dependencies, loaded with require when installed) and
  // cli-progress (imported only when a progress bar is shown) stay packages
  external: [...Object.keys(pkg.optionalDependencies ?? {}), 'cli-progress'],
  // the bundled CommonJS packages call require() for Node's built-in modules
  banner: { js: "import { createRequire as __vmcoreCreateRequire } from 'node:module';\nconst require = __vmcoreCreateRequire(import.meta.url);" },
  format: 'esm',
  platform: 'node',
  target: 'node20',
  logLevel: 'warning',
});
