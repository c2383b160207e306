/**
 * remote delete, remote gc and remote check against the loopback RGW and a
 * directory bucket (file://):
 * what no manifest reaches goes, sparse packs are repacked, every image
 * still left pulls byte-identical on another store; gc and push exclude
 * each other (real processes); SIGKILL at each step of gc leaves nothing
 * referenced lost, and the next gc completes with check clean.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { spawnSync } from 'node:child_process';
import { beforeEach, describe, expect, it } from 'vitest';
import type { Bucket } from '../../src/remote/bucket.js';
import { strata, strataAsync, strataOk } from '../helpers/cli.js';
import { rng } from '../helpers/random.js';
import { faultChannel } from '../helpers/fault.js';
import { REMOTE_KINDS, storesOn } from '../helpers/remotes.js';
import { tmpDir } from '../helpers/tmp.js';

const MiB = 1024 * 1024;
const json = (r: { stdout: string }) => JSON.parse(r.stdout);
const ISO = String.raw`\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z`;

describe.each(REMOTE_KINDS)('remote gc and remote check ($name)', (kind) => {
  beforeEach((ctx) => {
    if (!kind.available()) ctx.skip();
  });

  /**
   * Store A pushes: `big` (4 MiB: 1 MiB kept + 3 MiB dropped, one pack),
   * `small` (big's first 1 MiB: no new block), `solo` (2 MiB of its own).
   * Deleting big and solo leaves big's pack a quarter live (repacked) and
   * solo's dead.
   */
  function setup() {
    const dir = tmpDir();
    const r = rng(7);
    const keep = r.text(1 * MiB);
    const big = Buffer.concat([keep, r.text(3 * MiB)]);
    const small = Buffer.concat([keep, Buffer.alloc(1 * MiB)]);
    const solo = r.text(2 * MiB);
    for (const [n, b] of [['big', big], ['small', small], ['solo', solo]] as const) fs.writeFileSync(path.join(dir, `${n}.raw`), b);
    const remote = kind.fresh('gc');
    const s = ['A', 'B'].map((n) => path.join(dir, n));
    storesOn(s, remote);
    for (const n of ['big', 'small', 'solo']) {
      strataOk(s[0], ['create', n, '--from', path.join(dir, `${n}.raw`)]);
      strataOk(s[0], ['push', n, 'fleet', '--pack-size', '8M']);
    }
    const bucket = remote.open();
    return { dir, s, small, solo, bucket };
  }

  const count = async (b: Bucket, prefix: string) => (await b.list(prefix)).length;

  function pulledEquals(store: string, dir: string, image: string, want: Buffer) {
    strataOk(store, ['pull', `fleet/${image}`]);
    const out = path.join(dir, `${image}-${path.basename(store)}.out`);
    strataOk(store, ['export', image, out]);
    expect(fs.readFileSync(out).subarray(0, want.length).equals(want)).toBe(true);
  }

  it('deletes what no manifest reaches, repacks the sparse pack; what is left pulls byte-identical and checks clean', async () => {
    const { dir, s, small, bucket } = setup();
    const clean = json(strataOk(s[1], ['--json', 'remote', 'check', 'fleet', '--read-data']));
    expect(clean).toMatchObject({ status: 'clean', manifests: 3, problems: [], waste: { packs: 0, layers: 0 } });

    const del = json(strataOk(s[1], ['--json', 'remote', 'delete', 'fleet/big']));
    expect(del.deleted).toHaveLength(1);
    strataOk(s[1], ['remote', 'delete', 'fleet/solo']);
    expect(json(strataOk(s[1], ['--json', 'remote', 'ls', 'fleet'])).images.map((i: { name: string }) => i.name)).toEqual(['small']);
    // Deleted manifests leave waste, never damage.
    const waste = json(strataOk(s[1], ['--json', 'remote', 'check', 'fleet']));
    expect(waste.status).toBe('clean');
    expect(waste.waste.layers).toBe(2);
    expect(waste.waste.packs).toBeGreaterThanOrEqual(1);

    const packsBefore = await count(bucket, 'packs/');
    const dry = json(strataOk(s[1], ['--json', 'remote', 'gc', 'fleet', '--dry-run']));
    expect(dry).toMatchObject({ dryRun: true, packs: { repacked: 1 }, layers: { deleted: 2 } });
    expect(dry.packs.deleted).toBeGreaterThanOrEqual(1);
    expect(await count(bucket, 'packs/')).toBe(packsBefore);

    const gc = json(strataOk(s[1], ['--json', 'remote', 'gc', 'fleet']));
    expect(gc).toMatchObject({ dryRun: false, manifests: 1, packs: { repacked: 1, written: 1 }, layers: { deleted: 2, live: 1 }, blocks: { live: 256 } });
    expect(gc.bytes.after).toBeLessThan(gc.bytes.before / 2);
    expect(await count(bucket, 'layers/')).toBe(1);
    expect(await count(bucket, 'locks/')).toBe(0);

    const after = json(strataOk(s[1], ['--json', 'remote', 'check', 'fleet', '--read-data']));
    expect(after).toMatchObject({ status: 'clean', problems: [], waste: { packs: 0, bytes: 0, layers: 0 } });
    pulledEquals(s[1], dir, 'small', small);
    // A second gc finds nothing to do.
    expect(json(strataOk(s[1], ['--json', 'remote', 'gc', 'fleet']))).toMatchObject({ packs: { deleted: 0, repacked: 0 }, layers: { deleted: 0 } });
    bucket.close();
  });

  it('a lazy clone made before gc repacked its blocks still reads them: the fetch finds the pack gone, re-reads the indexes, fetches the copy', async () => {
    const { dir, s, small, bucket } = setup();
    strataOk(s[1], ['clone', 'fleet/small', 'vm']);
    strataOk(s[0], ['remote', 'delete', 'fleet/big']);
    expect(json(strataOk(s[0], ['--json', 'remote', 'gc', 'fleet'])).packs.repacked).toBe(1);
    const out = path.join(dir, 'vm.out');
    strataOk(s[1], ['export', 'vm', out]);
    expect(fs.readFileSync(out).subarray(0, small.length).equals(small)).toBe(true);
    expect(strata(s[1], ['check']).status).toBe(0);
    bucket.close();
  });

  it('gc and push exclude each other, as real processes: the one that comes second fails E_BUSY (exit 6) and changes nothing', async () => {
    const { dir, s, solo, bucket } = setup();
    strataOk(s[0], ['remote', 'delete', 'fleet/solo']);
    strataOk(s[0], ['create', 'later', '--from', path.join(dir, 'solo.raw')]);

    // A push held just before its manifest: gc must not collect what it counts on.
    const held = faultChannel();
    const push = strataAsync(s[0], ['push', 'later', 'fleet'], { env: held.env('push.before-manifest') });
    const pusher = await held.reached('push.before-manifest', { exited: push });
    expect(await count(bucket, 'locks/push/')).toBe(1);
    const busy = strata(s[1], ['remote', 'gc', 'fleet']);
    expect(busy.status).toBe(6);
    expect(busy.stderr).toMatch(new RegExp(`^strata: remote fleet has a push running on ${os.hostname()} \\(pid ${pusher}\\) since ${ISO}; run remote gc when it ends\n$`));
    held.release();
    expect((await push).status).toBe(0);
    expect(await count(bucket, 'locks/')).toBe(0);

    // A gc holding the bucket: a push waits for nothing and fails at once.
    const holding = faultChannel();
    const gc = strataAsync(s[1], ['remote', 'gc', 'fleet'], { env: holding.env('remote-gc.locked') });
    const collector = await holding.reached('remote-gc.locked', { exited: gc });
    expect(await count(bucket, 'locks/gc')).toBe(1);
    const refused = strata(s[0], ['push', 'small', 'fleet']);
    expect(refused.status).toBe(6);
    expect(refused.stderr).toMatch(new RegExp(`^strata: remote fleet is being collected by remote gc on ${os.hostname()} \\(pid ${collector}\\) since ${ISO}; push again when it ends\n$`));
    holding.release();
    expect((await gc).status).toBe(0);

    // Nothing the held push uploaded was collected: its image pulls whole.
    pulledEquals(s[1], dir, 'later', solo);
    expect(json(strataOk(s[1], ['--json', 'remote', 'check', 'fleet', '--read-data'])).status).toBe('clean');
    bucket.close();
  });

  it("a dead holder's lock does not block: a push lock of an exited process is cleared by gc; a live one is not", async () => {
    const { s, bucket } = setup();
    const dead = spawnSync('true').pid!;
    // Pids are judged only where they mean a process here: this host name, PID namespace and boot.
    const where = { host: os.hostname(), pidNs: fs.readlinkSync('/proc/self/ns/pid'), bootId: fs.readFileSync('/proc/sys/kernel/random/boot_id', 'utf8').trim() };
    const lock = (pid: number) => Buffer.from(JSON.stringify({ kind: 'push', ...where, pid, startedAt: new Date().toISOString() }));
    await bucket.put('locks/push/dead', lock(dead));
    expect(json(strataOk(s[1], ['--json', 'remote', 'gc', 'fleet'])).remote).toBe('fleet');
    expect(await count(bucket, 'locks/')).toBe(0);
    await bucket.put('locks/push/live', lock(process.pid));
    const busy = strata(s[1], ['remote', 'gc', 'fleet']);
    expect(busy.status).toBe(6);
    expect(await count(bucket, 'locks/push/')).toBe(1);
    await bucket.remove('locks/push/live');
    bucket.close();
  });

  for (const point of ['remote-gc.after-repack', 'remote-gc.after-indexes', 'remote-gc.after-packs']) {
    it(`SIGKILL at ${point}: nothing referenced is lost; the next gc completes and check --read-data is clean`, async () => {
      const { dir, s, small, bucket } = setup();
      strataOk(s[0], ['remote', 'delete', 'fleet/big']);
      strataOk(s[0], ['remote', 'delete', 'fleet/solo']);
      const killed = strata(s[0], ['remote', 'gc', 'fleet'], { env: { STRATA_FAULT: point } });
      expect(killed.status, 'killed at its fault point: a signal, no exit status').toBe(-1);
      // Killed: a remote may hold waste, never damage.
      const between = strata(s[1], ['--json', 'remote', 'check', 'fleet', '--read-data']);
      expect(JSON.parse(between.stdout).problems).toEqual([]);
      expect(between.status).toBe(0);
      // Its lock names a process that is gone: the next gc runs.
      const next = json(strataOk(s[0], ['--json', 'remote', 'gc', 'fleet']));
      expect(next.layers.live).toBe(1);
      const after = json(strataOk(s[1], ['--json', 'remote', 'check', 'fleet', '--read-data']));
      expect(after).toMatchObject({ status: 'clean', problems: [], waste: { packs: 0, layers: 0 } });
      pulledEquals(s[1], dir, 'small', small);
      bucket.close();
    });
  }

  it('a damaged pack or a missing layer is reported (exit 2) and gc deletes nothing while a live layer is missing', async () => {
    const { s, bucket } = setup();
    const [pack] = await bucket.list('packs/');
    const bytes = await bucket.get(pack.key, 1 << 30);
    bytes[100] ^= 0xff;
    await bucket.put(pack.key, bytes);
    const meta = strata(s[1], ['--json', 'remote', 'check', 'fleet']);
    expect(meta.status).toBe(0); // metadata alone cannot see a flipped byte
    const data = strata(s[1], ['--json', 'remote', 'check', 'fleet', '--read-data']);
    expect(data.status).toBe(2);
    expect(JSON.parse(data.stdout).problems[0]).toMatchObject({ object: 'pack', id: pack.key.slice('packs/'.length) });

    const [smallManifest] = await bucket.list('manifests/small/');
    const live = JSON.parse((await bucket.get(smallManifest.key, 1 << 30)).toString()).chain[0].layer;
    await bucket.remove(`layers/${live}`);
    const missing = strata(s[1], ['remote', 'check', 'fleet']);
    expect(missing.status).toBe(2);
    expect(missing.stdout).toMatch(/layer [0-9a-f]{64} is missing/);
    strataOk(s[1], ['remote', 'delete', 'fleet/solo']);
    const packs = await count(bucket, 'packs/');
    const gc = strata(s[1], ['remote', 'gc', 'fleet']);
    expect(gc.status).toBe(18); // E_REMOTE_MISSING: a live layer gone from the bucket
    expect(gc.stderr).toMatch(/gc deletes nothing until remote check is clean/);
    expect(await count(bucket, 'packs/')).toBe(packs);
    expect(await count(bucket, 'locks/')).toBe(0);
    bucket.close();
  });

  it('bad names are one-line errors with distinct statuses', () => {
    const { s } = setup();
    expect(strata(s[1], ['remote', 'delete', 'fleet/nosuch']).status).toBe(3);
    expect(strata(s[1], ['remote', 'delete', 'nofleet/small']).status).toBe(3);
    expect(strata(s[1], ['remote', 'delete', 'small']).status).toBe(2);
    expect(strata(s[1], ['remote', 'gc', 'fleet', '--repack-below', 'abc']).status).toBe(2);
    expect(strata(s[1], ['remote', 'check', 'nofleet']).status).toBe(3);
    expect(json(strataOk(s[1], ['--json', 'remote', 'ls', 'fleet'])).images).toHaveLength(3);
  });
});
