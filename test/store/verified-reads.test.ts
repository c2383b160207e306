/**
 * Every block read is checked against the hash recorded for its slot: a
 * block whose bytes rotted on disk is refused (E_CORRUPT, exit 8, naming the
 * image, the byte offset and the slot), never handed out as data, and
 * `check` names each image and offset that reads it.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import Database from 'better-sqlite3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ERROR_CODES } from '../../src/errors.js';
import { decodeLocation } from '../../src/store/blocks/location.js';
import { strata, strataOk } from '../helpers/cli.js';
import { BLOCK, DAMAGED_AT, SHARED_AT, baseBytes, flipBytes, makeDamagedStore } from '../helpers/damaged-store.js';

const damagedLine = (image: string, offset: number, slot: number) =>
  `strata: image ${image}: the block at byte offset ${offset} (slot ${slot}) is damaged: its bytes do not match the hash recorded for them\n`;

/** What `check --json` must name: every image and offset that reads the damaged slot, the clones' inherited reads included. */
const readers = (slot: number) => [
  { image: 'base', offset: DAMAGED_AT, length: BLOCK, slot },
  { image: 'base', offset: SHARED_AT, length: BLOCK, slot },
  { image: 'vm1', offset: DAMAGED_AT, length: BLOCK, slot },
  { image: 'vm1', offset: SHARED_AT, length: BLOCK, slot },
  { image: 'vm2', offset: SHARED_AT, length: BLOCK, slot },
];

/** The damaged store of damaged-store.ts for one describe: `damage` rots the block of `slot` on disk. */
function damagedStore(importArgs: string[], damage: (store: string, slot: number) => void) {
  const ctx = { dir: '', store: '', slot: 0 };
  beforeAll(() => {
    ctx.dir = fs.mkdtempSync(path.join(os.tmpdir(), 'strata-verified-'));
    ctx.store = path.join(ctx.dir, 'store');
    ctx.slot = makeDamagedStore(ctx.store, importArgs);
    damage(ctx.store, ctx.slot);
  });
  afterAll(() => fs.rmSync(ctx.dir, { recursive: true, force: true }));
  return ctx;
}

