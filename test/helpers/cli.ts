/**
 * Run the built CLI (dist/src/cli/vmcore.js) as a user would: a child process, its exit status,
 * stdout and stderr. `vmcore` waits synchronously; `vmcoreAsync` lets this process go on (for
 * tests whose server runs in the test process itself).
 */
import { spawn, spawnSync } from 'node:child_process';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

export const CLI = join(resolve(dirname(fileURLToPath(import.meta.url)), '../../..'), 'dist/src/cli/vmcore.js');

export interface CliResult {
  rc: number | null;
  out: string;
  err: string;
}

export function vmcore(...args: string[]): CliResult {
  const r = spawnSync(process.execPath, [CLI, ...args], { encoding: 'utf8', maxBuffer: 64 << 20 });
  return { rc: r.status, out: r.stdout, err: r.stderr };
}

export function vmcoreAsync(...args: string[]): Promise<CliResult> {
  return new Promise((res) => {
    const p = spawn(process.execPath, [CLI, ...args]);
    let out = '';
    let err = '';
    p.stdout.on('data', (d) => (out += d));
    p.stderr.on('data', (d) => (err += d));
    p.on('close', (rc) => res({ rc, out, err }));
  });
}
