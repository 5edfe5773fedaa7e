/**
 * The triage page. It only draws: the worker (worker.ts) opens and reads the dump. Everything
 * that comes from a dump is put into the page as text (textContent), never as HTML.
 */
import type { Warning } from '../src/core/warnings.js';
import type { FetchedStats, FromWorker, ModuleRow, TaskRow, ToWorker } from './protocol.js';

const $ = <T extends HTMLElement = HTMLElement>(id: string) => document.getElementById(id) as T;
const STATE_NAMES = ['hole', 'data', 'zero', 'excluded', 'missing'] as const;
const STATE_COLORS = ['#f4f5f7', '#2f6fd0', '#7cb342', '#b0b4ba', '#e53935'];
const LEVEL_NAMES = ['emerg', 'alert', 'crit', 'err', 'warning', 'notice', 'info', 'debug'];

let worker: Worker | undefined;
let report: Record<string, unknown> | null = null;

function el(tag: string, text?: string, cls?: string): HTMLElement {
  const e = document.createElement(tag);
  if (text !== undefined) e.textContent = text;
  if (cls) e.className = cls;
  return e;
}

function human(n: number): string {
  const u = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let i = 0;
  while (n >= 1024 && i < u.length - 1) {
    n /= 1024;
    i++;
  }
  return `${i ? n.toFixed(1) : n} ${u[i]}`;
}

function showError(code: string, message: string): void {
  const e = $('error');
  e.textContent = `Cannot open this dump: ${code}: ${message}`;
  e.hidden = false;
  $('progress').hidden = true;
}

function start(msg: ToWorker, label: string): void {
  worker?.terminate();
  worker = new Worker('worker.js', { type: 'module' });
  worker.onmessage = (ev: MessageEvent<FromWorker>) => onMessage(ev.data);
  worker.onerror = (ev) => showError('WORKER', ev.message || 'the worker failed');
  report = null;
  ($('export') as HTMLButtonElement).disabled = true;
  $('error').hidden = true;
  $('main').hidden = true;
  $('progress').hidden = false;
  $('status').textContent = label;
  clearLog();
  clearTasks();
  mapData = null;
  worker.postMessage(msg);
}

function onMessage(m: FromWorker): void {
  switch (m.type) {
    case 'progress':
      ($('bar') as HTMLProgressElement).value = m.fraction;
      $('step').textContent = m.step;
      if (m.fraction >= 1) $('progress').hidden = true;
      break;
    case 'report':
      report = m.report as Record<string, unknown>;
      renderSummary(report, m.ms);
      if (m.fetched) showFetched(m.fetched);
      $('main').hidden = false;
      ($('export') as HTMLButtonElement).disabled = false;
      break;
    case 'fetched':
      showFetched(m.fetched);
      break;
    case 'log':
      setLog(m.ts, m.level, m.text, m.warnings);
      break;
    case 'map':
      if (report?.pageCount === 'bitmaps') {
        // the map read every page descriptor: the exact counts (damaged descriptors count as missing)
        const c = m.counts;
        $('pages').textContent = `frames ${c.data + c.zero + c.excluded + c.missing}  dumped ${c.data + c.zero} (data ${c.data}, zero-shared ${c.zero})  excluded ${c.excluded}  missing ${c.missing}  [page descriptors read with the memory map]`;
      }
      mapData = m;
      view = [0, Math.max(1, m.maxPfn)];
      drawMap();
      break;
    case 'tasks':
      setTasks(m.tasks, m.warnings, m.error);
      break;
    case 'modules':
      setModules(m.modules, m.warnings, m.error);
      break;
    case 'bt': {
      const box = $(m.panic ? 'backtrace' : 'taskbt');
      box.textContent = m.error ? `No backtrace: ${m.error}` : m.text;
      box.classList.toggle('slot', !!m.error);
      break;
    }
    case 'hex':
      $('hexerr').textContent = '';
      $('hexout').textContent = hexdump(m.bytes, BigInt(m.addr));
      break;
    case 'hexError':
      $('hexerr').textContent = `${m.code}: ${m.message}`;
      $('hexout').textContent = '';
      break;
    case 'error':
      showError(m.code, m.message);
      break;
  }
}

