#!/usr/bin/env node
// Make a large, realistic ELF vmcore for the convert benchmark (not part of the test suite).
//   node bench/convert-make-input.mjs OUT.elf [GiB=4]
// Layout like a QEMU x86_64 guest: PT_NOTE (VMCOREINFO) then PT_LOADs [0, 640 KiB),
// [1 MiB, 3 GiB) and [4 GiB, 4 GiB + rest) around the PCI hole. Page mix close to the
// "filled 4 GiB guest" of the performance baseline: ~27 % zero pages, the rest split between
// text (kernel headers, docs), binaries (/usr/bin, /usr/lib) and incompressible data (.gz/.xz
// files, random bytes). Pages are cut from those pools at shifting offsets so no two pages are
// equal. Deterministic for a given machine's files.
import { openSync, writeSync, closeSync, readdirSync, statSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { randomFillSync, createHash } from 'node:crypto';

const out = process.argv[2];
const gib = Number(process.argv[3] ?? 4);
if (!out) throw new Error('usage: convert-make-input.mjs OUT.elf [GiB]');
const PS = 4096;
const totalPages = Math.floor((gib * 2 ** 30) / PS);

function pool(dirs, test, limit) {
  const bufs = [];
  let size = 0;
  const walk = (d, depth) => {
    if (size >= limit || depth > 4) return;
    let ents;
    try { ents = readdirSync(d, { withFileTypes: true }); } catch { return; }
    for (const e of ents) {
      if (size >= limit) return;
      const p = join(d, e.name);
      if (e.isDirectory()) walk(p, depth + 1);
      else if (e.isFile() && test(p)) {
        try {
          const st = statSync(p);
          if (st.size < 4096 || st.size > 64 << 20) continue;
          const b = readFileSync(p);
          bufs.push(b);
          size += b.length;
        } catch { /* skip */ }
      }
    }
  };
  for (const d of dirs) walk(d, 0);
  const all = Buffer.concat(bufs);
  return all.length >= 1 << 20 ? all : Buffer.alloc(1 << 20, 0x41);
}
const text = pool(['/usr/include', '/usr/share/doc', '/usr/share/perl5'], (p) => /\.(h|txt|pm|md|html)$/.test(p) || /README|copyright/.test(p), 96 << 20);
const bin = pool(['/usr/bin', '/usr/lib/x86_64-linux-gnu'], (p) => !/\.(gz|xz|zst|bz2)$/.test(p), 128 << 20);
const incomp = pool(['/usr/share/doc', '/usr/share/man', '/usr/share'], (p) => /\.(gz|xz|bz2|zst|png|jpg)$/.test(p), 96 << 20);
console.error(`pools: text ${text.length >> 20} MiB, binary ${bin.length >> 20} MiB, compressed ${incomp.length >> 20} MiB`);

// mix per 1 MiB region (256 pages), like real memory: runs of one kind
const kinds = ['zero', 'text', 'bin', 'incomp', 'random'];
const weights = [0.27, 0.27, 0.24, 0.14, 0.08];
let seed = 12345;
const rnd = () => ((seed = (seed * 1103515245 + 12345) >>> 0) / 2 ** 32);
function pickKind() {
  let r = rnd();
  for (let i = 0; i < kinds.length; i++) if ((r -= weights[i]) < 0) return kinds[i];
  return 'bin';
}

const vmci = 'OSRELEASE=6.1.0-bench\nPAGESIZE=4096\nNUMBER(phys_base)=0\n';
const nameB = Buffer.from('VMCOREINFO\0\0');
const descB = Buffer.from(vmci);
const descPad = Buffer.alloc((descB.length + 3) & ~3);
descB.copy(descPad);
const note = Buffer.alloc(12);
note.writeUInt32LE(11, 0); note.writeUInt32LE(descB.length, 4); note.writeUInt32LE(0, 8);
const noteBlob = Buffer.concat([note, nameB, descPad]);

const low = [0, 160]; // 640 KiB
const r1Pages = Math.min(totalPages - 160, (3 * 2 ** 30) / PS - 256);
const ranges = [[0, 160], [256, 256 + r1Pages]];
const rest = totalPages - 160 - r1Pages;
if (rest > 0) ranges.push([(4 * 2 ** 30) / PS, (4 * 2 ** 30) / PS + rest]);
void low;

const phnum = 1 + ranges.length;
const hdrSize = 64 + 56 * phnum;
const noteOff = hdrSize;
let dataOff = Math.ceil((noteOff + noteBlob.length) / PS) * PS;
const eh = Buffer.alloc(64);
eh.set([0x7f, 0x45, 0x4c, 0x46, 2, 1, 1], 0);
eh.writeUInt16LE(4, 16); eh.writeUInt16LE(62, 18); eh.writeUInt32LE(1, 20);
eh.writeBigUInt64LE(64n, 32); eh.writeUInt16LE(64, 52); eh.writeUInt16LE(56, 54); eh.writeUInt16LE(phnum, 56);
const ph = Buffer.alloc(56 * phnum);
ph.writeUInt32LE(4, 0); ph.writeBigUInt64LE(BigInt(noteOff), 8); ph.writeBigUInt64LE(BigInt(noteBlob.length), 32); ph.writeBigUInt64LE(BigInt(noteBlob.length), 40);
let off = dataOff;
ranges.forEach(([s, e], i) => {
  const o = 56 * (i + 1);
  ph.writeUInt32LE(1, o); ph.writeUInt32LE(7, o + 4);
  ph.writeBigUInt64LE(BigInt(off), o + 8);
  ph.writeBigUInt64LE(BigInt(s * PS), o + 16);
  ph.writeBigUInt64LE(BigInt(s * PS), o + 24);
  ph.writeBigUInt64LE(BigInt((e - s) * PS), o + 32);
  ph.writeBigUInt64LE(BigInt((e - s) * PS), o + 40);
  off += (e - s) * PS;
});
const fd = openSync(out, 'w');
writeSync(fd, Buffer.concat([eh, ph, noteBlob]), 0, hdrSize + noteBlob.length, 0);
let pos = dataOff;
const CH = 256;
const buf = Buffer.alloc(CH * PS);
let shift = 0;
let done = 0;
const t0 = Date.now();
for (const [s, e] of ranges) {
  for (let p = s; p < e; p += CH) {
    const n = Math.min(CH, e - p);
    const kind = pickKind();
    const b = buf.subarray(0, n * PS);
    if (kind === 'zero') b.fill(0);
    else if (kind === 'random') randomFillSync(b);
    else {
      const src = kind === 'text' ? text : kind === 'bin' ? bin : incomp;
      for (let i = 0; i < n; i++) {
        shift = (shift + 4099 * 7 + Math.floor(rnd() * 997)) % (src.length - PS);
        src.copy(b, i * PS, shift, shift + PS);
        b.writeUInt32LE(p + i, i * PS + 8); // make every page unique
      }
      // inside non-zero regions, a few zero pages (free pages in the middle of things)
      if (rnd() < 0.3) b.fill(0, PS * Math.floor(rnd() * n), PS * Math.min(n, Math.floor(rnd() * n) + 4));
    }
    writeSync(fd, b, 0, b.length, pos);
    pos += b.length;
    done += n;
    if (done % (1 << 18) < CH) console.error(`${(done * PS / 2 ** 30).toFixed(1)} GiB, ${((Date.now() - t0) / 1000).toFixed(0)} s`);
  }
}
closeSync(fd);
console.error(`wrote ${out}: ${totalPages} pages, ${pos} bytes`);
void createHash;
