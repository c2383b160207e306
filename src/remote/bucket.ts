/**
 * A bucket, as the rest of src/remote/ sees it: a flat space of immutable
 * objects named by key, put whole, read whole or by range, listed by
 * prefix (restic's backend interface). Two implementations: s3.ts (an S3
 * bucket: AWS, Ceph RGW, MinIO) and dir-bucket.ts (a local directory, a
 * mounted NAS). test/remote/bucket-contract.test.ts holds both to every
 * promise below.
 *
 * Every implementation answers in the same StrataErrors: a missing object
 * (or bucket) is E_NOT_FOUND; a range past an object's end is E_RANGE; an
 * object larger than its reader's limit is E_CORRUPT (objectTooLarge:
 * the bucket is written by others); anything else is E_IO naming where,
 * the key and the cause.
 */
import { StrataError, bucketCorrupt } from '../errors.js';
import { bytesText } from '../units.js';

export interface ObjectInfo {
  key: string;
  size: number;
  /** The bucket's clock when the object was last written (locks.ts ages locks by it). */
  modified: Date | undefined;
}

export interface Bucket {
  readonly name: string;
  /** Where requests go, for messages. */
  readonly where: string;
  /** Creates the bucket unless it exists (ours or, on RGW, already owned by these credentials). */
  ensure(): Promise<void>;
  /** Throws E_NOT_FOUND when the bucket does not exist, E_IO when it cannot be reached. */
  check(): Promise<void>;
  /** Writes an object whole, replacing any of that key: a reader sees the old bytes or the new, never a part. */
  put(key: string, body: Uint8Array): Promise<void>;
  /** Puts only if no object has this key, decided by the bucket (two hosts racing: one wins). False when one has. */
  putNew(key: string, body: Uint8Array): Promise<boolean>;
  /** Deletes an object; one that is already gone is no error. */
  remove(key: string): Promise<void>;
  /** The whole object; E_CORRUPT, and at most maxBytes read, when it is larger than maxBytes. */
  get(key: string, maxBytes: number): Promise<Buffer>;
  /** Bytes [start, end) of an object; E_RANGE when they are not all in it. */
  getRange(key: string, start: number, end: number): Promise<Buffer>;
  /** Whether an object exists. */
  has(key: string): Promise<boolean>;
  /** Every object whose key starts with `prefix` (a string prefix, not only a folder), in key order. */
  list(prefix: string): Promise<ObjectInfo[]>;
  close(): void;
}

/** An object larger than what it names can be (`size` as listed or sent; undefined: it kept sending past the limit). */
export const objectTooLarge = (where: string, key: string, limit: number, size?: number): StrataError =>
  bucketCorrupt(`object ${key} in ${where} is ${size === undefined ? 'larger' : bytesText(size)}, over the ${bytesText(limit)} such an object can hold; refused`, { key, size, limit });

/** A whole-object read names the most it takes: a caller that does not is a bug here, not in the bucket. */
export function requireLimit(key: string, maxBytes: number): void {
  if (!Number.isSafeInteger(maxBytes) || maxBytes < 0) throw new StrataError('E_INTERNAL', `a read of ${key} without a size limit`);
}

/** Bytes past an object's end are no I/O failure: whoever named that range was wrong about the object. */
export const pastEnd = (where: string, key: string, start: number, end: number, got: number): StrataError =>
  new StrataError('E_RANGE', `${key} in ${where}: asked for ${end - start} bytes at ${start}, got ${got}`, { where, key });

/** Key order, as S3 lists: by code unit, not by locale. */
export const byKey = (a: ObjectInfo, b: ObjectInfo): number => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0);
