/**
 * Test and benchmark fixtures: deterministic directory trees of generated
 * files, and ext4 images built from them with `mke2fs -d`.
 *
 * The trees imitate what strata stores in practice: a base OS tree and a
 * second tree that is the same OS with packages added and a few files
 * upgraded. `makeTree(dir, { seed, files })` builds the first;
 * `makeTree(dir2, { seed: 2, files: 20, sharedWith: { seed, files } })`
 * rebuilds the first tree's files, changes a fraction of them and adds 20 new
 * ones. Two such images share most 4 KiB blocks, at different offsets.
 *
 * Everything is a function of the seeds: file names, sizes (log-uniform from
 * 1 KiB to 2 MiB), kinds (text, random, ELF-like binaries with zero-padded
 * sections and whole zero blocks) and bytes. Random bytes come from an
 * AES-128-CTR keystream keyed by the seed: fast and the same on every Node.
 * Modification times are pinned; with a fixed UUID, hash seed,
 * E2FSPROGS_FAKE_TIME and a debugfs pass that pins the atime and ctime mke2fs
 * copies from the source files (see makeExt4), the same tree gives a
 * byte-identical image on one host.
 */
import { mulberry32 } from './random.js';
import { spawnSync } from 'node:child_process';
import { createCipheriv, createHash } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync, utimesSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { delimiter, dirname, join } from 'node:path';
import { available } from './available.js';

const KiB = 1024;
const MiB = 1024 * KiB;

/** Modification time of every generated file and directory: 2024-01-01T00:00:00Z. */
export const FIXTURE_TIME = 1_704_067_200;

export interface TreeOptions {
  seed: number;
  /** Files generated from `seed`. With `sharedWith`: files added on top of the base tree. */
  files: number;
  /** Start from the tree this recipe builds, then change some of its files and add `files` more. */
  sharedWith?: TreeOptions;
  /** With `sharedWith`: the share of base files that get changed (default 0.1). */
  changeFraction?: number;
  /** Smallest and largest file size in bytes (defaults 1 KiB and 2 MiB). */
  minSize?: number;
  maxSize?: number;
}

export interface TreeInfo {
  dir: string;
  /** Relative paths of the regular files, sorted. */
  paths: string[];
  /** Total bytes in regular files. */
  bytes: number;
  /** Base files that were changed (derived trees only), relative paths, sorted. */
  changed: string[];
}

type Kind = 'text' | 'random' | 'binary';
interface FileSpec {
  path: string;
  kind: Kind;
  size: number;
  seed: string;
  /** Modifications applied after generation, in order. */
  edits: Edit[];
}
type Edit = { op: 'patch'; offset: number; length: number; seed: string } | { op: 'append'; length: number; seed: string };

/** mulberry32: a small, fast, seeded PRNG for decisions (not for bulk bytes). */
function prng(seed: number | string): () => number {
  return mulberry32(typeof seed === 'number' ? seed : createHash('sha256').update(seed).digest().readUInt32LE(0));
}

/** `length` pseudo-random bytes determined by `seed`. */
export function seededBytes(seed: string, length: number): Buffer {
  const key = createHash('sha256').update(`strata-fixture:${seed}`).digest();
  const cipher = createCipheriv('aes-128-ctr', key.subarray(0, 16), key.subarray(16, 32));
  return cipher.update(Buffer.alloc(length));
}

const DIRS = ['lib', 'share', 'bin', 'etc', 'doc', 'locale', 'python3', 'perl5', 'x86_64-linux-gnu', 'man', 'icons', 'zoneinfo', 'systemd', 'firmware', 'include'];
const WORDS = (
  'the of and to in is for on that with as by this be from are at or an it not which have can was all will if ' +
  'file system block image layer snapshot kernel module package version config default value option path user ' +
  'return error data read write open close buffer offset length size device mount root service network socket ' +
  'license copyright permission software distributed warranty without including limited merchantability fitness'
).split(' ');

function textBytes(seed: string, size: number): Buffer {
  const r = prng(seed);
  const parts: string[] = [];
  let n = 0;
  while (n < size) {
    const style = r();
    let line: string;
    if (style < 0.3) {
      line = `${WORDS[(r() * WORDS.length) | 0]}_${WORDS[(r() * WORDS.length) | 0]} = ${(r() * 100000) | 0}`;
    } else {
      const count = 4 + ((r() * 12) | 0);
      const words: string[] = [];
      for (let i = 0; i < count; i++) words.push(WORDS[(r() * WORDS.length) | 0]);
      line = words.join(' ');
    }
    parts.push(line);
    n += line.length + 1;
  }
  return Buffer.from(parts.join('\n') + '\n', 'latin1').subarray(0, size);
}

