/**
 * Synthetic x86_64 kernel memory for the kernel-* unit tests: real page tables (4- or 5-level,
 * 2 MiB kernel text pages, a 1 GiB direct-map page, a 4 KiB vmalloc page), init_top_pgt inside
 * the image, init_uts_ns, and the matching VMCOREINFO text. Every expected value is computed
 * here from the layout, independently of the code under test. Entries are written with DataView
 * at the architectural bit positions (no project code is used to build them).
 */
import { SparseMemory } from '../../src/core/memory.js';

export const START = 0xffffffff80000000n;
export const MiB = 1 << 20;
const PRESENT_RW = 0x63n; // present | rw | accessed | dirty
const LARGE = 0xe3n; // + PSE

export interface SynthOptions {
  physBase: bigint; // signed allowed
  kernelOffset?: bigint;
  levels?: 4 | 5;
  smeMask?: bigint;
  ramBytes?: number;
  directBase?: bigint;
  /** Include NUMBER(phys_base) in VMCOREINFO (default true). */
  numberPhysBase?: boolean;
  release?: string;
}

export interface Synth {
  mem: SparseMemory;
  vmcoreinfoText: string;
  textVa: bigint;
  textPa: number;
  pgdSym: bigint;
  pgdPa: number;
  utsSym: bigint;
  utsPa: number;
  directBase: bigint;
  vmallocVa: bigint;
  vmallocPa: number;
  /** A text VA inside the image and its PA. */
  probeVa: bigint;
  probePa: number;
  release: string;
  levels: 4 | 5;
}

function u64(v: bigint): bigint {
  return BigInt.asUintN(64, v);
}

export function synthKernel(o: SynthOptions): Synth {
  const levels = o.levels ?? 4;
  const ko = o.kernelOffset ?? 0n;
  const sme = o.smeMask ?? 0n;
  const ram = o.ramBytes ?? 256 * MiB;
  const mem = new SparseMemory(ram / 4096);
  const textVa = 0xffffffff81000000n + ko;
  const textPa = Number(u64(textVa - START + o.physBase));
  if (textPa < 0 || textPa + 16 * MiB > ram || textPa % (2 * MiB) !== 0) throw new Error('bad synthetic layout');
  const directBase = o.directBase ?? (levels === 5 ? 0xff11000000000000n : 0xffff888000000000n);
  const release = o.release ?? '6.1.0-synthetic';

  // page-table pages are taken from 1 MiB upwards
  let next = 1 * MiB;
  const alloc = () => {
    const a = next;
    next += 4096;
    mem.set(a / 4096, new Uint8Array(4096));
    return a;
  };
  const setEntry = (table: number, index: number, value: bigint) => {
    const b = new Uint8Array(8);
    new DataView(b.buffer).setBigUint64(0, value, true);
    mem.write(table + index * 8, b);
  };
  const getEntry = (table: number, index: number): bigint => {
    const p = mem.pages.get(Math.floor((table + index * 8) / 4096));
    return p ? new DataView(p.buffer).getBigUint64((table + index * 8) % 4096, true) : 0n;
  };
  const idx = (va: bigint, level: number) => Number((va >> BigInt(12 + 9 * level)) & 511n);

  const pgdSym = textVa + 0xa10000n;
  const pgdPa = textPa + 0xa10000;
  mem.set(pgdPa / 4096, new Uint8Array(4096));

  /** Walk/create tables down to `stopLevel` (exclusive), return the table at stopLevel. */
  const tableFor = (va: bigint, stopLevel: number): number => {
    let table = pgdPa;
    for (let lvl = levels - 1; lvl > stopLevel; lvl--) {
      const i = idx(va, lvl);
      let e = getEntry(table, i);
      if ((e & 1n) === 0n) {
        const t = alloc();
        e = BigInt(t) | PRESENT_RW | sme;
        setEntry(table, i, e);
      }
      table = Number(e & ~sme & 0x000ffffffffff000n);
    }
    return table;
  };

  // kernel text: 8 × 2 MiB pages
  for (let k = 0; k < 8; k++) {
    const va = textVa + BigInt(k * 2 * MiB);
    setEntry(tableFor(va, 1), idx(va, 1), BigInt(textPa + k * 2 * MiB) | LARGE | sme);
  }
  // direct map: one 1 GiB page at PA 0
  setEntry(tableFor(directBase, 2), idx(directBase, 2), 0n | LARGE | sme);
  // vmalloc: one 4 KiB page
  const vmallocVa = (levels === 5 ? 0xffa0000000000000n : 0xffffc90000000000n) + 0x5000n;
  const vmallocPa = 0x300000 + 0x7000;
  setEntry(tableFor(vmallocVa, 0), idx(vmallocVa, 0), BigInt(vmallocPa) | PRESENT_RW | sme);
  mem.set(vmallocPa / 4096, 'vmalloc page contents');

  // init_uts_ns (name at offset 4)
  const utsSym = textVa + 0xc0c040n;
  const utsPa = textPa + 0xc0c040 + 4;
  mem.write(utsPa, utsname('Linux', 'synth', release, '#1 SMP', 'x86_64', '(none)'));

  const probeVa = textVa + 0x123456n;
  const probePa = textPa + 0x123456;
  mem.write(probePa, new TextEncoder().encode('PROBE-BYTES'));

  const lines = [
    `OSRELEASE=${release}`,
    'PAGESIZE=4096',
    `SYMBOL(init_uts_ns)=${utsSym.toString(16)}`,
    'OFFSET(uts_namespace.name)=4',
    `SYMBOL(swapper_pg_dir)=${pgdSym.toString(16)}`,
    `SYMBOL(_stext)=${textVa.toString(16)}`,
    ...(o.numberPhysBase === false ? [] : [`NUMBER(phys_base)=${BigInt.asIntN(64, o.physBase).toString(10)}`]),
    `SYMBOL(init_top_pgt)=${pgdSym.toString(16)}`,
    `NUMBER(pgtable_l5_enabled)=${levels === 5 ? 1 : 0}`,
    `KERNELOFFSET=${ko.toString(16)}`,
    'NUMBER(KERNEL_IMAGE_SIZE)=1073741824',
    `NUMBER(sme_mask)=${sme.toString(10)}`,
  ];
  return {
    mem,
    vmcoreinfoText: lines.join('\n') + '\n',
    textVa,
    textPa,
    pgdSym,
    pgdPa,
    utsSym,
    utsPa,
    directBase,
    vmallocVa,
    vmallocPa,
    probeVa,
    probePa,
    release,
    levels,
  };
}

