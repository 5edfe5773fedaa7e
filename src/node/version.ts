/** The package version (package.json), for the producer note vmcore writes into its output. */
import { createRequire } from 'node:module';

const require = createRequire(import.meta.url);
export const VMCORE_VERSION: string = (require('../../../package.json') as { version: string }).version;

/** "vmcore VERSION COMMAND": the text of the producer note (see producerNote in format/elf/notes.ts). */
export function producerText(command: string): string {
  return `vmcore ${VMCORE_VERSION} ${command}`;
}
