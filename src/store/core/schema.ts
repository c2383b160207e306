/**
 * The SQLite schema, versioned by PRAGMA user_version. Each migration runs
 * once, in order, inside one transaction; a store newer than this code is
 * refused rather than guessed at.
 */
import type Database from 'better-sqlite3';
import { StrataError } from '../../errors.js';
import { sqlOf, type Reader } from './tx.js';
import { packedSlotsV6, writeSlotTableV3 } from './old-slot-table.js';

type Migration = string | ((db: Database.Database) => void);

const MIGRATIONS: Migration[] = [
  // 1: images, maps, block index, free slots, open-image leases.
  `
  CREATE TABLE meta (key TEXT PRIMARY KEY, value ANY) STRICT;
  -- AUTOINCREMENT: an id is never reused, so (id, generation) names one map state forever
  -- and cached resolutions of a removed image can never answer for a new one.
  CREATE TABLE images (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    name TEXT NOT NULL UNIQUE,
    kind TEXT NOT NULL CHECK (kind IN ('base', 'layer', 'leaf')),
    parent_id INTEGER REFERENCES images(id),
    virtual_size INTEGER NOT NULL,
    created_at INTEGER NOT NULL,
    labels TEXT NOT NULL DEFAULT '{}',
    source TEXT,
    own_blocks INTEGER NOT NULL DEFAULT 0,
    generation INTEGER NOT NULL DEFAULT 0
  ) STRICT;
  CREATE INDEX images_parent ON images(parent_id);
  -- One row per non-empty segment; an absent row is all INHERIT.
  CREATE TABLE segments (
    image_id INTEGER NOT NULL,
    seg INTEGER NOT NULL,
    entries BLOB NOT NULL,
    PRIMARY KEY (image_id, seg)
  ) STRICT;
  -- Committed slots with at least one reference. hash is XXH64 cut to 53 bits:
  -- a filter only, content is compared before a slot is shared.
  CREATE TABLE blocks (
    slot INTEGER PRIMARY KEY,
    hash INTEGER NOT NULL,
    refcount INTEGER NOT NULL CHECK (refcount > 0)
  ) STRICT;
  CREATE INDEX blocks_hash ON blocks(hash);
  -- Slots below meta.next_slot that no committed map references.
  CREATE TABLE free_slots (slot INTEGER PRIMARY KEY) STRICT;
  -- Images held open by a process: writers exclude writers; any lease blocks rm.
  CREATE TABLE leases (
    id INTEGER PRIMARY KEY,
    image_id INTEGER NOT NULL,
    pid INTEGER NOT NULL,
    start_time TEXT NOT NULL,
    mode TEXT NOT NULL CHECK (mode IN ('read', 'write')),
    opened_at INTEGER NOT NULL
  ) STRICT;
  CREATE INDEX leases_image ON leases(image_id);
  INSERT INTO meta(key, value) VALUES ('next_slot', 0), ('block_size', 4096);
  `,
  // 2: leases held by kernel locks and pinning what their holder sees; free slots stamped with
  // the epoch they were freed in, so a slot a live reader may still see is not reused.
  `
  DROP TABLE leases;
  -- AUTOINCREMENT: a lease's id is the byte of STORE/lock its holder locks, never handed out twice.
  CREATE TABLE leases (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    image_id INTEGER NOT NULL,              -- 0: the store as a whole (a check's pin)
    pid INTEGER NOT NULL,                   -- as the holder sees itself: a description, not proof
    start_time TEXT NOT NULL,
    host TEXT NOT NULL,
    mode TEXT NOT NULL CHECK (mode IN ('read', 'write')),
    opened_at INTEGER NOT NULL,
    locked INTEGER NOT NULL CHECK (locked IN (0, 1)),  -- 1: live exactly while byte id of STORE/lock is locked
    pin INTEGER,                            -- free epoch of the holder's view; NULL: pins nothing
    control TEXT                            -- Unix socket where the holder takes requests (a server's snapshots)
  ) STRICT;
  CREATE INDEX leases_image ON leases(image_id);
  ALTER TABLE free_slots ADD COLUMN epoch INTEGER NOT NULL DEFAULT 0;
  -- Snapshot numbers only grow: the next LEAF.snapN is past every N this leaf ever had.
  ALTER TABLE images ADD COLUMN snap_seq INTEGER NOT NULL DEFAULT 0;
  -- Set on the frozen image a snapshot made: when it was taken (it is never changed behind the user's back).
  ALTER TABLE images ADD COLUMN snapshot_at INTEGER;
  INSERT INTO meta(key, value) VALUES ('free_epoch', 0);
  `,
  // 3: refcounts and block hashes as fixed arrays per 4096 slots; the dedup index as a hint table
  // of its own (slots.ts, as old-slot-table.ts froze it). One row per block in two B-trees was the cost that grew with the data.
  (db) => {
    db.exec(`
    CREATE TABLE slot_refs (chunk INTEGER PRIMARY KEY, counts BLOB NOT NULL) STRICT;
    CREATE TABLE wide_refs (slot INTEGER PRIMARY KEY, refcount INTEGER NOT NULL CHECK (refcount >= 4294967295)) STRICT;
    CREATE TABLE slot_hashes (chunk INTEGER PRIMARY KEY, hashes BLOB NOT NULL) STRICT;
    CREATE TABLE hash_index (hash INTEGER NOT NULL, slot INTEGER NOT NULL, PRIMARY KEY (hash, slot)) WITHOUT ROWID, STRICT;
    INSERT INTO meta(key, value) VALUES ('used_slots', 0);
    `);
    writeSlotTableV3(db, db.prepare('SELECT slot, hash, refcount FROM blocks ORDER BY slot').raw().all() as [number, number, number][]);
    db.exec('DROP TABLE blocks');
  },
  // 4: block locations apart from block identity (slots.ts, locations.ts): compressed blocks packed
  // as fragments into container slots, movable without touching any map. 'compression' is the
  // store's default for imports (none until set).
  `
  CREATE TABLE slot_locs (chunk INTEGER PRIMARY KEY, locs BLOB NOT NULL) STRICT;
  INSERT INTO meta(key, value) VALUES ('loc_seq', 0), ('packed_blocks', 0), ('packed_bytes', 0), ('container_slots', 0), ('compression', 'none');
  `,
  // 5: blocks still in a remote pack (lazy clones, remote/store-side/lazy.ts): slot_locs word 0 REMOTE, and the
  // place here, one row per such slot (a pack name and a digest do not fit two words). Rows go when
  // the block is fetched (its location becomes its own slot) or freed. By digest, so a second lazy
  // clone of a layer sharing the block names the same slot.
  `
  CREATE TABLE remote_locs (
    slot INTEGER PRIMARY KEY, remote TEXT NOT NULL, pack TEXT NOT NULL, offset INTEGER NOT NULL,
    length INTEGER NOT NULL, codec INTEGER NOT NULL, digest BLOB NOT NULL
  ) STRICT;
  CREATE INDEX remote_locs_digest ON remote_locs(digest);
  INSERT INTO meta(key, value) VALUES ('remote_blocks', 0);
  `,
  // 6: old places of moved blocks, punched once no reader older than the move remains
  // (moved-places.ts). Places of blocks packed before this version are due at once: until now
  // every gc punched them all.
  (db) => {
    db.exec('CREATE TABLE moved_places (slot INTEGER PRIMARY KEY, epoch INTEGER NOT NULL) STRICT');
    const put = db.prepare('INSERT INTO moved_places(slot, epoch) VALUES (?, 0)');
    for (const slot of packedSlotsV6(db)) put.run(slot);
  },
];

