/**
 * Block hashing. XXH64 is a filter for the block index, never proof of
 * equality: the store compares bytes before it shares a slot. The value is
 * cut to 53 bits so it stays a plain JS number in SQLite bindings.
 */
import xxhash from 'xxhash-wasm';

export type BlockHash = number;
export type HashFn = (block: Uint8Array) => BlockHash;

const MASK53 = (1n << 53n) - 1n;
let cached: HashFn | undefined;

export async function loadXxh64(): Promise<HashFn> {
  if (!cached) {
    const { h64Raw } = await xxhash();
    cached = (block) => Number(h64Raw(block) & MASK53);
  }
  return cached;
}

/** Full 64-bit XXH64, for tests that craft collisions. */
export async function xxh64Full(data: Uint8Array): Promise<bigint> {
  const { h64Raw } = await xxhash();
  return h64Raw(data);
}
