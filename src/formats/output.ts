/**
 * Where an export writes, and how it becomes final.
 *
 * - A regular file (new, or replacing one) is written under a temporary name
 *   beside it, `.NAME.strata-PID-RANDOM.part`, and renamed over NAME only
 *   once complete: an export that fails or is killed never leaves a file
 *   that looks finished. The temporary file is removed on failure, and at
 *   process exit if still there.
 * - A block device is written in place, every byte (zeros too: the device
 *   holds old data), after checking it is large enough.
 * - A stream (stdout as `-`, a pipe, a character device such as /dev/null)
 *   is written sequentially, every byte.
 */
import fs from 'node:fs';
import path from 'node:path';
import tty from 'node:tty';
import { StrataError, badInput } from '../errors.js';
import { faultPoint } from '../store/core/index.js';

export type OutputKind = 'file' | 'device' | 'stream';

export interface Output {
  /** The name the user gave (`-` for stdout). */
  readonly name: string;
  readonly kind: OutputKind;
  readonly fd: number;
  /** What it is, for messages: "a regular file", "a pipe", "stdout", … */
  readonly what: string;
  /** Bytes a block device holds; undefined for files and streams. */
  readonly capacity?: number;
  /** Writes all of `buf`: at `position` for files and devices, next in line for streams. */
  write(buf: Buffer, position: number): void;
  /** Finishes: fsync when asked, then renames a temporary file over the name. */
  commit(opts?: { sync?: boolean }): void;
  /** Gives up: a temporary file is removed; devices and streams are left as they are. */
  abort(): void;
}

/** Temporary files not yet renamed or removed: removed if the process exits first. */
const pending = new Set<string>();
let exitHook = false;

function unlinkQuietly(file: string): void {
  try {
    fs.unlinkSync(file);
  } catch {
    /* already gone */
  }
}

function ioError(file: string, e: unknown, doing: string): StrataError {
  const err = e as NodeJS.ErrnoException;
  if (err.code === 'ENOSPC') return new StrataError('E_NO_SPACE', `no space left to write ${file}`, { file });
  // `closedPipe`: the reader stopped wanting more (`| head`); the CLI ends quietly on stdout, as cat does.
  if (err.code === 'EPIPE') return new StrataError('E_IO', `${file}: the reading end closed before the export finished`, { file, closedPipe: true });
  if (err.code === 'ENOENT') return new StrataError('E_NOT_FOUND', `cannot ${doing} ${file}: its directory does not exist`, { file });
  if (err.code === 'EACCES' || err.code === 'EPERM' || err.code === 'EROFS') return new StrataError('E_IO', `cannot ${doing} ${file}: ${err.code}`, { file });
  return new StrataError('E_IO', `cannot ${doing} ${file}: ${err.code ?? err.message}`, { file });
}

const sleeper = new Int32Array(new SharedArrayBuffer(4));

/**
 * Writes all of `buf`. stdout may be a non-blocking pipe (Node makes it one),
 * so EAGAIN waits a moment and tries again instead of failing.
 */
function writeFully(fd: number, buf: Buffer, position: number | null): void {
  let done = 0;
  while (done < buf.length) {
    try {
      done += fs.writeSync(fd, buf, done, buf.length - done, position === null ? null : position + done);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'EAGAIN') throw e;
      Atomics.wait(sleeper, 0, 0, 2);
    }
  }
}

/** Output.write for `fd`: at the given position, or (streams) next in line; errors name `file`. */
function writer(fd: number, file: string, positional: boolean): Output['write'] {
  return (buf, position) => {
    try {
      writeFully(fd, buf, positional ? position : null);
    } catch (e) {
      throw ioError(file, e, 'write');
    }
  };
}

/** A block device's size from sysfs (fstat says 0 for devices); undefined if unknown. */
function deviceBytes(st: fs.Stats): number | undefined {
  const rdev = st.rdev;
  // glibc's gnu_dev_major/minor: the numbers are split across the low and high bits.
  const major = (Math.floor(rdev / 256) & 0xfff) | (Math.floor(rdev / 2 ** 32) & ~0xfff);
  const minor = (rdev & 0xff) | ((Math.floor(rdev / 2 ** 12) & ~0xff) >>> 0);
  try {
    return Number(fs.readFileSync(`/sys/dev/block/${major}:${minor}/size`, 'utf8').trim()) * 512;
  } catch {
    return undefined;
  }
}