function showFetched(f: FetchedStats): void {
  const pct = f.size ? ((100 * f.bytesFetched) / f.size).toFixed(2) : '0';
  $('status').textContent = `${$('status').textContent!.replace(/ — fetched.*$/, '')} — fetched ${human(f.bytesFetched)} of ${human(f.size)} (${pct} %) in ${f.requests} requests`;
}

// ---- summary and panic ----

function renderSummary(r: Record<string, unknown>, ms: number): void {
  const dl = $('sum');
  dl.replaceChildren();
  const row = (k: string, v: string | Node) => {
    dl.append(el('dt', k));
    const dd = el('dd');
    if (typeof v === 'string') dd.textContent = v;
    else dd.append(v);
    dl.append(dd);
  };
  const files = r.files as { name: string; size: number }[];
  for (const f of files) row('File', `${f.name}  ${human(f.size)}`);
  row('Format', `${r.variant}  (${r.arch}, ${r.endian}-endian, page ${r.pageSize})`);
  const ev = r.producerEvidence as string[];
  row('Producer', `${r.producer}${ev.length ? ' — ' + ev.join('; ') : ''}`);
  const k = r.kernel as Record<string, string | null>;
  row('Kernel', k.release ? `${k.release}  ${k.version ?? ''}  [${k.releaseSource}]` : 'unknown');
  if (r.crashTime) row('Crash time', String(r.crashTime));
  row('CPUs', r.nrCpus === null ? 'unknown' : String(r.nrCpus));
  const vi = r.vmcoreinfo as { present: boolean; source: string };
  row('VMCOREINFO', vi.present ? `yes (${vi.source})` : 'none');
  const pb = r.physBase as { verdict: string; header: string | null; vmcoreinfo: string | null; value: string | null; proof: { code: string; text: string }[]; explanation: string | null };
  const v = el('span', pb.verdict.toUpperCase(), `verdict ${pb.verdict === 'header wrong' ? 'wrong' : pb.verdict === 'header correct' ? 'ok' : ''}`);
  v.id = 'verdict';
  row('phys_base', v);
  row('\u00a0\u00a0header', pb.header ?? '(format has no phys_base field)');
  if (pb.vmcoreinfo) row('\u00a0\u00a0VMCOREINFO', pb.vmcoreinfo);
  row('\u00a0\u00a0true', pb.value ?? 'not proven');
  if (pb.proof.length) row('\u00a0\u00a0proof', pb.proof.map((s) => s.text).join('; '));
  if (pb.explanation) row('\u00a0\u00a0why', pb.explanation);
  const pages = r.pages as Record<string, number | null>;
  row(
    'Pages',
    r.pageCount === 'bitmaps'
      ? `frames ${pages.ram}  dumped ${pages.dumped}  excluded ${pages.excluded}  missing ${pages.missing}  [from the bitmaps; zero-shared counted with the memory map]`
      : `frames ${pages.ram}  dumped ${pages.dumped} (data ${pages.data}, zero-shared ${pages.zeroShared})  excluded ${pages.excluded}  missing ${pages.missing}${pages.damaged ? `  damaged ${pages.damaged}` : ''}`,
  );
  dl.lastElementChild!.id = 'pages';
  row('File size', `${human(r.fileBytes as number)}${r.fileToRamRatio !== null ? `  (${((r.fileToRamRatio as number) * 100).toFixed(1)} % of RAM)` : ''}`);
  for (const w of r.warnings as Warning[]) row('Warning', w.text);
  row('Analysed in', `${(ms / 1000).toFixed(2)} s`);

  const p = r.panic as { message: string | null; cpu: number | null; task: number | null; uptime: string | null; registers: Record<string, string> | null; registersSource: string | null } | null;
  const box = $('panic');
  box.replaceChildren();
  if (!p || !p.message) {
    box.textContent = 'No panic line found in the log.';
    return;
  }
  const who = [p.cpu !== null ? `CPU ${p.cpu}` : null, p.task !== null ? `task ${p.task}` : null, p.uptime !== null ? `${p.uptime} s after boot` : null].filter(Boolean);
  const msg = el('div', p.message, 'panicmsg');
  msg.id = 'panicmsg';
  box.append(msg, el('div', who.join(', ')));
  if (p.registers) {
    const regs = Object.entries(p.registers).filter(([, x]) => typeof x === 'string' && /^0x[0-9a-f]+$/i.test(x)).map(([n, x]) => `${n.toUpperCase().padEnd(6)} ${x}`);
    const lines: string[] = [];
    for (let i = 0; i < regs.length; i += 3) lines.push(regs.slice(i, i + 3).map((s) => s.padEnd(28)).join(''));
    box.append(el('div', `Registers [${p.registersSource}]`), el('pre', lines.join('\n')));
  }
}

