// Bundles the `vmcore` command and its worker threads (esbuild): dist/src/cli/vmcore.js (package.json
// "bin", from src/cli/main.ts) and dist/src/cli/{compress,read,triage}-worker.js, each one file with
// the project's modules inside (npm packages stay imports); the compiler's dist/src/cli/main.js
// stays the same command as modules. Node then starts the
// command from one file instead of resolving and compiling ~150 modules: ~80 ms less for every
// command, and ~70 ms less for each worker thread a command starts (bench/README.md). The
// library (dist/src/node, dist/src/core) stays the compiler's modules. No source map: the package
// holds no TypeScript sources for one to name, and the bundle is not minified (stack traces read).
// The bundles sit where the modules' relative paths still hold: dist/src/cli is as deep as
// dist/src/node (build/Release, package.json, dist/web), and src/node/workers/url.ts names a
// worker beside the module that holds it.
import { build } from 'esbuild';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
await build({
  entryPoints: {
    vmcore: join(root, 'src/cli/main.ts'),
    'compress-worker': join(root, 'src/node/workers/compress-worker.ts'),
    'read-worker': join(root, 'src/node/workers/read-worker.ts'),
    'triage-worker': join(root, 'src/node/workers/triage-worker.ts'),
  },
  outdir: join(root, 'dist/src/cli'),
  bundle: true,
  packages: 'external',
  format: 'esm',
  platform: 'node',
  target: 'node20',
  logLevel: 'warning',
});
