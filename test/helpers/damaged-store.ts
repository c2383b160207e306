/**
 * A store with one block rotted on disk, for the read-verification tests:
 *
 *   base (imported, frozen)  64 blocks; block i is filled with byte i + 1,
 *                            except block 40, which repeats block 5 (one
 *                            slot, read at two offsets)
 *   ├── vm1                  a clone that changed nothing
 *   └── vm2                  a clone that rewrote block 5 (0xee), so it reads
 *                            the damaged slot only at block 40
 *
 * The slot holding block 5 then gets bytes flipped in data/000000.dat, as
 * a failing disk would, behind strata's back.
 */
import fs from 'node:fs';
import path from 'node:path';
import Database from 'better-sqlite3';
import { segDecode, segGet } from '../../src/store/images/segment.js';
import { strataOk } from './cli.js';

export const BLOCK = 4096;
export const BLOCKS = 64;
/** The damaged block's offsets: block 5, and block 40 which shares its slot. */
export const DAMAGED_AT = 5 * BLOCK;
export const SHARED_AT = 40 * BLOCK;

/** The pattern byte of block `b` as written to base. */
export const patternOf = (b: number): number => (b === 40 ? 6 : b + 1);

export function baseBytes(): Buffer {
  const out = Buffer.alloc(BLOCKS * BLOCK);
  for (let b = 0; b < BLOCKS; b++) out.fill(patternOf(b), b * BLOCK, (b + 1) * BLOCK);
  return out;
}

/** The slot an image's own map names for block `block`. */
export function ownSlotOf(store: string, image: string, block: number): number {
  const db = new Database(path.join(store, 'strata.db'), { readonly: true });
  try {
    const id = db.prepare('SELECT id FROM images WHERE name = ?').pluck().get(image) as number;
    const blob = db.prepare('SELECT entries FROM segments WHERE image_id = ? AND seg = 0').pluck().get(id) as Buffer;
    const e = segGet(segDecode(blob, image), block);
    if (e < 2) throw new Error(`${image} block ${block} names no slot`);
    return e - 2;
  } finally {
    db.close();
  }
}

/** Flips `n` bytes of the data file at byte `at` (XOR 0xff: always a change). */
export function flipBytes(store: string, at: number, n: number): void {
  const fd = fs.openSync(path.join(store, 'data', '000000.dat'), 'r+');
  try {
    const b = Buffer.alloc(n);
    fs.readSync(fd, b, 0, n, at);
    for (let i = 0; i < n; i++) b[i] ^= 0xff;
    fs.writeSync(fd, b, 0, n, at);
  } finally {
    fs.closeSync(fd);
  }
}

/** Builds the store described above in `store` (not yet damaged); returns the slot of block 5. */
export function makeDamagedStore(store: string, importArgs: string[] = []): number {
  const dir = fs.mkdtempSync(path.join(path.dirname(store), 'src-'));
  const raw = path.join(dir, 'base.raw');
  fs.writeFileSync(raw, baseBytes());
  strataOk(store, ['import', ...importArgs, raw, 'base']);
  fs.rmSync(dir, { recursive: true, force: true });
  strataOk(store, ['clone', 'base', 'vm1', 'vm2']);
  strataOk(store, ['write', 'vm2', '--offset', String(DAMAGED_AT)], { input: Buffer.alloc(BLOCK, 0xee) });
  const slot = ownSlotOf(store, 'base', 5);
  if (ownSlotOf(store, 'base', 40) !== slot) throw new Error('blocks 5 and 40 should share a slot');
  return slot;
}
