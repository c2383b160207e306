/**
 * The Bucket contract (src/remote/bucket.ts), one suite run against every
 * implementation: an S3 bucket on the loopback Ceph RGW and a local
 * directory. What push, pull, lazy fetch, locks and gc count on: missing
 * objects and ranges past the end are told apart, whole reads stop at
 * their limit, a conditional create has exactly one winner, listings are
 * in key order and by string prefix, and removing twice is no error.
 */
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { Bucket } from '../../src/remote/bucket.js';
import { REMOTE_KINDS } from '../helpers/remotes.js';

const bytes = (s: string) => Buffer.from(s);

for (const kind of REMOTE_KINDS) {
  describe.skipIf(!kind.available())(`the Bucket contract: ${kind.name}`, () => {
    let b: Bucket;
    beforeEach(async () => {
      b = kind.fresh('contract').open();
      await b.ensure();
    });
    afterEach(() => b.close());

    it('put then get gives the bytes back; a second put replaces them whole; an empty object is an object', async () => {
      await b.put('packs/one', bytes('first version'));
      expect((await b.get('packs/one', 1024)).toString()).toBe('first version');
      await b.put('packs/one', bytes('second'));
      expect((await b.get('packs/one', 1024)).toString()).toBe('second');
      await b.put('locks/empty', Buffer.alloc(0));
      expect((await b.get('locks/empty', 0)).length).toBe(0);
      expect(await b.has('locks/empty')).toBe(true);
      expect((await b.list('locks/')).map((o) => [o.key, o.size])).toEqual([['locks/empty', 0]]);
    });

    it('a key with no object: get and getRange are E_NOT_FOUND naming it, has is false', async () => {
      await b.put('index/there', bytes('x'));
      await expect(b.get('index/absent', 1024)).rejects.toMatchObject({ code: 'E_NOT_FOUND', message: expect.stringContaining('index/absent') });
      await expect(b.getRange('index/absent', 0, 1)).rejects.toMatchObject({ code: 'E_NOT_FOUND' });
      await expect(b.get('nowhere/absent', 1024)).rejects.toMatchObject({ code: 'E_NOT_FOUND' });
      expect(await b.has('index/absent')).toBe(false);
      expect(await b.has('nowhere/absent')).toBe(false);
      expect(await b.has('index/there')).toBe(true);
    });

    it('get reads an object of exactly maxBytes; one byte more is E_CORRUPT naming the object and the limit', async () => {
      const body = Buffer.alloc(5000, 7);
      await b.put('manifests/img/m.json', body);
      expect((await b.get('manifests/img/m.json', 5000)).equals(body)).toBe(true);
      const refused = b.get('manifests/img/m.json', 4999);
      await expect(refused).rejects.toMatchObject({ code: 'E_CORRUPT', data: { key: 'manifests/img/m.json', limit: 4999 } });
      await expect(refused).rejects.toThrow(`object manifests/img/m.json in ${b.where} is 4.88 KiB, 5000 bytes, over the 4.88 KiB, 4999 bytes such an object can hold; refused`);
    });

    it('getRange gives the bytes of the range, the last byte, nothing for an empty range; past the end is E_RANGE', async () => {
      const body = Buffer.from([...Array(256).keys()]);
      await b.put('packs/p', body);
      expect((await b.getRange('packs/p', 10, 20)).equals(body.subarray(10, 20))).toBe(true);
      expect((await b.getRange('packs/p', 255, 256)).equals(body.subarray(255))).toBe(true);
      expect((await b.getRange('packs/p', 0, 256)).equals(body)).toBe(true);
      expect((await b.getRange('packs/p', 40, 40)).length).toBe(0);
      await expect(b.getRange('packs/p', 250, 260)).rejects.toMatchObject({ code: 'E_RANGE', message: `packs/p in ${b.where}: asked for 10 bytes at 250, got 6` });
      await expect(b.getRange('packs/p', 256, 257)).rejects.toMatchObject({ code: 'E_RANGE' });
      await expect(b.getRange('packs/p', 1000, 1001)).rejects.toMatchObject({ code: 'E_RANGE' });
    });

    it('putNew creates an object where none is; where one is, it is false and the object keeps its bytes', async () => {
      expect(await b.putNew('locks/gc', bytes('mine'))).toBe(true);
      expect((await b.get('locks/gc', 64)).toString()).toBe('mine');
      expect(await b.putNew('locks/gc', bytes('theirs'))).toBe(false);
      expect((await b.get('locks/gc', 64)).toString()).toBe('mine');
      await b.remove('locks/gc');
      expect(await b.putNew('locks/gc', bytes('again'))).toBe(true);
      expect((await b.get('locks/gc', 64)).toString()).toBe('again');
    });

    it('putNew: of eight callers racing for one key, exactly one wins, and the object is its bytes', async () => {
      for (let round = 0; round < 3; round++) {
        const key = `locks/race-${round}`;
        const won = await Promise.all(Array.from({ length: 8 }, (_, i) => b.putNew(key, bytes(`caller ${i}`))));
        expect(won.filter(Boolean)).toHaveLength(1);
        expect((await b.get(key, 64)).toString()).toBe(`caller ${won.indexOf(true)}`);
      }
      expect((await b.list('locks/')).map((o) => o.key)).toEqual(['locks/race-0', 'locks/race-1', 'locks/race-2']);
    });

    it('list gives every object whose key starts with the prefix, in key order, with sizes and times', async () => {
      const keys = ['m/y/1', 'm/x0', 'n', 'm/x/2', 'mm', 'm.z', 'm/x/1'];
      for (const [i, k] of keys.entries()) await b.put(k, Buffer.alloc(i + 1));
      const all = await b.list('');
      expect(all.map((o) => o.key)).toEqual(['m.z', 'm/x/1', 'm/x/2', 'm/x0', 'm/y/1', 'mm', 'n']);
      for (const o of all) {
        expect(o.size).toBe(keys.indexOf(o.key) + 1);
        expect(o.modified).toBeInstanceOf(Date);
      }
      expect((await b.list('m/')).map((o) => o.key)).toEqual(['m/x/1', 'm/x/2', 'm/x0', 'm/y/1']);
      // A prefix is a string, not a folder: it may end inside a name, or be a whole key.
      expect((await b.list('m/x')).map((o) => o.key)).toEqual(['m/x/1', 'm/x/2', 'm/x0']);
      expect((await b.list('m/x/1')).map((o) => o.key)).toEqual(['m/x/1']);
      expect((await b.list('m')).map((o) => o.key)).toEqual(['m.z', 'm/x/1', 'm/x/2', 'm/x0', 'm/y/1', 'mm']);
      expect(await b.list('q/')).toEqual([]);
      expect(await b.list('m/q')).toEqual([]);
    });

    it('remove deletes the object; removing one that is gone, or never was, is no error', async () => {
      await b.put('dependents/img/m/s.json', bytes('{}'));
      await b.put('dependents/img/m/t.json', bytes('{}'));
      await b.remove('dependents/img/m/s.json');
      expect(await b.has('dependents/img/m/s.json')).toBe(false);
      await expect(b.get('dependents/img/m/s.json', 64)).rejects.toMatchObject({ code: 'E_NOT_FOUND' });
      await b.remove('dependents/img/m/s.json');
      await b.remove('dependents/never/there.json');
      expect((await b.list('dependents/')).map((o) => o.key)).toEqual(['dependents/img/m/t.json']);
      await b.remove('dependents/img/m/t.json');
      expect(await b.list('')).toEqual([]);
      // What was removed can be written again.
      await b.put('dependents/img/m/s.json', bytes('back'));
      expect((await b.get('dependents/img/m/s.json', 64)).toString()).toBe('back');
    });

    it('check: a bucket that does not exist is E_NOT_FOUND; ensure makes it, and again is no error', async () => {
      const other = kind.fresh('absent').open();
      try {
        await expect(other.check()).rejects.toMatchObject({ code: 'E_NOT_FOUND' });
        await other.ensure();
        await other.ensure();
        await other.check();
        expect(await other.list('')).toEqual([]);
      } finally {
        other.close();
      }
      await b.check();
    });
  });
}
