/**
 * Content digests as OCI names them ("sha256:<64 hex>"), and chain IDs: the
 * identity of a stack of layers, as containerd's snapshotters key them.
 * ChainID(L0) = DiffID(L0); ChainID(L0..Ln) = sha256(ChainID(L0..Ln-1) + " " + DiffID(Ln)).
 */
import crypto from 'node:crypto';
import { badInput } from '../../errors.js';

/** "sha256:" and 64 lower-case hex digits; nothing else is accepted. */
export type Digest = string & { readonly __digest: unique symbol };

const DIGEST_RE = /^sha256:[0-9a-f]{64}$/;

export function parseDigest(raw: unknown, what: string): Digest {
  if (typeof raw !== 'string' || !DIGEST_RE.test(raw)) {
    const shown = typeof raw === 'string' ? raw.slice(0, 80) : String(raw);
    throw badInput(`${what} has digest ${JSON.stringify(shown)}: strata takes sha256 digests only`, { digest: shown });
  }
  return raw as Digest;
}

export const sha256Digest = (bytes: Uint8Array | string): Digest => `sha256:${crypto.createHash('sha256').update(bytes).digest('hex')}` as Digest;

/** The hex of a digest, cut to `n` characters, as docker shows short IDs. */
export const shortHex = (d: Digest, n = 12): string => d.slice('sha256:'.length, 'sha256:'.length + n);

export function chainIds(diffIds: readonly Digest[]): Digest[] {
  const out: Digest[] = [];
  for (const d of diffIds) out.push(out.length === 0 ? d : sha256Digest(`${out[out.length - 1]} ${d}`));
  return out;
}