export const SCHEMA_VERSION = MIGRATIONS.length;

/** The schema version the store's database is at (a read-only open does not migrate, so it may be older). */
export function schemaVersion(r: Reader): number {
  return sqlOf(r).pragma('user_version', { simple: true }) as number;
}

function checkVersion(version: number): void {
  if (version > SCHEMA_VERSION) {
    throw new StrataError('E_UNSUPPORTED', `store schema version ${version} is newer than this strata (${SCHEMA_VERSION}); upgrade strata`);
  }
}

export function migrate(db: Database.Database): void {
  // Every command opens the store: an up-to-date one is settled without taking the write lock.
  const seen = db.pragma('user_version', { simple: true }) as number;
  checkVersion(seen);
  if (seen === SCHEMA_VERSION) return;
  db.transaction(() => {
    // Read again under the write lock: commands racing on a new store all saw version 0 above,
    // and every one but the first must find the migration done, not run it again.
    const version = db.pragma('user_version', { simple: true }) as number;
    checkVersion(version);
    for (let v = version; v < SCHEMA_VERSION; v++) {
      const m = MIGRATIONS[v];
      if (typeof m === 'string') db.exec(m);
      else m(db);
    }
    db.pragma(`user_version = ${SCHEMA_VERSION}`);
  }).immediate();
}