// ---- log viewer: virtual scrolling over every line ----

const LH = 16;
let logTs: string[] = [];
let logLevel: number[] = [];
let logText: string[] = [];
let shown: Int32Array = new Int32Array(0);

function clearLog(): void {
  logTs = [];
  logLevel = [];
  logText = [];
  shown = new Int32Array(0);
  $('logrows').replaceChildren();
  $('logwarn').textContent = '';
}

function setLog(ts: string[], level: number[], text: string[], warnings: Warning[]): void {
  // one row per line: a multi-line record continues under its timestamp
  logTs = [];
  logLevel = [];
  logText = [];
  for (let i = 0; i < text.length; i++) {
    const lines = text[i]!.split('\n');
    for (let j = 0; j < lines.length; j++) {
      logTs.push(j === 0 ? `[${ts[i]!.padStart(12)}]` : ''.padStart(14));
      logLevel.push(level[i]!);
      logText.push(lines[j]!);
    }
  }
  $('logwarn').textContent = warnings.map((w) => w.text).join('; ');
  filterLog();
}

function filterLog(): void {
  const q = ($('search') as HTMLInputElement).value.toLowerCase();
  const max = Number(($('level') as HTMLSelectElement).value);
  const idx: number[] = [];
  for (let i = 0; i < logText.length; i++) {
    if (logLevel[i]! > max) continue;
    if (q && !logText[i]!.toLowerCase().includes(q)) continue;
    idx.push(i);
  }
  shown = Int32Array.from(idx);
  $('logcount').textContent = `(${shown.length}${shown.length !== logText.length ? ` of ${logText.length}` : ''} lines)`;
  $('logspacer').style.height = `${shown.length * LH}px`;
  $('logview').scrollTop = 0;
  drawLog();
}

function drawLog(): void {
  const view = $('logview');
  const first = Math.max(0, Math.floor(view.scrollTop / LH) - 5);
  const count = Math.ceil(view.clientHeight / LH) + 10;
  const rows = $('logrows');
  rows.style.top = `${first * LH}px`;
  const q = ($('search') as HTMLInputElement).value;
  const frag = document.createDocumentFragment();
  for (let k = first; k < Math.min(shown.length, first + count); k++) {
    const i = shown[k]!;
    const r = el('div', undefined, `row lv${logLevel[i]}${q ? ' hit' : ''}`);
    r.title = LEVEL_NAMES[logLevel[i]!] ?? '';
    r.append(el('span', logTs[i] + ' ', 'ts'), el('span', logText[i]));
    frag.append(r);
  }
  rows.replaceChildren(frag);
}

// ---- tasks ----

let taskRows: TaskRow[] = [];

function clearTasks(): void {
  taskRows = [];
  $('taskrows').replaceChildren();
  $('taskcount').textContent = '';
  $('taskwarn').textContent = '';
  $('taskbt').textContent = 'Waiting for the task list…';
  $('modules').textContent = 'Waiting for the module list…';
  $('modcount').textContent = '';
  $('backtrace').textContent = 'Waiting for the backtrace…';
}

