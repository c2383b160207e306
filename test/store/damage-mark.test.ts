/**
 * Store corruption is sticky, as qcow2's corrupt bit: the first certain
 * damage strata meets in its own store (here a refcount that would fall
 * below the map entries naming its slot, or a block failing its hash) fails
 * that command with E_CORRUPT and marks the store; every later write is
 * refused with E_CORRUPT naming that first damage and "run strata check
 * --repair", changing nothing; reads go on; info, stats and check show the
 * mark; check --repair clears it once the store is sound, and writes work
 * again.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import Database from 'better-sqlite3';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { ERROR_CODES } from '../../src/errors.js';
import { strata, strataOk } from '../helpers/cli.js';
import { BLOCK, DAMAGED_AT, baseBytes, flipBytes, makeDamagedStore, ownSlotOf } from '../helpers/damaged-store.js';
import { forceRefcount } from '../helpers/slots.js';

const KiB = 1024;

/** The sticky refusal, whatever the time it names. */
const refusal = (store: string, first: string) =>
  new RegExp(`^strata: store ${store.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&')} is damaged \\(${first.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}, found \\d{4}-\\d\\d-\\d\\dT[\\d:.]+Z\\); writes are refused: run strata check --repair\\n$`);

/** What a refused command must leave as it was: the images, and every byte of vm. */
const snapshotOf = (store: string) => ({ ls: strataOk(store, ['--json', 'ls']).stdout, vm: strataOk(store, ['read', 'vm']).out });

