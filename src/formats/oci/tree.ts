/**
 * The file tree of an image as its layers are applied one over another, and
 * the operations each layer makes on the file system below it. Pure: the
 * ext4 writer (ext4.ts) turns the operations into file-system changes.
 *
 * The rules are the OCI image spec's "Applying changesets", and what umoci
 * and containerd do: a whiteout `.wh.NAME` removes NAME from the layers
 * below, `.wh..wh..opq` empties its directory of what the layers below put
 * there, an entry replaces what was at its path (a directory over a directory
 * keeps its contents), and parents missing from the archive are made.
 *
 * Hostile archives are refused here, before anything is written anywhere:
 * names, link targets and xattr names that no file system holds (names.ts),
 * absolute names, names with `..`, entries (or hard-link targets) reached
 * through a symlink (the "symlink then write through it" escape), hard
 * links to directories or to nothing.
 */
import { badInput } from '../../errors.js';
import { checkEntryStrings, shown } from './names.js';
import type { TarEntryType, TarHeader } from './tar.js';

export type NodeKind = Exclude<TarEntryType, 'hardlink'>;

/** One file-system object; hard links are several paths naming one Inode. */
export interface Inode {
  kind: NodeKind;
  /** Permission bits with setuid, setgid and sticky (07777). */
  mode: number;
  uid: number;
  gid: number;
  /** Seconds since the epoch. */
  mtime: number;
  size: number;
  /** Symlink target. */
  target: string;
  major: number;
  minor: number;
  xattrs: Map<string, Buffer>;
  /** Names this inode has in the tree. */
  paths: Set<string>;
  /** The link count the file system's inode has now (names made by `link` are counted at the end of a layer). */
  fsLinks: number;
  /** A regular file's content, staged on the local disk (absent for layers not being built). */
  content?: string;
}

/** A tree path: components joined by '/', no leading slash; '' is the root. */
export type TreePath = string;

export type Op =
  | { op: 'remove'; path: TreePath; dir: boolean }
  | { op: 'create'; path: TreePath; inode: Inode }
  | { op: 'link'; path: TreePath; target: TreePath }
  | { op: 'attrs'; path: TreePath; inode: Inode; dropXattrs: string[] }
  | { op: 'nlink'; path: TreePath; count: number };

/** A layer's tar entry with its content staged (regular files of layers being built). */
export interface LayerEntry {
  header: TarHeader;
  content?: string;
}

export interface TreeUsage {
  /** File data, directory and long-symlink blocks, in bytes. */
  dataBytes: number;
  inodes: number;
}

const WH = '.wh.';
const OPAQUE = '.wh..wh..opq';

const parentOf = (p: TreePath): TreePath => (p.includes('/') ? p.slice(0, p.lastIndexOf('/')) : '');
const baseOf = (p: TreePath): string => p.slice(p.lastIndexOf('/') + 1);
const join = (dir: TreePath, name: string): TreePath => (dir === '' ? name : `${dir}/${name}`);

/** An archive name as a tree path, refusing any that could land outside the root. */
export function cleanPath(name: string, what: string): TreePath {
  if (name.startsWith('/')) throw badInput(`${what}: entry ${shown(name)} has an absolute path; nothing imported`, { entry: name });
  const parts = name.split('/').filter((c) => c !== '' && c !== '.');
  if (parts.includes('..')) throw badInput(`${what}: entry ${shown(name)} escapes the root with ".."; nothing imported`, { entry: name });
  return parts.join('/');
}

function newInode(h: Pick<TarHeader, 'mode' | 'uid' | 'gid' | 'mtime'>, kind: NodeKind): Inode {
  return { kind, mode: h.mode, uid: h.uid, gid: h.gid, mtime: h.mtime, size: 0, target: '', major: 0, minor: 0, xattrs: new Map(), paths: new Set(), fsLinks: 0 };
}

export class FileTree {
  private readonly nodes = new Map<TreePath, Inode>();
  private readonly children = new Map<TreePath, Set<TreePath>>();
  /** The latest mtime of any entry so far: the file system's clock, so equal chains give equal bytes. */
  maxMtime = 0;