function setTasks(rows: TaskRow[], warnings: Warning[], error: string | null): void {
  taskRows = rows;
  $('taskwarn').textContent = warnings.map((w) => w.text).join('; ');
  $('taskbt').textContent = error ? `No task list: ${error}` : 'Click a task for its backtrace.';
  filterTasks();
}

function filterTasks(): void {
  const q = ($('taskfilter') as HTMLInputElement).value.trim().toLowerCase();
  const frag = document.createDocumentFragment();
  let n = 0;
  for (const t of taskRows) {
    if (q && !t.comm.toLowerCase().includes(q) && String(t.pid) !== q) continue;
    n++;
    const tr = el('tr', undefined, `${t.panic ? 'panic' : ''}${t.activeCpu !== null ? ' active' : ''}`);
    tr.dataset.task = t.task;
    for (const c of [String(t.pid), String(t.ppid), String(t.cpu), t.state, t.task.replace(/^0x/, ''), t.comm]) tr.append(el('td', c));
    frag.append(tr);
  }
  $('taskrows').replaceChildren(frag);
  $('taskcount').textContent = taskRows.length ? `(${n}${n !== taskRows.length ? ` of ${taskRows.length}` : ''})` : '';
}

function showTaskBacktrace(ev: MouseEvent): void {
  const tr = (ev.target as HTMLElement).closest('tr');
  const task = tr?.dataset.task;
  if (!worker || !task) return;
  for (const x of $('taskrows').querySelectorAll('tr.sel')) x.classList.remove('sel');
  tr!.classList.add('sel');
  $('taskbt').textContent = 'Unwinding…';
  worker.postMessage({ type: 'bt', task } satisfies ToWorker);
}

// ---- modules ----

function setModules(rows: ModuleRow[], warnings: Warning[], error: string | null): void {
  const box = $('modules');
  box.replaceChildren();
  box.classList.toggle('slot', !!error || !rows.length);
  $('modcount').textContent = error ? '' : `(${rows.length})`;
  if (error) {
    box.textContent = `No module list: ${error}`;
    return;
  }
  if (!rows.length) box.append(el('div', 'No module is loaded.'));
  else {
    const table = el('table');
    table.id = 'modtable';
    const head = el('tr');
    for (const h of ['MODULE', 'NAME', 'BASE', 'SIZE', 'STATE', 'TAINT', 'SYMBOLS']) head.append(el('th', h));
    table.append(el('thead'), el('tbody'));
    table.firstElementChild!.append(head);
    for (const m of rows) {
      const tr = el('tr');
      for (const c of [m.module.replace(/^0x/, ''), m.name, m.base.replace(/^0x/, ''), String(m.size), m.state, m.taint || '-', m.symbols === null ? `none (${m.symbolsError ?? '?'})` : String(m.symbols)]) tr.append(el('td', c));
      table.lastElementChild!.append(tr);
    }
    box.append(table);
  }
  if (warnings.length) box.append(el('div', warnings.map((w) => w.text).join('; '), 'hint'));
}

// ---- memory map ----

let mapData: Extract<FromWorker, { type: 'map' }> | null = null;
let view: [number, number] = [0, 1];
const COLS = 512;
const ROWS = 96;
const CELL = 2;

