#!/usr/bin/env node
/** The `vmcore` command: a thin layer over the library. */
import { Command, CommanderError } from 'commander';
import { createRequire } from 'node:module';
import { isVmcoreError } from '../core/errors.js';
import { commands } from './commands/index.js';

const require = createRequire(import.meta.url);
const pkg = require('../../../package.json') as { version: string };

const program = new Command();
program
  .name('vmcore')
  .description('Linux kernel crash dumps and VM memory dumps: read, explain, fix, convert.')
  .version(pkg.version)
  .option('--debug', 'print stack traces on errors')
  .showHelpAfterError()
  .exitOverride();
for (const c of commands) c.register(program);

const debug = process.argv.includes('--debug');
try {
  await program.parseAsync(process.argv);
} catch (e) {
  if (e instanceof CommanderError) {
    process.exitCode = e.exitCode;
  } else {
    const msg = isVmcoreError(e) ? `vmcore: ${e.code}: ${e.message}` : `vmcore: ${(e as Error)?.message ?? String(e)}`;
    process.stderr.write(msg + '\n');
    if (debug) process.stderr.write(((e as Error)?.stack ?? '') + '\n');
    process.exitCode = isVmcoreError(e) && e.code === 'USAGE' ? 2 : 1;
  }
}
