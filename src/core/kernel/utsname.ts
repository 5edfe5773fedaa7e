/**
 * struct new_utsname (include/uapi/linux/utsname.h: six NUL-terminated char[65] fields), as
 * init_uts_ns.name holds it: decoded from bytes, or found by scanning physical memory.
 */
import { isVmcoreError } from '../errors.js';
import type { PhysicalMemory, Utsname } from '../dump.js';
import { latin1 } from '../text.js';

export type { Utsname };
export const UTS_LEN = 65;
export const NEW_UTSNAME_SIZE = 6 * UTS_LEN;

/** Decode struct new_utsname (6 × 65 bytes). Fields must be NUL-terminated and printable. */
export function decodeUtsname(b: Uint8Array): Utsname | undefined {
  if (b.length < NEW_UTSNAME_SIZE) return undefined;
  const f: string[] = [];
  for (let i = 0; i < 6; i++) {
    const raw = b.subarray(i * UTS_LEN, (i + 1) * UTS_LEN);
    const nul = raw.indexOf(0);
    if (nul < 0) return undefined;
    for (let j = 0; j < nul; j++) if (raw[j]! < 0x20 || raw[j]! > 0x7e) return undefined;
    f.push(latin1(raw.subarray(0, nul)));
  }
  return { sysname: f[0]!, nodename: f[1]!, release: f[2]!, version: f[3]!, machine: f[4]!, domainname: f[5]! };
}

/** Search a physical range for a struct new_utsname with sysname "Linux" (kdumpid's method). */
export async function findUtsname(
  mem: PhysicalMemory,
  start: number,
  end: number,
  physLimit: number,
): Promise<{ pa: number; uts: Utsname } | undefined> {
  const CHUNK = 1 << 20;
  end = Math.min(end, physLimit);
  for (let a = start; a < end; a += CHUNK) {
    const len = Math.min(CHUNK + NEW_UTSNAME_SIZE, physLimit - a);
    let b: Uint8Array;
    try {
      b = await mem.readPhys(a, len, { fillMissing: true });
    } catch (e) {
      if (isVmcoreError(e)) continue;
      throw e;
    }
    for (let i = 0; i + NEW_UTSNAME_SIZE <= b.length && i < CHUNK; i++) {
      if (b[i] !== 0x4c || b[i + 1] !== 0x69 || b[i + 2] !== 0x6e || b[i + 3] !== 0x75 || b[i + 4] !== 0x78 || b[i + 5] !== 0) continue;
      if (i > 0 && b[i - 1] !== 0) continue;
      const u = decodeUtsname(b.subarray(i, i + NEW_UTSNAME_SIZE));
      if (!u || !u.release || !u.version || !u.nodename) continue;
      if (!['x86_64', 'i686', 'i386', 'aarch64', 's390x', 'ppc64le', 'ppc64', 'riscv64'].includes(u.machine)) continue;
      return { pa: a + i, uts: u };
    }
  }
  return undefined;
}
