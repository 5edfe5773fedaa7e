#!/usr/bin/env node
/** The `vmcore` command: a thin layer over the library. */
import { Command, CommanderError } from 'commander';
import { createRequire } from 'node:module';
import { isVmcoreError } from '../core/errors.js';
import { commandsFor } from './commands/index.js';
import { EXIT_PIPE, EXIT_USAGE, exitCodeOf, exitWhenFlushed, installProcessConventions, isClosedPipe, printable } from './util.js';

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
// the command that runs, to name it in errors (NOT_SEEKABLE: which command needs a file)
let running = '';
program.hook('preAction', (_p, cmd) => {
  running = cmd.name();
});

/**
 * makedumpfile's own command lines, as habits: `vmcore --dump-dmesg DUMP [LOGFILE]` is
 * `vmcore dmesg DUMP [-o LOGFILE]`, `vmcore --reassemble SET... OUT` is `vmcore convert
 * --reassemble SET... OUT`, `vmcore -R OUT` is `vmcore convert -R OUT`.
 */
function makedumpfileHabits(argv: string[]): string[] {
  const [node, script, first, ...rest] = argv;
  if (first === '--dump-dmesg') {
    const pos = rest.map((a, i) => (a.startsWith('-') && a !== '-' ? -1 : i)).filter((i) => i >= 0);
    const out = [...rest];
    if (pos.length === 2) out.splice(pos[1]!, 1, '-o', rest[pos[1]!]!);
    return [node!, script!, 'dmesg', ...out];
  }
  if (first === '--reassemble') return [node!, script!, 'convert', '--reassemble', ...rest];
  if (first === '-R') return [node!, script!, 'convert', '-R', ...rest];
  return argv;
}

/** Runs the command line of this process, then ends the process (exitWhenFlushed). */
async function run(): Promise<void> {
  const debug = process.argv.includes('--debug');
  installProcessConventions();
  try {
    const argv = makedumpfileHabits(process.argv);
    for (const c of await commandsFor(argv.slice(2))) c.register(program);
    await program.parseAsync(argv);
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
      process.stderr.write(printable(msg) + '\n');
      if (debug) process.stderr.write(((e as Error)?.stack ?? '') + '\n');
      process.exitCode = exitCodeOf(e);
    }
  }
  // every command is done here (serve too: it returns once stopped)
  await exitWhenFlushed();
}

// no top-level await: the command's bundle is a CommonJS script (scripts/bundle-cli.mjs)
void run();
