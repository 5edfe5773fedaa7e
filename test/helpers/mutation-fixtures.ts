/** Small fixtures with every structure, for the mutation smoke test. */
import { buildElf, buildKdump, flatten, note, patternPage, PAGE } from './build.js';

export function fixtures() {
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
  return [
    { name: 'm.kdump', bytes: kd, hotspots: kdHot },
    { name: 'm-lzo.kdump', bytes: lzo, hotspots: kdHot },
    { name: 'm-split.kdump', bytes: split, hotspots: kdHot },
    { name: 'm.flat', bytes: flat, hotspots: flatHot },
    { name: 'm.elf', bytes: elf, hotspots: elfHot },
  ];
}

