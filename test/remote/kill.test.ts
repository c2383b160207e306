/**
 * SIGKILL during push and pull (STRATA_FAULT kill points, store/faults.ts),
 * against the loopback RGW: the remote never lists a half-pushed image, the
 * local store never shows a half-pulled one, and the next run completes.
 */
import fs from 'node:fs';
import path from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { strata, strataOk } from '../helpers/cli.js';
import { rng } from '../helpers/random.js';
import { freshBucket, haveRgw, rgw, storesOnBucket } from '../helpers/rgw.js';
import { tmpDir } from '../helpers/tmp.js';

const MiB = 1024 * 1024;
const json = (r: { stdout: string }) => JSON.parse(r.stdout);
const killedAt = (point: string) => ({ STRATA_FAULT: point, STRATA_PULL_BATCH: '256' });

describe.skipIf(!haveRgw())('SIGKILL during push and pull', () => {
  beforeAll(() => {
    rgw();
  });

  function setup(stores: string[]) {
    const dir = tmpDir();
    const r = rng(99);
    const base = Buffer.alloc(8 * MiB);
    r.text(3 * MiB).copy(base);
    const app = Buffer.from(base);
    r.text(2 * MiB).copy(app, 4 * MiB);
    fs.writeFileSync(path.join(dir, 'base.raw'), base);
    fs.writeFileSync(path.join(dir, 'app.raw'), app);
    const bucket = freshBucket('kill');
    const s = stores.map((n) => path.join(dir, n));
    storesOnBucket(s, bucket);
    strataOk(s[0], ['create', 'base', '--from', path.join(dir, 'base.raw')]);
    strataOk(s[0], ['import', path.join(dir, 'app.raw'), 'app', '--parent', 'base']);
    return { dir, s, app };
  }

  for (const point of ['push.after-packs', 'push.after-index', 'push.after-layers']) {
    it(`killed at ${point}: the image is not listed; the next push completes and pulls byte-identical; remote check clean, gc clears the waste`, () => {
      const { dir, s, app } = setup(['A', 'B']);
      const killed = strata(s[0], ['push', 'app', 'fleet', '--pack-size', '512K'], { env: killedAt(point) });
      expect(killed.status, 'killed at its fault point: a signal, no exit status').toBe(-1);
      expect(json(strataOk(s[1], ['--json', 'remote', 'ls', 'fleet'])).images).toEqual([]);
      const again = json(strataOk(s[0], ['--json', 'push', 'app', 'fleet', '--pack-size', '512K']));
      // Once the index is written, its blocks are never uploaded again.
      if (point !== 'push.after-packs') expect(again.newBlocks).toBe(0);
      json(strataOk(s[1], ['--json', 'pull', 'fleet/app']));
      const out = path.join(dir, 'out.raw');
      strataOk(s[1], ['export', 'app', out]);
      expect(fs.readFileSync(out).equals(app)).toBe(true);
      // The killed push left waste at most, never damage; its lock names a dead process, so gc runs and clears the waste.
      expect(json(strataOk(s[1], ['--json', 'remote', 'check', 'fleet', '--read-data'])).problems).toEqual([]);
      strataOk(s[1], ['remote', 'gc', 'fleet']);
      expect(json(strataOk(s[1], ['--json', 'remote', 'check', 'fleet', '--read-data']))).toMatchObject({ status: 'clean', waste: { packs: 0, layers: 0 } });
    });
  }

  it('killed in the middle of a layer, then between layers: no half image; the next pull completes', () => {
    const { dir, s, app } = setup(['A', 'B']);
    strataOk(s[0], ['push', 'app', 'fleet']);
    // The base layer is 768 blocks: killed after its first batch of 256.
    expect(strata(s[1], ['pull', 'fleet/app'], { env: killedAt('pull.after-batch') }).status).toBe(-1); // SIGKILLed there
    expect(json(strataOk(s[1], ['--json', 'ls']))).toEqual([]);
    // Killed once the base is whole: it stays, and the next pull builds on it.
    expect(strata(s[1], ['pull', 'fleet/app'], { env: killedAt('pull.after-layer') }).status).toBe(-1);
    expect(json(strataOk(s[1], ['--json', 'ls'])).map((i: { name: string }) => i.name)).toEqual(['base']);
    const done = json(strataOk(s[1], ['--json', 'pull', 'fleet/app']));
    expect(done.layers.map((l: { reused: boolean }) => l.reused)).toEqual([true, false]);
    const out = path.join(dir, 'out.raw');
    strataOk(s[1], ['export', 'app', out]);
    expect(fs.readFileSync(out).equals(app)).toBe(true);
    expect(strata(s[1], ['check']).status).toBe(0);
    expect(json(strataOk(s[1], ['--json', 'remote', 'check', 'fleet', '--read-data'])).status).toBe('clean');
  });
});
