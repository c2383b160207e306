/**
 * A remote miss has its own code (Ceph RGW): when the packs a lazy clone
 * still fetches from are gone from the bucket (deleted behind strata's
 * back), reading it is E_REMOTE_MISSING (exit 18) in one line naming the
 * remote, the pack and the block, never zeros; not E_NOT_FOUND (no such
 * remote or image), not E_CORRUPT (a damaged object), and not damage to the
 * local store, which stays unmarked and writable.
 */
import { beforeAll, describe, expect, it } from 'vitest';
import { ERROR_CODES } from '../../src/errors.js';
import { strata, strataOk } from '../helpers/cli.js';
import { pushAndCloneLazily } from '../helpers/lazy-clone.js';
import { haveRgw, rgw } from '../helpers/rgw.js';

describe.skipIf(!haveRgw())('a pack deleted under a lazy clone (Ceph RGW)', () => {
  beforeAll(() => {
    rgw();
  });

  it('read and export fail with E_REMOTE_MISSING naming the pack; the store is not marked and the clone stays writable', async () => {
    const { A, B, bucket } = pushAndCloneLazily('missing', 2207);
    try {
      const packs = await bucket.list('packs/');
      expect(packs.length).toBeGreaterThan(0);
      for (const p of packs) await bucket.remove(p.key);
      const before = strataOk(B, ['--json', 'ls']).stdout;

      const r = strata(B, ['read', 'vm']);
      expect(r.status).toBe(ERROR_CODES.E_REMOTE_MISSING);
      expect(r.status).toBe(18);
      expect(r.stderr).toMatch(/^strata: remote fleet: pack [0-9a-f]{64}, which holds block [0-9a-f]{64}, is not in s3:\/\/strata-missing-[0-9a-f]{8} at http:\/\/127\.0\.0\.1:\d+\n$/);
      expect(r.out.length).toBe(0);
      const j = strata(B, ['--json', 'export', 'vm', '-']);
      expect(j.status).toBe(18);
      expect(JSON.parse(j.stderr)).toMatchObject({ error: 'E_REMOTE_MISSING', message: expect.stringMatching(/^remote fleet: pack [0-9a-f]{64}, which holds block /) });

      // Nothing local is damaged: no mark, check clean, the images as they were, and the leaf takes writes.
      expect(JSON.parse(strataOk(B, ['--json', 'info']).stdout).damage).toBeNull();
      expect(strata(B, ['check']).status).toBe(0);
      expect(strataOk(B, ['--json', 'ls']).stdout).toBe(before);
      strataOk(B, ['write', 'vm', '--offset', '0'], { input: Buffer.alloc(4096, 0x5a) });
      expect(strataOk(B, ['read', 'vm', '--length', '4096']).out.equals(Buffer.alloc(4096, 0x5a))).toBe(true);
      // The store that pushed still has its own copy.
      expect(strataOk(A, ['read', 'img', '--length', '4096']).out.length).toBe(4096);
    } finally {
      bucket.close();
    }
  });
});
