/**
 * Generated file trees for `strata demo`: deterministic, OS-like (text and
 * binary files of mixed sizes), and a second tree that shares most of the
 * first, the way an image with packages added shares its base's files.
 */
import fs from 'node:fs';
import path from 'node:path';

/** xorshift32: small, fast, and the same everywhere. */
export function prng(seed: number): () => number {
  let x = seed >>> 0 || 1;
  return () => {
    x ^= x << 13;
    x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5;
    x >>>= 0;
    return x;
  };
}

const WORDS = 'the of and to in is for on that with by this be are from at as or an it not which config package lib share usr bin data file system kernel module'.split(' ');

function fileContent(rand: () => number, size: number): Buffer {
  const buf = Buffer.allocUnsafe(size);
  if (rand() % 3 === 0) {
    let pos = 0;
    while (pos < size) pos += buf.write(WORDS[rand() % WORDS.length] + (rand() % 11 === 0 ? '\n' : ' '), pos);
  } else {
    for (let i = 0; i + 4 <= size; i += 4) buf.writeUInt32LE(rand(), i);
    buf.fill(7, size - (size % 4));
  }
  return buf;
}

/** Writes about `bytes` of files under `dir`; returns the bytes written. */
export function writeTree(dir: string, seed: number, bytes: number, prefix = 'f'): number {
  const rand = prng(seed);
  let total = 0;
  for (let i = 0; total < bytes; i++) {
    const sub = path.join(dir, `${prefix}${i % 16}`);
    fs.mkdirSync(sub, { recursive: true });
    const size = 1024 + (rand() % (rand() % 4 === 0 ? 1_048_576 : 65_536));
    fs.writeFileSync(path.join(sub, `${prefix}-${i}.bin`), fileContent(rand, size));
    total += size;
  }
  return total;
}
