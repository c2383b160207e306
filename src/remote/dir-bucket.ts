/**
 * A bucket in a local directory (bucket.ts), as restic's local backend: a
 * second disk, or a NAS mounted by several hosts (`strata remote add NAME
 * file:///mnt/nas/strata`). Each object is a file named by its key under
 * the directory (packs/<id>, manifests/<image>/<id>.json, ...), so an
 * admin can read, copy or back it up with any tool.
 *
 * - put is atomic: the bytes go to a temporary file in the object's own
 *   directory, are fsynced, renamed over the key, and the directory is
 *   fsynced. A crash leaves the old object or the new, never a torn one;
 *   temporaries (.tmp.*) are never listed, and one a crash left behind is
 *   litter an admin may delete.
 * - putNew is a real create-if-absent: the temporary is hard-linked
 *   (link(2)) to the key, which the file system refuses if the key exists,
 *   so of two hosts on one NAS exactly one wins. NFS may answer a LINK
 *   retried after a lost reply with EEXIST though it was done: the
 *   temporary's link count tells (the usual lock-file rule, open(2)).
 * - A key is checked before it becomes a path (directoryKey below): no
 *   empty, "." or ".." segment, no leading "/", no NUL, no reserved
 *   temporary name. Directories on the way are lstat'ed, never followed:
 *   a symbolic link in the directory (put there by anyone who can write
 *   it) is refused, never a way out of it; listings skip links.
 * - Empty directories an object leaves when removed are removed too; a put
 *   that loses its directory to such a removal makes it again.
 * - Errors are the bucket's (bucket.ts): ENOENT is E_NOT_FOUND, ENOSPC and
 *   EDQUOT are E_NO_SPACE, anything else E_IO naming the key and errno.
 */
import fs from 'node:fs';
import path from 'node:path';
import { randomBytes } from 'node:crypto';
import { StrataError, badInput } from '../errors.js';
import { faultPoint } from '../store/core/index.js';
import { byKey, objectTooLarge, pastEnd, requireLimit, type Bucket, type ObjectInfo } from './bucket.js';
import { mapLimit } from './pool.js';

const TMP = '.tmp.';
/** S3's longest key; a longer one is no key of strata's. */
const MAX_KEY = 1024;
/** NAME_MAX of Linux file systems, in bytes. */
const MAX_SEGMENT_BYTES = 255;
/** Stats in flight while listing: a NAS answers many at once faster than one by one. */
const LIST_STATS = 16;
/** Reads go in pieces of at most this much, so a file that grows past its stat is still cut at the limit. */
const READ_PIECE = 8 * 1024 * 1024;
/** Times a put makes its directory again after a concurrent remove took it away. */
const MKDIR_TRIES = 5;

const errno = (e: unknown): string | undefined => (e as NodeJS.ErrnoException | undefined)?.code;

/** Why `seg` cannot be one segment of a key, or undefined when it can. */
function badSegment(seg: string): string | undefined {
  if (seg === '') return 'an empty segment';
  if (seg === '.' || seg === '..') return `a "${seg}" segment`;
  if (seg.startsWith(TMP)) return `a segment starting ${TMP} (kept for temporary files)`;
  if (Buffer.byteLength(seg) > MAX_SEGMENT_BYTES) return `a segment over ${MAX_SEGMENT_BYTES} bytes`;
  return undefined;
}

/**
 * The segments of a key (or, `folder`, of the folder part of a list
 * prefix, which may be ''): E_BAD_INPUT for anything that is not a plain
 * relative path inside the directory.
 */
export function directoryKey(key: string, folder = false): string[] {
  if (typeof key !== 'string') throw badInput('an object key must be a string');
  if (folder && key === '') return [];
  const shown = JSON.stringify(key.length > 80 ? `${key.slice(0, 80)}…` : key);
  const why =
    key.length > MAX_KEY ? `over ${MAX_KEY} characters`
    : key.includes('\0') ? 'a NUL character'
    : key.startsWith('/') ? 'a leading "/"'
    : key.split('/').map(badSegment).find((w) => w !== undefined);
  if (why) throw badInput(`invalid object key ${shown} for a directory bucket: ${why}`, { key });
  return key.split('/');
}

