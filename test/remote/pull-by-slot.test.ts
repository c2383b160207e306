/**
 * A pull names the blocks this store already holds by their slot, as a lazy
 * clone does (remote/local-copies.ts, remote/name-slots.ts), against the
 * loopback RGW: nothing is fetched or stored again, the pulled image reads
 * back byte-identical and outlives the image it shares with; and a block
 * freed between the look and the naming is fetched, never named with bytes
 * that are not its own, even when the store writes new data meanwhile.
 */
import fs from 'node:fs';
import path from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { strata, strataAsync, strataOk } from '../helpers/cli.js';
import { faultChannel } from '../helpers/fault.js';
import { rng } from '../helpers/random.js';
import { freshBucket, haveRgw, rgw, storesOnBucket } from '../helpers/rgw.js';
import { tmpDir } from '../helpers/tmp.js';

const MiB = 1024 * 1024;
const json = (r: { stdout: string }) => JSON.parse(r.stdout);

describe.skipIf(!haveRgw())('pull by slot: blocks this store holds are named, not copied', () => {
  beforeAll(() => {
    rgw();
  });

  /** Store A pushes `app` (2 MiB: 512 distinct blocks); store B holds the same bytes as its own image `mine`. */
  function setup() {
    const dir = tmpDir();
    const app = rng(7).text(2 * MiB);
    const file = path.join(dir, 'app.raw');
    fs.writeFileSync(file, app);
    const s = ['A', 'B'].map((n) => path.join(dir, n));
    storesOnBucket(s, freshBucket('byslot'));
    strataOk(s[0], ['create', 'app', '--from', file]);
    strataOk(s[0], ['push', 'app', 'fleet']);
    strataOk(s[1], ['create', 'mine', '--from', file]);
    const exported = (name: string) => {
      const out = path.join(dir, `${name}.out`);
      strataOk(s[1], ['export', name, out]);
      return fs.readFileSync(out);
    };
    return { dir, s, app, exported };
  }

  it('every block held: none fetched, nothing stored again, the image whole after the one it shared with is removed', () => {
    const { s, app, exported } = setup();
    const before = json(strataOk(s[1], ['--json', 'stats']));
    const pulled = json(strataOk(s[1], ['--json', 'pull', 'fleet/app']));
    expect(pulled).toMatchObject({ blocks: 512, localBlocks: 512, fetchedBlocks: 0, gets: 0 });
    expect(json(strataOk(s[1], ['--json', 'stats'])).storedBytes).toBe(before.storedBytes);
    expect(json(strataOk(s[1], ['--json', 'info', 'app'])).ownBytes).toBe(2 * MiB);
    expect(exported('app').equals(app)).toBe(true);
    expect(strata(s[1], ['check']).status).toBe(0);

    // Each slot is counted once per image naming it: removing the other leaves app's blocks in place.
    strataOk(s[1], ['rm', 'mine']);
    expect(json(strataOk(s[1], ['--json', 'stats'])).storedBytes).toBe(before.storedBytes);
    expect(exported('app').equals(app)).toBe(true);
    expect(strata(s[1], ['check']).status).toBe(0);
  });

  it('blocks freed after the look (their image removed, new data written) are fetched, never named with other bytes', async () => {
    const { dir, s, app, exported } = setup();
    // Held after its first batch of 256 blocks, all found here and not yet named.
    const fault = faultChannel();
    const pull = strataAsync(s[1], ['--json', 'pull', 'fleet/app'], { env: { ...fault.env('pull.after-batch'), STRATA_PULL_BATCH: '256' } });
    await fault.reached('pull.after-batch', { exited: pull });
    strataOk(s[1], ['rm', 'mine']);
    // New data of the same size: it would take the freed slots if the pull did not keep them from reuse.
    const other = rng(8).text(2 * MiB);
    fs.writeFileSync(path.join(dir, 'other.raw'), other);
    strataOk(s[1], ['create', 'other', '--from', path.join(dir, 'other.raw')]);
    fault.release();
    const done = await pull;
    expect(done.status, done.err).toBe(0);
    expect(JSON.parse(done.out.toString())).toMatchObject({ blocks: 512, localBlocks: 0, fetchedBlocks: 512 });
    expect(exported('app').equals(app)).toBe(true);
    expect(exported('other').equals(other)).toBe(true);
    expect(strata(s[1], ['check']).status).toBe(0);
  });
});
