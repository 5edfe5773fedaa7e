/**
 * Recover VMCOREINFO from guest memory when the dump file carries none (QEMU without
 * `-device vmcoreinfo`). The kernel builds the VMCOREINFO ELF note at boot in page-allocator
 * memory (page-aligned), next to a page holding the raw text, and a third copy (the safecopy)
 * when a kdump kernel is loaded (reference analysis.md §1.4). We look at the first bytes of
 * every present page for the note header or for raw text, validate what we find, and rank the
 * copies. Bounded: only `data` pages are read, each once, and at most `maxHits` are kept.
 */
import type { PhysicalMemory } from '../dump.js';
import { scanReadPage, scanReadPageBlock } from './recording.js';
import { LossLog } from '../loss.js';
import { KERNEL_LIMITS } from '../limits.js';
import { latin1 } from '../text.js';

export type RecoveredForm = 'note' | 'text';

export interface RecoveredVmcoreinfo {
  /** Physical address of the note header (form 'note') or of the text (form 'text'). */
  addr: number;
  form: RecoveredForm;
  text: string;
  hasCrashTime: boolean;
  /** Note form: the descriptor is followed by the kernel's 12-byte zero terminator. */
  terminated: boolean;
  /** "memory scan at 0x…" */
  source: string;
}

export interface RecoverOptions {
  /** Keep at most this many validated copies (default 64). */
  maxHits?: number;
  /**
   * Also look for the note at every 4-byte-aligned offset (kernels before 4.13 kept it in
   * .data); only done when the page-start pass finds nothing. Default true.
   */
  deep?: boolean;
  /** Progress callback: pages scanned so far and total present pages. */
  onProgress?: (done: number, total: number) => void;
  /** Where pages that cannot be read are recorded (they are skipped, the scan goes on). */
  losses?: LossLog;
}

const NOTE_NAME = 'VMCOREINFO\0';
const OSREL = 'OSRELEASE=';
const OSREL_BYTES = [...OSREL].map((c) => c.charCodeAt(0));
const NAME_BYTES = [...NOTE_NAME].map((c) => c.charCodeAt(0));
const VMCOREINFO_MAX = KERNEL_LIMITS.maxVmcoreinfoBytes;

function matchAt(p: Uint8Array, off: number, bytes: readonly number[]): boolean {
  if (off + bytes.length > p.length) return false;
  for (let i = 0; i < bytes.length; i++) if (p[off + i] !== bytes[i]) return false;
  return true;
}

/** Printable ASCII and '\n' only, last line complete (ends with '\n' or is CRASHTIME=digits). */
export function validVmcoreinfoText(t: Uint8Array): boolean {
  if (t.length < OSREL.length + 2 || t.length > VMCOREINFO_MAX) return false;
  if (!matchAt(t, 0, OSREL_BYTES)) return false;
  for (let i = 0; i < t.length; i++) {
    const c = t[i]!;
    if (c !== 0x0a && (c < 0x20 || c > 0x7e)) return false;
  }
  if (t[t.length - 1] === 0x0a) return true;
  const lastNl = t.lastIndexOf(0x0a);
  const last = latin1(t.subarray(lastNl + 1));
  return /^CRASHTIME=\d+$/.test(last);
}

/** Does the 24-byte note header (n_namesz 11, descsz ≤ 4096, n_type 0, name) start at `off`? */
function noteHeaderAt(p: Uint8Array, off: number): number | undefined {
  if (off + 24 + OSREL.length > p.length) return undefined;
  if (p[off] !== 11 || p[off + 1] !== 0 || p[off + 2] !== 0 || p[off + 3] !== 0) return undefined;
  if (p[off + 6] !== 0 || p[off + 7] !== 0) return undefined;
  for (let i = 8; i < 12; i++) if (p[off + i] !== 0) return undefined;
  if (!matchAt(p, off + 12, NAME_BYTES)) return undefined;
  if (!matchAt(p, off + 24, OSREL_BYTES)) return undefined;
  const descsz = p[off + 4]! | (p[off + 5]! << 8);
  if (descsz === 0 || descsz > VMCOREINFO_MAX) return undefined;
  return descsz;
}

async function checkNote(mem: PhysicalMemory, addr: number, descsz: number): Promise<RecoveredVmcoreinfo | undefined> {
  const total = 24 + ((descsz + 3) & ~3) + 12;
  let buf: Uint8Array;
  try {
    buf = await mem.readPhys(addr, total, { fillMissing: false });
  } catch {
    // the note's tail page is not in the dump: validate the text we can read
    try {
      buf = await mem.readPhys(addr, 24 + descsz);
    } catch {
      return undefined;
    }
  }
  const text = buf.subarray(24, 24 + descsz);
  if (!validVmcoreinfoText(text)) return undefined;
  const termOff = 24 + ((descsz + 3) & ~3);
  let terminated = buf.length >= termOff + 12;
  for (let i = termOff; terminated && i < termOff + 12; i++) if (buf[i] !== 0) terminated = false;
  const s = latin1(text);
  return { addr, form: 'note', text: s, hasCrashTime: /(^|\n)CRASHTIME=\d+/.test(s), terminated, source: `memory scan at 0x${addr.toString(16)}` };
}

