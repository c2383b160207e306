/**
 * The ext4 writer: a layer's file system is the one below it (a copy of its
 * bytes) with the layer's operations (tree.ts) applied by e2fsprogs'
 * debugfs, grown first by resize2fs when the tree outgrows it. The base
 * layer starts from an empty file system made by mke2fs.
 *
 * Why debugfs and not `mke2fs -d` under fakeroot, or a writer of our own:
 * - No root and no LD_PRELOAD: owners, modes, device nodes and xattrs
 *   (security.capability included) are written into the inodes as the layer
 *   says, not through the local file system and a faked view of it
 *   (fakeroot cannot fake a ctime, and mke2fs -d copies the real one).
 * - Layer over layer: applying a layer to the file system below leaves
 *   every unchanged file where it was, so a strata layer stores only the
 *   blocks the OCI layer changed, by position as well as by content;
 *   `mke2fs -d` of each whole tree would lay every layer out afresh.
 * - Deterministic: with the UUID, hash seed and clock (E2FSPROGS_FAKE_TIME)
 *   derived from the chain ID and every time set explicitly, the same chain
 *   gives the same bytes (a test checks it), so two processes importing
 *   the same layer build equal file systems.
 * - A writer of our own (metadata_csum, extents, htree, xattr blocks) is a
 *   project of its own; e2fsprogs is the reference implementation, and
 *   `e2fsck -fn` passes on everything it writes.
 *
 * Always 4 KiB blocks (mke2fs.conf's "small" type would pick 1 KiB, breaking
 * 4 KiB sharing), one inode per 4 KiB, no reserved blocks.
 */
import { spawnSync } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { StrataError, unsupported } from '../../errors.js';
import { DebugfsScript, fsPath, staged, value, word } from './debugfs-script.js';
import { bytesText } from '../../units.js';
import type { Inode, Op, TreeUsage } from './tree.js';

const MiB = 1 << 20;
const TOOL_PATH = `${process.env.PATH ?? ''}:/usr/sbin:/sbin`;

/** What makes a layer's file system reproducible: derived from its chain ID and size. */
export interface Ext4Params {
  uuid: string;
  hashSeed: string;
  /** Seconds since the epoch: the e2fsprogs clock (E2FSPROGS_FAKE_TIME). */
  time: number;
}

function uuidFrom(seed: string): string {
  const h = crypto.createHash('sha256').update(seed).digest();
  h[6] = (h[6] & 0x0f) | 0x40;
  h[8] = (h[8] & 0x3f) | 0x80;
  const x = h.subarray(0, 16).toString('hex');
  return `${x.slice(0, 8)}-${x.slice(8, 12)}-${x.slice(12, 16)}-${x.slice(16, 20)}-${x.slice(20, 32)}`;
}

export function ext4Params(chainKey: string, time: number): Ext4Params {
  return { uuid: uuidFrom(`strata ext4 uuid ${chainKey}`), hashSeed: uuidFrom(`strata ext4 hash seed ${chainKey}`), time: Math.max(1, Math.min(time, 0xffffffff)) };
}

/**
 * The file-system size for a tree: its data with 40% headroom plus 48 MiB
 * (journal, inode tables, room to write), and at least 5 KiB per inode, in
 * 16 MiB steps, never smaller than the layer below.
 */
export function fsSizeFor(u: TreeUsage, below = 0): number {
  const need = Math.max(u.dataBytes * 1.4 + 48 * MiB, u.inodes * 5 * 1024);
  return Math.max(below, Math.ceil(need / (16 * MiB)) * 16 * MiB);
}

/** The size the tree needs at the least, to tell a user why a --size is too small. */
export const minimumSize = (u: TreeUsage): number => Math.ceil((u.dataBytes * 1.1 + 24 * MiB) / MiB) * MiB;

function run(tool: string, args: string[], p: Ext4Params, what: string, cwd?: string): string {
  const r = spawnSync(tool, args, { cwd, env: { ...process.env, PATH: TOOL_PATH, E2FSPROGS_FAKE_TIME: String(p.time), LC_ALL: 'C' }, encoding: 'utf8', maxBuffer: 64 * MiB, stdio: ['ignore', 'ignore', 'pipe'] });
  if (r.error && (r.error as NodeJS.ErrnoException).code === 'ENOENT') {
    throw unsupported(`${tool} is not installed: container images are written as ext4 by e2fsprogs (apt-get install e2fsprogs)`, { tool });
  }
  const errors = (r.stderr ?? '').split('\n').filter((l) => l.trim() !== '' && !/^(debugfs|resize2fs|mke2fs) \d/.test(l) && !/^Resizing the filesystem|^The filesystem on/.test(l));
  if (r.status !== 0 || errors.length > 0) {
    const first = errors[0] ?? `exit status ${r.status}`;
    if (/Could not allocate|No free space|No space left|Could not allocate inode/i.test(first)) {
      throw new StrataError('E_NO_SPACE', `${what}: the file system is full (${first.trim()}); give a larger --size`, { tool });
    }
    throw new StrataError('E_IO', `${what}: ${tool} failed: ${first.trim()}`, { tool });
  }
  return r.stdout ?? '';
}

