/**
 * Remotes known to a store: STORE/remotes/NAME/remote.json, written by
 * `strata remote add`. Beside it, cache.db (cache.ts). Credentials are never
 * kept here: they come from the SDK's standard chain (s3.ts).
 *
 * A remote is an S3 bucket (s3://BUCKET[/PREFIX], s3.ts) or a local
 * directory (file:///PATH, dir-bucket.ts); which one is decided by `dir`,
 * and a file written before directories were known has none: S3.
 */
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { StrataError, badInput, notFound } from '../errors.js';

interface RemoteCommon {
  name: string;
  /** Key prefix inside the bucket: '' or ending in '/'. */
  prefix: string;
  /**
   * Bytes of this remote's blocks kept locally once fetched (cache-limit.ts);
   * absent: no limit. Counted 4 KiB per block.
   */
  cacheSize?: number;
}

export interface S3RemoteConfig extends RemoteCommon {
  bucket: string;
  endpoint?: string;
  region?: string;
  pathStyle?: boolean;
  dir?: undefined;
}

export interface DirRemoteConfig extends RemoteCommon {
  /** The directory's absolute path; the prefix is always ''. */
  dir: string;
  bucket?: undefined;
  endpoint?: undefined;
  region?: undefined;
  pathStyle?: undefined;
}

export type RemoteConfig = S3RemoteConfig | DirRemoteConfig;

/** Where a remote's objects are: a RemoteConfig but its name and cache limit. */
export type RemotePlace = Omit<S3RemoteConfig, 'name' | 'cacheSize'> | Omit<DirRemoteConfig, 'name' | 'cacheSize'>;

const NAME_RE = /^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$/;
/** S3's rules for bucket names, loosely: RGW accepts a little more. */
const BUCKET_RE = /^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$/;

export function remoteName(raw: string): string {
  if (!NAME_RE.test(raw) || raw.includes('..')) {
    throw badInput(`invalid remote name ${JSON.stringify(raw)}: use 1-63 characters from A-Z a-z 0-9 . _ -, starting with a letter or digit`, { remote: raw });
  }
  return raw;
}

/** s3://bucket or s3://bucket/some/prefix */
export function parseS3Url(url: string): { bucket: string; prefix: string } {
  const m = /^s3:\/\/([^/]+)(?:\/(.*))?$/.exec(url);
  if (!m) throw badInput(`${JSON.stringify(url)} is not an s3:// URL (s3://BUCKET or s3://BUCKET/PREFIX)`, { url });
  const bucket = m[1];
  if (!BUCKET_RE.test(bucket)) throw badInput(`invalid bucket name ${JSON.stringify(bucket)}: 3-63 characters from a-z 0-9 . -`, { bucket });
  let prefix = (m[2] ?? '').replace(/\/+$/, '');
  if (prefix.split('/').some((p) => p === '' || p === '.' || p === '..') && prefix !== '') throw badInput(`invalid key prefix ${JSON.stringify(m[2])}`, { url });
  if (prefix !== '') prefix += '/';
  return { bucket, prefix };
}