  constructor() {
    // mke2fs makes the root and lost+found; e2fsck expects the latter, so it stays.
    this.put('', { ...newInode({ mode: 0o755, uid: 0, gid: 0, mtime: 0 }, 'dir'), fsLinks: 1 });
    this.put('lost+found', { ...newInode({ mode: 0o700, uid: 0, gid: 0, mtime: 0 }, 'dir'), fsLinks: 1 });
  }

  get(p: TreePath): Inode | undefined {
    return this.nodes.get(p);
  }

  /** Every path, parents before children. */
  paths(): TreePath[] {
    return [...this.nodes.keys()].sort();
  }

  usage(): TreeUsage {
    let dataBytes = 0;
    const seen = new Set<Inode>();
    for (const [p, n] of this.nodes) {
      if (seen.has(n)) continue;
      seen.add(n);
      if (n.kind === 'file') dataBytes += Math.ceil(n.size / 4096) * 4096;
      else if (n.kind === 'dir') dataBytes += 4096 * Math.max(1, Math.ceil(((this.children.get(p)?.size ?? 0) * 40) / 4096));
      else if (n.kind === 'symlink' && n.target.length > 59) dataBytes += 4096;
      let xa = 0;
      for (const [k, v] of n.xattrs) xa += k.length + v.length + 16;
      if (xa > 96) dataBytes += 4096;
    }
    return { dataBytes, inodes: seen.size };
  }

  private put(p: TreePath, n: Inode): void {
    this.nodes.set(p, n);
    n.paths.add(p);
    if (p !== '') {
      const dir = parentOf(p);
      let kids = this.children.get(dir);
      if (!kids) this.children.set(dir, (kids = new Set()));
      kids.add(p);
    }
  }

  private drop(p: TreePath): void {
    const n = this.nodes.get(p)!;
    this.nodes.delete(p);
    n.paths.delete(p);
    this.children.get(parentOf(p))?.delete(p);
  }

  /** Refuses a path whose parents are not all directories (or missing): no entry is ever reached through a symlink. */
  private checkParents(p: TreePath, what: string, entry: string): void {
    let dir = parentOf(p);
    const chain: TreePath[] = [];
    while (dir !== '') {
      chain.unshift(dir);
      dir = parentOf(dir);
    }
    for (const d of chain) {
      const n = this.nodes.get(d);
      if (n === undefined) return;
      if (n.kind === 'symlink') throw badInput(`${what}: entry ${shown(entry)} goes through the symlink ${d} (-> ${n.target}); nothing imported`, { entry, symlink: d });
      if (n.kind !== 'dir') throw badInput(`${what}: entry ${shown(entry)} is under ${d}, which is not a directory; nothing imported`, { entry, parent: d });
    }
  }

  /** Removes p and everything under it. */
  private removeTree(p: TreePath, ops: Op[]): void {
    const n = this.nodes.get(p);
    if (n === undefined) return;
    if (n.kind === 'dir') {
      for (const c of [...(this.children.get(p) ?? [])]) this.removeTree(c, ops);
      this.children.delete(p);
      ops.push({ op: 'remove', path: p, dir: true });
      this.drop(p);
      return;
    }
    // debugfs's rm lowers the inode's count and frees it at zero: tell the inode its true count first.
    if (n.fsLinks !== n.paths.size) {
      ops.push({ op: 'nlink', path: p, count: n.paths.size });
      n.fsLinks = n.paths.size;
    }
    ops.push({ op: 'remove', path: p, dir: false });
    n.fsLinks--;
    this.drop(p);
  }

