/**
 * VMCOREINFO text: `KEY=VALUE` lines written by the kernel. Each key family has its own number
 * format (reference analysis.md §1.1): SYMBOL(x) and KERNELOFFSET are hex without 0x;
 * SIZE/OFFSET/LENGTH decimal; NUMBER signed decimal (or 0x-prefixed hex on newer keys).
 */
export class Vmcoreinfo {
  readonly entries = new Map<string, string>();
  constructor(readonly text: string) {
    for (const raw of text.split('\n')) {
      const line = raw.replace(/\0+$/, '').trimEnd();
      const eq = line.indexOf('=');
      if (eq <= 0) continue;
      const k = line.slice(0, eq);
      if (!this.entries.has(k)) this.entries.set(k, line.slice(eq + 1));
    }
  }

  get(key: string): string | undefined {
    return this.entries.get(key);
  }
  has(key: string): boolean {
    return this.entries.has(key);
  }
  get osrelease(): string | undefined {
    return this.get('OSRELEASE');
  }
  get pageSize(): number | undefined {
    return this.decimal('PAGESIZE');
  }
  /** CRASHTIME, seconds since the epoch (present only when the kernel crashed). */
  get crashTime(): number | undefined {
    return this.decimal('CRASHTIME');
  }
  /** KERNELOFFSET (hex, the virtual KASLR offset). */
  get kernelOffset(): bigint | undefined {
    return parseHex(this.get('KERNELOFFSET'));
  }
  /** SYMBOL(name): hex address. */
  symbol(name: string): bigint | undefined {
    return parseHex(this.get(`SYMBOL(${name})`));
  }
  size(name: string): number | undefined {
    return this.decimal(`SIZE(${name})`);
  }
  offset(name: string): number | undefined {
    return this.decimal(`OFFSET(${name})`);
  }
  length(name: string): number | undefined {
    return this.decimal(`LENGTH(${name})`);
  }
  /** NUMBER(name) as a signed 64-bit value (decimal with optional '-', or 0x hex). */
  number(name: string): bigint | undefined {
    return parseSigned(this.get(`NUMBER(${name})`));
  }
  private decimal(key: string): number | undefined {
    const v = this.get(key);
    if (v === undefined || !/^\d{1,15}$/.test(v)) return undefined;
    return Number(v);
  }
}

export function parseHex(v: string | undefined): bigint | undefined {
  if (v === undefined) return undefined;
  const s = v.startsWith('0x') || v.startsWith('0X') ? v.slice(2) : v;
  if (!/^[0-9a-fA-F]{1,16}$/.test(s)) return undefined;
  return BigInt('0x' + s);
}

/** Signed decimal or 0x-hex, as a 64-bit two's-complement unsigned bigint. */
export function parseSigned(v: string | undefined): bigint | undefined {
  if (v === undefined) return undefined;
  if (/^0[xX][0-9a-fA-F]{1,16}$/.test(v)) return BigInt(v);
  if (!/^-?\d{1,20}$/.test(v)) return undefined;
  const b = BigInt(v);
  if (b < -(1n << 63n) || b >= 1n << 64n) return undefined;
  return BigInt.asUintN(64, b);
}

