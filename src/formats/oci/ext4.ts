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

function run(tool: string, args: string[], p: Ext4Params, what: string): string {
  const r = spawnSync(tool, args, { env: { ...process.env, PATH: TOOL_PATH, E2FSPROGS_FAKE_TIME: String(p.time), LC_ALL: 'C' }, encoding: 'utf8', maxBuffer: 64 * MiB, stdio: ['ignore', 'ignore', 'pipe'] });
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

/** debugfs quotes: double quotes, with "" for a quote inside. */
const q = (s: string) => `"${s.replace(/"/g, '""')}"`;
const abs = (p: string) => q(`/${p}`);

const TYPE_BITS: Record<Inode['kind'], number> = { file: 0o100000, dir: 0o040000, symlink: 0o120000, char: 0o020000, block: 0o060000, fifo: 0o010000 };

/** debugfs takes times as @SECONDS; ext4 keeps 34 bits of them. */
const time = (t: number) => `@${Math.max(0, Math.min(Math.floor(t), 2 ** 34 - 1))}`;

/** The debugfs script for `ops`; xattr values are written to files in `scratch` (debugfs reads binary values from a file). */
export function debugfsScript(ops: readonly Op[], scratch: string): string {
  const lines: string[] = [];
  let xa = 0;
  for (const o of ops) {
    switch (o.op) {
      case 'remove':
        lines.push(`${o.dir ? 'rmdir' : 'rm'} ${abs(o.path)}`);
        break;
      case 'link':
        lines.push(`ln ${abs(o.target)} ${abs(o.path)}`);
        break;
      case 'nlink':
        lines.push(`sif ${abs(o.path)} links_count ${o.count}`);
        break;
      case 'create': {
        const n = o.inode;
        const dir = o.path.includes('/') ? o.path.slice(0, o.path.lastIndexOf('/')) : '';
        const base = o.path.slice(o.path.lastIndexOf('/') + 1);
        if (n.kind === 'dir') lines.push(`mkdir ${abs(o.path)}`);
        else if (n.kind === 'symlink') lines.push(`symlink ${abs(o.path)} ${q(n.target)}`);
        else if (n.kind === 'file') {
          if (n.content === undefined) throw new StrataError('E_INTERNAL', `no staged content for /${o.path}`);
          lines.push(`write ${q(n.content)} ${abs(o.path)}`);
        } else {
          // mknod makes its name in the current directory, whatever the name holds; and mkdir and
          // write take "/a/b" as relative to it, so the script goes back to the root at once.
          lines.push(`cd ${abs(dir)}`, n.kind === 'fifo' ? `mknod ${q(base)} p` : `mknod ${q(base)} ${n.kind === 'char' ? 'c' : 'b'} ${n.major} ${n.minor}`, 'cd "/"');
        }
        break;
      }
      case 'attrs': {
        const n = o.inode;
        const at = o.path === '' ? '"/"' : abs(o.path);
        lines.push(
          `sif ${at} mode 0${(TYPE_BITS[n.kind] | n.mode).toString(8)}`,
          `sif ${at} uid ${n.uid}`,
          `sif ${at} gid ${n.gid}`,
          `sif ${at} mtime ${time(n.mtime)}`,
          `sif ${at} atime ${time(n.mtime)}`,
          `sif ${at} ctime ${time(n.mtime)}`,
        );
        for (const k of o.dropXattrs) lines.push(`ea_rm ${at} ${q(k)}`);
        for (const [k, v] of n.xattrs) {
          const f = path.join(scratch, `xattr-${xa++}`);
          fs.writeFileSync(f, v);
          lines.push(`ea_set -f ${q(f)} ${at} ${q(k)}`);
        }
        break;
      }
    }
  }
  return lines.join('\n') + '\n';
}

/** Runs a debugfs script (from debugfsScript) on the file system in `file`. */
export function runDebugfs(file: string, script: string, p: Ext4Params, scratch: string, what: string): void {
  const f = path.join(scratch, 'debugfs.script');
  fs.writeFileSync(f, script);
  run('debugfs', ['-w', '-f', f, file], p, what);
}
