/** Small fixtures with every structure, for the mutation smoke test. */
import { buildElf, buildKdump, flatten, note, patternPage, PAGE } from './build.js';

/** What the intact fixture must read as (checked before it is mutated). */
export interface FixtureExpect {
  pageSize: number;
  ram: number;
  dumped: number;
  /** kdump header ABI (lp64, i386, ilp32) */
  abi?: string;
  /** the NT_PRSTATUS note of this task pid is at this position (matched by pid, not position) */
  taskNote?: { pid: number; index: number };
}

export interface Fixture {
  name: string;
  bytes: Uint8Array;
  hotspots: number[];
  expect?: FixtureExpect;
  /** kdump page descriptor area: each descriptor is damaged in turn (size 0, flags 0) */
  descs?: { offset: number; count: number };
}

export function fixtures(): Fixture[] {
  const pages = new Map<number, Uint8Array>();
  for (const p of [0, 1, 2, 3, 9, 20, 33, 63]) pages.set(p, patternPage(p));
  pages.set(5, new Uint8Array(PAGE));
  const vmci = new TextEncoder().encode('OSRELEASE=6.1.0-test\nPAGESIZE=4096\nNUMBER(phys_base)=0\n');
  const notes = new Uint8Array([...note('CORE', 1, new Uint8Array(336)), ...note('QEMU', 0, new Uint8Array(432)), ...note('VMCOREINFO', 0, vmci)]);
  const kd = buildKdump({ maxMapnr: 64, pages, excluded: [6, 7], notes, codec: 'zlib' });
  const descs = (1 + 1 + 2) * 4096;
  const kdHot = [0, 400, 424, 4096, 4096 + 80, 4200, 2 * 4096, 3 * 4096, descs, descs + 24 * 4, descs + 24 * 8];
  const lzo = buildKdump({ maxMapnr: 64, pages, codec: 'lzo', notes });
  const split = buildKdump({ maxMapnr: 64, pages, split: { start: 0, end: 32 }, codec: 'snappy' });
  const flat = flatten(kd, 3000);
  const flatHot = [0, 16, 4096, 4096 + 16 + 3000, 4096 + 2 * (16 + 3000)];
  const ram = new Uint8Array(6 * PAGE);
  for (let i = 0; i < 6; i++) if (i !== 2) ram.set(patternPage(i), i * PAGE);
  const elf = buildElf({ segments: [{ paddr: 0, data: ram, memsz: 8 * PAGE }, { paddr: 0x100000, vaddr: 0xffffffff81000000n, data: ram.subarray(0, PAGE) }], notes, qemuLayout: true });
  const elfHot = [0, 16, 32, 40, 52, 56, 64, 128, 192, 248, 304, 360];
  // the kinds of issue 9: 32-bit header layouts, kernel page sizes, CPU note counts, damaged descriptors
  const vmci32 = 'OSRELEASE=5.15.0-test\nPAGESIZE=4096\n';
  const arm = buildKdump({ maxMapnr: 64, pages, excluded: [6, 7], layout32: true, abi32: 'ilp32', machine: 'armv7l', vmcoreinfo: vmci32, timestampSec: 1700000000 });
  const i386t64 = buildKdump({ maxMapnr: 64, pages, excluded: [6, 7], layout32: true, abi32: 'i386', time64: true, le: false, machine: 'i686', vmcoreinfo: vmci32, timestampSec: 1700000000 });
  const hot32 = [0, 400, 404, 408, 412, 420, 424, 4096, 4096 + 24, 4096 + 40, 4096 + 72, 4096 + 88, 4096 + 96];
  const cpuNotes: number[] = [];
  for (let i = 0; i < 8; i++) {
    const d = new Uint8Array(336);
    new DataView(d.buffer).setInt32(32, i === 5 ? 1 : 0, true);
    cpuNotes.push(...note('CORE', 1, d));
  }
  const cpus8 = buildKdump({ maxMapnr: 64, pages, excluded: [6, 7], notes: new Uint8Array([...cpuNotes, ...note('VMCOREINFO', 0, vmci)]) });
  const big = 65536;
  const ram64 = new Uint8Array(3 * big);
  for (let i = 0; i < ram64.length / PAGE; i++) if (i % 5) ram64.set(patternPage(i), i * PAGE);
  const elf64k = buildElf({ segments: [{ paddr: 0x40000000, data: ram64 }], notes: note('VMCOREINFO', 0, new TextEncoder().encode('OSRELEASE=4.14.0-test\nPAGESIZE=65536\n')) });
  return [
    { name: 'm.kdump', bytes: kd, hotspots: kdHot, expect: { pageSize: PAGE, ram: 11, dumped: 9, abi: 'lp64' }, descs: { offset: descs, count: 9 } },
    { name: 'm-lzo.kdump', bytes: lzo, hotspots: kdHot },
    { name: 'm-split.kdump', bytes: split, hotspots: kdHot },
    { name: 'm.flat', bytes: flat, hotspots: flatHot },
    { name: 'm.elf', bytes: elf, hotspots: elfHot },
    { name: 'm-arm.kdump', bytes: arm, hotspots: hot32, expect: { pageSize: PAGE, ram: 11, dumped: 9, abi: 'ilp32' }, descs: { offset: descs, count: 9 } },
    { name: 'm-i386t64be.kdump', bytes: i386t64, hotspots: hot32, expect: { pageSize: PAGE, ram: 11, dumped: 9, abi: 'i386' } },
    { name: 'm-cpus8.kdump', bytes: cpus8, hotspots: [...kdHot, 4096 + 104, 4096 + 104 + 356 * 5], expect: { pageSize: PAGE, ram: 11, dumped: 9, taskNote: { pid: 1, index: 5 } } },
    { name: 'm-64k.elf', bytes: elf64k, hotspots: [0, 64, 120, 176], expect: { pageSize: big, ram: 3, dumped: 3 } },
  ];
}