function streamWhat(st: fs.Stats): string {
  if (st.isFIFO()) return 'a pipe';
  if (st.isSocket()) return 'a socket';
  if (st.isCharacterDevice()) return 'a character device';
  return 'a stream';
}

function openStream(name: string, fd: number, what: string, owned: boolean): Output {
  return {
    name,
    kind: 'stream',
    fd,
    what,
    write: writer(fd, name, false),
    commit: () => {
      if (owned) fs.closeSync(fd);
    },
    abort: () => {
      if (owned) fs.closeSync(fd);
    },
  };
}

/** The real file a name ends at, following symlinks, or the absolute name if nothing is there yet. */
export function realTarget(file: string): string {
  try {
    return fs.realpathSync(file);
  } catch {
    return path.resolve(file);
  }
}

/** Opens where `file` names for writing; `-` is stdout. */
export function openOutput(file: string): Output {
  if (file === '-') {
    if (tty.isatty(1)) throw badInput('stdout is a terminal: redirect it to a file or a pipe to write image data there', { file });
    return openStream('-', 1, 'stdout', false);
  }
  let st: fs.Stats | undefined;
  try {
    st = fs.statSync(file);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw ioError(file, e, 'write');
  }
  if (st?.isDirectory()) throw badInput(`${file} is a directory; give the name of a file to write`, { file });
  if (st && (st.isFIFO() || st.isCharacterDevice() || st.isSocket())) {
    let fd: number;
    try {
      fd = fs.openSync(file, 'w');
    } catch (e) {
      throw ioError(file, e, 'open');
    }
    return openStream(file, fd, streamWhat(st), true);
  }
  if (st?.isBlockDevice()) {
    let fd: number;
    try {
      fd = fs.openSync(file, fs.constants.O_WRONLY);
    } catch (e) {
      throw ioError(file, e, 'open');
    }
    return {
      name: file,
      kind: 'device',
      fd,
      what: 'a block device',
      capacity: deviceBytes(st),
      write: writer(fd, file, true),
      commit: (opts) => {
        if (opts?.sync) fs.fsyncSync(fd);
        fs.closeSync(fd);
      },
      abort: () => fs.closeSync(fd),
    };
  }
  return openTemporary(file, st);
}

/** A regular file, written under a temporary name in the target's own directory (a symlink's target, so rename replaces the file, not the link). */
function openTemporary(file: string, existing: fs.Stats | undefined): Output {
  const target = realTarget(file);
  const dir = path.dirname(target);
  const tmp = path.join(dir, `.${path.basename(target)}.strata-${process.pid}-${Math.random().toString(36).slice(2, 8)}.part`);
  let fd: number;
  try {
    fd = fs.openSync(tmp, 'wx', existing ? existing.mode & 0o7777 : 0o644);
  } catch (e) {
    throw ioError(file, e, 'create');
  }
  pending.add(tmp);
  if (!exitHook) {
    exitHook = true;
    process.on('exit', () => pending.forEach(unlinkQuietly));
  }
  let open = true;
  const close = () => {
    if (open) fs.closeSync(fd);
    open = false;
  };
  return {
    name: file,
    kind: 'file',
    fd,
    what: 'a regular file',
    write: writer(fd, file, true),
    commit: (opts) => {
      try {
        if (opts?.sync) fs.fsyncSync(fd);
        close();
        faultPoint('export.before-rename');
        fs.renameSync(tmp, target);
        pending.delete(tmp);
        if (opts?.sync) syncDir(dir);
      } catch (e) {
        unlinkQuietly(tmp);
        pending.delete(tmp);
        throw ioError(file, e, 'write');
      }
    },
    abort: () => {
      try {
        close();
      } finally {
        unlinkQuietly(tmp);
        pending.delete(tmp);
      }
    },
  };
}

/** Makes a rename durable: fsync of the directory that holds the new name. */
function syncDir(dir: string): void {
  const fd = fs.openSync(dir, 'r');
  try {
    fs.fsyncSync(fd);
  } finally {
    fs.closeSync(fd);
  }
}