/** Index of the run holding pfn (or the first run after it). */
function runAt(pfn: number): number {
  const s = mapData!.starts;
  let lo = 0;
  let hi = s.length;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    if (mapData!.ends[mid]! <= pfn) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

function drawMap(): void {
  if (!mapData) return;
  const c = $('map') as HTMLCanvasElement;
  const ctx = c.getContext('2d')!;
  const img = ctx.createImageData(COLS * CELL, ROWS * CELL);
  const cells = COLS * ROWS;
  const [v0, v1] = view;
  const per = (v1 - v0) / cells;
  const rgb = STATE_COLORS.map((h) => [1, 3, 5].map((o) => parseInt(h.slice(o, o + 2), 16)));
  let r = runAt(v0);
  const counts = new Float64Array(5);
  for (let i = 0; i < cells; i++) {
    const a = v0 + i * per;
    const b = a + per;
    counts.fill(0);
    while (r < mapData.starts.length && mapData.ends[r]! <= a) r++;
    let k = r;
    let covered = 0;
    while (k < mapData.starts.length && mapData.starts[k]! < b) {
      const ov = Math.min(b, mapData.ends[k]!) - Math.max(a, mapData.starts[k]!);
      if (ov > 0) {
        counts[mapData.states[k]!]! += ov;
        covered += ov;
      }
      k++;
    }
    counts[0]! += Math.max(0, b - a - covered);
    // the most frequent state; any missing page shows (it is what a reader must not miss)
    let best = 0;
    for (let s = 1; s < 5; s++) if (counts[s]! > counts[best]!) best = s;
    if (counts[4]! > 0) best = 4;
    const [R, G, B] = rgb[best]!;
    const x = (i % COLS) * CELL;
    const y = Math.floor(i / COLS) * CELL;
    for (let dy = 0; dy < CELL; dy++)
      for (let dx = 0; dx < CELL; dx++) {
        const o = ((y + dy) * COLS * CELL + x + dx) * 4;
        img.data[o] = R!;
        img.data[o + 1] = G!;
        img.data[o + 2] = B!;
        img.data[o + 3] = 255;
      }
  }
  ctx.putImageData(img, 0, 0);
  const ps = mapData.pageSize;
  $('maprange').textContent = `0x${(v0 * ps).toString(16)} – 0x${Math.ceil(v1 * ps).toString(16)}  (${human((v1 - v0) * ps)}, ${per >= 1 ? `${per.toFixed(per < 10 ? 1 : 0)} pages` : `1/${(1 / per).toFixed(0)} page`} per cell)`;
  c.dataset.drawn = String(Number(c.dataset.drawn ?? 0) + 1);
}

function pfnAtEvent(ev: MouseEvent): number {
  const c = $('map') as HTMLCanvasElement;
  const rect = c.getBoundingClientRect();
  const x = Math.floor(((ev.clientX - rect.left) / rect.width) * COLS);
  const y = Math.floor(((ev.clientY - rect.top) / rect.height) * ROWS);
  const i = Math.min(COLS * ROWS - 1, Math.max(0, y * COLS + x));
  return view[0] + (i * (view[1] - view[0])) / (COLS * ROWS);
}

function initMap(): void {
  const c = $('map') as HTMLCanvasElement;
  const legend = $('legend');
  STATE_NAMES.forEach((n, i) => {
    const s = el('span', n);
    const sw = el('i');
    sw.style.background = STATE_COLORS[i]!;
    s.prepend(sw);
    legend.append(s);
  });
  c.addEventListener('mousemove', (ev) => {
    if (!mapData) return;
    const pfn = Math.floor(pfnAtEvent(ev));
    const k = runAt(pfn);
    const st = k < mapData.starts.length && mapData.starts[k]! <= pfn ? STATE_NAMES[mapData.states[k]!] : 'hole';
    $('mapinfo').textContent = `pfn 0x${pfn.toString(16)}  phys 0x${(pfn * mapData.pageSize).toString(16)}  ${st}`;
  });
  c.addEventListener(
    'wheel',
    (ev) => {
      if (!mapData) return;
      ev.preventDefault();
      const at = pfnAtEvent(ev);
      const f = ev.deltaY < 0 ? 0.5 : 2;
      const span = Math.min(mapData.maxPfn, Math.max((COLS * ROWS) / 16, (view[1] - view[0]) * f));
      let a = at - (at - view[0]) * (span / (view[1] - view[0]));
      a = Math.max(0, Math.min(mapData.maxPfn - span, a));
      view = [a, a + span];
      drawMap();
    },
    { passive: false },
  );
  c.addEventListener('click', (ev) => {
    if (!mapData) return;
    const pfn = Math.floor(pfnAtEvent(ev));
    ($('space') as HTMLSelectElement).value = 'phys';
    ($('addr') as HTMLInputElement).value = '0x' + (pfn * mapData.pageSize).toString(16);
    readHex();
  });
  $('zoomreset').addEventListener('click', () => {
    if (!mapData) return;
    view = [0, Math.max(1, mapData.maxPfn)];
    drawMap();
  });
}

// ---- hex view ----

function hexdump(b: Uint8Array, base: bigint): string {
  const out: string[] = [];
  for (let i = 0; i < b.length; i += 16) {
    const row = b.subarray(i, i + 16);
    const hex = Array.from(row, (x) => x.toString(16).padStart(2, '0')).join(' ');
    const asc = Array.from(row, (x) => (x >= 0x20 && x < 0x7f ? String.fromCharCode(x) : '.')).join('');
    out.push(`${BigInt.asUintN(64, base + BigInt(i)).toString(16).padStart(16, '0')}  ${hex.padEnd(47)}  |${asc}|`);
  }
  return out.join('\n');
}

function readHex(): void {
  if (!worker) return;
  const addr = ($('addr') as HTMLInputElement).value.trim();
  const length = Number(($('hexlen') as HTMLInputElement).value) || 256;
  try {
    BigInt(addr);
  } catch {
    $('hexerr').textContent = 'not a number: use 0x… or decimal';
    return;
  }
  worker.postMessage({ type: 'hex', space: ($('space') as HTMLSelectElement).value as 'phys' | 'virt', addr, length } satisfies ToWorker);
}

// ---- export ----

function exportJson(): void {
  if (!report) return;
  const blob = new Blob([JSON.stringify(report, null, 2) + '\n'], { type: 'application/json' });
  const a = document.createElement('a');
  a.href = URL.createObjectURL(blob);
  a.download = 'vmcore-report.json';
  a.click();
  setTimeout(() => URL.revokeObjectURL(a.href), 10000);
}

// ---- wiring ----

function openFile(f: File): void {
  start({ type: 'open', file: f }, `${f.name} (${human(f.size)}, local file)`);
}
function openUrl(u: string): void {
  let abs: string;
  try {
    abs = new URL(u, location.href).href;
  } catch {
    showError('USAGE', `not a URL: ${u}`);
    return;
  }
  if (!/^https?:/.test(abs)) {
    showError('USAGE', 'only http and https URLs can be read');
    return;
  }
  start({ type: 'open', url: abs }, abs.includes('?') ? abs.replace(/\?.*$/, '?…') : abs.replace(/#.*$/, ''));
}

function init(): void {
  ($('file') as HTMLInputElement).addEventListener('change', (ev) => {
    const f = (ev.target as HTMLInputElement).files?.[0];
    if (f) openFile(f);
  });
  $('urlform').addEventListener('submit', (ev) => {
    ev.preventDefault();
    const u = ($('url') as HTMLInputElement).value.trim();
    if (u) openUrl(u);
  });
  const drop = $('drop');
  document.addEventListener('dragover', (ev) => {
    ev.preventDefault();
    drop.classList.add('over');
  });
  document.addEventListener('dragleave', () => drop.classList.remove('over'));
  document.addEventListener('drop', (ev) => {
    ev.preventDefault();
    drop.classList.remove('over');
    const f = ev.dataTransfer?.files[0];
    if (f) openFile(f);
  });
  $('search').addEventListener('input', filterLog);
  $('level').addEventListener('change', filterLog);
  $('logview').addEventListener('scroll', () => requestAnimationFrame(drawLog), { passive: true });
  $('hexform').addEventListener('submit', (ev) => {
    ev.preventDefault();
    readHex();
  });
  $('export').addEventListener('click', exportJson);
  $('taskfilter').addEventListener('input', filterTasks);
  $('taskrows').addEventListener('click', showTaskBacktrace);
  initMap();

  // ?url=… in the page address, or the first dump named to `vmcore serve`
  const q = new URLSearchParams(location.search).get('url');
  let served: { url: string }[] = [];
  try {
    served = JSON.parse(document.querySelector<HTMLMetaElement>('meta[name="vmcore-dumps"]')?.content ?? '[]');
  } catch {
    /* not served */
  }
  if (q) openUrl(q);
  else if (served[0]) openUrl(served[0].url);
}

init();
