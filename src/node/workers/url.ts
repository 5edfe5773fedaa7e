/**
 * Where a worker thread's module is: beside this module. In the package's modules that is
 * dist/src/node/workers/NAME.js; in the command's bundle (scripts/bundle-cli.mjs) this module is
 * inside the bundle, and each worker is bundled beside it under the same name.
 */
export type WorkerName = 'compress-worker' | 'read-worker' | 'triage-worker';

/** The URL of worker `name`'s module, for `new Worker(url)`. */
export function workerUrl(name: WorkerName): URL {
  return new URL(`./${name}.js`, import.meta.url);
}