function checkText(page: Uint8Array, addr: number): RecoveredVmcoreinfo | undefined {
  let end = page.indexOf(0);
  if (end < 0) end = page.length;
  const text = page.subarray(0, Math.min(end, VMCOREINFO_MAX));
  if (!validVmcoreinfoText(text)) return undefined;
  const s = latin1(text);
  return { addr, form: 'text', text: s, hasCrashTime: /(^|\n)CRASHTIME=\d+/.test(s), terminated: false, source: `memory scan at 0x${addr.toString(16)}` };
}

/**
 * Rank: CRASHTIME first (the crashed kernel's final copy), then the exact note form, then
 * terminated notes, then longer text, then lower address (deterministic).
 */
export function rankRecovered(a: RecoveredVmcoreinfo, b: RecoveredVmcoreinfo): number {
  const key = (r: RecoveredVmcoreinfo) => [r.hasCrashTime ? 0 : 1, r.form === 'note' ? 0 : 1, r.terminated ? 0 : 1];
  const ka = key(a);
  const kb = key(b);
  for (let i = 0; i < ka.length; i++) if (ka[i] !== kb[i]) return ka[i]! - kb[i]!;
  if (a.text.length !== b.text.length) return b.text.length - a.text.length;
  return a.addr - b.addr;
}

/** Pages read per call where the dump stores them contiguously (1 MiB of 4 KiB pages). */
const SCAN_BLOCK = 256;

/**
 * Visit every page of `runs` in order: `visit(pfn, page)`, page undefined when it cannot be read
 * (the loss is recorded in `losses` under `what`). Reads SCAN_BLOCK pages at a time where the
 * dump can (scanReadPageBlock), else page by page; a block that fails is read page by page, so a
 * damaged page costs that page only. `more()` is asked before each page; false stops the scan.
 */
async function scanPages(
  mem: PhysicalMemory,
  runs: readonly { s: number; e: number }[],
  losses: LossLog,
  what: string,
  more: () => boolean,
  visit: (pfn: number, page: Uint8Array | undefined) => void,
): Promise<void> {
  const ps = mem.pageSize;
  for (const r of runs) {
    for (let pfn = r.s; pfn < r.e; ) {
      const n = Math.min(SCAN_BLOCK, r.e - pfn);
      let block: Uint8Array | undefined;
      try {
        block = await scanReadPageBlock(mem, pfn, n);
      } catch {
        block = undefined;
      }
      if (block && block.length !== n * ps) block = undefined;
      for (let i = 0; i < n; i++, pfn++) {
        if (!more()) return;
        const p = pfn;
        visit(p, block ? block.subarray(i * ps, (i + 1) * ps) : await losses.read(what, () => scanReadPage(mem, p)));
      }
    }
  }
}

/** Scan physical memory for VMCOREINFO copies, best first. Empty when none. */
export async function recoverVmcoreinfo(mem: PhysicalMemory, opts: RecoverOptions = {}): Promise<RecoveredVmcoreinfo[]> {
  const maxHits = opts.maxHits ?? 64;
  const losses = opts.losses ?? new LossLog();
  const WHAT = 'VMCOREINFO scan';
  const ps = mem.pageSize;
  const runs: { s: number; e: number }[] = [];
  let total = 0;
  for await (const r of mem.pageRuns(0, mem.maxPfn)) {
    if (r.state !== 'data') continue;
    runs.push({ s: r.startPfn, e: r.endPfn });
    total += r.endPfn - r.startPfn;
  }
  const hits: RecoveredVmcoreinfo[] = [];
  const noteHits: { addr: number; descsz: number }[] = [];
  const textPages: number[] = [];
  const deepPages: number[] = [];
  let done = 0;
  await scanPages(mem, runs, losses, WHAT, () => noteHits.length + textPages.length < maxHits * 4, (pfn, page) => {
    done++;
    if (!page) return;
    if (opts.onProgress && (done & 0xfff) === 0) opts.onProgress(done, total);
    const b0 = page[0];
    if (b0 === 11) {
      const d = noteHeaderAt(page, 0);
      if (d !== undefined) noteHits.push({ addr: pfn * ps, descsz: d });
    } else if (b0 === 0x4f /* 'O' */ && matchAt(page, 0, OSREL_BYTES)) {
      textPages.push(pfn);
    }
  });
  for (const h of noteHits) {
    const r = await checkNote(mem, h.addr, h.descsz);
    if (r) hits.push(r);
  }
  for (const pfn of textPages) {
    const page = await losses.read(WHAT, () => mem.readPage(pfn));
    const r = page && checkText(page, pfn * ps);
    if (r) hits.push(r);
  }
  if (hits.length === 0 && (opts.deep ?? true)) {
    // second pass: note headers at any 4-byte-aligned offset (static note in old kernels)
    await scanPages(mem, runs, losses, WHAT, () => deepPages.length < maxHits, (pfn, page) => {
      if (!page) return;
      for (let off = 4; off + 34 <= page.length; off += 4) {
        if (page[off] === 11 && page[off + 12] === 0x56 /* 'V' */ && noteHeaderAt(page, off) !== undefined) {
          deepPages.push(pfn * ps + off);
        }
      }
    });
    for (const addr of deepPages) {
      const page = await losses.read(WHAT, () => mem.readPhys(addr, 24 + OSREL.length));
      if (!page) continue;
      const d = noteHeaderAt(page, 0);
      if (d === undefined) continue;
      const r = await checkNote(mem, addr, d);
      if (r) hits.push(r);
    }
  }
  opts.onProgress?.(total, total);
  hits.sort(rankRecovered);
  return hits.slice(0, maxHits);
}
