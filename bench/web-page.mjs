#!/usr/bin/env node
// Time the web page on a dump: `vmcore serve DUMP`, then Debian's chromium (playwright-core)
// opens the page, which opens the dump over Range requests; prints the time until the summary
// (phys_base verdict) is shown and how much of the file the page fetched by then.
//   node bench/web-page.mjs DUMP [RUNS=3]      (VMCORE_CHROMIUM, default /usr/bin/chromium)
import { serve } from '../dist/src/node/serve.js';
import { chromium } from 'playwright-core';

const [dump, runsArg] = process.argv.slice(2);
const runs = Number(runsArg ?? 3);
const h = await serve({ dumps: [dump] });
const browser = await chromium.launch({ executablePath: process.env.VMCORE_CHROMIUM ?? '/usr/bin/chromium', args: ['--no-sandbox', '--disable-gpu'] });
const times = [];
try {
  for (let i = 0; i < runs; i++) {
    const page = await browser.newPage();
    const t0 = performance.now();
    await page.goto(h.url);
    await page.locator('#verdict').waitFor({ timeout: 120000 });
    const ms = performance.now() - t0;
    const status = await page.locator('#status').textContent();
    const analysed = await page.locator('#sum').textContent();
    times.push(ms);
    console.log(`run ${i + 1}: summary shown after ${(ms / 1000).toFixed(2)} s (${/Analysed in([\d.]+ s)/.exec(analysed)?.[1] ?? '?'} in the worker); ${status.replace(/^.* — /, '')}`);
    await page.close();
  }
} finally {
  await browser.close();
  await h.close();
}
times.sort((a, b) => a - b);
console.log(`median ${(times[Math.floor(times.length / 2)] / 1000).toFixed(2)} s`);
