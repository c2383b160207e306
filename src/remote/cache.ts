/**
 * What a store knows of a remote, cached in STORE/remotes/NAME/cache.db
 * (SQLite, apart from strata.db: a cache may be deleted at any time and is
 * rebuilt from the bucket):
 *
 * - indexes: the index objects already read;
 * - blocks: every place those indexes name (digest → pack, offset, length,
 *   codec, hint, and the index that says so). A digest may have several
 *   places (two hosts that pushed one block at once each uploaded a copy;
 *   `remote gc` repacks); any one is as good;
 * - layers: local frozen images known to equal a remote layer, keyed by
 *   (image id, generation), which never name another map.
 *
 * - fetched: when this store fetched a block into a slot (a hint for the
 *   cache limit's order, cache-limit.ts: a lost or stale row only changes
 *   which block is evicted first).
 *
 * Objects in the bucket are immutable, but `remote gc` deletes some: an
 * index that is gone from the bucket is forgotten with its places at the
 * next sync (remote.ts syncIndexes), and a read that finds a pack gone
 * syncs and tries the block's other places (fetch.ts). The layers of
 * removed local images are never looked up by id again (ids are not
 * reused).
 *
 * This is not the store's SQLite and stays outside the store's doors: it
 * holds nothing the store's invariants rest on (it may be deleted at any
 * time and is rebuilt from the bucket), it is a file of its own with its
 * own connection, and RemoteCache below is already its one door: no other
 * file opens it or runs SQL on it. Putting it behind the store's WriteTx
 * would tie a rebuildable cache to the store's write lock.
 */
import path from 'node:path';
import Database from 'better-sqlite3';
import type { BlockPlace } from './objects/index-file.js';
import { remoteDir } from './config.js';

export interface RemoteCache {
  knownIndexes(): Set<string>;
  /** Records an index and the places it names, in one transaction. */
  addIndex(id: string, places: readonly BlockPlace[]): void;
  /** Drops an index (gone from the bucket) and the places only it named. */
  forgetIndex(id: string): void;
  /** A place of the block with this digest (the first recorded). */
  place(digest: Buffer): BlockPlace | undefined;
  /** Which of these digests have a recorded place (as hex): push's test of every block, a few hundred per query. */
  placed(digests: readonly Buffer[]): Set<string>;
  /** Every recorded place of the block, e.g. to try another when one pack is gone. */
  places(digest: Buffer): BlockPlace[];
  blockCount(): number;
  layerOf(imageId: number, generation: number): string | undefined;
  setLayer(imageId: number, generation: number, layer: string): void;
  /** Local images recorded as equal to `layer`. */
  imagesWithLayer(layer: string): { imageId: number; generation: number }[];
  /** Records that these slots' blocks were fetched now. */
  noteFetched(slots: readonly number[]): void;
  /** When each of `slots` was fetched (ms since the epoch), where known. */
  fetchedAt(slots: readonly number[]): Map<number, number>;
  /** Forgets these slots' fetch times (evicted). */
  forgetFetched(slots: readonly number[]): void;
  close(): void;
}

/** The cache's table layout; another is dropped and rebuilt. 2: every place of a digest, with its index. */
const CACHE_VERSION = 2;

