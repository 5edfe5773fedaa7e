import { createHash } from 'node:crypto';
import type { Hasher } from '../core/hash.js';

/** node:crypto SHA-256 (OpenSSL): several times faster than the portable one. */
/** SHA-256 from node:crypto: the `hasher` for `hashMemory` in Node. */
export function nodeSha256(): Hasher {
  const h = createHash('sha256');
  return { update: (b) => h.update(b), digestHex: () => h.digest('hex') };
}
