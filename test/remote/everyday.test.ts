/**
 * The remote without surprises (#25 item 5), against the loopback RGW: a
 * mistyped bucket is an error, not a new bucket; an unchanged push keeps its
 * manifest; push and pull say what was uploaded and stored; remote gc -n
 * reports what the run right after it does.
 */
import fs from 'node:fs';
import path from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { ERROR_CODES } from '../../src/errors.js';
import { openBucket } from '../../src/remote/s3.js';
import { strata, strataOk } from '../helpers/cli.js';
import { rng } from '../helpers/random.js';
import { freshBucket, haveRgw, rgw, storesOnBucket } from '../helpers/rgw.js';
import { tmpDir } from '../helpers/tmp.js';

const MiB = 1024 * 1024;
const json = (r: { stdout: string }) => JSON.parse(r.stdout);

describe.skipIf(!haveRgw())('the remote says what it does (#25 item 5)', () => {
  let endpoint: string;
  beforeAll(() => {
    endpoint = rgw().endpoint;
  });

  it('remote add of a bucket that does not exist: E_NOT_FOUND naming NoSuchBucket and --create, no bucket made, no remote kept; --create makes it', async () => {
    const store = tmpDir();
    strataOk(store, ['init']);
    const name = freshBucket('typo');
    const r = strata(store, ['remote', 'add', 'fleet', `s3://${name}`, '--endpoint', endpoint]);
    expect(r.stderr).toBe(`strata: no bucket ${name} at ${endpoint} (NoSuchBucket); check the name, or create it: strata remote add fleet s3://${name} --create\n`);
    expect(r.status).toBe(ERROR_CODES.E_NOT_FOUND);
    await expect(openBucket({ bucket: name, endpoint }).check()).rejects.toMatchObject({ code: 'E_NOT_FOUND' });
    expect(json(strataOk(store, ['--json', 'remote', 'ls'])).remotes).toEqual([]);
    const j = strata(store, ['--json', 'remote', 'add', 'fleet', `s3://${name}`, '--endpoint', endpoint]);
    expect(JSON.parse(j.stderr)).toMatchObject({ error: 'E_NOT_FOUND', message: `no bucket ${name} at ${endpoint} (NoSuchBucket)`, hint: `check the name, or create it: strata remote add fleet s3://${name} --create` });

    expect(strataOk(store, ['remote', 'add', 'fleet', `s3://${name}`, '--endpoint', endpoint, '--create']).stdout).toBe(`remote fleet is s3://${name} at ${endpoint}\n`);
    await openBucket({ bucket: name, endpoint }).check();
    // A bucket that exists needs no --create; --create on one that exists is no error either.
    strataOk(store, ['remote', 'add', 'again', `s3://${name}`, '--endpoint', endpoint]);
    strataOk(store, ['remote', 'add', 'third', `s3://${name}`, '--endpoint', endpoint, '--create']);
    expect(strata(store, ['remote', 'add', 'x', `s3://${name}`, '--no-check', '--create']).stderr).toBe('strata: --create reaches the endpoint to make the bucket: leave out --no-check\n');
  });

  it('push says what it uploaded and what the bucket had; pushing an unchanged image keeps its manifest; pull says what it stored; gc -n counts what gc does', () => {
    const dir = tmpDir();
    const r = rng(11);
    const a = Buffer.concat([r.text(2 * MiB), Buffer.alloc(MiB)]);
    const b = Buffer.concat([a.subarray(0, MiB), r.text(MiB), Buffer.alloc(MiB)]);
    fs.writeFileSync(path.join(dir, 'a.raw'), a);
    fs.writeFileSync(path.join(dir, 'b.raw'), b);
    const [A, B] = ['A', 'B'].map((n) => path.join(dir, n));
    storesOnBucket([A, B], freshBucket('everyday'));
    strataOk(A, ['create', 'a', '--from', path.join(dir, 'a.raw')]);
    strataOk(A, ['create', 'b', '--from', path.join(dir, 'b.raw')]);

    // First push: every block uploaded, none "already" there.
    const first = json(strataOk(A, ['--json', 'push', 'a', 'fleet']));
    expect(first).toMatchObject({ blocks: 512, newBlocks: 512, inBucketBlocks: 0, repeatedBlocks: 0, manifestExisted: false, packs: 1 });
    const text = strataOk(A, ['push', 'b', 'fleet']).stdout;
    expect(text).toMatch(/^pushed b to fleet \(manifest [0-9a-f]{12}\): uploaded 256 block\(s\) \(1 MiB, \d+(\.\d+)? KiB compressed\) in 1 pack\(s\); 256 already in the bucket; 1 of 1 layer\(s\) uploaded\n$/);

    // Unchanged: the same manifest, said to exist; nothing uploaded.
    const again = strataOk(A, ['push', 'a', 'fleet']).stdout;
    expect(again).toBe(`a is unchanged in fleet: manifest ${first.manifest.slice(0, 12)} already exists, kept: uploaded 0 block(s) (0 B, 0 B compressed) in 0 pack(s); 512 already in the bucket; 0 of 1 layer(s) uploaded\n`);
    const ls = json(strataOk(A, ['--json', 'remote', 'ls', 'fleet']));
    expect(ls.images.find((i: { name: string }) => i.name === 'a')).toMatchObject({ id: first.manifest, pushes: 1 });

    // Pull into B: a first, all fetched; then b, half of it already here.
    expect(strataOk(B, ['pull', 'fleet/a']).stdout).toMatch(/^pulled a from fleet \(manifest [0-9a-f]{12}\): stored 512 new block\(s\) \(2 MiB\), fetched as \S+ \S+ in \d+ request\(s\); 0 already here; 1 of 1 layer\(s\) new\n$/);
    expect(strataOk(B, ['pull', 'fleet/b']).stdout).toMatch(/^pulled b from fleet \(manifest [0-9a-f]{12}\): stored 256 new block\(s\) \(1 MiB\), fetched as \S+ \S+ in \d+ request\(s\); 256 already here; 1 of 1 layer\(s\) new\n$/);

    // A name missing from the remote: no "did you mean" from this store's local images (B holds a and b).
    const missing = strata(B, ['pull', 'fleet/aa']);
    expect(missing.stderr).toBe('strata: remote fleet has no image aa\n');
    expect(missing.status).toBe(ERROR_CODES.E_NOT_FOUND);

    // Waste: b deleted leaves its pack dead; gc -n then gc report the same counts and the same line.
    strataOk(A, ['remote', 'delete', 'fleet/b']);
    const dry = json(strataOk(A, ['--json', 'remote', 'gc', 'fleet', '--dry-run']));
    const real = json(strataOk(A, ['--json', 'remote', 'gc', 'fleet']));
    expect(real.packs.deleted + real.indexes.deleted).toBeGreaterThan(0);
    expect({ ...dry, dryRun: false }).toEqual(real);
  });

  it('gc -n counts a repack as the run does: packs and bytes written, indexes rewritten', () => {
    const dir = tmpDir();
    const r = rng(12);
    const keep = r.text(MiB);
    const big = Buffer.concat([keep, r.text(3 * MiB)]);
    fs.writeFileSync(path.join(dir, 'big.raw'), big);
    fs.writeFileSync(path.join(dir, 'small.raw'), Buffer.concat([keep, Buffer.alloc(MiB)]));
    const [A] = [path.join(dir, 'A')];
    storesOnBucket([A], freshBucket('everyday-gc'));
    for (const n of ['big', 'small']) {
      strataOk(A, ['create', n, '--from', path.join(dir, `${n}.raw`)]);
      strataOk(A, ['push', n, 'fleet']);
    }
    strataOk(A, ['remote', 'delete', 'fleet/big']);
    const dryText = strataOk(A, ['remote', 'gc', 'fleet', '-n']).stdout;
    const dry = json(strataOk(A, ['--json', 'remote', 'gc', 'fleet', '-n']));
    const real = json(strataOk(A, ['--json', 'remote', 'gc', 'fleet']));
    expect(real.packs).toMatchObject({ repacked: 1, written: 1 });
    expect({ ...dry, dryRun: false }).toEqual(real);
    expect(dryText.split('\n')[0]).toBe(`would delete ${real.packs.deleted} dead pack(s) and repack 1 sparse one(s) into 1, ${real.layers.deleted} unreachable layer(s); ${real.indexes.rewritten} index(es) rewritten, ${real.indexes.deleted} deleted`);
  });
});
