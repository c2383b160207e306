/**
 * SIGKILL at the steps of a lazy clone's life (STRATA_FAULT kill points,
 * store/faults.ts), against the loopback RGW: a fetch installing blocks
 * (installFetched), an eviction (its batch commit and its punch), and the
 * bucket's dependents records (written before a clone makes a layer, after
 * a sync writes them, before one goes). After each kill the clone reads
 * back byte-identical to the raw image, `strata check` is clean, and the
 * bucket records the store as a dependent whenever it may hold blocks only
 * there (a stale record is allowed: it only makes delete and gc careful).
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ERROR_CODES } from '../../src/errors.js';
import { strata, strataOk } from '../helpers/cli.js';
import { rng } from '../helpers/random.js';
import { freshBucket, haveRgw, rgw, storesOnBucket } from '../helpers/rgw.js';
import { expectIntact } from '../helpers/lazy-clone.js';
import { tmpDir } from '../helpers/tmp.js';

const MiB = 1024 * 1024;
const json = (r: { stdout: string }) => JSON.parse(r.stdout);
const killedAt = (point: string) => ({ STRATA_FAULT: point });

describe.skipIf(!haveRgw())('SIGKILL during lazy fetch, eviction and dependents records', () => {
  let A: string;
  let bucket: string;
  let data: Buffer;
  let dir: string;
  beforeAll(() => {
    rgw();
    // The pushing store outlives each test (tmpDir() is removed after one).
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'strata-killlazy-'));
    data = rng(2207).bytes(2 * MiB);
    fs.writeFileSync(path.join(dir, 'img.raw'), data);
    bucket = freshBucket('killlazy');
    A = path.join(dir, 'A');
    storesOnBucket([A], bucket);
    strataOk(A, ['create', 'img', '--from', path.join(dir, 'img.raw')]);
    strataOk(A, ['push', 'img', 'fleet', '--pack-size', '1M']);
  });
  afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

  /** A fresh store on the bucket (another host). */
  function host(): string {
    const B = path.join(tmpDir(), 'B');
    storesOnBucket([B], bucket);
    return B;
  }

  /** The stores the bucket records as depending on img (A's dry-run delete asks). */
  const dependents = (): string[] => json(strataOk(A, ['--json', 'remote', 'delete', '-n', 'fleet/img'])).dependents.map((d: { dir: string }) => d.dir);

  const intact = (B: string) => expectIntact(B, 'vm', data);

  for (const point of ['fetch.after-data-sync', 'fetch.after-commit']) {
    it(`read killed at ${point}: the clone still depends on the image, then reads back byte-identical; check clean`, () => {
      const B = host();
      strataOk(B, ['clone', 'fleet/img', 'vm']);
      expect(strata(B, ['read', 'vm'], { env: killedAt(point) }).status, 'SIGKILLed at its fault point').toBe(-1);
      expect(dependents()).toContain(B);
      intact(B);
      // Every block is here now: the record is stale (killed before its sync) or gone; check --remote syncs it.
      strataOk(B, ['check', '--remote']);
      expect(dependents()).not.toContain(B);
    });
  }

  for (const point of ['evict.after-batch', 'evict.after-punch']) {
    it(`remote evict killed at ${point}: the bucket records the clone again before its blocks go; it reads back byte-identical; check clean`, () => {
      const B = host();
      strataOk(B, ['clone', 'fleet/img', 'vm']);
      expect(strataOk(B, ['read', 'vm']).out.equals(data)).toBe(true);
      expect(dependents()).not.toContain(B);
      expect(strata(B, ['remote', 'evict', 'fleet', '--to', '0'], { env: killedAt(point) }).status).toBe(-1);
      expect(dependents()).toContain(B);
      const check = strata(B, ['--json', 'check']);
      expect(check.status).toBe(0);
      expect(json(check).status).toBe('clean');
      intact(B);
    });
  }

  it('clone killed after its record, before any layer: no image, a stale record (careful), cleared by the next clone read whole', () => {
    const B = host();
    expect(strata(B, ['clone', 'fleet/img', 'vm'], { env: killedAt('dependents.after-intent') }).status).toBe(-1);
    expect(json(strataOk(B, ['--json', 'ls']))).toEqual([]);
    expect(dependents()).toContain(B);
    strataOk(B, ['clone', 'fleet/img', 'vm']);
    intact(B);
    expect(dependents()).not.toContain(B);
  });

  it('clone killed after its records are written: the clone is whole and recorded; reads back byte-identical; check clean', () => {
    const B = host();
    expect(strata(B, ['clone', 'fleet/img', 'vm'], { env: killedAt('dependents.after-put') }).status).toBe(-1);
    expect(json(strataOk(B, ['--json', 'ls'])).map((i: { name: string }) => i.name).sort()).toEqual(['img', 'vm']);
    expect(dependents()).toContain(B);
    intact(B);
  });

  it('rm killed before the record goes: the images are gone, the stale record stays (careful) until check --remote syncs it', () => {
    const B = host();
    strataOk(B, ['clone', 'fleet/img', 'vm']);
    expect(strata(B, ['rm', '-r', 'img'], { env: killedAt('dependents.before-remove') }).status).toBe(-1);
    expect(json(strataOk(B, ['--json', 'ls']))).toEqual([]);
    expect(dependents()).toContain(B);
    expect(strata(A, ['remote', 'delete', 'fleet/img']).status).toBe(ERROR_CODES.E_HAS_DEPENDENTS);
    const check = strata(B, ['--json', 'check', '--remote']);
    expect(check.status).toBe(0);
    expect(json(check).status).toBe('clean');
    expect(dependents()).not.toContain(B);
  });
});
