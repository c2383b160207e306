/**
 * A block that moves (compress, eviction) leaves its old place readable
 * until no reader that opened before the move remains (DESIGN: "Moving a
 * block ... never punches a place that a reader which opened earlier may
 * still read"). A pinned reader of a leaf keeps its view of the leaf's
 * segments and of where their blocks were: after the leaf is overwritten,
 * the frozen image its old blocks were deduplicated into may be compressed,
 * and the reader must still find those blocks' bytes where it looked.
 *
 * Real processes: a reader holding the leaf open (test/fixtures), the CLI for
 * every other step.
 */
import path from 'node:path';
import Database from 'better-sqlite3';
import { afterEach, describe, expect, it } from 'vitest';
import { strata, strataOk } from '../helpers/cli.js';
import { blocksNotFrom, PinnedReader } from '../helpers/pinned-reader.js';
import { rng } from '../helpers/random.js';
import { tmpDir } from '../helpers/tmp.js';

const KiB = 1024;
const BLOCK = 4 * KiB;
const SIZE = 256 * KiB;

afterEach(() => PinnedReader.killAll());

interface GcJson {
  repack: { placesPunched: number };
}

describe('a pinned reader of a leaf across a move of its blocks (#22 item 1)', () => {
  it('reads the flushed bytes, not holes, after compress moves blocks its view names; gc reclaims the old places once it has gone', async () => {
    const store = tmpDir();
    const dir = tmpDir();
    const old = rng(221).text(SIZE); // compressible, so compress moves every block
    const fresh = rng(222).text(SIZE);
    // Frozen y holds the blocks; the leaf's own blocks are deduplicated into y's slots.
    strataOk(store, ['create', 'y', '--size', `${SIZE}`]);
    strataOk(store, ['write', 'y'], { input: old });
    strataOk(store, ['freeze', 'y']);
    strataOk(store, ['create', 'leaf', '--size', `${SIZE}`]);
    strataOk(store, ['write', 'leaf'], { input: old });

    const { reader, first } = await PinnedReader.open(store, 'leaf', path.join(dir, 'seen'));
    expect(first.equals(old)).toBe(true);
    // Another process overwrites the leaf: its map no longer names y's slots, the reader's view still does.
    strataOk(store, ['write', 'leaf'], { input: fresh });
    const c = JSON.parse(strataOk(store, ['compress', 'y', '--codec', 'zstd', '--json']).stdout);
    expect(c.compressed).toBe(SIZE / BLOCK);

    const seen = await reader.read();
    expect(blocksNotFrom(seen, [old, fresh])).toEqual([]);
    expect(seen.equals(old)).toBe(true); // its view dates from before the overwrite
    // A gc meanwhile repacks and punches what is due, but not the old places the reader may read.
    const during = JSON.parse(strataOk(store, ['gc', '--json']).stdout) as GcJson;
    expect(during.repack.placesPunched).toBe(0);
    expect((await reader.read()).equals(old)).toBe(true);
    await reader.close();

    const check = strata(store, ['check']);
    expect(check.status, check.stdout + check.stderr).toBe(0);
    // The reader has gone: gc punches the old places of every moved block.
    const gc = JSON.parse(strataOk(store, ['gc', '--json']).stdout) as GcJson;
    expect(gc.repack.placesPunched).toBe(SIZE / BLOCK);
    expect(strataOk(store, ['read', 'y']).out.equals(old)).toBe(true);
    expect(strataOk(store, ['read', 'leaf']).out.equals(fresh)).toBe(true);
    const again = strata(store, ['check']);
    expect(again.status, again.stdout + again.stderr).toBe(0);
  });
});

describe('a store from before moved places were recorded (schema 5)', () => {
  it('records its packed blocks\' own places as due at once: the next gc punches them, check stays clean', () => {
    const store = tmpDir();
    const data = rng(223).text(SIZE);
    strataOk(store, ['create', 'y', '--size', `${SIZE}`]);
    strataOk(store, ['write', 'y'], { input: data });
    strataOk(store, ['freeze', 'y']);
    strataOk(store, ['compress', 'y', '--codec', 'zstd']);
    // As schema 5 left a compress killed between its commit and its punch: places unpunched, nothing recorded.
    const db = new Database(path.join(store, 'strata.db'));
    db.exec('DROP TABLE moved_places');
    db.pragma('user_version = 5');
    db.close();
    const gc = JSON.parse(strataOk(store, ['gc', '--json']).stdout) as GcJson;
    expect(gc.repack.placesPunched).toBe(SIZE / BLOCK);
    expect(strataOk(store, ['read', 'y']).out.equals(data)).toBe(true);
    const check = strata(store, ['check']);
    expect(check.status, check.stdout + check.stderr).toBe(0);
  });
});
