/**
 * A lazy clone of remote R fetches only from R, against a real Ceph RGW and
 * real CLI processes. Two remotes on one store hold the same blocks: a
 * "hostile" one, cloned first, and a "trusted" one. The trusted clone gets
 * slots of its own; once the hostile bucket withdraws its packs, the
 * trusted clone still reads byte-identical (and the hostile one cannot).
 * A layer cloned lazily from the hostile remote is never taken for the
 * trusted remote's layer of the same name (clone and pull: E_EXISTS).
 */
import fs from 'node:fs';
import path from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { openBucket } from '../../src/remote/s3.js';
import { openStore } from '../../src/store/core/store.js';
import { remoteBlockCount } from '../../src/store/blocks/remote-locs.js';
import { strata, strataOk } from '../helpers/cli.js';
import { distinctBlocks } from '../helpers/blocks.js';
import { rng } from '../helpers/random.js';
import { freshBucket, haveRgw, rgw } from '../helpers/rgw.js';
import { tmpDir } from '../helpers/tmp.js';

const MiB = 1024 * 1024;
const json = (r: { stdout: string }) => JSON.parse(r.stdout);

describe.skipIf(!haveRgw())('remote slots are scoped to their remote (Ceph RGW)', () => {
  let endpoint: string;
  beforeAll(() => {
    endpoint = rgw().endpoint;
  });

  /** Store A pushes one image as `deb` to trusted and as `deb` and `bait` to hostile; the stores in `stores` name both remotes. */
  function setup(stores: string[]) {
    const dir = tmpDir();
    const img = Buffer.alloc(4 * MiB);
    rng(131).text(2 * MiB).copy(img);
    const file = path.join(dir, 'src.raw');
    fs.writeFileSync(file, img);
    const buckets = { hostile: freshBucket('hostile'), trusted: freshBucket('trusted') };
    const s = ['A', ...stores].map((n) => path.join(dir, n));
    for (const st of s) {
      strataOk(st, ['init']);
      for (const [name, b] of Object.entries(buckets)) strataOk(st, ['remote', 'add', name, `s3://${b}`, '--create', '--endpoint', endpoint]);
    }
    for (const name of ['deb', 'bait']) {
      strataOk(s[0], ['create', name, '--from', file]);
      strataOk(s[0], ['freeze', name]);
    }
    strataOk(s[0], ['push', 'deb', 'trusted']);
    strataOk(s[0], ['push', 'bait', 'hostile']);
    strataOk(s[0], ['push', 'deb', 'hostile']);
    return { dir, img, s, buckets };
  }

  it('a trusted clone made after a hostile clone of the same blocks reads them from the trusted bucket only', async () => {
    const { dir, img, s, buckets } = setup(['B']);
    const B = s[1];
    const blocks = distinctBlocks(img).size;
    expect(json(strataOk(B, ['--json', 'clone', 'hostile/bait', 'vmh'])).lazy.remoteBlocks).toBe(blocks);
    // Its own slots, placed in the trusted bucket: none shared with the hostile clone's.
    expect(json(strataOk(B, ['--json', 'clone', 'trusted/deb', 'vmt'])).lazy.remoteBlocks).toBe(blocks);

    // The hostile bucket withdraws every pack.
    const hostile = openBucket({ bucket: buckets.hostile, endpoint });
    try {
      const packs = await hostile.list('packs/');
      expect(packs.length).toBeGreaterThan(0);
      for (const p of packs) await hostile.remove(p.key);
    } finally {
      hostile.close();
    }

    const out = path.join(dir, 'vmt.raw');
    strataOk(B, ['export', 'vmt', out]);
    expect(fs.readFileSync(out).equals(img)).toBe(true);
    // The hostile clone's blocks were fetched by nobody: they are gone with its packs.
    const h = strata(B, ['export', 'vmh', path.join(dir, 'vmh.raw')]);
    expect(h.status).toBe(18); // E_REMOTE_MISSING: the packs its blocks name are gone
    expect(h.stderr).toMatch(/^strata: remote hostile: pack [0-9a-f]{64}, which holds block [0-9a-f]{64}, is not in s3:\/\/strata-hostile-/);
    strataOk(B, ['check']);
  }, 180_000);

  it("a layer cloned lazily from one remote is not another remote's layer of that name: clone and pull say E_EXISTS and fetch nothing", async () => {
    const { dir, img, s } = setup(['C']);
    const C = s[1];
    const stillRemote = async () => {
      const st = await openStore(C);
      try {
        return remoteBlockCount(st);
      } finally {
        st.close();
      }
    };
    strataOk(C, ['clone', 'hostile/deb', 'vmh']);
    for (const args of [
      ['clone', 'trusted/deb', 'vmt'],
      ['pull', 'trusted/deb'],
    ]) {
      const r = strata(C, args);
      expect(r.status).toBe(4);
      expect(r.stderr.trim()).toBe("strata: this store has an image named deb that is a layer cloned lazily from remote hostile; rename it (strata rename) to pull trusted's");
    }
    // Nothing was fetched: the hostile layer's blocks are all still remote, and the store is as it was.
    expect(await stillRemote()).toBe(distinctBlocks(img).size);
    expect(json(strataOk(C, ['--json', 'ls'])).map((i: { name: string }) => i.name).sort()).toEqual(['deb', 'vmh']);
    strataOk(C, ['rename', 'deb', 'deb-hostile']);
    strataOk(C, ['pull', 'trusted/deb']);
    const out = path.join(dir, 'deb.raw');
    strataOk(C, ['export', 'deb', out]);
    expect(fs.readFileSync(out).equals(img)).toBe(true);
    strataOk(C, ['check']);
  }, 180_000);
});
