/**
 * What the peer-tool interop tests need and whether this machine has it: makedumpfile, zstd,
 * python3-libkdumpfile (system python), the corpus. `need` skips a test when something is
 * missing, except under CI=true, where a missing prerequisite fails the test.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '../../..');
/** The system python, which has drgn and libkdumpfile (Debian packages). */
export const PY = '/usr/bin/python3';
export const CI = process.env.CI === 'true';
const CORPUS_DIR = process.env.VMCORE_CORPUS ?? resolve(ROOT, '../shared/corpus');
/** The corpus directory, when it holds its truth files. */
export const CORPUS = existsSync(join(CORPUS_DIR, 'truth')) ? CORPUS_DIR : undefined;

const have = (cmd: string) => spawnSync('sh', ['-c', `command -v ${cmd}`]).status === 0;
export const HAVE = {
  makedumpfile: have('makedumpfile'),
  zstd: have('zstd'),
  libkdumpfile: existsSync(PY) && spawnSync(PY, ['-c', 'import kdumpfile']).status === 0,
  corpus: !!CORPUS,
};

/** True when everything in `what` is here; else skips `t` (fails it under CI=true) and returns false. */
export function need(t: { skip(msg: string): void }, what: (keyof typeof HAVE)[]): boolean {
  const missing = what.filter((k) => !HAVE[k]);
  if (!missing.length) return true;
  const msg = `missing: ${missing.join(', ')}`;
  if (CI) assert.fail(msg);
  t.skip(msg);
  return false;
}
