/**
 * Two stores as two hosts on one bucket (of the loopback RGW unless a test
 * names another kind, helpers/remotes.ts), for the lazy
 * clone tests: store A pushes `img` (2 MiB of distinct random blocks, packs
 * of 1 MiB) and store B clones it lazily as `vm`.
 */
import fs from 'node:fs';
import path from 'node:path';
import { expect } from 'vitest';
import type { Bucket } from '../../src/remote/bucket.js';
import { strata, strataOk } from './cli.js';
import { rng } from './random.js';
import { RGW_KIND, storesOn, type RemoteKind } from './remotes.js';
import { tmpDir } from './tmp.js';

export interface LazyPair {
  dir: string;
  /** The image's bytes. */
  data: Buffer;
  A: string;
  B: string;
  /** The bucket, to look at its objects (close it after). */
  bucket: Bucket;
}

export function pushAndCloneLazily(what: string, seed: number, kind: RemoteKind = RGW_KIND): LazyPair {
  const dir = tmpDir();
  const data = rng(seed).bytes(2 * 1024 * 1024);
  fs.writeFileSync(path.join(dir, 'img.raw'), data);
  const remote = kind.fresh(what);
  const [A, B] = ['A', 'B'].map((n) => path.join(dir, n));
  storesOn([A, B], remote);
  strataOk(A, ['create', 'img', '--from', path.join(dir, 'img.raw')]);
  strataOk(A, ['push', 'img', 'fleet', '--pack-size', '1M']);
  strataOk(B, ['clone', 'fleet/img', 'vm']);
  return { dir, data, A, B, bucket: remote.open() };
}

/** `image` in `store` reads back as `data`, with nothing on stderr, and `strata check` finds nothing wrong. */
export function expectIntact(store: string, image: string, data: Buffer): void {
  const read = strata(store, ['read', image]);
  expect(read.stderr).toBe('');
  expect(read.status).toBe(0);
  expect(read.out.equals(data)).toBe(true);
  const check = strata(store, ['--json', 'check']);
  expect(check.status).toBe(0);
  expect(JSON.parse(check.stdout).status).toBe('clean');
}