describe('a damaged store refuses writes until check --repair', () => {
  let dir: string;
  let store: string;
  beforeEach(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'strata-damage-'));
    store = path.join(dir, 'store');
  });
  afterEach(() => fs.rmSync(dir, { recursive: true, force: true }));

  it('a refcount below its map entries: the write that meets it fails, later writes are refused naming it, reads go on, check --repair clears it', () => {
    const raw = path.join(dir, 'in.raw');
    fs.writeFileSync(raw, Buffer.alloc(64 * KiB, 0x11));
    strataOk(store, ['import', raw, 'base']);
    strataOk(store, ['clone', 'base', 'vm']);
    const first = Buffer.alloc(BLOCK, 0xa1);
    strataOk(store, ['write', 'vm', '--offset', '0'], { input: first });
    const slot = ownSlotOf(store, 'vm', 0);
    // Damage behind strata's back: vm's own block counted by nobody.
    const db = new Database(path.join(store, 'strata.db'));
    try {
      forceRefcount(db, slot, 0);
    } finally {
      db.close();
    }

    // The write that drops vm's reference to the slot finds it: E_CORRUPT, one line, nothing of it kept.
    const hit = strata(store, ['write', 'vm', '--offset', '0'], { input: Buffer.alloc(BLOCK, 0xb2) });
    const damage = `map references slot ${slot}, whose refcount is 0`;
    expect({ status: hit.status, stderr: hit.stderr }).toEqual({ status: ERROR_CODES.E_CORRUPT, stderr: `strata: ${damage}\n` });
    const before = snapshotOf(store);
    expect(before.vm.subarray(0, BLOCK).equals(first)).toBe(true);

    // Every later write is refused, whatever it touches, naming the first damage; nothing changes.
    for (const args of [['write', 'vm', '--offset', String(8 * BLOCK)], ['snapshot', 'vm', 'snap'], ['clone', 'base', 'other'], ['rm', 'vm'], ['import', raw, 'again']]) {
      const r = strata(store, args, { input: Buffer.alloc(BLOCK, 0xc3) });
      expect({ args, status: r.status }).toEqual({ args, status: ERROR_CODES.E_CORRUPT });
      expect(r.stderr).toMatch(refusal(store, damage));
    }
    const j = strata(store, ['--json', 'write', 'vm'], { input: Buffer.alloc(BLOCK) });
    expect(JSON.parse(j.stderr)).toMatchObject({ error: 'E_CORRUPT', message: expect.stringContaining(`(${damage}, found `) });
    expect(snapshotOf(store)).toEqual(before);

    // Reads go on; info and stats say so.
    expect(strataOk(store, ['read', 'vm', '--length', String(BLOCK)]).out.equals(first)).toBe(true);
    expect(strataOk(store, ['read', 'base']).out.equals(Buffer.alloc(64 * KiB, 0x11))).toBe(true);
    expect(strataOk(store, ['info']).stdout).toMatch(new RegExp(`DAMAGED: +${damage} \\(found [^)]+\\); writes are refused: run strata check --repair\\n`));
    expect(JSON.parse(strataOk(store, ['--json', 'info']).stdout).damage).toMatchObject({ message: damage });
    expect(JSON.parse(strataOk(store, ['--json', 'stats']).stdout).damage).toMatchObject({ message: damage });

    // check reports the mark beside the refcount it found, and exits 2.
    const c = strata(store, ['--json', 'check']);
    expect(c.status).toBe(2);
    const report = JSON.parse(c.stdout) as { faults: { kind: string }[]; damage: unknown; status: string };
    expect(report.faults.map((f) => f.kind).sort()).toEqual(['refcount-low', 'used-slots']);
    expect(report.damage).toMatchObject({ message: damage, cleared: false });
    expect(strata(store, ['check']).stdout).toMatch(new RegExp(`\nERROR: the store is marked damaged since [^:]+:[^:]+:[^:]+: ${damage}; writes are refused until check --repair finds it sound\n`));

    // check --repair sets the refcount right and clears the mark; writes work again.
    const fix = strata(store, ['check', '--repair']);
    expect(fix.status, fix.stdout).toBe(0);
    expect(fix.stdout).toContain(`: ${damage}; the mark is cleared and writes are allowed again\n`);
    expect(strata(store, ['check']).status).toBe(0);
    expect(JSON.parse(strataOk(store, ['--json', 'info']).stdout).damage).toBeNull();
    strataOk(store, ['write', 'vm', '--offset', '0'], { input: Buffer.alloc(BLOCK, 0xd4) });
    strataOk(store, ['snapshot', 'vm', 'snap']);
    expect(strataOk(store, ['read', 'vm@snap', '--length', String(BLOCK)]).out.equals(Buffer.alloc(BLOCK, 0xd4))).toBe(true);
    expect(strata(store, ['check']).status).toBe(0);
  });

  it('a block failing its hash: the read marks the store; check --repair clears the mark once only the damaged block is left, which stays refused', () => {
    const slot = makeDamagedStore(store);
    flipBytes(store, slot * BLOCK + 100, 8);
    const r = strata(store, ['read', 'vm1']);
    expect(r.status).toBe(ERROR_CODES.E_CORRUPT);
    const damage = `image vm1: the block at byte offset ${DAMAGED_AT} (slot ${slot}) is damaged: its bytes do not match the hash recorded for them`;
    expect(r.stderr).toBe(`strata: ${damage}\n`);

    const w = strata(store, ['write', 'vm1', '--offset', String(DAMAGED_AT)], { input: Buffer.alloc(BLOCK, 0x55) });
    expect(w.status).toBe(ERROR_CODES.E_CORRUPT);
    expect(w.stderr).toMatch(refusal(store, `the block in slot ${slot} is damaged: its bytes do not match the hash recorded for them`));
    expect(strataOk(store, ['read', 'vm1', '--length', String(DAMAGED_AT)]).out.equals(baseBytes().subarray(0, DAMAGED_AT))).toBe(true);

    // No repair brings the block's bytes back; the store's structure is sound, so the mark goes and the block stays named.
    const fix = strata(store, ['check', '--repair']);
    expect(fix.status).toBe(2);
    expect(fix.stdout).toContain(`ERROR: slot ${slot}: content does not match its hash\n  read by image base at byte offset ${DAMAGED_AT}\n`);
    expect(fix.stdout).toContain('; the mark is cleared and writes are allowed again\n');
    // Now the user can rewrite what read the damaged block.
    strataOk(store, ['write', 'vm1', '--offset', String(DAMAGED_AT)], { input: Buffer.alloc(BLOCK, 0x55) });
    expect(strataOk(store, ['read', 'vm1', '--offset', String(DAMAGED_AT), '--length', String(BLOCK)]).out.equals(Buffer.alloc(BLOCK, 0x55))).toBe(true);
    expect(strata(store, ['read', 'base']).status).toBe(ERROR_CODES.E_CORRUPT);
  });
});
