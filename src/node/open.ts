/** Open dump files from paths (Node). */
import { openDump } from '../core/format/open.js';
import type { Dump } from '../core/dump.js';
import type { CodecRegistry } from '../core/codec/types.js';
import { FileSource } from './file-source.js';
import { nodeCodecs } from './codecs.js';

export async function openDumpFiles(paths: string[], opts: { codecs?: CodecRegistry } = {}): Promise<Dump> {
  const sources: FileSource[] = [];
  try {
    for (const p of paths) sources.push(await FileSource.open(p));
    return await openDump(sources, opts.codecs ?? nodeCodecs());
  } catch (e) {
    for (const s of sources) await s.close().catch(() => undefined);
    throw e;
  }
}
