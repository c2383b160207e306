/**
 * Lazy clones and their origin (#22 item 5), against the loopback Ceph RGW
 * and a directory bucket (file://),
 * with two stores as two hosts: the bucket records which stores hold lazy
 * clones of which manifests, so another host's `remote delete` and `remote
 * gc` refuse (E_HAS_DEPENDENTS, naming the store and its images) unless
 * --force; `remote rm` refuses while local images hold blocks only in the
 * bucket; ls/tree/info mark lazy images; check counts what is held only
 * remotely and, with --remote, asks the bucket for it. A clone read whole,
 * or removed, stops holding its origin.
 */
import { beforeEach, describe, expect, it } from 'vitest';
import { ERROR_CODES } from '../../src/errors.js';
import { strata, strataOk } from '../helpers/cli.js';
import { pushAndCloneLazily } from '../helpers/lazy-clone.js';
import { REMOTE_KINDS } from '../helpers/remotes.js';

const MiB = 1024 * 1024;
const HAS_DEPENDENTS = ERROR_CODES.E_HAS_DEPENDENTS;
const json = (r: { stdout: string }) => JSON.parse(r.stdout);

describe.each(REMOTE_KINDS)('lazy clones hold their origin ($name)', (kind) => {
  beforeEach((ctx) => {
    if (!kind.available()) ctx.skip();
  });

  /** Store A pushes `img` (2 MiB of distinct blocks); store B clones it lazily as vm, fetching nothing. */
  const setup = (what: string) => pushAndCloneLazily(what, 2205, kind);

  it("another store's remote delete and remote gc refuse while B's lazy clone needs the image, -n names it, --force goes on; check --remote then names the images that lost their blocks", async () => {
    const { A, B, bucket } = setup('deps');
    try {
      const records = await bucket.list('dependents/');
      expect(records.map((o) => o.key)).toEqual([expect.stringMatching(/^dependents\/img\/[0-9a-f]{64}\/[0-9a-f]{16}\.json$/)]);

      const del = strata(A, ['remote', 'delete', 'fleet/img']);
      expect(del.status).toBe(HAS_DEPENDENTS);
      expect(del.stderr.trim().split('\n')).toHaveLength(1);
      expect(del.stderr).toContain(`strata: image img on remote fleet is needed by 1 lazy clone(s): host `);
      expect(del.stderr).toContain(`store ${B} (img, vm)`);
      expect(del.stderr).toContain('--force');
      expect(json(strataOk(A, ['--json', 'remote', 'ls', 'fleet'])).images.map((i: { name: string }) => i.name)).toEqual(['img']);

      const dry = json(strataOk(A, ['--json', 'remote', 'delete', '-n', 'fleet/img']));
      expect(dry).toMatchObject({ dryRun: true, image: 'img', dependents: [{ image: 'img', dir: B, images: ['img', 'vm'], remoteBytes: 2 * MiB }] });
      expect(json(strataOk(A, ['--json', 'remote', 'ls', 'fleet'])).images).toHaveLength(1);

      strataOk(A, ['remote', 'delete', '--force', 'fleet/img']);
      const packs = await bucket.list('packs/');
      expect(packs.length).toBeGreaterThan(0);
      const gc = strata(A, ['remote', 'gc', 'fleet']);
      expect(gc.status).toBe(HAS_DEPENDENTS);
      expect(gc.stderr.trim().split('\n')).toHaveLength(1);
      expect(gc.stderr).toContain('strata: deleted image img on remote fleet is needed by 1 lazy clone(s): host ');
      expect(gc.stderr).toContain(`store ${B} (img, vm)`);
      expect(await bucket.list('packs/')).toEqual(packs);
      expect(json(strataOk(A, ['--json', 'remote', 'gc', '-n', 'fleet'])).dependents).toMatchObject([{ dir: B, images: ['img', 'vm'] }]);

      // B: the blocks are held only remotely (reported, not an error), and the bucket still has them.
      const check = strata(B, ['--json', 'check']);
      expect(check.status).toBe(0);
      expect(json(check)).toMatchObject({ status: 'clean', remote: { remoteOnly: [{ remote: 'fleet', blocks: 512, bytes: 2 * MiB, images: ['img', 'vm'] }] } });
      const asked = strata(B, ['--json', 'check', '--remote']);
      expect(asked.status).toBe(0);
      expect(json(asked).remote.confirmed).toEqual([{ remote: 'fleet', confirmedBlocks: 512, missingBlocks: 0, missingBytes: 0, images: [] }]);

      strataOk(A, ['remote', 'gc', '--force', 'fleet']);
      expect(await bucket.list('packs/')).toEqual([]);
      const lost = strata(B, ['check', '--remote']);
      expect(lost.status).toBe(2);
      expect(lost.stdout).toContain('ERROR: remote fleet no longer holds 512 block(s) (2 MiB) that img, vm need: reading them fails');
      expect(json(strata(B, ['--json', 'check', '--remote']))).toMatchObject({ status: 'corrupt', remote: { confirmed: [{ missingBlocks: 512, images: ['img', 'vm'] }] } });
    } finally {
      bucket.close();
    }
  });

  it('ls, tree and info mark the lazy images; remote rm refuses while they hold blocks only there; read whole, the clone holds nothing and delete and rm go', async () => {
    const { data, A, B, bucket } = setup('depsls');
    try {
      const ls = json(strataOk(B, ['--json', 'ls']));
      for (const name of ['img', 'vm']) expect(ls.find((r: { name: string }) => r.name === name).lazy).toEqual({ remoteOnlyBytes: 2 * MiB, remotes: { fleet: 2 * MiB } });
      expect(strataOk(B, ['ls']).stdout).toMatch(/ONLY REMOTE[\s\S]*vm .*lazy: 2 MiB in fleet/);
      expect(strataOk(B, ['tree']).stdout).toContain('[lazy: 2 MiB only in fleet]');
      expect(json(strataOk(B, ['--json', 'info', 'vm'])).lazy).toEqual({ remoteOnlyBytes: 2 * MiB, remotes: { fleet: 2 * MiB } });
      expect(strataOk(B, ['info', 'vm']).stdout).toMatch(/lazy: +2 MiB only in remote fleet, fetched on first read/);

      const rm = strata(B, ['remote', 'rm', 'fleet']);
      expect(rm.status).toBe(HAS_DEPENDENTS);
      expect(rm.stderr.trim().split('\n')).toHaveLength(1);
      expect(rm.stderr).toContain('remote fleet holds 512 block(s) (2097152 bytes) that 2 local image(s) have nowhere else (img, vm)');
      expect(json(strataOk(B, ['--json', 'remote', 'ls'])).remotes.map((r: { name: string }) => r.name)).toEqual(['fleet']);

      // Read whole: every block is here, so the clone no longer holds its origin.
      expect(strataOk(B, ['read', 'vm']).out.equals(data)).toBe(true);
      expect(await bucket.list('dependents/')).toEqual([]);
      expect(json(strataOk(B, ['--json', 'ls'])).some((r: { lazy?: unknown }) => r.lazy)).toBe(false);
      strataOk(A, ['remote', 'delete', 'fleet/img']);
      strataOk(B, ['remote', 'rm', 'fleet']);
      expect(strataOk(B, ['read', 'vm']).out.equals(data)).toBe(true);
    } finally {
      bucket.close();
    }
  });

  it("removing the clone removes the store's record: delete needs no --force; remote rm --force forgets a remote images still need", async () => {
    const { A, B, bucket } = setup('depsrm');
    try {
      strataOk(B, ['clone', 'fleet/img', 'vm2']);
      strataOk(B, ['rm', 'vm']);
      // vm2 and the layer still need the image.
      expect(await bucket.list('dependents/')).toHaveLength(1);
      expect(strata(A, ['remote', 'delete', 'fleet/img']).status).toBe(HAS_DEPENDENTS);
      strataOk(B, ['rm', '-r', 'img']);
      expect(await bucket.list('dependents/')).toEqual([]);
      strataOk(A, ['remote', 'delete', 'fleet/img']);

      strataOk(A, ['push', 'img', 'fleet']);
      strataOk(B, ['clone', 'fleet/img', 'vm3']);
      strataOk(B, ['remote', 'rm', '--force', 'fleet']);
      const c = strata(B, ['--json', 'check', '--remote']);
      expect(c.status).toBe(2);
      expect(json(c).remote.confirmed).toMatchObject([{ remote: 'fleet', missingBlocks: 512, images: ['img', 'vm3'], problem: 'remote fleet is not configured in this store: it cannot fetch' }]);
    } finally {
      bucket.close();
    }
  });
});
