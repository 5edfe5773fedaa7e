#!/usr/bin/env node
/**
 * The `vmcore` command's entry (bundled alone as dist/src/cli/vmcore.js, the package's bin; see
 * scripts/bundle-cli.mjs): first the worker threads the command line shows the command will need
 * (early.ts), then the command itself (main.ts, through command.ts: its own bundle, command.cjs,
 * run with its code cache: code-cache.ts), whose loading the threads' start overlaps.
 */
import { runBundle } from './code-cache.js';
import { prestartFor } from './early.js';

prestartFor(process.argv.slice(2));
runBundle('command', import.meta.url);
