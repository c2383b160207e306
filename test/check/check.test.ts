import fs from 'node:fs';
import path from 'node:path';
import Database from 'better-sqlite3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildCli, cli, makeExt4Pair, tmpDir } from '../reshape/fixture.js';
import { forceRefcount, liveSlots } from '../helpers/slots.js';

/**
 * Planted faults, found by the real binary: each named in the report, and
 * the exit status says which class (0 clean, 2 corruption, 3 leaks only).
 */
describe('strata check: planted faults', () => {
  let dir: string;
  let pristine: string;
  let n = 0;

  beforeAll(() => {
    buildCli();
    dir = tmpDir('check');
    const f = makeExt4Pair(dir);
    pristine = path.join(dir, 'pristine');
    for (const args of [['init'], ['create', 'a', '--from', f.a], ['create', 'b', '--from', f.b], ['clone', 'b', 'web1', 'web2']]) {
      const r = cli(pristine, ...args);
      expect(r.stderr).toBe('');
      expect(r.status).toBe(0);
    }
  });
  afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

  /** A fresh copy of the pristine store for one test. */
  function fresh(): string {
    const s = path.join(dir, `s${++n}`);
    fs.cpSync(pristine, s, { recursive: true });
    return s;
  }
  function sql<T>(store: string, fn: (db: Database.Database) => T): T {
    const db = new Database(path.join(store, 'strata.db'));
    try {
      db.pragma('foreign_keys = OFF');
      return fn(db);
    } finally {
      db.close();
    }
  }
  const check = (store: string, ...extra: string[]) => {
    const r = cli(store, 'check', ...extra);
    return { ...r, out: r.stdout + r.stderr };
  };

  it('a clean store: exit 0, and --json gives the report', () => {
    const s = fresh();
    expect(check(s).status).toBe(0);
    const j = cli(s, '--json', 'check');
    expect(j.status).toBe(0);
    const rep = JSON.parse(j.stdout);
    expect(rep.faults).toEqual([]);
    expect(rep.slotsVerified).toBeGreaterThan(0);
  });

  it('a flipped byte in a slot: content does not match its hash, exit 2, and --repair does not hide it', () => {
    const s = fresh();
    const slot = sql(s, (db) => liveSlots(db)[100].slot);
    const file = path.join(s, 'data', '000000.dat');
    const fd = fs.openSync(file, 'r+');
    const b = Buffer.alloc(1);
    fs.readSync(fd, b, 0, 1, slot * 4096 + 123);
    b[0] ^= 0xff;
    fs.writeSync(fd, b, 0, 1, slot * 4096 + 123);
    fs.closeSync(fd);
    const r = check(s);
    expect(r.status).toBe(2);
    expect(r.out).toContain(`slot ${slot}: content does not match its hash`);
    expect(check(s, '--repair').status).toBe(2);
  });

  it('a refcount above the references is a leak (exit 3); --repair fixes it', () => {
    const s = fresh();
    const [slot, rc] = sql(s, (db) => {
      const { slot, refcount } = liveSlots(db)[7];
      forceRefcount(db, slot, refcount + 1);
      return [slot, refcount];
    });
    const r = check(s);
    expect(r.status).toBe(3);
    expect(r.out).toContain(`slot ${slot}: refcount ${rc + 1}, maps reference it ${rc} times`);
    expect(check(s, '--repair').status).toBe(0);
    expect(check(s).status).toBe(0);
  });

  it('a refcount below the references is corruption (exit 2); --repair fixes it', () => {
    const s = fresh();
    const [slot, rc] = sql(s, (db) => {
      const { slot, refcount } = liveSlots(db).find((r) => r.refcount >= 2)!;
      forceRefcount(db, slot, refcount - 1);
      return [slot, refcount];
    });
    const r = check(s);
    expect(r.status).toBe(2);
    expect(r.out).toContain(`slot ${slot}: refcount ${rc - 1}, maps reference it ${rc} times`);
    expect(check(s, '--repair').status).toBe(0);
    expect(check(s).status).toBe(0);
  });

  it('a map entry pointing at a free slot is named with its image and block (exit 2); --repair takes the slot back', () => {
    const s = fresh();
    expect(cli(s, 'rm', 'a').status).toBe(0); // frees a's exclusive slots
    const freeSlot = sql(s, (db) => {
      const slot = db.prepare('SELECT slot FROM free_slots ORDER BY slot LIMIT 1').pluck().get() as number;
      const id = db.prepare("SELECT id FROM images WHERE name = 'web1'").pluck().get() as number;
      const entries = new Uint32Array(4096);
      entries[42] = slot + 2;
      db.prepare('INSERT INTO segments(image_id, seg, entries) VALUES (?, 0, ?)').run(id, Buffer.from(entries.buffer));
      db.prepare('UPDATE images SET own_blocks = 1 WHERE id = ?').run(id);
      return slot;
    });
    const r = check(s);
    expect(r.status).toBe(2);
    expect(r.out).toContain(`image web1 map entry at block 42 points at free slot ${freeSlot}`);
    const rep = JSON.parse(cli(s, '--json', 'check', '--repair').stdout);
    expect(rep.faults.find((f: { kind: string }) => f.kind === 'map-points-at-free-slot').repaired).toBe(true);
    expect(check(s).status).toBe(0);
  });

  it('an image whose parent row is missing is corruption (exit 2)', () => {
    const s = fresh();
    const id = sql(s, (db) => {
      const b = db.prepare("SELECT id FROM images WHERE name = 'b'").pluck().get() as number;
      db.prepare('DELETE FROM images WHERE id = ?').run(b);
      return b;
    });
    const r = check(s);
    expect(r.status).toBe(2);
    expect(r.out).toContain(`image web1: parent id ${id} is missing`);
    expect(r.out).toContain(`image web2: parent id ${id} is missing`);
    // Repair reclaims what it can (b's orphaned map) but never invents the parent.
    expect(check(s, '--repair').status).toBe(2);
  });

  it('slots below next_slot on no list are leaks (exit 3); --repair frees them', () => {
    const s = fresh();
    const next = sql(s, (db) => {
      const v = db.prepare("SELECT value FROM meta WHERE key = 'next_slot'").pluck().get() as number;
      db.prepare("UPDATE meta SET value = ? WHERE key = 'next_slot'").run(v + 3);
      return v;
    });
    const r = check(s);
    expect(r.status).toBe(3);
    for (let k = 0; k < 3; k++) expect(r.out).toContain(`slot ${next + k}: neither referenced nor on the free list`);
    expect(check(s, '--repair').status).toBe(0);
    expect(check(s).status).toBe(0);
  });

  it('gc through the CLI: rm returns what it freed itself; gc reports the bytes reclaimed and leaves a clean store', () => {
    const s = fresh();
    const rm = cli(s, '--json', 'rm', '-r', 'b');
    expect(rm.status).toBe(0);
    const removed = JSON.parse(rm.stdout);
    expect(removed.freedBytes).toBeGreaterThan(0);
    const r = cli(s, '--json', 'gc');
    expect(r.status).toBe(0);
    const rep = JSON.parse(r.stdout);
    expect(rep.reclaimedBytes).toBe(rep.allocatedBytesBefore - rep.allocatedBytesAfter);
    // Where holes can be punched, rm gave everything back already and gc finds nothing left.
    if (removed.punchSupported) expect([removed.reclaimedBytes, rep.reclaimedBytes]).toEqual([removed.freedBytes, 0]);
    expect(check(s).status).toBe(0);
  });
});
