import type { Command } from 'commander';
import { spawn } from 'node:child_process';
import { serve } from '../../node/serve.js';
import { parseCount, jsonText } from '../util.js';
import { VmcoreError } from '../../core/errors.js';

export function register(program: Command): void {
  program
    .command('serve')
    .description('Serve the web page and the named dumps (read-only, Range requests) on loopback; the page opens the first dump by itself.')
    .argument('<dump...>', 'dump files to serve; nothing else is reachable')
    .option('--port <n>', 'TCP port (default: any free port)')
    .option('--host <addr>', 'address to listen on (default 127.0.0.1; anything else exposes the dumps to the network)', '127.0.0.1')
    .option('--open', 'open the page in the default browser (xdg-open / open / start)')
    .option('--quiet', 'do not log requests')
    .option('--json', 'print {url, dumps: [URL...]} on one line when listening, instead of the page URL')
    .action(async (files: string[], o: { port?: string; host: string; open?: boolean; quiet?: boolean; json?: boolean }) => {
      const port = o.port === undefined ? 0 : parseCount(o.port, '--port');
      if (port > 65535) throw new VmcoreError('USAGE', `--port wants a TCP port from 0 to 65535, got ${port}`);
      const h = await serve({
        dumps: files,
        host: o.host,
        port,
        ...(o.quiet ? {} : { onRequest: (m: string, u: string, s: number) => process.stderr.write(`${s} ${m} ${u}\n`) }),
      });
      process.stdout.write(o.json ? jsonText({ url: h.url, dumps: h.dumpUrls }, 0) + '\n' : `${h.url}\n`);
      if (!['127.0.0.1', 'localhost', '::1'].includes(o.host)) process.stderr.write(`warning: listening on ${o.host}: the dumps are readable from the network\n`);
      if (o.open) {
        const cmd = process.platform === 'darwin' ? 'open' : process.platform === 'win32' ? 'explorer' : 'xdg-open';
        spawn(cmd, [h.url], { stdio: 'ignore', detached: true })
          .on('error', () => process.stderr.write(`could not start ${cmd}; open ${h.url} yourself\n`))
          .unref();
      }
      await new Promise<void>((r) => {
        const stop = () => r();
        process.once('SIGINT', stop);
        process.once('SIGTERM', stop);
      });
      await h.close();
    });
}
