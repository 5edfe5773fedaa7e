/** Whether several dump files are the parts of one kdump split set, decided by their headers. */
import { KdumpDump, splitSetMismatch } from '../core/format/kdump/reader.js';
import { openDumpFiles } from './open.js';
import { isStreamPath } from './file-source.js';

/**
 * Opens each file on its own and compares the headers (`splitSetMismatch`: kdump split flag,
 * one machine and one dump, disjoint pfn ranges). Gives `{set: true}` for the parts of one
 * split set, else `{set: false, reason}` naming the first file and why. The number of files
 * decides nothing: two ordinary dumps, or parts of two different sets, are not one set.
 * Throws the open errors of `openDumpFiles` (a file that is not a dump at all).
 */
export async function isSplitSet(paths: string[]): Promise<{ set: boolean; reason: string }> {
  const heads = [];
  for (const p of paths) {
    if (await isStreamPath(p)) return { set: false, reason: `${p === '-' ? 'standard input' : p} is a stream` };
    const d = await openDumpFiles([p]);
    try {
      if (!(d instanceof KdumpDump)) return { set: false, reason: `${p} is ${d.format === 'elf' ? 'an ELF' : `a ${d.format}`} dump, not a kdump split part` };
      heads.push({ p, h: d.parts[0]!.h });
    } finally {
      await d.close();
    }
  }
  for (let i = 0; i < heads.length; i++) {
    for (let j = i + 1; j < heads.length; j++) {
      const why = splitSetMismatch(heads[i]!.h, heads[j]!.h);
      if (why) return { set: false, reason: `${heads[i]!.p} and ${heads[j]!.p}: ${why}` };
    }
  }
  return { set: true, reason: '' };
}
