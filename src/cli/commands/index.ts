/**
 * Every CLI command: its name and its module (which exports register(program)). A module is
 * loaded when its command runs, or with all the others for help and unknown commands, so that
 * start-up loads only the code of the command that runs.
 */
import type { Command } from 'commander';

export interface CommandModule {
  register(p: Command): void;
}

export const commands: { name: string; load(): Promise<CommandModule> }[] = [
  { name: 'info', load: () => import('./info.js') },
  { name: 'read', load: () => import('./read.js') },
  { name: 'hash', load: () => import('./hash.js') },
  { name: 'diff', load: () => import('./diff.js') },
  { name: 'dmesg', load: () => import('./dmesg.js') },
  { name: 'vmcoreinfo', load: () => import('./vmcoreinfo.js') },
  { name: 'fix', load: () => import('./fix.js') },
  { name: 'convert', load: () => import('./convert.js') },
  { name: 'dump', load: () => import('./dump.js') },
  { name: 'struct', load: () => import('./struct.js') },
  { name: 'ps', load: () => import('./ps.js') },
  { name: 'mod', load: () => import('./mod.js') },
  { name: 'bt', load: () => import('./bt.js') },
  { name: 'sym', load: () => import('./sym.js') },
  { name: 'usage', load: () => import('./usage.js') },
  { name: 'serve', load: () => import('./serve.js') },
];

/**
 * The modules to register for `args` (the arguments after the script): the named command's alone
 * when the first argument that is not an option names one, else every command's in order.
 */
export async function commandsFor(args: readonly string[]): Promise<CommandModule[]> {
  const first = args.find((a) => !a.startsWith('-'));
  const one = commands.find((c) => c.name === first);
  return Promise.all((one ? [one] : commands).map((c) => c.load()));
}