/** A directory bucket at `dir` (made absolute). */
export function openDirBucket(dir: string): Bucket {
  const root = path.resolve(dir);
  const where = `directory ${root}`;

  /** The directory itself is missing (a NAS not mounted, a mistyped path): no object is the wrong answer then. */
  const rootGone = async (): Promise<boolean> => {
    try {
      await fs.promises.stat(root);
      return false;
    } catch {
      return true;
    }
  };

  const fail = async (e: unknown, what: string, key?: string): Promise<StrataError> => {
    if (e instanceof StrataError) return e;
    const code = errno(e);
    const obj = key === undefined ? where : `${key} in ${where}`;
    const data = { dir: root, key, errno: code };
    if (code === 'ENOENT' || code === 'ENOTDIR') {
      if (key === undefined || (await rootGone())) return new StrataError('E_NOT_FOUND', `no ${where}`, data, { cause: e });
      return new StrataError('E_NOT_FOUND', `no object ${obj}`, data, { cause: e });
    }
    if (code === 'ENOSPC' || code === 'EDQUOT') return new StrataError('E_NO_SPACE', `cannot ${what} ${obj}: no space left (${code})`, data, { cause: e });
    return new StrataError('E_IO', `cannot ${what} ${obj}: ${(e as Error).message ?? String(e)}`, data, { cause: e });
  };

  /** A link where a directory or object was expected: refused, never followed. */
  const linkRefused = (p: string, key: string) =>
    new StrataError('E_IO', `${path.relative(root, p) || '.'} in ${where} is a symbolic link; a directory bucket never follows one (key ${key})`, { dir: root, key });

  /**
   * The directory that holds `key`, each step lstat'ed (a link is refused),
   * made where missing when `make`. ENOENT when it is missing and not made.
   */
  async function folderOf(segs: readonly string[], key: string, make: boolean): Promise<string> {
    let at = root;
    const made: string[] = [];
    for (const seg of segs) {
      at = path.join(at, seg);
      if (make) {
        try {
          await fs.promises.mkdir(at);
          made.push(at);
        } catch (e) {
          if (errno(e) !== 'EEXIST') throw e;
        }
      }
      const st = await fs.promises.lstat(at);
      if (st.isSymbolicLink()) throw linkRefused(at, key);
      if (st.isDirectory()) continue;
      // An object where a folder would be (a/b and a/b/c): none of strata's layouts asks for both.
      if (make) throw badInput(`cannot store ${key} in ${where}: ${path.relative(root, at)} is an object, not a folder`, { dir: root, key });
      throw Object.assign(new Error(`${at} is not a directory`), { code: 'ENOTDIR' });
    }
    // A directory entry is durable once its parent is synced, as an object's is.
    for (const d of made) await syncDir(path.dirname(d));
    return at;
  }

  /** The folder and file name of an object's key. */
  const placeOf = async (key: string, make = false): Promise<{ folder: string; file: string }> => {
    const segs = directoryKey(key);
    return { folder: await folderOf(segs.slice(0, -1), key, make), file: segs[segs.length - 1] };
  };

  /** Opens an object for reading; a link at its name is refused (O_NOFOLLOW), a directory is no object. */
  async function openObject(key: string): Promise<{ fh: fs.promises.FileHandle; size: number }> {
    const { folder, file } = await placeOf(key);
    const full = path.join(folder, file);
    let fh: fs.promises.FileHandle;
    try {
      fh = await fs.promises.open(full, fs.constants.O_RDONLY | fs.constants.O_NOFOLLOW);
    } catch (e) {
      if (errno(e) === 'ELOOP') throw linkRefused(full, key);
      throw e;
    }
    const st = await fh.stat();
    if (!st.isFile()) {
      await fh.close();
      throw Object.assign(new Error(`${full} is not a file`), { code: 'ENOENT' });
    }
    return { fh, size: st.size };
  }

  /**
   * Writes `body` to a fresh temporary file beside `key`, fsynced; returns
   * its path and the object's. Another host's remove that prunes the
   * folder (it was empty) before the temporary is in it is met by making
   * it again; once the temporary is in it, the folder stays.
   */
  async function stage(key: string, body: Uint8Array): Promise<{ tmp: string; full: string; folder: string }> {
    for (let attempt = 1; ; attempt++) {
      let folder: string, file: string, tmp: string, fh: fs.promises.FileHandle;
      try {
        ({ folder, file } = await placeOf(key, true));
        tmp = path.join(folder, `${TMP}${randomBytes(8).toString('hex')}`);
        fh = await fs.promises.open(tmp, 'wx', 0o666);
      } catch (e) {
        if (errno(e) === 'ENOENT' && attempt < MKDIR_TRIES && !(await rootGone())) continue;
        throw e;
      }
      try {
        await fh.writeFile(body);
        await fh.sync();
      } catch (e) {
        await fh.close().catch(() => undefined);
        await fs.promises.unlink(tmp).catch(() => undefined);
        throw e;
      }
      await fh.close();
      return { tmp, full: path.join(folder, file), folder };
    }
  }

  /** Removes the empty directories a removed object leaves, up to the root; one in use stays. */
  async function pruneFolders(folder: string): Promise<void> {
    for (let d = folder; d !== root && d.startsWith(root + path.sep); d = path.dirname(d)) {
      try {
        await fs.promises.rmdir(d);
      } catch {
        return; // not empty (or gone, or not ours to remove): nothing above it is empty either
      }
    }
  }

  /** Every object in `folder` (whose key starts `keyBase`) and below, files whose name starts `start`. */
  async function walk(folder: string, keyBase: string, start: string, out: ObjectInfo[]): Promise<void> {
    let entries: fs.Dirent[];
    try {
      entries = await fs.promises.readdir(folder, { withFileTypes: true });
    } catch (e) {
      if (errno(e) === 'ENOENT' || errno(e) === 'ENOTDIR') return;
      throw e;
    }
    // Links (and sockets, devices, ...) are no objects, and no way out of the directory.
    const mine = entries.filter((d) => d.name.startsWith(start) && badSegment(d.name) === undefined && (d.isFile() || d.isDirectory()));
    await mapLimit(mine, LIST_STATS, async (d) => {
      const full = path.join(folder, d.name);
      if (d.isDirectory()) return walk(full, `${keyBase}${d.name}/`, '', out);
      try {
        const st = await fs.promises.lstat(full);
        if (st.isFile()) out.push({ key: `${keyBase}${d.name}`, size: st.size, modified: st.mtime });
      } catch (e) {
        if (errno(e) !== 'ENOENT') throw e; // removed since the readdir
      }
    });
  }

  async function check(): Promise<void> {
    let st: fs.Stats;
    try {
      st = await fs.promises.stat(root);
    } catch (e) {
      throw await fail(e, 'reach');
    }
    if (!st.isDirectory()) throw new StrataError('E_NOT_FOUND', `${root} is not a directory`, { dir: root });
  }

  return {
    name: root,
    where,
    async ensure() {
      try {
        await fs.promises.mkdir(root, { recursive: true });
      } catch (e) {
        throw await fail(e, 'create');
      }
      await check();
    },
    check,
    async put(key, body) {
      let staged: { tmp: string; full: string; folder: string } | undefined;
      try {
        staged = await stage(key, body);
        faultPoint('dir-bucket.before-rename');
        await fs.promises.rename(staged.tmp, staged.full);
        await syncDir(staged.folder);
      } catch (e) {
        if (staged) await fs.promises.unlink(staged.tmp).catch(() => undefined);
        throw await fail(e, 'write', key);
      }
    },
    async putNew(key, body) {
      let staged: { tmp: string; full: string; folder: string } | undefined;
      try {
        staged = await stage(key, body);
        let won: boolean;
        try {
          await fs.promises.link(staged.tmp, staged.full);
          won = true;
        } catch (e) {
          if (errno(e) === 'EPERM' || errno(e) === 'ENOTSUP' || errno(e) === 'EOPNOTSUPP') {
            throw new StrataError('E_UNSUPPORTED', `${where} cannot make hard links (${errno(e)}), which a directory bucket needs to create ${key} only if absent`, { dir: root, key });
          }
          if (errno(e) !== 'EEXIST') throw e;
          won = (await fs.promises.stat(staged.tmp)).nlink === 2;
        }
        await fs.promises.unlink(staged.tmp);
        if (won) await syncDir(staged.folder);
        staged = undefined;
        return won;
      } catch (e) {
        if (staged) await fs.promises.unlink(staged.tmp).catch(() => undefined);
        throw await fail(e, 'create', key);
      }
    },
    async remove(key) {
      let folder: string;
      try {
        const place = await placeOf(key);
        folder = place.folder;
        await fs.promises.unlink(path.join(folder, place.file));
        await syncDir(folder);
      } catch (e) {
        if ((errno(e) === 'ENOENT' || errno(e) === 'ENOTDIR') && !(await rootGone())) return;
        throw await fail(e, 'delete', key);
      }
      await pruneFolders(folder);
    },
    async get(key, maxBytes) {
      requireLimit(key, maxBytes);
      let fh: fs.promises.FileHandle | undefined;
      try {
        const opened = await openObject(key);
        fh = opened.fh;
        if (opened.size > maxBytes) throw objectTooLarge(where, key, maxBytes, opened.size);
        // The size is the file's word at open: count what arrives too, and stop one byte past the limit.
        const pieces: Buffer[] = [];
        let got = 0;
        for (;;) {
          const want = Math.min(maxBytes + 1 - got, Math.max(opened.size + 1 - got, 1), READ_PIECE);
          if (want <= 0) throw objectTooLarge(where, key, maxBytes);
          const piece = Buffer.allocUnsafe(want);
          const { bytesRead } = await fh.read(piece, 0, want, got);
          if (bytesRead === 0) break;
          pieces.push(piece.subarray(0, bytesRead));
          got += bytesRead;
        }
        return pieces.length === 1 ? pieces[0] : Buffer.concat(pieces, got);
      } catch (e) {
        throw await fail(e, 'read', key);
      } finally {
        await fh?.close();
      }
    },
    async getRange(key, start, end) {
      if (end <= start) return Buffer.alloc(0);
      let fh: fs.promises.FileHandle | undefined;
      try {
        const opened = await openObject(key);
        fh = opened.fh;
        const out = Buffer.allocUnsafe(end - start);
        let got = 0;
        while (got < out.length) {
          const { bytesRead } = await fh.read(out, got, out.length - got, start + got);
          if (bytesRead === 0) break;
          got += bytesRead;
        }
        if (got !== out.length) throw pastEnd(where, key, start, end, got);
        return out;
      } catch (e) {
        throw await fail(e, 'read', key);
      } finally {
        await fh?.close();
      }
    },
    async has(key) {
      try {
        const { folder, file } = await placeOf(key);
        return (await fs.promises.lstat(path.join(folder, file))).isFile();
      } catch (e) {
        if ((errno(e) === 'ENOENT' || errno(e) === 'ENOTDIR') && !(await rootGone())) return false;
        throw await fail(e, 'look up', key);
      }
    },
    async list(prefix) {
      const cut = prefix.lastIndexOf('/') + 1;
      const keyBase = prefix.slice(0, cut);
      const start = prefix.slice(cut);
      const out: ObjectInfo[] = [];
      try {
        if (start.includes('\0')) throw badInput(`invalid prefix ${JSON.stringify(prefix)} for a directory bucket: a NUL character`, { prefix });
        const segs = directoryKey(keyBase.slice(0, -1), true);
        await fs.promises.stat(root); // a directory that is not there lists as an error (as S3's NoSuchBucket), never as empty
        await walk(await folderOf(segs, prefix, false), keyBase, start, out);
      } catch (e) {
        if ((errno(e) === 'ENOENT' || errno(e) === 'ENOTDIR') && !(await rootGone())) return [];
        throw await fail(e, 'list', prefix);
      }
      return out.sort(byKey);
    },
    close() {},
  };
}

/** fsync of a directory: what makes a rename, link, unlink or mkdir in it survive a crash. */
async function syncDir(dir: string): Promise<void> {
  const fh = await fs.promises.open(dir, fs.constants.O_RDONLY | fs.constants.O_DIRECTORY);
  try {
    await fh.sync();
  } finally {
    await fh.close();
  }
}
