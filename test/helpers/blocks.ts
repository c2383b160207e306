import { createHash } from 'node:crypto';

/** Distinct non-zero 4 KiB blocks of a buffer, by SHA-256 (what a remote stores once each). */
export function distinctBlocks(b: Buffer): Set<string> {
  const out = new Set<string>();
  const zero = Buffer.alloc(4096);
  for (let at = 0; at < b.length; at += 4096) {
    const blk = b.subarray(at, at + 4096);
    if (!blk.equals(zero)) out.add(createHash('sha256').update(blk).digest('hex'));
  }
  return out;
}
