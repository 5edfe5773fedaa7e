/**
 * The CLI's triage thread (bundled as dist/src/cli/triage-worker.js, where the command's
 * prestartWorkers and triageOnWorker start it): the triage worker's own bundle,
 * triage-worker.cjs (src/node/workers/triage-worker.ts), run with its code cache (code-cache.ts).
 */
import { runBundle } from './code-cache.js';

runBundle('triage-worker', import.meta.url);
