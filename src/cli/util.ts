/** Small shared CLI helpers: number parsing, output, error reporting. */
import { VmcoreError } from '../core/errors.js';

export function parseNumber(s: string, what: string): number {
  const t = s.trim().replace(/_/g, '');
  const m = /^(0x[0-9a-f]+|\d+)([kmgt]i?b?)?$/i.exec(t);
  if (!m) throw new VmcoreError('USAGE', `${what}: not a number: ${s}`);
  let v = Number(BigInt(m[1]!));
  const unit = (m[2] ?? '').toLowerCase()[0];
  const mult: Record<string, number> = { k: 1024, m: 1024 ** 2, g: 1024 ** 3, t: 1024 ** 4 };
  if (unit) v *= mult[unit]!;
  if (!Number.isSafeInteger(v)) throw new VmcoreError('USAGE', `${what}: ${s} is too large`);
  return v;
}

export function parseBigint(s: string, what: string): bigint {
  const t = s.trim();
  try {
    if (/^-?\d+$/.test(t)) return BigInt.asUintN(64, BigInt(t));
    if (/^0x[0-9a-f]{1,16}$/i.test(t)) return BigInt(t);
  } catch {
    /* fallthrough */
  }
  throw new VmcoreError('USAGE', `${what}: not a 64-bit number: ${s}`);
}

export function humanBytes(n: number): string {
  const u = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let i = 0;
  let v = n;
  while (v >= 1024 && i < u.length - 1) {
    v /= 1024;
    i++;
  }
  return `${i ? v.toFixed(1) : v} ${u[i]}`;
}

export function writeStdout(data: Uint8Array | string): Promise<void> {
  return new Promise((resolve, reject) => {
    process.stdout.write(data, (err) => (err ? reject(err) : resolve()));
  });
}

export function printJson(v: unknown): Promise<void> {
  return writeStdout(JSON.stringify(v, (_k, x) => (typeof x === 'bigint' ? '0x' + BigInt.asUintN(64, x).toString(16) : x), 2) + '\n');
}

export function hexdump(b: Uint8Array, base: number | bigint): string {
  const lines: string[] = [];
  for (let i = 0; i < b.length; i += 16) {
    const row = b.subarray(i, i + 16);
    const hex = [...row].map((x) => x.toString(16).padStart(2, '0')).join(' ');
    const asc = [...row].map((x) => (x >= 0x20 && x < 0x7f ? String.fromCharCode(x) : '.')).join('');
    lines.push(`${(BigInt(base) + BigInt(i)).toString(16).padStart(12, "0")}  ${hex.padEnd(47)}  |${asc}|`);
  }
  return lines.join('\n') + '\n';
}
