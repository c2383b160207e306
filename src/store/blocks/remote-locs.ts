/**
 * Blocks that live in a remote pack until first read (lazy clones,
 * remote/store-side/lazy.ts): one more kind of location (location.ts's remote).
 *
 * Such a block has a slot like any other: maps name it, refcounts count it,
 * slot_hashes holds the hash its pusher's store recorded (the remote index's
 * hint, which the fetch checks). Its location is REMOTE and its place
 * (remote name, pack, offset, length, codec, SHA-256 of the 4 KiB) is its
 * row in remote_locs. It is not in the dedup index: nothing may come to
 * share it by byte comparison before its bytes are here.
 *
 * Fetching (remote/store-side/lazy.ts does the network part) ends here, in one write
 * transaction per batch: each block still REMOTE and still naming that
 * digest is written into its own slot (a hole until now, which belongs to
 * its number alone), the data files are synced, then its location becomes
 * [0, 0], its row goes and it joins the dedup index. So:
 * - maps never change (a move of location only);
 * - a crash before the commit leaves it REMOTE, the bytes written ignored;
 * - two processes fetching one block write the same verified bytes to the
 *   same place, and the second finds it already local and writes nothing;
 * - loc_seq moves with the commit, so other processes drop cached locations.
 * A process that cached REMOTE and reads after another fetched it sees a
 * stale REMOTE: it fetches again (wasted bytes, never wrong ones) or
 * refreshes its locations first (fetchMissing below always refreshes).
 */
import { bucketCorrupt } from '../../errors.js';
import { faultPoint } from '../core/faults.js';
import { DESPITE_DAMAGE } from '../core/damage.js';
import { refreshLocations } from './locations.js';
import { indexSlots, slotEditor } from '../slots/slots.js';
import { OWN, inRemotePack } from './location.js';
import { prepared } from '../core/statements.js';
import type { Store } from '../core/store.js';
import { BLOCK_SIZE, type SlotNumber } from '../core/types.js';
import { sqlOf, type Reader, type WriteTx } from '../core/tx.js';

export interface RemotePlace {
  /** The remote's name in this store (STORE/remotes/NAME). */
  remote: string;
  /** The pack object's id (its SHA-256, hex). */
  pack: string;
  offset: number;
  length: number;
  /** The pack's codec id (0: raw). */
  codec: number;
  /** SHA-256 of the block's 4 KiB: what a fetch must produce. */
  digest: Buffer;
}

/** Records a slot's remote place, in the transaction that sets its location to REMOTE. */
export function addRemoteLoc(tx: WriteTx, slot: number, p: RemotePlace): void {
  const db = sqlOf(tx);
  prepared(db, 'INSERT INTO remote_locs(slot, remote, pack, offset, length, codec, digest) VALUES (?, ?, ?, ?, ?, ?, ?)').run(slot, p.remote, p.pack, p.offset, p.length, p.codec, p.digest);
}

export function dropRemoteLoc(tx: WriteTx, slot: number): void {
  const db = sqlOf(tx);
  prepared(db, 'DELETE FROM remote_locs WHERE slot = ?').run(slot);
}

type Row = { slot: number; remote: string; pack: string; offset: number; length: number; codec: number; digest: Buffer };

/** The recorded places of those of `slots` still in a remote pack. */
export function remotePlacesOf(on: Reader, slots: Iterable<number>): Map<number, RemotePlace> {
  const db = sqlOf(on);
  const out = new Map<number, RemotePlace>();
  const get = prepared(db, 'SELECT slot, remote, pack, offset, length, codec, digest FROM remote_locs WHERE slot = ?');
  for (const s of slots) {
    const r = get.get(s) as Row | undefined;
    if (r) out.set(s, { remote: r.remote, pack: r.pack, offset: r.offset, length: r.length, codec: r.codec, digest: r.digest });
  }
  return out;
}

/**
 * A slot of this store that stands for the block with this digest in `remote`'s packs, if any.
 * Only that remote's: a slot's place is fetched from the remote it names, so a slot another remote
 * placed would make a clone of `remote` fetch from a bucket its user never chose (and one that
 * need not be trusted: a bucket cloned from earlier could refuse or withdraw the block).
 */
export function remoteSlotOf(on: Reader, remote: string, digest: Buffer): number | undefined {
  const db = sqlOf(on);
  return prepared(db, 'SELECT slot FROM remote_locs WHERE digest = ? AND remote = ? LIMIT 1').pluck().get(digest, remote) as number | undefined;
}

/** How many blocks are still remote. */
export function remoteBlockCount(on: Reader): number {
  const db = sqlOf(on);
  return prepared(db, 'SELECT count(*) FROM remote_locs').pluck().get() as number;
}

/**
 * Makes fetched blocks local: `blocks` are [slot, the verified 4 KiB]. One
 * write transaction; a slot no longer remote (fetched by someone else,
 * freed) or naming another digest is skipped. Returns how many moved.
 */
export function installFetched(store: Store, blocks: readonly { slot: number; digest: Buffer; data: Uint8Array }[]): number {
  if (blocks.length === 0) return 0;
  let moved = 0;
  // A lazy clone's read fills its own slots: it goes on on a store marked damaged, as reads do.
  store[DESPITE_DAMAGE]((tx) => {
    const edit = slotEditor(tx);
    const places = remotePlacesOf(tx, blocks.map((b) => b.slot));
    const todo = blocks.filter((b) => {
      if (b.data.length !== BLOCK_SIZE) throw bucketCorrupt(`a fetched block for slot ${b.slot} is ${b.data.length} bytes`, { slot: b.slot });
      const p = places.get(b.slot);
      return p !== undefined && inRemotePack(edit.loc(b.slot)) && edit.get(b.slot) > 0 && p.digest.equals(b.digest);
    });
    if (todo.length === 0) return;
    // Its own slot is a hole that belongs to its number alone: written, then made durable, then named.
    store.blocks.writeScattered(
      todo.map((b) => b.slot as SlotNumber),
      todo.map((b) => b.data),
    );
    store.blocks.sync();
    faultPoint('fetch.after-data-sync');
    const pairs: number[] = [];
    for (const b of todo) {
      const h = store.hash(b.data);
      edit.set(b.slot, edit.get(b.slot), h);
      edit.setLoc(b.slot, OWN);
      dropRemoteLoc(tx, b.slot);
      pairs.push(h, b.slot);
    }
    edit.commit();
    indexSlots(tx, pairs);
    moved = todo.length;
  });
  if (moved > 0) faultPoint('fetch.after-commit');
  refreshLocations(store);
  return moved;
}
