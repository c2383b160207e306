/**
 * The kinds of bucket a remote can be, for tests that run the same steps
 * against each: a bucket of the loopback Ceph RGW (skipped on a dev box
 * without Ceph, as every RGW test) and a local directory (file://), which
 * runs everywhere.
 */
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import type { Bucket } from '../../src/remote/bucket.js';
import { openDirBucket } from '../../src/remote/dir-bucket.js';
import { openBucket } from '../../src/remote/s3.js';
import { strataOk } from './cli.js';
import { freshBucket, haveRgw, rgw } from './rgw.js';
import { tmpDir } from './tmp.js';

/** One fresh bucket of a kind. */
export interface TestRemote {
  /** What `strata remote add NAME` takes after the name to make it (URL and options, --create among them). */
  readonly addArgs: readonly string[];
  /** The bucket, as a writer other than strata sees it (close it after); not made yet. */
  open(): Bucket;
}

export interface RemoteKind {
  readonly name: string;
  /** False where the kind cannot run (no Ceph): the test skips, and throws in CI (tools.ts). */
  available(): boolean;
  /** A bucket no other test uses, named for `what`. */
  fresh(what: string): TestRemote;
}

export const RGW_KIND: RemoteKind = {
  name: 'Ceph RGW',
  available: haveRgw,
  fresh(what) {
    const { endpoint } = rgw();
    const bucket = freshBucket(what);
    return { addArgs: [`s3://${bucket}`, '--create', '--endpoint', endpoint], open: () => openBucket({ bucket, endpoint }) };
  },
};

export const DIR_KIND: RemoteKind = {
  name: 'a directory (file://)',
  available: () => true,
  fresh(what) {
    // Removed with the test's temporary directory.
    const dir = path.join(tmpDir(), what);
    return { addArgs: [pathToFileURL(dir).href, '--create'], open: () => openDirBucket(dir) };
  },
};

export const REMOTE_KINDS: readonly RemoteKind[] = [RGW_KIND, DIR_KIND];

/** Makes each store, naming `remote` in it as `name` (default fleet). */
export function storesOn(stores: readonly string[], remote: TestRemote, name = 'fleet'): void {
  for (const s of stores) {
    strataOk(s, ['init']);
    strataOk(s, ['remote', 'add', name, ...remote.addArgs]);
  }
}