/** ELF-like: random sections separated by zero padding, some whole zero 4 KiB blocks. */
function binaryBytes(seed: string, size: number): Buffer {
  const out = Buffer.alloc(size);
  const r = prng(seed);
  const noise = seededBytes(seed, size);
  let pos = 0;
  while (pos < size) {
    const section = Math.min(size - pos, 256 + ((r() * 16 * KiB) | 0));
    const filled = r() < 0.15 ? 0 : Math.floor(section * (0.5 + r() * 0.5));
    noise.copy(out, pos, pos, pos + filled);
    pos += section;
  }
  return out;
}

function generate(kind: Kind, seed: string, size: number): Buffer {
  if (kind === 'text') return textBytes(seed, size);
  if (kind === 'random') return seededBytes(seed, size);
  return binaryBytes(seed, size);
}

function baseSpecs(o: TreeOptions, tag: string): FileSpec[] {
  const r = prng(`tree:${o.seed}:${tag}`);
  const minSize = o.minSize ?? 1 * KiB;
  const maxSize = o.maxSize ?? 2 * MiB;
  const specs: FileSpec[] = [];
  for (let i = 0; i < o.files; i++) {
    const depth = 1 + ((r() * 3) | 0);
    const parts: string[] = [];
    for (let d = 0; d < depth; d++) parts.push(DIRS[(r() * DIRS.length) | 0]);
    const k = r();
    const kind: Kind = k < 0.45 ? 'text' : k < 0.8 ? 'random' : 'binary';
    const ext = kind === 'text' ? 'txt' : kind === 'random' ? 'gz' : 'so';
    const size = Math.round(minSize * Math.pow(maxSize / minSize, r()));
    parts.push(`${WORDS[(r() * WORDS.length) | 0]}-${tag}${i}.${ext}`);
    specs.push({ path: parts.join('/'), kind, size, seed: `${o.seed}:${tag}:${i}`, edits: [] });
  }
  return specs;
}

function treeSpecs(o: TreeOptions): { specs: FileSpec[]; changed: string[] } {
  if (!o.sharedWith) return { specs: baseSpecs(o, 'f'), changed: [] };
  const base = treeSpecs(o.sharedWith).specs.map((s) => ({ ...s, edits: [...s.edits] }));
  const r = prng(`derive:${o.seed}`);
  const fraction = o.changeFraction ?? 0.1;
  const changed: string[] = [];
  base.forEach((s, i) => {
    if (r() >= fraction) return;
    changed.push(s.path);
    const how = r();
    const seed = `${o.seed}:edit:${i}`;
    if (how < 0.4) {
      // An in-place patch of up to 4 KiB, as a package upgrade that changes a few bytes of a file.
      const length = Math.min(s.size, 1 + ((r() * 4 * KiB) | 0));
      s.edits.push({ op: 'patch', offset: Math.floor(r() * (s.size - length + 1)), length, seed });
    } else if (how < 0.7) {
      s.edits.push({ op: 'append', length: 1 + ((r() * 64 * KiB) | 0), seed });
    } else {
      // Replaced outright: same name, new contents and size.
      s.seed = seed;
      s.size = Math.max(1, Math.round(s.size * (0.5 + r())));
    }
  });
  return { specs: [...base, ...baseSpecs(o, `d${o.seed}-`)], changed: changed.sort() };
}

/** Writes the tree into `dir` (created; must not hold other files you care about). */
export function makeTree(dir: string, o: TreeOptions): TreeInfo {
  const { specs, changed } = treeSpecs(o);
  mkdirSync(dir, { recursive: true });
  const dirs = new Set<string>();
  let bytes = 0;
  for (const s of specs) {
    let data = generate(s.kind, s.seed, s.size);
    for (const e of s.edits) {
      if (e.op === 'patch') seededBytes(e.seed, e.length).copy(data, e.offset);
      else data = Buffer.concat([data, generate(s.kind, e.seed, e.length)]);
    }
    const file = join(dir, s.path);
    for (let d = dirname(s.path); d !== '.'; d = dirname(d)) dirs.add(d);
    mkdirSync(dirname(file), { recursive: true });
    writeFileSync(file, data);
    utimesSync(file, FIXTURE_TIME, FIXTURE_TIME);
    bytes += data.length;
  }
  // Directories last, deepest first, since writing into one changes its mtime.
  for (const d of [...dirs].sort((a, b) => b.split('/').length - a.split('/').length)) {
    utimesSync(join(dir, d), FIXTURE_TIME, FIXTURE_TIME);
  }
  utimesSync(dir, FIXTURE_TIME, FIXTURE_TIME);
  return { dir, paths: specs.map((s) => s.path).sort(), bytes, changed };
}

/** Path of an e2fsprogs tool, looking in PATH and the sbin directories a non-root PATH may lack. */
function findTool(name: string): string | null {
  const dirs = [...(process.env.PATH ?? '').split(delimiter), '/sbin', '/usr/sbin', '/usr/local/sbin', '/opt/homebrew/opt/e2fsprogs/sbin', '/usr/local/opt/e2fsprogs/sbin'];
  for (const d of dirs) {
    if (d && existsSync(join(d, name))) return join(d, name);
  }
  return null;
}

export function findMke2fs(): string | null {
  return findTool('mke2fs');
}

