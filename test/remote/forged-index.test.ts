/**
 * A forged index never makes `remote gc` delete a real pack, against a real
 * Ceph RGW and real CLI processes. Two images are pushed (a pack each);
 * then one object is put into the bucket, as anyone who may write to it
 * could: an index claiming every block is in another pack, one that does
 * not exist, a real one that does not hold them there, or a forged pack
 * whose own trailer lies. `remote check` reports the index (exit 2; the
 * forged pack with --read-data), gc reports it, keeps both real packs, and both images pull byte-identical
 * on a fresh store; after gc the bucket checks clean.
 */
import { createHash, randomBytes } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { MAX_INDEX_BYTES, decodeIndex, encodeIndex, encodePackTrailer, type BlockPlace } from '../../src/remote/objects/index-file.js';
import type { Bucket } from '../../src/remote/bucket.js';
import { openBucket } from '../../src/remote/s3.js';
import { strata, strataOk } from '../helpers/cli.js';
import { rng } from '../helpers/random.js';
import { freshBucket, haveRgw, rgw, storesOnBucket } from '../helpers/rgw.js';
import { tmpDir } from '../helpers/tmp.js';

const MiB = 1024 * 1024;
const json = (r: { stdout: string }) => JSON.parse(r.stdout);
const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');

type Forgery = 'a pack that does not exist' | 'the other real pack, which does not hold them there' | 'a forged pack whose trailer lies';

/**
 * The forged objects: the index (and, for the last case, the pack it names). `salt`, the first
 * entry's hint, changes the index's name: a test picks one that sorts first, so that a pull's
 * first choice of place for each block is the forged one.
 */
function forge(how: Forgery, places: BlockPlace[], packs: string[], salt: number): { index: Buffer; pack?: Buffer } {
  const salted = (entries: BlockPlace[]) => encodeIndex(entries.map((e, i) => (i === 0 ? { ...e, hint: salt } : e)));
  const claim = (pack: string, offset: (i: number) => number, length: number, codec = 1) =>
    places.map((p, i) => ({ digest: p.digest, pack, offset: offset(i), length, codec, hint: p.hint }));
  if (how === 'a pack that does not exist') return { index: salted(claim(sha(randomBytes(16)), (i) => i * 16, 16)) };
  // Raw 4 KiB places, above a real compressed fragment's length (to gc on 612f89f, the pack they name looks densest),
  // most of them past its end: a well-formed index, so only the pack's trailer shows it false.
  if (how === 'the other real pack, which does not hold them there') return { index: salted(claim(packs[1], (i) => i * 4096, 4096, 0)) };
  // A pack of random raw "blocks" whose trailer lists every block: self-consistent, canonical, false, and
  // (raw, so all but its trailer is "live") denser than the real packs.
  const frags = randomBytes(4096 * places.length);
  const entries = places.map((p, i) => ({ digest: p.digest, offset: i * 4096, length: 4096, codec: 0, hint: p.hint }));
  const pack = Buffer.concat([frags, encodePackTrailer(entries)]);
  const id = sha(pack);
  return { index: salted(entries.map((e) => ({ ...e, pack: id }))), pack };
}