/** struct new_utsname: 6 × 65 bytes. */
export function utsname(...fields: string[]): Uint8Array {
  const b = new Uint8Array(6 * 65);
  fields.forEach((f, i) => b.set(new TextEncoder().encode(f), i * 65));
  return b;
}

/** QEMU CPU-state note descriptor (QEMUCPUState v1) with the given registers, by documented offsets. */
export function qemuCpuDesc(r: { rip?: bigint; rsp?: bigint; cr3?: bigint; cr4?: bigint; idtBase?: bigint; size?: number }): Uint8Array {
  const size = r.size ?? 432;
  const b = new Uint8Array(size);
  const dv = new DataView(b.buffer);
  dv.setUint32(0, 1, true);
  dv.setUint32(4, size, true);
  dv.setBigUint64(56, r.rsp ?? 0n, true);
  dv.setBigUint64(136, r.rip ?? 0n, true);
  dv.setBigUint64(368 + 16, r.idtBase ?? 0n, true);
  dv.setBigUint64(416, r.cr3 ?? 0n, true);
  dv.setBigUint64(424, r.cr4 ?? 0n, true);
  dv.setBigUint64(392, 0x80050033n, true);
  return b;
}

/** x86_64 elf_prstatus (336 bytes) by documented offsets: pid@32, pr_reg@112. */
export function prstatusDesc(r: { pid: number; rip: bigint; rsp: bigint; rbp?: bigint; rax?: bigint; r15?: bigint }): Uint8Array {
  const b = new Uint8Array(336);
  const dv = new DataView(b.buffer);
  dv.setInt32(32, r.pid, true);
  dv.setBigUint64(112 + 4 * 8, r.rbp ?? 0n, true);
  dv.setBigUint64(112 + 0 * 8, r.r15 ?? 0n, true);
  dv.setBigUint64(112 + 10 * 8, r.rax ?? 0n, true);
  dv.setBigUint64(112 + 16 * 8, r.rip, true);
  dv.setBigUint64(112 + 19 * 8, r.rsp, true);
  return b;
}