export function openRemoteCache(storeDir: string, remote: string): RemoteCache {
  const db = new Database(path.join(remoteDir(storeDir, remote), 'cache.db'));
  db.pragma('journal_mode = WAL');
  db.pragma('busy_timeout = 60000');
  // A cache: a lost commit costs a download, not data.
  db.pragma('synchronous = NORMAL');
  // A cache of an older layout is dropped and rebuilt from the bucket.
  if ((db.pragma('user_version', { simple: true }) as number) !== CACHE_VERSION) {
    db.exec('DROP TABLE IF EXISTS indexes; DROP TABLE IF EXISTS blocks; DROP TABLE IF EXISTS layers; DROP TABLE IF EXISTS fetched;');
    db.pragma(`user_version = ${CACHE_VERSION}`);
  }
  db.exec(`
    CREATE TABLE IF NOT EXISTS indexes (id TEXT PRIMARY KEY) STRICT;
    CREATE TABLE IF NOT EXISTS blocks (
      digest BLOB NOT NULL, idx TEXT NOT NULL, pack TEXT NOT NULL, offset INTEGER NOT NULL, length INTEGER NOT NULL, codec INTEGER NOT NULL, hint REAL NOT NULL,
      PRIMARY KEY (digest, idx, pack, offset)
    ) WITHOUT ROWID, STRICT;
    CREATE INDEX IF NOT EXISTS blocks_idx ON blocks(idx);
    CREATE TABLE IF NOT EXISTS layers (image_id INTEGER NOT NULL, generation INTEGER NOT NULL, layer TEXT NOT NULL, PRIMARY KEY (image_id, generation)) STRICT;
    CREATE INDEX IF NOT EXISTS layers_layer ON layers(layer);
    CREATE TABLE IF NOT EXISTS fetched (slot INTEGER PRIMARY KEY, at INTEGER NOT NULL) STRICT;
  `);
  const putFetched = db.prepare('INSERT OR REPLACE INTO fetched(slot, at) VALUES (?, ?)');
  const getFetched = db.prepare('SELECT at FROM fetched WHERE slot = ?').pluck();
  const delFetched = db.prepare('DELETE FROM fetched WHERE slot = ?');
  const noteFetched = db.transaction((slots: readonly number[], at: number) => {
    for (const s of slots) putFetched.run(s, at);
  });
  const forgetFetched = db.transaction((slots: readonly number[]) => {
    for (const s of slots) delFetched.run(s);
  });
  const insBlock = db.prepare('INSERT OR IGNORE INTO blocks(digest, idx, pack, offset, length, codec, hint) VALUES (?, ?, ?, ?, ?, ?, ?)');
  const insIndex = db.prepare('INSERT OR IGNORE INTO indexes(id) VALUES (?)');
  const getBlock = db.prepare('SELECT pack, offset, length, codec, hint FROM blocks WHERE digest = ? LIMIT 1');
  const getBlocks = db.prepare('SELECT DISTINCT pack, offset, length, codec, hint FROM blocks WHERE digest = ?');
  const anyBlock = db.prepare('SELECT 1 FROM blocks LIMIT 1').pluck();
  // One SELECT per block cost ~8 µs each, most of it the call: a push tests tens of thousands.
  const PLACED_BATCH = 256;
  const placedIn = db.prepare(`SELECT DISTINCT digest FROM blocks WHERE digest IN (${Array(PLACED_BATCH).fill('?').join(', ')})`).pluck();
  const addIndex = db.transaction((id: string, places: readonly BlockPlace[]) => {
    // Near key order (by the digest's first 48 bits; ties are rare and harmless): random digests scattered
    // the inserts over the whole table, twice as slow for a 40k-block push. A number key: Buffer.compare in
    // the comparator cost more than it saved.
    const keys = places.map((p) => p.digest.readUIntBE(0, 6));
    const order = Array.from(places.keys()).sort((a, b) => keys[a] - keys[b]);
    for (const i of order) {
      const p = places[i];
      insBlock.run(p.digest, id, p.pack, p.offset, p.length, p.codec, p.hint);
    }
    insIndex.run(id);
  });
  const forgetIndex = db.transaction((id: string) => {
    db.prepare('DELETE FROM blocks WHERE idx = ?').run(id);
    db.prepare('DELETE FROM indexes WHERE id = ?').run(id);
  });
  return {
    knownIndexes: () => new Set(db.prepare('SELECT id FROM indexes').pluck().all() as string[]),
    addIndex: (id, places) => addIndex(id, places),
    forgetIndex: (id) => forgetIndex(id),
    place(digest) {
      const r = getBlock.get(digest) as Omit<BlockPlace, 'digest'> | undefined;
      return r && { digest, ...r };
    },
    placed(digests) {
      const out = new Set<string>();
      if (digests.length === 0 || anyBlock.get() === undefined) return out;
      for (let at = 0; at < digests.length; at += PLACED_BATCH) {
        const batch = digests.slice(at, at + PLACED_BATCH);
        // The last batch padded with its first digest: one statement for every batch.
        while (batch.length < PLACED_BATCH) batch.push(batch[0]);
        for (const d of placedIn.all(...batch) as Buffer[]) out.add(d.toString('hex'));
      }
      return out;
    },
    places: (digest) => (getBlocks.all(digest) as Omit<BlockPlace, 'digest'>[]).map((r) => ({ digest, ...r })),
    blockCount: () => db.prepare('SELECT count(DISTINCT digest) FROM blocks').pluck().get() as number,
    layerOf: (id, gen) => db.prepare('SELECT layer FROM layers WHERE image_id = ? AND generation = ?').pluck().get(id, gen) as string | undefined,
    setLayer(id, gen, layer) {
      db.prepare('INSERT OR REPLACE INTO layers(image_id, generation, layer) VALUES (?, ?, ?)').run(id, gen, layer);
    },
    imagesWithLayer: (layer) =>
      (db.prepare('SELECT image_id, generation FROM layers WHERE layer = ?').raw().all(layer) as [number, number][]).map(([imageId, generation]) => ({ imageId, generation })),
    noteFetched: (slots) => noteFetched(slots, Date.now()),
    fetchedAt(slots) {
      const out = new Map<number, number>();
      for (const s of slots) {
        const at = getFetched.get(s) as number | undefined;
        if (at !== undefined) out.set(s, at);
      }
      return out;
    },
    forgetFetched: (slots) => forgetFetched(slots),
    close: () => db.close(),
  };
}
