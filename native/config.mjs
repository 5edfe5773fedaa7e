#!/usr/bin/env node
// What binding.gyp builds into the optional addon (native/pages.c), asked by node-gyp:
//   node native/config.mjs libdeflate   "1" when the C compiler finds <libdeflate.h>, else "0"
//   node native/config.mjs nodezlib     "1" when the Node headers node-gyp builds against hold
//                                       zlib.h (they do: Node ships its zlib and exports it), else "0"
//   node native/config.mjs minilzo      the directory of minilzo.c in the installed `lzo` npm
//                                       package (an optional dependency), else ""
// VMCORE_NO_LIBDEFLATE=1 / VMCORE_NO_NODE_ZLIB=1 / VMCORE_NO_MINILZO=1 leave a part out (to build
// as a machine without it).
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { homedir } from 'node:os';
import { dirname, join } from 'node:path';

const what = process.argv[2];
if (what === 'libdeflate') {
  let ok = false;
  if (!process.env.VMCORE_NO_LIBDEFLATE) {
    const cc = process.env.CC || 'cc';
    const r = spawnSync(cc, ['-E', '-x', 'c', '-'], { input: '#include <libdeflate.h>\n', stdio: ['pipe', 'ignore', 'ignore'] });
    ok = r.status === 0;
  }
  process.stdout.write(ok ? '1' : '0');
} else if (what === 'nodezlib') {
  // where node-gyp takes the headers from: --nodedir (native/build.mjs passes the installed
  // Node's prefix when it has them), npm_config_nodedir, or node-gyp's download cache
  const prefix = dirname(dirname(process.execPath));
  const dirs = [process.env.npm_config_nodedir, prefix, join(process.env.XDG_CACHE_HOME || join(homedir(), '.cache'), 'node-gyp', process.versions.node)].filter(Boolean);
  const ok = !process.env.VMCORE_NO_NODE_ZLIB && dirs.some((d) => existsSync(join(d, 'include', 'node', 'zlib.h')));
  process.stdout.write(ok ? '1' : '0');
} else if (what === 'minilzo') {
  let dir = '';
  if (!process.env.VMCORE_NO_MINILZO) {
    try {
      const pkg = createRequire(join(dirname(new URL(import.meta.url).pathname), '..', 'package.json')).resolve('lzo/package.json');
      const d = join(dirname(pkg), 'lib', 'minilzo209');
      if (existsSync(join(d, 'minilzo.c')) && existsSync(join(d, 'minilzo.h'))) dir = d;
    } catch {
      /* not installed */
    }
  }
  process.stdout.write(dir);
} else {
  console.error('usage: config.mjs libdeflate|nodezlib|minilzo');
  process.exit(2);
}