describe('a block rotted on disk, in its own slot', () => {
  const ctx = damagedStore([], (store, slot) => flipBytes(store, slot * BLOCK + 100, 8));

  it('read fails with E_CORRUPT naming the image, the byte offset and the slot, and prints none of the damaged bytes', () => {
    for (const [image, at] of [['base', DAMAGED_AT], ['vm1', DAMAGED_AT], ['vm2', SHARED_AT]] as const) {
      const r = strata(ctx.store, ['read', image]);
      expect({ image, status: r.status, stderr: r.stderr }).toEqual({ image, status: ERROR_CODES.E_CORRUPT, stderr: damagedLine(image, at, ctx.slot) });
      expect(r.out.length).toBeLessThanOrEqual(at);
    }
    // The same through the JS fallback (xxhash-wasm), where the addon is missing.
    const r = strata(ctx.store, ['read', 'vm1'], { env: { STRATA_NO_NATIVE: '1' } });
    expect({ status: r.status, stderr: r.stderr }).toEqual({ status: ERROR_CODES.E_CORRUPT, stderr: damagedLine('vm1', DAMAGED_AT, ctx.slot) });
  });

  it('the ranges around the damaged block read back exactly; a clone that rewrote it reads its own bytes there', () => {
    const want = baseBytes();
    expect(strataOk(ctx.store, ['read', 'vm1', '--length', String(DAMAGED_AT)]).out.equals(want.subarray(0, DAMAGED_AT))).toBe(true);
    const after = strataOk(ctx.store, ['read', 'vm1', '--offset', String(DAMAGED_AT + BLOCK), '--length', String(SHARED_AT - DAMAGED_AT - BLOCK)]).out;
    expect(after.equals(want.subarray(DAMAGED_AT + BLOCK, SHARED_AT))).toBe(true);
    const tail = strataOk(ctx.store, ['read', 'vm1', '--offset', String(SHARED_AT + BLOCK)]).out;
    expect(tail.equals(want.subarray(SHARED_AT + BLOCK))).toBe(true);
    expect(strataOk(ctx.store, ['read', 'vm2', '--offset', String(DAMAGED_AT), '--length', String(BLOCK)]).out.equals(Buffer.alloc(BLOCK, 0xee))).toBe(true);
  });

  it('export (raw and qcow2) fails with the same error and leaves no file behind', () => {
    for (const format of ['raw', 'qcow2']) {
      const out = path.join(ctx.dir, `vm1.${format}`);
      const r = strata(ctx.store, ['export', 'vm1', out, '--format', format]);
      expect({ format, status: r.status, stderr: r.stderr }).toEqual({ format, status: ERROR_CODES.E_CORRUPT, stderr: damagedLine('vm1', DAMAGED_AT, ctx.slot) });
      expect(fs.existsSync(out)).toBe(false);
    }
    const r = strata(ctx.store, ['export', 'vm2', '-']);
    expect({ status: r.status, stderr: r.stderr }).toEqual({ status: ERROR_CODES.E_CORRUPT, stderr: damagedLine('vm2', SHARED_AT, ctx.slot) });
    expect(r.out.length).toBeLessThanOrEqual(SHARED_AT);
    const j = strata(ctx.store, ['--json', 'export', 'base', path.join(ctx.dir, 'j.raw')]);
    expect(j.status).toBe(ERROR_CODES.E_CORRUPT);
    expect(JSON.parse(j.stderr)).toEqual({ error: 'E_CORRUPT', message: damagedLine('base', DAMAGED_AT, ctx.slot).slice('strata: '.length, -1) });
  });

  it('check names every image and byte offset that reads the damaged slot, in text and --json, and exits 2', () => {
    const t = strata(ctx.store, ['check']);
    expect(t.status).toBe(2);
    expect(t.stdout).toContain(
      [
        `ERROR: slot ${ctx.slot}: content does not match its hash`,
        `  read by image base at byte offset ${DAMAGED_AT}`,
        `  read by image base at byte offset ${SHARED_AT}`,
        `  read by image vm1 at byte offset ${DAMAGED_AT}`,
        `  read by image vm1 at byte offset ${SHARED_AT}`,
        `  read by image vm2 at byte offset ${SHARED_AT}`,
        '',
      ].join('\n'),
    );
    const j = strata(ctx.store, ['--json', 'check']);
    expect(j.status).toBe(2);
    const report = JSON.parse(j.stdout);
    expect(report.damagedReads).toEqual(readers(ctx.slot));
    expect(report.damagedReadsNotListed).toBe(0);
    expect(report.exitStatus).toBe(2);
  });
});

describe('a compressed block rotted on disk', () => {
  const ctx = damagedStore(['--compress', 'lz4'], (store, slot) => {
    // lz4 ends every block with literals: the fragment's last byte still decodes, to a wrong last byte.
    const db = new Database(path.join(store, 'strata.db'), { readonly: true });
    const locs = db.prepare('SELECT locs FROM slot_locs WHERE chunk = 0').pluck().get() as Buffer;
    db.close();
    const loc = decodeLocation(locs.readUInt32LE(8 * slot), locs.readUInt32LE(8 * slot + 4));
    if (loc.kind !== 'packed') throw new Error(`slot ${slot} is not packed: ${loc.kind}`);
    flipBytes(store, loc.container * BLOCK + loc.offset + loc.length - 1, 1);
  });

  it('the decompressed block is checked: read fails naming image and offset, check names its readers', () => {
    const r = strata(ctx.store, ['read', 'vm1']);
    expect({ status: r.status, stderr: r.stderr }).toEqual({ status: ERROR_CODES.E_CORRUPT, stderr: damagedLine('vm1', DAMAGED_AT, ctx.slot) });
    expect(strataOk(ctx.store, ['read', 'vm1', '--length', String(DAMAGED_AT)]).out.equals(baseBytes().subarray(0, DAMAGED_AT))).toBe(true);
    const j = strata(ctx.store, ['--json', 'check']);
    expect(j.status).toBe(2);
    expect(JSON.parse(j.stdout).damagedReads).toEqual(readers(ctx.slot));
  });
});
