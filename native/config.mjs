#!/usr/bin/env node
// What binding.gyp builds into the optional addon (native/pages.c), asked by node-gyp:
//   node native/config.mjs minilzo      the directory of minilzo.c in the installed `lzo` npm
//                                       package (an optional dependency), else ""
// VMCORE_NO_MINILZO=1 leaves it out (to build as an installation without the lzo package). The
// addon's zlib is always libdeflate, compiled from native/libdeflate (binding.gyp).
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';

const what = process.argv[2];
if (what === 'minilzo') {
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
  console.error('usage: config.mjs minilzo');
  process.exit(2);
}
