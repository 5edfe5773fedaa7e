// Per-page zlib (RFC 1950) compression, level 1, of 4 KiB pages taken from ELF binaries and
// text: node:zlib deflateSync, the npm libdeflate (WebAssembly) through its API and with one
// reused compressor, fflate, and the optional native addon when built. Every output is inflated
// back with node:zlib and compared. CPU time of this thread, interleaved rounds, median.
//   node bench/deflate-page.mjs [ROUNDS=8]
// The npm libdeflate (WebAssembly) is not a dependency (see bench/README.md, "Deflate per page"):
// `npm install --no-save libdeflate@0.1.0` first to include it; without it the bench skips it.
import { readFileSync, readdirSync, statSync } from 'node:fs';
import { deflateSync, inflateSync, constants as zc } from 'node:zlib';
import { createRequire } from 'node:module';
import * as ff from 'fflate';
import { existsSync } from 'node:fs';
import { loadavg } from 'node:os';
const require = createRequire(import.meta.url);
let ld, wasmDirect;
try {
  ld = await import('libdeflate');
  const createModule = (await import(new URL('./dist/libdeflate.wasm.mjs', import.meta.resolve('libdeflate')).href)).default;
  const M = createModule();
  const comp = M._libdeflate_alloc_compressor(1);
  const inP = M._malloc(4096), outP = M._malloc(4096);
  wasmDirect = (p) => { M.HEAPU8.set(p, inP); const n = M._libdeflate_zlib_compress(comp, inP, 4096, outP, 4095); return n ? M.HEAPU8.slice(outP, outP + n) : deflateSync(p, { level: 1 }); };
} catch {
  console.log('npm libdeflate not installed: left out');
}

const addonPath = new URL('../build/Release/vmcore_native.node', import.meta.url).pathname;
const addon = existsSync(addonPath) ? require(addonPath) : undefined;
// pages: mix of ELF binaries and text, 4 KiB each, non-zero
const files = [process.execPath, '/usr/lib/x86_64-linux-gnu/libc.so.6', '/usr/share/common-licenses/GPL-3', new URL('../dist/src/cli/vmcore.js', import.meta.url).pathname].filter(f=>{try{statSync(f);return true}catch{return false}});
const pages = [];
for (const f of files) { const b = readFileSync(f); for (let o = 0; o + 4096 <= b.length && pages.length < 4096; o += 4096 * 7) pages.push(new Uint8Array(b.buffer, b.byteOffset + o, 4096)); }
console.log('pages', pages.length, 'from', files.join(' '));
const tmp = new Uint8Array(8192);
const impls = {
  'node:zlib deflateSync L1': (p) => deflateSync(p, { level: 1, strategy: zc.Z_DEFAULT_STRATEGY }),
  ...(ld ? { 'libdeflate (npm wasm) zlib L1': (p) => ld.zlib(p, 1), 'libdeflate wasm, reused compressor': wasmDirect } : {}),
  'fflate zlibSync L1': (p) => ff.zlibSync(p, { level: 1 }),
  ...(addon ? { 'native addon L1': (p) => tmp.slice(0, addon.zlibCompress(p, tmp, 0, 8192, 1)) } : {}),
};
// correctness
for (const [n, f] of Object.entries(impls)) {
  let bytes = 0;
  for (const p of pages) { const z = f(p); bytes += z.length; const back = inflateSync(z); if (Buffer.compare(back, Buffer.from(p.buffer, p.byteOffset, 4096))) throw new Error(n + ' mismatch'); if ((z[0] & 0x0f) !== 8 || ((z[0] << 8) | z[1]) % 31) throw new Error(n+' bad zlib header'); }
  console.log(`${n}: ok, ${bytes} bytes for ${pages.length} pages (ratio ${(bytes / pages.length / 4096).toFixed(3)})`);
}
const ROUNDS = +process.argv[2] || 8;
const cpu = Object.fromEntries(Object.keys(impls).map((k) => [k, []]));
const wall = Object.fromEntries(Object.keys(impls).map((k) => [k, []]));
for (let r = 0; r < ROUNDS; r++) for (const [n, f] of Object.entries(impls)) {
  const c0 = process.cpuUsage(); const t0 = process.hrtime.bigint();
  for (const p of pages) f(p);
  const c = process.cpuUsage(c0); const t = Number(process.hrtime.bigint() - t0) / 1e9;
  if (r > 0) { cpu[n].push((c.user + c.system) / 1e6); wall[n].push(t); }
}
const med = (a) => a.slice().sort((x, y) => x - y)[a.length >> 1];
const base = med(cpu['node:zlib deflateSync L1']);
for (const n of Object.keys(impls)) { const c = med(cpu[n]); console.log(`${n}: CPU ${(c / pages.length * 1e6).toFixed(1)} us/page median of ${cpu[n].length} (min ${(Math.min(...cpu[n])/pages.length*1e6).toFixed(1)}), wall ${(med(wall[n])/pages.length*1e6).toFixed(1)} us/page; ${(base / c).toFixed(2)}x node:zlib`); }
console.log('loadavg', loadavg().map(x=>x.toFixed(1)).join(' '));
