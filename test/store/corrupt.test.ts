/**
 * Damaged stores: strata refuses with E_CORRUPT (exit 8) naming the damaged
 * file, and `check` reports what it can instead of crashing.
 */
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { beforeEach, describe, expect, it } from 'vitest';
import { ERROR_CODES } from '../../src/errors.js';
import { strata, strataOk } from '../helpers/cli.js';
import { rng } from '../helpers/random.js';
import { tmpDir } from '../helpers/tmp.js';

let store: string;
let db: string;

beforeEach(() => {
  store = tmpDir();
  db = path.join(store, 'strata.db');
  strataOk(store, ['create', 'a', '--size', '4M']);
  strataOk(store, ['write', 'a'], { input: rng(9).bytes(3_000_000) });
  for (let i = 0; i < 8; i++) strataOk(store, ['clone', 'a', `c${i}`]);
});

function expectCorrupt(r: { status: number; stderr: string }, file: RegExp) {
  expect(r.status, r.stderr).toBe(ERROR_CODES.E_CORRUPT);
  const lines = r.stderr.trimEnd().split('\n');
  expect(lines).toHaveLength(1);
  expect(lines[0]).toMatch(file);
  expect(r.stderr).not.toMatch(/internal error|\n\s+at /);
}

describe('corrupt files', () => {
  it('a strata.db of garbage: every command refuses with E_CORRUPT naming it', () => {
    fs.writeFileSync(db, crypto.randomBytes(64 * 1024));
    for (const args of [['ls'], ['read', 'a'], ['check'], ['write', 'a'], ['gc']]) expectCorrupt(strata(store, args, { input: 'x' }), /store database .*strata\.db is corrupt/);
  });

  it('a torn strata.db (cut short): E_CORRUPT naming it', () => {
    fs.truncateSync(db, Math.floor(fs.statSync(db).size / 3));
    for (const args of [['ls'], ['read', 'a'], ['check']]) expectCorrupt(strata(store, args), /store database .*strata\.db is corrupt/);
  });

  it('garbage in the middle of strata.db, found only by a later query: E_CORRUPT, not an internal error', () => {
    // Seeded damage over pages 10-17 of 38: the block index and maps, not the catalog.
    const before = Object.fromEntries([['info', 'a'], ['ls']].map((args) => [args.join(' '), strataOk(store, args).stdout]));
    const fd = fs.openSync(db, 'r+');
    fs.writeSync(fd, rng(31).bytes(30_000), 0, 30_000, 40_000);
    fs.closeSync(fd);
    // What reads the damaged pages refuses, in one line naming the file ...
    for (const args of [['read', 'a'], ['check'], ['du']]) {
      const r = strata(store, args);
      expect({ args, status: r.status, stdout: r.stdout, stderr: r.stderr }).toEqual({
        args,
        status: ERROR_CODES.E_CORRUPT,
        stdout: '',
        stderr: `strata: store database ${db} is corrupt: database disk image is malformed\n`,
      });
    }
    // ... and what never touches them answers exactly as before the damage, not with garbage.
    for (const [cmd, out] of Object.entries(before)) {
      const r = strata(store, cmd.split(' '));
      expect({ cmd, status: r.status, stdout: r.stdout, stderr: r.stderr }).toEqual({ cmd, status: 0, stdout: out, stderr: '' });
    }
  });

  it('a data file shorter than its slots: reads refuse with E_CORRUPT naming it; check lists each missing slot', () => {
    const dat = path.join(store, 'data', '000000.dat');
    const slots = fs.statSync(dat).size / 4096;
    const keep = 500;
    fs.truncateSync(dat, keep * 4096);
    expectCorrupt(strata(store, ['read', 'a']), /data file 000000\.dat is shorter than slot \d+/);
    // The part before the cut still reads.
    expect(strataOk(store, ['read', 'a', '--length', String(keep * 4096)]).out.length).toBe(keep * 4096);
    const r = strata(store, ['check', '--json']);
    expect(r.status).toBe(2);
    const report = JSON.parse(r.stdout) as { faults: { kind: string; message: string }[]; slotsVerified: number };
    const missing = report.faults.filter((f) => f.kind === 'unreadable-slot').map((f) => Number(/slot (\d+)/.exec(f.message)![1]));
    expect(missing).toEqual(Array.from({ length: slots - keep }, (_, i) => keep + i));
    expect(report.slotsVerified).toBe(keep);
    expect(report.faults.every((f) => f.kind === 'unreadable-slot')).toBe(true);
    // The human report names them too, one line each, and the status.
    const text = strata(store, ['check']).stdout;
    expect(text).toMatch(/ERROR: slot 500: cannot be read \(data file 000000\.dat is shorter than slot 500\)/);
    expect(text).toMatch(/store is CORRUPT/);
  });
});
