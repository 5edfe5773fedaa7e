#!/usr/bin/env node
/** The `vmcore` command: a thin layer over the library. */
import { Command, CommanderError } from 'commander';
import { createRequire } from 'node:module';
import { isVmcoreError } from '../core/errors.js';
import { commands } from './commands/index.js';
import { EXIT_PIPE, EXIT_USAGE, exitCodeOf, installProcessConventions, isClosedPipe } from './util.js';

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
// the command that runs, to name it in errors (NOT_SEEKABLE: which command needs a file)
let running = '';
program.hook('preAction', (_p, cmd) => {
  running = cmd.name();
});

const debug = process.argv.includes('--debug');
installProcessConventions();
try {
  await program.parseAsync(process.argv);
} catch (e) {
  if (e instanceof CommanderError) {
    // help and --version exit 0; everything the parser refuses is a usage error
    process.exitCode = e.exitCode === 0 ? 0 : EXIT_USAGE;
  } else if (isClosedPipe(e)) {
    process.exitCode = EXIT_PIPE;
  } else {
    const msg = isVmcoreError(e)
      ? `vmcore: ${e.code}: ${e.message}${e.code === 'NOT_SEEKABLE' ? `; vmcore ${running || 'this command'} needs a seekable file` : ''}`
      : `vmcore: ${(e as Error)?.message ?? String(e)}`;
    process.stderr.write(msg + '\n');
    if (debug) process.stderr.write(((e as Error)?.stack ?? '') + '\n');
    process.exitCode = exitCodeOf(e);
  }
}
