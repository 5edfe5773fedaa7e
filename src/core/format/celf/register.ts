/**
 * Registers the celf reader with openDump: ELF files that carry a celf index section open as
 * celf dumps, every other ELF file goes on to the plain ELF reader.
 */
import { registerElfVariant } from '../open.js';
import { readExact } from '../../io/source.js';
import { Elf64_Ehdr } from '../elf/structs.js';
import { isCelf, mayBeCelf, openCelf } from './reader.js';

let done = false;
export function registerCelf(): void {
  if (done) return;
  done = true;
  registerElfVariant({
    async tryOpen(src, codecs) {
      if (src.size < Elf64_Ehdr.size) return undefined;
      if (!mayBeCelf(await readExact(src, 0, Elf64_Ehdr.size, 'Elf64_Ehdr'))) return undefined;
      if (!(await isCelf(src))) return undefined;
      return openCelf(src, codecs);
    },
  });
}
registerCelf();
