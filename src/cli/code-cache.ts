/**
 * The CLI's large bundles (the command, the triage thread) are CommonJS scripts run through
 * node:vm with V8's code cache: the bytecode of every function a typical run compiles, made once
 * at build time (scripts/bundle-cli.mjs runs a filtering convert of the bundled sample with
 * VMCORE_CODE_CACHE=write) and kept beside the bundle as NAME.cjs.cache. Node 20 has no cache
 * for ES modules (module.enableCompileCache is Node 22); parsing and compiling the 1 MB command
 * and the 0.5 MB triage bundle cost ~100 ms of CPU each run (bench/README.md, "Code cache").
 *
 * The cache file starts with the SHA-256 of the bundle it was made from and the SHA-256 of the
 * cache data that follows: V8 checks only the source's length (a cache of another build of the
 * same length would run that build's bytecode) and no checksum of the data (damaged bytes made
 * Node 20 stop on "unreachable code" or run broken bytecode). A cache that does not match, or
 * that this Node's V8 rejects (another version, or flags such as --max-old-space-size), is not
 * used: the bundle is compiled as any script is. VMCORE_CODE_CACHE=off ignores the cache;
 * =report says on stderr whether it was used.
 */
import { isAscii } from 'node:buffer';
import { createHash } from 'node:crypto';
import { readFileSync, renameSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Script } from 'node:vm';
import { isMainThread } from 'node:worker_threads';

const HASH_BYTES = 32;

/**
 * What became of a bundle's code cache: used, none (no file, or ignored), stale (made from
 * another build), damaged (its data does not match its checksum), rejected (by V8).
 */
export type CodeCacheUse = 'used' | 'none' | 'stale' | 'damaged' | 'rejected';

const sha256 = (b: string | Uint8Array): Buffer => createHash('sha256').update(b).digest();

/**
 * Runs the CommonJS bundle `name`.cjs beside the calling module (its URL: `base`) as a module
 * of its own (exports, require, module, __filename, __dirname), with its code cache when that
 * is valid. With VMCORE_CODE_CACHE=write, (re)writes the cache after the run (the main thread:
 * at exit; a worker thread: every 20 ms while it runs, as it may be ended without an exit event).
 * @returns what became of the cache
 * @throws what the bundle's top-level code throws; an unreadable bundle (ENOENT, EACCES)
 */
export function runBundle(name: string, base: string): CodeCacheUse {
  const file = fileURLToPath(new URL(`./${name}.cjs`, base));
  const bytes = readFileSync(file);
  // the build makes the bundles ASCII (scripts/bundle-cli.mjs): read as Latin-1, which costs
  // a tenth of UTF-8 decoding; any other text as UTF-8
  const source = isAscii(bytes) ? bytes.toString('latin1') : bytes.toString('utf8');
  const mode = process.env.VMCORE_CODE_CACHE;
  const hash = sha256(bytes);
  let cachedData: Buffer | undefined;
  let use: CodeCacheUse = 'none';
  if (mode !== 'off' && mode !== 'write') {
    try {
      const c = readFileSync(`${file}.cache`);
      if (c.length <= 2 * HASH_BYTES || !c.subarray(0, HASH_BYTES).equals(hash)) use = 'stale';
      else if (!c.subarray(HASH_BYTES, 2 * HASH_BYTES).equals(sha256(c.subarray(2 * HASH_BYTES)))) use = 'damaged';
      else cachedData = c.subarray(2 * HASH_BYTES);
    } catch {
      /* no cache: compiled as any script */
    }
  }
  const script = new Script(`(function (exports, require, module, __filename, __dirname) {${source}\n})`, { filename: file, ...(cachedData ? { cachedData } : {}) });
  if (cachedData) use = script.cachedDataRejected ? 'rejected' : 'used';
  if (mode === 'report') process.stderr.write(`vmcore: ${name}: code cache ${use}\n`);
  if (mode === 'write') {
    const write = () => {
      const tmp = `${file}.cache.${process.pid}.${Math.random().toString(36).slice(2)}`;
      const data = script.createCachedData();
      writeFileSync(tmp, Buffer.concat([hash, sha256(data), data]));
      renameSync(tmp, `${file}.cache`);
    };
    process.on('exit', write);
    if (!isMainThread) setInterval(write, 20).unref();
  }
  const fn = script.runInThisContext() as (exports: object, require: NodeJS.Require, module: { exports: object }, filename: string, dirname: string) => void;
  const module = { exports: {} };
  fn(module.exports, createRequire(file), module, file, dirname(file));
  return use;
}
