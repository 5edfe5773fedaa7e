#!/usr/bin/env node
// Library runner equal to `vmcore convert IN OUT [opts]` (used by convert-bench.sh when the
// CLI is not built with the convert command). Usage: convert-run.mjs IN OUT '{"codec":"lzo",...}'
import { openDumpFiles } from '../dist/src/node/open.js';
import { convertDump } from '../dist/src/node/convert/index.js';

const [inp, out, json] = process.argv.slice(2);
const d = await openDumpFiles([inp]);
try {
  const s = await convertDump(d, out, { force: true, ...JSON.parse(json ?? '{}') });
  process.stdout.write(JSON.stringify(s) + '\n');
} finally {
  await d.close();
}