describe.skipIf(!haveRgw())('a forged index and remote gc (Ceph RGW)', () => {
  let endpoint: string;
  beforeAll(() => {
    endpoint = rgw().endpoint;
  });

  it('an object under packs/ that is no pack is reported by check and gc, and gc leaves it and every real pack in place', async () => {
    const dir = tmpDir();
    const data = rng(30).text(1 * MiB);
    const [A, B] = ['A', 'B'].map((n) => path.join(dir, n));
    const bucketName = freshBucket('notpack');
    storesOnBucket([A, B], bucketName);
    fs.writeFileSync(path.join(dir, 'one.raw'), data);
    strataOk(A, ['create', 'one', '--from', path.join(dir, 'one.raw')]);
    strataOk(A, ['push', 'one', 'fleet']);
    const bucket = openBucket({ bucket: bucketName, endpoint });
    try {
      const junk = randomBytes(5000);
      const id = sha(junk);
      await bucket.put(`packs/${id}`, junk);
      const check = strata(B, ['--json', 'remote', 'check', 'fleet']);
      expect(check.status).toBe(2);
      expect(json(check).problems).toEqual([{ object: 'pack', id, message: `remote pack ${id} is malformed: no STRATAPK trailer` }]);
      const gc = json(strataOk(B, ['--json', 'remote', 'gc', 'fleet']));
      expect(gc.problems).toEqual([{ object: 'pack', id, message: `remote pack ${id} is malformed: no STRATAPK trailer` }]);
      expect(gc.packs.deleted).toBe(0);
      expect((await bucket.list('packs/')).map((o) => o.key)).toContain(`packs/${id}`);
      const text = strataOk(B, ['remote', 'gc', 'fleet']).stdout;
      expect(text).toMatch(/^NOT TRUSTED: remote pack [0-9a-f]{64} is malformed: no STRATAPK trailer\n/);
      expect(text).toMatch(/1 object\(s\) not trusted, none relied on; strata remote check fleet reports what is wrong\n$/);
    } finally {
      bucket.close();
    }
  }, 120_000);

  for (const how of ['a pack that does not exist', 'the other real pack, which does not hold them there', 'a forged pack whose trailer lies'] as Forgery[]) {
    it(`an index claiming every block is in ${how}: check reports it, gc deletes no real pack, both images pull byte-identical`, async () => {
      const dir = tmpDir();
      const r = rng(29);
      const images = { one: r.text(2 * MiB), two: r.text(2 * MiB) };
      const [A, B, C] = ['A', 'B', 'C'].map((n) => path.join(dir, n));
      const bucketName = freshBucket('forged');
      storesOnBucket([A, B, C], bucketName);
      for (const [name, data] of Object.entries(images)) {
        fs.writeFileSync(path.join(dir, `${name}.raw`), data);
        strataOk(A, ['create', name, '--from', path.join(dir, `${name}.raw`)]);
        strataOk(A, ['push', name, 'fleet']);
      }
      const bucket: Bucket = openBucket({ bucket: bucketName, endpoint });
      try {
        const packs = (await bucket.list('packs/')).map((o) => o.key.slice('packs/'.length));
        expect(packs).toHaveLength(2);
        const real = await Promise.all((await bucket.list('index/')).map(async (o) => decodeIndex(await bucket.get(o.key, MAX_INDEX_BYTES), o.key)));
        const places = real.flat();
        // Order the packs so the forged claims name the pack of image two, and cover image one's blocks too.
        const onePack = places[0].pack;
        const ordered = [onePack, packs.find((p) => p !== onePack)!];

        const firstReal = (await bucket.list('index/')).map((o) => o.key.slice('index/'.length)).sort()[0];
        let forged = forge(how, places, ordered, 0);
        for (let salt = 1; sha(forged.index) > firstReal; salt++) forged = forge(how, places, ordered, salt);
        if (forged.pack) await bucket.put(`packs/${sha(forged.pack)}`, forged.pack);
        const forgedId = sha(forged.index);
        await bucket.put(`index/${forgedId}`, forged.index);

        // Before any gc: a pull tries the forged place of each block first, finds it false, and takes the real one.
        const early = path.join(dir, 'D');
        storesOnBucket([early], bucketName);
        strataOk(early, ['pull', 'fleet/one']);
        strataOk(early, ['export', 'one', path.join(dir, 'one.early')]);
        expect(fs.readFileSync(path.join(dir, 'one.early')).equals(images.one)).toBe(true);

        if (forged.pack) {
          // The forged pack's trailer agrees with the index: only its fragments, read, tell.
          expect(strata(B, ['remote', 'check', 'fleet']).status).toBe(0);
          const before = strata(B, ['--json', 'remote', 'check', 'fleet', '--read-data']);
          expect(before.status).toBe(2);
          expect(json(before).problems).toEqual([expect.objectContaining({ object: 'pack', id: sha(forged.pack) })]);
        } else {
          // A trailer read (a ranged GET of each pack's end) is enough.
          const before = strata(B, ['--json', 'remote', 'check', 'fleet']);
          expect(before.status).toBe(2);
          expect(json(before).problems).toEqual([expect.objectContaining({ object: 'index', id: forgedId, message: expect.stringMatching(/^index [0-9a-f]{64} is not to be trusted: /) })]);
        }

        const gc = json(strataOk(B, ['--json', 'remote', 'gc', 'fleet']));
        expect(gc.problems).toContainEqual(expect.objectContaining(forged.pack ? { object: 'pack', id: sha(forged.pack) } : { object: 'index', id: forgedId }));
        expect(gc.packs.repacked).toBe(0);
        expect(gc.packs.deleted).toBe(forged.pack ? 1 : 0);
        const after = (await bucket.list('packs/')).map((o) => o.key.slice('packs/'.length));
        expect(after.sort()).toEqual([...ordered].sort());

        for (const [name, data] of Object.entries(images)) {
          strataOk(C, ['pull', `fleet/${name}`]);
          const out = path.join(dir, `${name}.out`);
          strataOk(C, ['export', name, out]);
          expect(fs.readFileSync(out).equals(data)).toBe(true);
        }
        // gc dropped the false claims (their blocks are kept where they are): the bucket checks clean.
        expect(json(strataOk(B, ['--json', 'remote', 'check', 'fleet', '--read-data']))).toMatchObject({ status: 'clean', problems: [] });
        expect((await bucket.list('index/')).map((o) => o.key)).not.toContain(`index/${forgedId}`);
      } finally {
        bucket.close();
      }
    }, 180_000);
  }
  it('a forged pack denser than a sparse real one is found false before the repack copies it: gc repacks the real one and completes', async () => {
    const dir = tmpDir();
    const r = rng(31);
    const keep = r.text(1 * MiB);
    const big = Buffer.concat([keep, r.text(3 * MiB)]);
    const [A, B, C] = ['A', 'B', 'C'].map((n) => path.join(dir, n));
    const bucketName = freshBucket('forgedsparse');
    storesOnBucket([A, B, C], bucketName);
    for (const [name, data] of [['big', big], ['small', keep]] as const) {
      fs.writeFileSync(path.join(dir, `${name}.raw`), data);
      strataOk(A, ['create', name, '--from', path.join(dir, `${name}.raw`)]);
      strataOk(A, ['push', name, 'fleet']);
    }
    strataOk(A, ['remote', 'delete', 'fleet/big']);
    const bucket = openBucket({ bucket: bucketName, endpoint });
    try {
      const [real] = (await bucket.list('packs/')).map((o) => o.key.slice('packs/'.length));
      const [ix] = await bucket.list('index/');
      const zero = Buffer.alloc(4096);
      const live = new Set<string>();
      for (let at = 0; at < keep.length; at += 4096) if (!keep.subarray(at, at + 4096).equals(zero)) live.add(sha(keep.subarray(at, at + 4096)));
      const places = decodeIndex(await bucket.get(ix.key, MAX_INDEX_BYTES), ix.key).filter((p) => live.has(p.digest.toString('hex')));
      expect(places).toHaveLength(live.size);
      // Random raw "blocks" for every live block, padded with as many of no block at all: under half
      // live (sparse, so gc would copy its fragments), yet denser than the real pack, a quarter live.
      const entries = [...places, ...places.map(() => ({ digest: randomBytes(32), hint: 0 }))].map((p, i) => ({ digest: p.digest, offset: i * 4096, length: 4096, codec: 0, hint: p.hint }));
      const pack = Buffer.concat([randomBytes(4096 * entries.length), encodePackTrailer(entries)]);
      const forgedPack = sha(pack);
      await bucket.put(`packs/${forgedPack}`, pack);
      await bucket.put(`index/${sha(encodeIndex(entries.map((e) => ({ ...e, pack: forgedPack }))))}`, encodeIndex(entries.map((e) => ({ ...e, pack: forgedPack }))));

      const gc = json(strataOk(B, ['--json', 'remote', 'gc', 'fleet']));
      expect(gc.problems).toEqual([expect.objectContaining({ object: 'pack', id: forgedPack, message: expect.stringMatching(/does not hold what its trailer says: 256 fragment\(s\) are not their block/) })]);
      expect(gc).toMatchObject({ packs: { repacked: 1, deleted: 1, written: 1 }, blocks: { live: 256 } });
      const after = (await bucket.list('packs/')).map((o) => o.key.slice('packs/'.length));
      expect(after).toHaveLength(1);
      expect(after).not.toContain(real);
      expect(after).not.toContain(forgedPack);
      strataOk(C, ['pull', 'fleet/small']);
      strataOk(C, ['export', 'small', path.join(dir, 'small.out')]);
      expect(fs.readFileSync(path.join(dir, 'small.out')).equals(keep)).toBe(true);
      expect(json(strataOk(B, ['--json', 'remote', 'check', 'fleet', '--read-data']))).toMatchObject({ status: 'clean', problems: [], waste: { packs: 0 } });
    } finally {
      bucket.close();
    }
  }, 180_000);
});