export function hasMke2fs(): boolean {
  const bin = findMke2fs();
  return available(bin !== null && spawnSync(bin, ['-V'], { stdio: 'ignore' }).status === 0, 'mke2fs (e2fsprogs) does not run');
}

export interface Ext4Options {
  /** File system UUID (default fixed). Also seeds metadata checksums. */
  uuid?: string;
  /** Directory hash seed (default fixed). */
  hashSeed?: string;
  label?: string;
}

/**
 * The mke2fs arguments for a reproducible ext4 image. Shared with
 * bench/make-images.mjs, which repeats them (it is plain JS); keep the two alike.
 */
export function mke2fsArgs(imagePath: string, fromDir: string, sizeBytes: number, o: Ext4Options = {}): string[] {
  const uuid = o.uuid ?? '5d1c0a3e-8f43-4c1e-9a57-2b7f0c6d9e11';
  const hashSeed = o.hashSeed ?? '0b8e2f6a-3c4d-4e5f-8a9b-1c2d3e4f5a6b';
  return [
    '-q', '-F', '-t', 'ext4', '-b', '4096', '-I', '256', '-m', '0',
    '-L', o.label ?? 'strata-fixture',
    '-U', uuid,
    '-E', `root_owner=0:0,hash_seed=${hashSeed}`,
    '-d', fromDir,
    imagePath,
    `${Math.floor(sizeBytes / KiB)}k`,
  ];
}

/** Environment for mke2fs: fixed "now" for superblock and journal timestamps. */
export function mke2fsEnv(): NodeJS.ProcessEnv {
  return { ...process.env, E2FSPROGS_FAKE_TIME: String(FIXTURE_TIME), MKE2FS_DEVICE_SECTSIZE: '512' };
}

/**
 * Builds an ext4 image of `sizeBytes` (a multiple of 4 KiB; sparse) holding
 * the contents of `fromDir`, replacing any file at `imagePath`. Returns
 * `imagePath`. Throws if mke2fs is missing or fails.
 *
 * mke2fs -d copies each source file's atime and ctime into its inode, and
 * reading the tree moves the atimes; neither can be set beforehand (ctime
 * never can). So afterwards one debugfs run sets both to FIXTURE_TIME on
 * every inode, which makes the image reproducible. Without debugfs, or for
 * paths debugfs cannot quote, the times stay as copied: only inode-table
 * bytes differ between runs, never file data.
 */
export function makeExt4(imagePath: string, fromDir: string, sizeBytes = 64 * MiB, o: Ext4Options = {}): string {
  const bin = findMke2fs();
  if (!bin) throw new Error('mke2fs not found: install e2fsprogs (apt-get install e2fsprogs)');
  if (sizeBytes % (4 * KiB) !== 0) throw new Error(`image size ${sizeBytes} is not a multiple of 4 KiB`);
  // A fresh file: an old image's blocks would otherwise survive where mke2fs writes nothing.
  rmSync(imagePath, { force: true });
  mkdirSync(dirname(imagePath), { recursive: true });
  const r = spawnSync(bin, mke2fsArgs(imagePath, fromDir, sizeBytes, o), { env: mke2fsEnv(), encoding: 'utf8' });
  if (r.status !== 0) {
    throw new Error(`mke2fs failed (${r.status ?? r.signal}): ${(r.stderr || r.stdout || String(r.error ?? '')).trim().split('\n')[0]}`);
  }
  pinInodeTimes(imagePath, fromDir);
  return imagePath;
}

/** Sets atime and ctime of every inode copied from `fromDir` to FIXTURE_TIME (see makeExt4). */
function pinInodeTimes(imagePath: string, fromDir: string): void {
  const debugfs = findTool('debugfs');
  if (!available(debugfs !== null, 'debugfs (e2fsprogs) is not installed: inode times are left unpinned') || !debugfs) return;
  const paths = ['/', ...readdirSync(fromDir, { recursive: true, encoding: 'utf8' }).map((p) => `/${p}`)];
  const stamp = new Date(FIXTURE_TIME * 1000).toISOString().replace(/[-:T]/g, '').slice(0, 14);
  const lines: string[] = [];
  for (const p of paths) {
    if (/["\\\n]/.test(p)) continue;
    lines.push(`sif "${p}" atime ${stamp}`, `sif "${p}" ctime ${stamp}`);
  }
  const tmp = mkdtempSync(join(tmpdir(), 'strata-debugfs-'));
  try {
    writeFileSync(join(tmp, 'cmds'), lines.join('\n') + '\n');
    const r = spawnSync(debugfs, ['-w', '-f', join(tmp, 'cmds'), imagePath], { env: mke2fsEnv(), encoding: 'utf8' });
    if (r.status !== 0) throw new Error(`debugfs failed (${r.status ?? r.signal}): ${(r.stderr ?? '').trim().split('\n').at(-1)}`);
  } finally {
    rmSync(tmp, { recursive: true, force: true });
  }
}
