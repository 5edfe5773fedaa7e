// Worker threads started before the command knows it needs them (src/node/workers/prestart.ts):
// the launcher's guess from the command line (src/cli/early.ts), and a prestarted triage thread
// that waits for its job.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { filteringLevel } from '../../src/cli/early.js';
import { prestartWorkers, releasePrestarted, takeWorker } from '../../src/node/workers/prestart.js';
import type { TriageAnswer } from '../../src/node/workers/triage-worker.js';

test('the launcher guesses from the words which convert filters by page type (a triage thread to prestart)', () => {
  const yes: [string[], number][] = [
    [['convert', '-l', '-d', '31', 'in', 'out'], 31],
    [['convert', '-d31', 'in', 'out'], 31],
    [['convert', '-ld', '16', 'in', 'out'], 16],
    [['convert', '-ld2', 'in', 'out'], 2],
    [['convert', '--dump-level', '8', 'in', 'out'], 8],
    [['convert', '--dump-level=4', 'in', 'out'], 4],
    [['--debug', 'convert', 'in', 'out', '-d', '30'], 30],
    [['--reassemble', 'a.1', 'a.2', 'out', '-d', '31'], 31],
  ];
  for (const [args, level] of yes) assert.equal(filteringLevel(args), level, args.join(' '));
  const no: string[][] = [
    ['convert', '-d', '1', 'in', 'out'], // zero pages only: no classification
    ['convert', '-d', '0', 'in', 'out'],
    ['convert', 'in', 'out'],
    ['info', '-d', '31', 'in'],
    ['convert', '-d', '31', '--threads', '0', 'in', 'out'],
    ['convert', '-d', '31', '--threads=0', 'in', 'out'],
    ['convert', '-d', '31', 'https://host/vmcore', 'out'],
    ['convert', '-d', '31', '-', 'out'],
    ['convert', '-R', '-d', '31', 'out'],
    ['convert', '-d', '31', '--no-kernel', 'in', 'out'],
    ['convert', '-d', 'x', 'in', 'out'],
  ];
  for (const args of no) assert.equal(filteringLevel(args), undefined, args.join(' '));
});

test('a prestarted triage thread waits for its job and is the one taken; unused, it is released', async () => {
  assert.equal(prestartWorkers('triage-worker', 1), 1);
  assert.equal(prestartWorkers('triage-worker', 1), 1, 'no second one');
  const w = takeWorker('triage-worker');
  assert.equal(prestartWorkers('triage-worker', 0), 0, 'taken: none waits');
  // the job comes as a message: a file that does not exist gets the error as its answer
  const answer = await new Promise<TriageAnswer>((resolve) => {
    w.once('message', resolve);
    w.postMessage({ paths: ['/nonexistent/vmcore'], noBacktraces: true, digestPages: false });
  });
  assert.equal(answer.error?.code, 'IO');
  await new Promise((r) => w.once('exit', r));
  assert.equal(prestartWorkers('triage-worker', 1), 1);
  await releasePrestarted('triage-worker');
  assert.equal(prestartWorkers('triage-worker', 0), 0);
});
