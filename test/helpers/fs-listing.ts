/**
 * A file tree as the tests compare it: per path its type, mode, owners,
 * size, mtime, link count, symlink target, device numbers, content digest
 * and xattrs. Read from an ext4 image with debugfs (ls -p, stat, dump), and
 * from a directory (the oracle, `umoci unpack`) with lstat and python's
 * os.getxattr, so that neither side goes through strata's code.
 */
import { spawnSync } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';

export interface Node {
  type: 'file' | 'dir' | 'symlink' | 'char' | 'block' | 'fifo' | 'socket';
  mode: string;
  uid: number;
  gid: number;
  size?: number;
  mtime?: number;
  nlink?: number;
  target?: string;
  dev?: string;
  sha256?: string;
  xattrs: Record<string, string>;
}

export type Listing = Record<string, Node>;

const TYPES: Record<number, Node['type']> = { 0o100000: 'file', 0o040000: 'dir', 0o120000: 'symlink', 0o020000: 'char', 0o060000: 'block', 0o010000: 'fifo', 0o140000: 'socket' };
const sha = (b: Buffer) => crypto.createHash('sha256').update(b).digest('hex');
const q = (s: string) => `"${s.replace(/"/g, '""')}"`;

function debugfs(img: string, cmds: string[]): string {
  const r = spawnSync('debugfs', ['-f', '-', img], { input: cmds.join('\n') + '\n', encoding: 'utf8', maxBuffer: 1 << 28, env: { ...process.env, PATH: `${process.env.PATH}:/usr/sbin:/sbin` } });
  if (r.status !== 0) throw new Error(`debugfs failed: ${r.stderr}`);
  return r.stdout;
}

/** Outputs of each command, split at debugfs's echo of the next one. */
function perCommand(out: string): string[] {
  return out.split(/^debugfs: .*$/m).slice(1);
}

/** The whole tree of an ext4 image, read with debugfs. lost+found is left out, as no layer makes it. */
export function ext4Listing(img: string, scratch: string): Listing {
  const list: Listing = {};
  const modes = new Map<string, number>();
  let level = ['/'];
  while (level.length > 0) {
    const outs = perCommand(debugfs(img, level.map((d) => `ls -p ${q(d)}`)));
    const next: string[] = [];
    level.forEach((dir, i) => {
      for (const line of outs[i].split('\n')) {
        const m = /^\/(\d+)\/(\d+)\/(\d+)\/(\d+)\/(.*)\/(\d*)\/$/.exec(line);
        if (!m || m[5] === '.' || m[5] === '..') continue;
        const p = dir === '/' ? `/${m[5]}` : `${dir}/${m[5]}`;
        if (p === '/lost+found') continue;
        const mode = parseInt(m[2], 8);
        modes.set(p, mode);
        if ((mode & 0o170000) === 0o040000) next.push(p);
      }
    });
    level = next;
  }
  const paths = [...modes.keys()].sort();
  const stats = perCommand(debugfs(img, paths.map((p) => `stat ${q(p)}`)));
  const files = paths.filter((p) => TYPES[modes.get(p)! & 0o170000] === 'file' || TYPES[modes.get(p)! & 0o170000] === 'symlink');
  const dumped = new Map(files.map((p, i) => [p, path.join(scratch, `dump-${i}`)]));
  debugfs(img, files.map((p) => `dump ${q(p)} ${q(dumped.get(p)!)}`));
  paths.forEach((p, i) => {
    const s = stats[i];
    const mode = modes.get(p)!;
    const type = TYPES[mode & 0o170000];
    const num = (re: RegExp) => Number(re.exec(s)?.[1]);
    const n: Node = { type, mode: (mode & 0o7777).toString(8), uid: num(/User:\s+(\d+)/), gid: num(/Group:\s+(\d+)/), xattrs: {} };
    if (type !== 'dir') {
      n.mtime = parseInt(/ mtime: 0x([0-9a-f]+)/.exec(s)![1], 16);
      n.nlink = num(/Links: (\d+)/);
    }
    if (type === 'file') {
      n.size = num(/Size: (\d+)/);
      n.sha256 = sha(fs.readFileSync(dumped.get(p)!));
    }
    if (type === 'symlink') {
      const fast = /Fast link dest: "(.*)"/.exec(s);
      n.target = fast ? fast[1] : fs.readFileSync(dumped.get(p)!, 'utf8');
    }
    if (type === 'char' || type === 'block') {
      const d = /Device major\/minor number: (\d+):(\d+)/.exec(s)!;
      n.dev = `${Number(d[1])}:${Number(d[2])}`;
    }
    const xa = /Extended attributes:\n((?: {2}.*\n)*)/.exec(s);
    for (const line of xa?.[1].split('\n') ?? []) {
      const m = /^ {2}(\S+) \((\d+)\)(?: = (.*))?$/.exec(line) ?? /^ {2}(\S+) = (".*")()$/.exec(line);
      if (!m) continue;
      const v = m[3] ?? m[2];
      n.xattrs[m[1]] = v.startsWith('"') ? Buffer.from(JSON.parse(v) as string).toString('hex') : v.replace(/ /g, '').trim();
    }
    list[p] = n;
  });
  return list;
}

/** The tree under `root` as the kernel shows it (run as root for owners and device nodes). */
export function dirListing(root: string): Listing {
  const list: Listing = {};
  const walk = (rel: string) => {
    const abs = path.join(root, rel);
    const st = fs.lstatSync(abs);
    const type = TYPES[st.mode & 0o170000];
    if (rel !== '') {
      const n: Node = { type, mode: (st.mode & 0o7777).toString(8), uid: st.uid, gid: st.gid, xattrs: {} };
      if (type !== 'dir') {
        n.mtime = Math.floor(st.mtimeMs / 1000);
        n.nlink = st.nlink;
      }
      if (type === 'file') {
        n.size = st.size;
        n.sha256 = sha(fs.readFileSync(abs));
      }
      if (type === 'symlink') n.target = fs.readlinkSync(abs);
      if (type === 'char' || type === 'block') n.dev = `${(st.rdev >> 8) & 0xfff}:${(st.rdev & 0xff) | ((st.rdev >> 12) & 0xfff00)}`;
      list[`/${rel}`] = n;
    }
    if (type === 'dir') for (const c of fs.readdirSync(abs).sort()) walk(rel === '' ? c : `${rel}/${c}`);
  };
  walk('');
  const py = 'import os,sys,json\nr=sys.argv[1]\nout={}\nfor p in json.load(sys.stdin):\n  try: out[p]={k:os.getxattr(r+p,k,follow_symlinks=False).hex() for k in os.listxattr(r+p,follow_symlinks=False)}\n  except OSError: out[p]={}\nprint(json.dumps(out))';
  const r = spawnSync('python3', ['-c', py, root], { input: JSON.stringify(Object.keys(list)), encoding: 'utf8', maxBuffer: 1 << 26 });
  if (r.status !== 0) throw new Error(`python3 xattr reader failed: ${r.stderr}`);
  const xa = JSON.parse(r.stdout) as Record<string, Record<string, string>>;
  for (const [p, x] of Object.entries(xa)) list[p].xattrs = x;
  return list;
}