/** file:///PATH (or file://localhost/PATH): an absolute directory. */
export function parseFileUrl(url: string): string {
  let dir: string;
  try {
    if (!url.startsWith('file://')) throw new Error('not file://');
    dir = fileURLToPath(new URL(url));
  } catch {
    throw badInput(`${JSON.stringify(url)} is not a file:// URL of a directory (file:///PATH, an absolute path)`, { url });
  }
  if (/[?#]/.test(url)) throw badInput(`${JSON.stringify(url)} has a query or fragment; give only file:///PATH`, { url });
  return path.resolve(dir);
}

/**
 * Where `remote add URL` points: s3://BUCKET[/PREFIX] with the S3 options,
 * or file:///PATH, which takes none of them.
 */
export function parseRemoteUrl(url: string, o: { endpoint?: string; region?: string; pathStyle?: boolean } = {}): RemotePlace {
  if (url.startsWith('file:')) {
    const given = [o.endpoint !== undefined && '--endpoint', o.region !== undefined && '--region', o.pathStyle === false && '--no-path-style'].filter(Boolean);
    if (given.length > 0) throw badInput(`${given.join(' and ')} ${given.length > 1 ? 'are' : 'is'} for s3:// remotes; ${url} is a directory`, { url });
    return { dir: parseFileUrl(url), prefix: '' };
  }
  const place: Omit<S3RemoteConfig, 'name' | 'cacheSize'> = parseS3Url(url);
  if (o.endpoint !== undefined) place.endpoint = parseEndpoint(o.endpoint);
  if (o.region !== undefined) place.region = o.region;
  if (o.pathStyle === false || o.endpoint === undefined) place.pathStyle = o.pathStyle !== false && o.endpoint !== undefined;
  return place;
}

export function parseEndpoint(raw: string): string {
  let u: URL;
  try {
    u = new URL(raw);
  } catch {
    throw badInput(`invalid endpoint ${JSON.stringify(raw)}: give a URL such as http://rgw.local:7480`, { endpoint: raw });
  }
  if (u.protocol !== 'http:' && u.protocol !== 'https:') throw badInput(`endpoint ${raw} is not http:// or https://`, { endpoint: raw });
  if (u.pathname !== '/' || u.search || u.hash) throw badInput(`endpoint ${raw} has a path; give only scheme, host and port (the bucket goes in s3://)`, { endpoint: raw });
  return `${u.protocol}//${u.host}`;
}

export const remotesDir = (storeDir: string): string => path.join(storeDir, 'remotes');
export const remoteDir = (storeDir: string, name: string): string => path.join(remotesDir(storeDir), remoteName(name));

export const remoteUrl = (c: RemotePlace): string => (c.dir !== undefined ? pathToFileURL(c.dir).href : `s3://${c.bucket}${c.prefix ? `/${c.prefix.replace(/\/$/, '')}` : ''}`);

export function addRemote(storeDir: string, c: RemoteConfig, opts: { replace?: boolean } = {}): void {
  const dir = remoteDir(storeDir, c.name);
  const file = path.join(dir, 'remote.json');
  if (!opts.replace && fs.existsSync(file)) throw new StrataError('E_EXISTS', `a remote named ${c.name} already exists (strata remote rm ${c.name} first)`, { remote: c.name });
  fs.mkdirSync(dir, { recursive: true, mode: 0o700 });
  // Written whole under a temporary name, then renamed: a reader sees the old file or the new one.
  const tmp = `${file}.${process.pid}.tmp`;
  fs.writeFileSync(tmp, JSON.stringify(c, null, 2) + '\n', { mode: 0o600 });
  fs.renameSync(tmp, file);
}

export function loadRemote(storeDir: string, name: string): RemoteConfig {
  const file = path.join(remoteDir(storeDir, name), 'remote.json');
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch {
    throw notFound(`no remote named ${name} (strata remote add ${name} s3://BUCKET --endpoint URL, or file:///PATH)`, { remote: name });
  }
  return JSON.parse(text) as RemoteConfig;
}

export function listRemotes(storeDir: string): RemoteConfig[] {
  const dir = remotesDir(storeDir);
  if (!fs.existsSync(dir)) return [];
  return fs
    .readdirSync(dir)
    .filter((n) => NAME_RE.test(n) && fs.existsSync(path.join(dir, n, 'remote.json')))
    .sort()
    .map((n) => loadRemote(storeDir, n));
}

/** Sets (or, with undefined, removes) a remote's cache limit. Returns the new configuration. */
export function setCacheSize(storeDir: string, name: string, bytes: number | undefined): RemoteConfig {
  const c = loadRemote(storeDir, name);
  if (bytes !== undefined && (!Number.isSafeInteger(bytes) || bytes < 0)) throw badInput(`invalid cache size ${bytes}: a number of bytes, 0 or more`, { remote: name });
  const next: RemoteConfig = { ...c };
  if (bytes === undefined) delete next.cacheSize;
  else next.cacheSize = bytes;
  addRemote(storeDir, next, { replace: true });
  return next;
}

/** Forgets a remote and its cache; the bucket is not touched. */
export function removeRemote(storeDir: string, name: string): void {
  loadRemote(storeDir, name);
  fs.rmSync(remoteDir(storeDir, name), { recursive: true, force: true });
}