  /** Makes missing parents of p as directories (0755, root, time 0: what the archive did not say). */
  private ensureParents(p: TreePath, ops: Op[]): void {
    const dir = parentOf(p);
    if (p === '' || this.nodes.has(dir)) return;
    this.ensureParents(dir, ops);
    const n = { ...newInode({ mode: 0o755, uid: 0, gid: 0, mtime: 0 }, 'dir' as const), paths: new Set<string>(), fsLinks: 1 };
    this.put(dir, n);
    ops.push({ op: 'create', path: dir, inode: n }, { op: 'attrs', path: dir, inode: n, dropXattrs: [] });
  }

  /**
   * Applies one layer: whiteouts first (they act on the layers below, wherever
   * they stand in the archive), then the entries in order. Returns what the
   * file system must do.
   */
  apply(entries: readonly LayerEntry[], what: string): Op[] {
    const ops: Op[] = [];
    const adds: { path: TreePath; e: LayerEntry }[] = [];
    for (const e of entries) {
      checkEntryStrings(e.header, what);
      const p = cleanPath(e.header.name, what);
      const base = baseOf(p);
      if (base.startsWith(WH)) {
        this.checkParents(p, what, e.header.name);
        const dir = parentOf(p);
        if (base === OPAQUE) {
          const n = this.nodes.get(dir);
          if (n?.kind === 'dir') for (const c of [...(this.children.get(dir) ?? [])]) this.removeTree(c, ops);
        } else if (!base.startsWith(`${WH}${WH}`)) {
          this.removeTree(join(dir, base.slice(WH.length)), ops);
        }
        continue;
      }
      adds.push({ path: p, e });
    }
    for (const { path, e } of adds) this.add(path, e, ops, what);
    // Names made by `link` are counted once, at the end.
    const seen = new Set<Inode>();
    for (const n of this.nodes.values()) {
      if (seen.has(n) || n.kind === 'dir') continue;
      seen.add(n);
      if (n.fsLinks !== n.paths.size) {
        ops.push({ op: 'nlink', path: [...n.paths][0], count: n.paths.size });
        n.fsLinks = n.paths.size;
      }
    }
    return ops;
  }

  private add(p: TreePath, e: LayerEntry, ops: Op[], what: string): void {
    const h = e.header;
    this.checkParents(p, what, h.name);
    this.maxMtime = Math.max(this.maxMtime, h.mtime);
    if (h.type === 'hardlink') {
      const t = cleanPath(h.linkname, what);
      this.checkParents(t, what, h.linkname);
      const target = this.nodes.get(t);
      if (target === undefined) throw badInput(`${what}: hard link ${shown(h.name)} names ${shown(h.linkname)}, which does not exist; nothing imported`, { entry: h.name });
      if (target.kind === 'dir') throw badInput(`${what}: hard link ${shown(h.name)} names the directory ${shown(h.linkname)}; nothing imported`, { entry: h.name });
      if (t === p) return;
      this.removeTree(p, ops);
      this.ensureParents(p, ops);
      this.put(p, target);
      ops.push({ op: 'link', path: p, target: t });
      return;
    }
    const old = this.nodes.get(p);
    if (p === '' && h.type !== 'dir') throw badInput(`${what}: entry ${shown(h.name)} would replace the root directory with a ${h.type}; nothing imported`, { entry: h.name });
    if (old?.kind === 'dir' && h.type === 'dir') {
      // A directory over a directory: new metadata, same contents.
      const dropXattrs = [...old.xattrs.keys()].filter((k) => !h.xattrs.has(k));
      Object.assign(old, { mode: h.mode, uid: h.uid, gid: h.gid, mtime: h.mtime, xattrs: h.xattrs });
      ops.push({ op: 'attrs', path: p, inode: old, dropXattrs });
      return;
    }
    this.removeTree(p, ops);
    this.ensureParents(p, ops);
    const n = newInode(h, h.type);
    Object.assign(n, { size: h.size, target: h.linkname, major: h.devmajor, minor: h.devminor, xattrs: h.xattrs, content: e.content, fsLinks: 1 });
    if (h.type !== 'symlink') n.target = '';
    this.put(p, n);
    ops.push({ op: 'create', path: p, inode: n }, { op: 'attrs', path: p, inode: n, dropXattrs: [] });
  }
}
