import * as nodeCrypto from 'node:crypto';
import { createHash } from 'node:crypto';
import type { Hasher, HasherFactory } from '../core/hash.js';

/** SHA-256 from node:crypto (OpenSSL, several times faster than the portable one): the `hasher` for `hashMemory` in Node. */
export function nodeSha256(): Hasher {
  const h = createHash('sha256');
  return { update: (b) => h.update(b), digestHex: () => h.digest('hex') };
}

// crypto.hash is Node 20.12 and later: read from the namespace (a named import of a missing
// export fails to link on an older Node 20)
const oneShot = (nodeCrypto as { hash?: (algorithm: string, data: Uint8Array, encoding: 'hex') => string }).hash;
/** One buffer's SHA-256 (hex) in one call (crypto.hash): a third of the cost of a Hash object per 4 KiB page. */
nodeSha256.digestOf = (oneShot ? (b: Uint8Array) => oneShot('sha256', b, 'hex') : (b: Uint8Array) => createHash('sha256').update(b).digest('hex')) satisfies HasherFactory['digestOf'];