/** A new, empty ext4 file system of `size` bytes in `file`. */
export function makeExt4(file: string, size: number, p: Ext4Params): void {
  fs.writeFileSync(file, '');
  fs.truncateSync(file, size);
  run(
    'mke2fs',
    ['-q', '-F', '-t', 'ext4', '-b', '4096', '-i', '4096', '-I', '256', '-m', '0', '-U', p.uuid, '-E', `hash_seed=${p.hashSeed},root_owner=0:0,nodiscard`, file],
    p,
    'making the file system',
  );
}

/** Grows the file system in `file` to `size` bytes (offline resize2fs). */
export function growExt4(file: string, size: number, p: Ext4Params): void {
  fs.truncateSync(file, size);
  run('resize2fs', [file, `${size / 1024}K`], p, `growing the file system to ${bytesText(size)}`);
}

const TYPE_BITS: Record<Inode['kind'], number> = { file: 0o100000, dir: 0o040000, symlink: 0o120000, char: 0o020000, block: 0o060000, fifo: 0o010000 };

/** debugfs takes times as @SECONDS; ext4 keeps 34 bits of them. */
const time = (t: number) => word(`@${Math.max(0, Math.min(Math.floor(t), 2 ** 34 - 1))}`);

/**
 * The debugfs script for `ops`, built through debugfs-script.ts (which
 * checks every line). Staged file contents and xattr values are files in
 * `scratch`, where debugfs runs, named relative to it; xattr values are
 * written there now (debugfs reads binary values from a file).
 */
export function debugfsScript(ops: readonly Op[], scratch: string): string {
  const s = new DebugfsScript();
  let xa = 0;
  for (const o of ops) {
    switch (o.op) {
      case 'remove':
        s.add(o.path, o.dir ? 'rmdir' : 'rm', fsPath(o.path));
        break;
      case 'link':
        s.add(o.path, 'ln', fsPath(o.target), fsPath(o.path));
        break;
      case 'nlink':
        s.add(o.path, 'sif', fsPath(o.path), word('links_count'), word(o.count));
        break;
      case 'create': {
        const n = o.inode;
        const dir = o.path.includes('/') ? o.path.slice(0, o.path.lastIndexOf('/')) : '';
        const base = o.path.slice(o.path.lastIndexOf('/') + 1);
        if (n.kind === 'dir') s.add(o.path, 'mkdir', fsPath(o.path));
        else if (n.kind === 'symlink') s.add(o.path, 'symlink', fsPath(o.path), value(n.target));
        else if (n.kind === 'file') {
          if (n.content === undefined) throw new StrataError('E_INTERNAL', `no staged content for /${o.path}`);
          s.add(o.path, 'write', staged(n.content, scratch), fsPath(o.path));
        } else {
          // mknod makes its name in the current directory, whatever the name holds; and mkdir and
          // write take "/a/b" as relative to it, so the script goes back to the root at once.
          s.add(o.path, 'cd', fsPath(dir));
          if (n.kind === 'fifo') s.add(o.path, 'mknod', value(base), word('p'));
          else s.add(o.path, 'mknod', value(base), word(n.kind === 'char' ? 'c' : 'b'), word(n.major), word(n.minor));
          s.add(o.path, 'cd', fsPath(''));
        }
        break;
      }
      case 'attrs': {
        const n = o.inode;
        const at = fsPath(o.path);
        s.add(o.path, 'sif', at, word('mode'), word(`0${(TYPE_BITS[n.kind] | n.mode).toString(8)}`))
          .add(o.path, 'sif', at, word('uid'), word(n.uid))
          .add(o.path, 'sif', at, word('gid'), word(n.gid))
          .add(o.path, 'sif', at, word('mtime'), time(n.mtime))
          .add(o.path, 'sif', at, word('atime'), time(n.mtime))
          .add(o.path, 'sif', at, word('ctime'), time(n.mtime));
        // ea_rm takes no options; ea_set reads them anywhere before a `--` (a name "-f/etc/shadow" would read a host file).
        for (const k of o.dropXattrs) s.add(o.path, 'ea_rm', at, value(k));
        for (const [k, v] of n.xattrs) {
          const f = path.join(scratch, `xattr-${xa++}`);
          fs.writeFileSync(f, v);
          s.add(o.path, 'ea_set', word('-f'), staged(f, scratch), '--', at, value(k));
        }
        break;
      }
    }
  }
  return s.text();
}

/** Runs a debugfs script (from debugfsScript) on the file system in `file`. */
export function runDebugfs(file: string, script: string, p: Ext4Params, scratch: string, what: string): void {
  const f = path.resolve(scratch, 'debugfs.script');
  fs.writeFileSync(f, script);
  logScript(script);
  // In the scratch directory: the staged files the script names are relative to it, and nothing else is.
  run('debugfs', ['-w', '-f', f, path.resolve(file)], p, what, scratch);
}

/**
 * With STRATA_DEBUGFS_SCRIPT_LOG=DIR, a copy of every script goes to DIR:
 * the test suite checks each line of every script it made strata write.
 */
function logScript(script: string): void {
  const dir = process.env.STRATA_DEBUGFS_SCRIPT_LOG;
  if (!dir) return;
  fs.writeFileSync(path.join(dir, `${process.pid}-${crypto.randomBytes(6).toString('hex')}.debugfs`), script);
}
