#!/usr/bin/env node
// Builds the benchmark images into bench/cache/:
//
//   debian-a.ext4  1 GiB sparse ext4: a base root file system
//   debian-b.ext4  1 GiB sparse ext4: the same system with more installed
//   dense.raw      1 GiB dense file: a tar of both trees, padded with seeded random bytes
//   images.json    what was built, from which source, and the sizes
//
// Source, in order of preference:
//   1. debootstrap --variant=minbase bookworm (A) and the same with python3 and
//      curl (B), as in DESIGN.md. Used only when debootstrap is installed, we
//      are root, and a quick probe of the mirror answers.
//   2. Otherwise file trees copied from this machine's /usr: A takes parts of
//      /usr/lib and /usr/share, B the same files plus more of both and /usr/bin,
//      /usr/sbin and /usr/libexec, so B overlaps A heavily, like an OS and the
//      same OS with packages added.
// STRATA_BENCH_SOURCE=usr|debootstrap forces one; STRATA_DEBIAN_MIRROR picks
// the mirror.
//
// Cached: nothing is rebuilt when images.json's recipe hash matches the
// current recipe (for /usr: including the list of files it would copy) and
// the images exist. --force rebuilds. --out DIR writes elsewhere.
//
// The mke2fs options repeat test/helpers/ext4.ts (fixed UUID, hash seed and
// time, then debugfs pins the inode atimes and ctimes), so a given tree gives
// the same image bytes each time.
import { spawnSync } from 'node:child_process';
import { createCipheriv, createHash } from 'node:crypto';
import {
  closeSync, copyFileSync, existsSync, lstatSync, mkdirSync, openSync, readdirSync, readFileSync, readlinkSync,
  readSync, renameSync, rmSync, statSync, symlinkSync, utimesSync, writeFileSync, writeSync, lutimesSync,
} from 'node:fs';
import { delimiter, dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const RECIPE_VERSION = 1;
const KiB = 1024;
const MiB = 1024 * KiB;
const GiB = 1024 * MiB;
const IMAGE_SIZE = 1 * GiB;
const FIXED_TIME = 1_704_067_200; // 2024-01-01T00:00:00Z
const SUITE = 'bookworm';
const EXTRA_PACKAGES = ['python3', 'curl'];
const DENSE_SEED = 'strata-bench-dense-v1';

/** /usr selection: [root, budget for A, extra budget for B]. */
const USR_PLAN = [
  ['lib', 90 * MiB, 15 * MiB],
  ['share', 50 * MiB, 10 * MiB],
  ['bin', 0, 30 * MiB],
  ['sbin', 0, 10 * MiB],
  ['libexec', 0, 10 * MiB],
];
const MAX_FILE = 16 * MiB; // one huge library should not eat a budget
const MAX_PER_CHILD = 24 * MiB; // spread a root's budget over its subdirectories

const here = dirname(fileURLToPath(import.meta.url));
const args = process.argv.slice(2);
const force = args.includes('--force');
const outIdx = args.indexOf('--out');
const cacheDir = resolve(outIdx >= 0 ? args[outIdx + 1] : join(here, 'cache'));
const workDir = join(cacheDir, 'work');
const t0 = Date.now();
const log = (msg) => process.stdout.write(`[make-images ${((Date.now() - t0) / 1000).toFixed(1)}s] ${msg}\n`);
const mib = (n) => `${(n / MiB).toFixed(1)} MiB`;

function findTool(name) {
  const dirs = [...(process.env.PATH ?? '').split(delimiter), '/sbin', '/usr/sbin', '/usr/local/sbin', '/opt/homebrew/opt/e2fsprogs/sbin', '/usr/local/opt/e2fsprogs/sbin'];
  for (const d of dirs) if (d && existsSync(join(d, name))) return join(d, name);
  return null;
}

function run(cmd, argv, opts = {}) {
  const r = spawnSync(cmd, argv, { encoding: 'utf8', maxBuffer: 64 * MiB, ...opts });
  if (r.status !== 0) {
    const detail = (r.stderr || r.stdout || String(r.error ?? '')).trim().split('\n').slice(-3).join(' | ');
    throw new Error(`${cmd} ${argv.slice(0, 4).join(' ')} ... failed (${r.status ?? r.signal}): ${detail}`);
  }
  return r;
}

// ---------------------------------------------------------------- prerequisites

const mke2fs = findTool('mke2fs');
if (!mke2fs || spawnSync(mke2fs, ['-V'], { stdio: 'ignore' }).status !== 0) {
  process.stderr.write(
    'make-images: mke2fs not found. Install e2fsprogs:\n' +
      '  Debian/Ubuntu: sudo apt-get install e2fsprogs\n' +
      '  Fedora/RHEL:   sudo dnf install e2fsprogs\n' +
      '  Alpine:        sudo apk add e2fsprogs\n' +
      '  macOS:         brew install e2fsprogs  (keg-only: tools in $(brew --prefix e2fsprogs)/sbin)\n',
  );
  process.exit(1);
}
const debugfs = findTool('debugfs');
const mke2fsVersion = (spawnSync(mke2fs, ['-V'], { encoding: 'utf8' }).stderr ?? '').split('\n')[0].trim();

// ---------------------------------------------------------------- source choice

const mirror = process.env.STRATA_DEBIAN_MIRROR || 'http://deb.debian.org/debian';

async function probeMirror() {
  try {
    const res = await fetch(`${mirror}/dists/${SUITE}/Release`, { method: 'HEAD', signal: AbortSignal.timeout(5000) });
    return res.ok ? null : `mirror answered ${res.status}`;
  } catch (e) {
    return `mirror ${mirror} unreachable (${e.cause?.code ?? e.name})`;
  }
}

async function chooseSource() {
  const forced = process.env.STRATA_BENCH_SOURCE;
  if (forced && forced !== 'usr' && forced !== 'debootstrap') throw new Error(`STRATA_BENCH_SOURCE must be usr or debootstrap, not ${forced}`);
  if (forced === 'usr') return { kind: 'usr', why: 'STRATA_BENCH_SOURCE=usr' };
  const debootstrap = findTool('debootstrap');
  let why;
  if (!debootstrap) why = 'debootstrap not installed';
  else if (process.getuid?.() !== 0) why = 'debootstrap needs root';
  else why = await probeMirror();
  if (!why) return { kind: 'debootstrap', debootstrap, why: `debootstrap and ${mirror} available` };
  if (forced === 'debootstrap') throw new Error(`STRATA_BENCH_SOURCE=debootstrap, but ${why}`);
  return { kind: 'usr', why };
}

// ---------------------------------------------------------------- /usr selection

/** Regular files and symlinks under /usr/<root>, sorted, depth first; no sockets, devices or fifos. */
function* walk(abs, rel) {
  let names;
  try {
    names = readdirSync(abs).sort();
  } catch {
    return;
  }
  for (const name of names) {
    const a = join(abs, name);
    const r = rel ? `${rel}/${name}` : name;
    let st;
    try {
      st = lstatSync(a);
    } catch {
      continue;
    }
    if (st.isDirectory()) yield* walk(a, r);
    else if (st.isFile() || st.isSymbolicLink()) yield { rel: r, abs: a, st };
  }
}

/**
 * Picks files for A and B. Each root's files come in sorted order, at most
 * MAX_PER_CHILD from one top-level subdirectory, until the budget is spent:
 * A's budget first, then B's extra. B = A + the extra files.
 */
function selectUsr() {
  const a = [];
  const b = [];
  for (const [root, budgetA, extraB] of USR_PLAN) {
    const perChild = new Map();
    let used = 0;
    for (const f of walk(join('/usr', root), `usr/${root}`)) {
      if (used >= budgetA + extraB) break;
      const size = f.st.isFile() ? f.st.size : 0;
      if (size > MAX_FILE) continue;
      if (f.st.isFile()) {
        try {
          closeSync(openSync(f.abs, 'r'));
        } catch {
          continue; // unreadable
        }
      }
      const child = f.rel.split('/').slice(0, 3).join('/');
      const c = perChild.get(child) ?? 0;
      if (c + size > MAX_PER_CHILD) continue;
      perChild.set(child, c + size);
      const entry = { rel: f.rel, abs: f.abs, size, mtime: Math.floor(f.st.mtimeMs / 1000), link: f.st.isSymbolicLink() };
      (used < budgetA ? a : b).push(entry);
      used += size;
    }
  }
  return { a, b: [...a, ...b] };
}

function copyTree(entries, dest) {
  rmSync(dest, { recursive: true, force: true });
  const dirs = new Map(); // rel dir -> source abs dir
  let bytes = 0;
  for (const e of entries) {
    const to = join(dest, e.rel);
    mkdirSync(dirname(to), { recursive: true });
    for (let d = dirname(e.rel), s = dirname(e.abs); d !== '.'; d = dirname(d), s = dirname(s)) dirs.set(d, s);
    if (e.link) {
      symlinkSync(readlinkSync(e.abs), to);
      lutimesSync(to, e.mtime, e.mtime);
    } else {
      copyFileSync(e.abs, to);
      utimesSync(to, e.mtime, e.mtime);
      bytes += e.size;
    }
  }
  for (const [d, src] of [...dirs].sort((x, y) => y[0].split('/').length - x[0].split('/').length)) {
    const m = Math.floor(statSync(src).mtimeMs / 1000);
    utimesSync(join(dest, d), m, m);
  }
  return bytes;
}

// ---------------------------------------------------------------- debootstrap

function debootstrapTree(tool, dest, include) {
  rmSync(dest, { recursive: true, force: true });
  const argv = ['--variant=minbase', ...(include.length ? [`--include=${include.join(',')}`] : []), SUITE, dest, mirror];
  log(`debootstrap ${argv.join(' ')}`);
  run(tool, argv, { stdio: ['ignore', 'ignore', 'pipe'] });
  // Drop what varies from run to run and is no part of an installed system.
  for (const p of ['var/cache/apt/archives', 'var/lib/apt/lists', 'var/log']) rmSync(join(dest, p), { recursive: true, force: true });
  let bytes = 0;
  for (const f of walk(dest, '')) if (f.st.isFile()) bytes += f.st.size;
  return bytes;
}

// ---------------------------------------------------------------- images

function ext4(image, fromDir, uuid, label) {
  rmSync(image, { force: true });
  const argv = [
    '-q', '-F', '-t', 'ext4', '-b', '4096', '-I', '256', '-m', '0', '-L', label, '-U', uuid,
    '-E', 'root_owner=0:0,hash_seed=0b8e2f6a-3c4d-4e5f-8a9b-1c2d3e4f5a6b',
    '-d', fromDir, image, `${IMAGE_SIZE / KiB}k`,
  ];
  const env = { ...process.env, E2FSPROGS_FAKE_TIME: String(FIXED_TIME) };
  run(mke2fs, argv, { env });
  // mke2fs copies atime and ctime from the source; pin them (see test/helpers/ext4.ts).
  if (!debugfs) return;
  const stamp = new Date(FIXED_TIME * 1000).toISOString().replace(/[-:T]/g, '').slice(0, 14);
  const lines = [];
  for (const p of ['', ...readdirSync(fromDir, { recursive: true, encoding: 'utf8' })]) {
    if (/["\\\n]/.test(p)) continue;
    lines.push(`sif "/${p}" atime ${stamp}`, `sif "/${p}" ctime ${stamp}`);
  }
  const cmds = join(workDir, 'debugfs.cmds');
  writeFileSync(cmds, lines.join('\n') + '\n');
  run(debugfs, ['-w', '-f', cmds, image], { env, stdio: ['ignore', 'ignore', 'pipe'] });
  rmSync(cmds);
}

// ---------------------------------------------------------------- dense.raw

/** A minimal deterministic ustar writer (PAX records for long names). */
class TarWriter {
  constructor(fd) {
    this.fd = fd;
    this.bytes = 0;
  }
  write(buf) {
    let off = 0;
    while (off < buf.length) off += writeSync(this.fd, buf, off, buf.length - off);
    this.bytes += buf.length;
  }
  header(name, { type, size = 0, mode, mtime, linkname = '' }) {
    const nameBuf = Buffer.from(name);
    const linkBuf = Buffer.from(linkname);
    let field = nameBuf;
    let prefix = Buffer.alloc(0);
    const pax = [];
    if (nameBuf.length > 100) {
      const cut = name.lastIndexOf('/', 155);
      const p = cut > 0 ? Buffer.from(name.slice(0, cut)) : null;
      const n = cut > 0 ? Buffer.from(name.slice(cut + 1)) : null;
      if (p && n && p.length <= 155 && n.length <= 100 && n.length > 0) [prefix, field] = [p, n];
      else pax.push(['path', name]);
    }
    if (linkBuf.length > 100) pax.push(['linkpath', linkname]);
    if (pax.length) {
      const body = Buffer.from(pax.map(([k, v]) => paxRecord(k, v)).join(''));
      this.header(`PaxHeaders/${createHash('sha1').update(name).digest('hex').slice(0, 16)}`, { type: 'x', size: body.length, mode: 0o644, mtime });
      this.data(body);
      if (pax.some(([k]) => k === 'path')) field = nameBuf.subarray(0, 100);
    }
    const h = Buffer.alloc(512);
    field.copy(h, 0, 0, 100);
    h.write(octal(mode & 0o7777, 8), 100, 'latin1');
    h.write(octal(0, 8), 108, 'latin1');
    h.write(octal(0, 8), 116, 'latin1');
    h.write(octal(size, 12), 124, 'latin1');
    h.write(octal(mtime, 12), 136, 'latin1');
    h.fill(0x20, 148, 156);
    h.write(type, 156, 'latin1');
    linkBuf.copy(h, 157, 0, 100);
    h.write('ustar\u000000', 257, 'latin1');
    h.write('root', 265, 'latin1');
    h.write('root', 297, 'latin1');
    prefix.copy(h, 345, 0, 155);
    let sum = 0;
    for (const b of h) sum += b;
    h.write(`${sum.toString(8).padStart(6, '0')}\u0000 `, 148, 'latin1');
    this.write(h);
  }
  data(buf) {
    this.write(buf);
    const pad = (512 - (buf.length % 512)) % 512;
    if (pad) this.write(Buffer.alloc(pad));
  }
  file(name, abs, st) {
    this.header(name, { type: '0', size: st.size, mode: st.mode, mtime: Math.floor(st.mtimeMs / 1000) });
    const fd = openSync(abs, 'r');
    try {
      const buf = Buffer.alloc(4 * MiB);
      let left = st.size;
      while (left > 0) {
        const n = readSync(fd, buf, 0, Math.min(buf.length, left), null);
        if (n === 0) throw new Error(`${abs} shrank while being archived`);
        this.write(buf.subarray(0, n));
        left -= n;
      }
    } finally {
      closeSync(fd);
    }
    const pad = (512 - (st.size % 512)) % 512;
    if (pad) this.write(Buffer.alloc(pad));
  }
  end() {
    this.write(Buffer.alloc(1024));
  }
}

function octal(n, width) {
  return `${n.toString(8).padStart(width - 1, '0')}\u0000`;
}

function paxRecord(key, value) {
  const body = ` ${key}=${value}\n`;
  let len = Buffer.byteLength(body) + 1;
  while (String(len).length + Buffer.byteLength(body) !== len) len = String(len).length + Buffer.byteLength(body);
  return `${len}${body}`;
}

/** Tar of the trees (as a/ and b/), then seeded random bytes up to exactly 1 GiB. */
function dense(file, trees) {
  const tmp = `${file}.tmp`;
  const fd = openSync(tmp, 'w');
  let tarBytes;
  try {
    const tar = new TarWriter(fd);
    for (const [prefix, dir] of trees) {
      const walkAll = function* (abs, rel) {
        for (const name of readdirSync(abs).sort()) {
          const a = join(abs, name);
          const r = `${rel}/${name}`;
          const st = lstatSync(a);
          if (st.isDirectory()) {
            tar.header(`${r}/`, { type: '5', mode: st.mode, mtime: Math.floor(st.mtimeMs / 1000) });
            yield* walkAll(a, r);
          } else yield { a, r, st };
        }
      };
      for (const { a, r, st } of walkAll(dir, prefix)) {
        if (tar.bytes > IMAGE_SIZE) break;
        if (st.isFile()) tar.file(r, a, st);
        else if (st.isSymbolicLink()) tar.header(r, { type: '2', mode: st.mode, mtime: Math.floor(st.mtimeMs / 1000), linkname: readlinkSync(a) });
      }
    }
    tar.end();
    tarBytes = Math.min(tar.bytes, IMAGE_SIZE);
    // Padding: an AES-128-CTR keystream, the same bytes on every machine.
    const key = createHash('sha256').update(DENSE_SEED).digest();
    const cipher = createCipheriv('aes-128-ctr', key.subarray(0, 16), key.subarray(16, 32));
    const zeros = Buffer.alloc(8 * MiB);
    let pos = tar.bytes;
    while (pos < IMAGE_SIZE) {
      const n = Math.min(zeros.length, IMAGE_SIZE - pos);
      const chunk = cipher.update(zeros.subarray(0, n));
      let off = 0;
      while (off < n) off += writeSync(fd, chunk, off, n - off, pos + off);
      pos += n;
    }
  } finally {
    closeSync(fd);
  }
  // An oversized tar is cut at 1 GiB.
  if (statSync(tmp).size > IMAGE_SIZE) spawnSync('truncate', ['-s', String(IMAGE_SIZE), tmp]);
  renameSync(tmp, file);
  return tarBytes;
}

// ---------------------------------------------------------------- main

function describeFile(path) {
  const st = statSync(path);
  return { size: st.size, allocatedBytes: st.blocks * 512 };
}

async function main() {
  mkdirSync(cacheDir, { recursive: true });
  const source = await chooseSource();
  const recipe = {
    version: RECIPE_VERSION,
    imageSize: IMAGE_SIZE,
    fixedTime: FIXED_TIME,
    denseSeed: DENSE_SEED,
    source: source.kind === 'debootstrap'
      ? { kind: 'debootstrap', suite: SUITE, variant: 'minbase', mirror, extraPackages: EXTRA_PACKAGES }
      : { kind: 'usr', plan: USR_PLAN, maxFile: MAX_FILE, maxPerChild: MAX_PER_CHILD },
  };
  let selection;
  if (source.kind === 'usr') {
    selection = selectUsr();
    // The files chosen are part of the recipe: a changed /usr rebuilds.
    recipe.selection = createHash('sha256').update(selection.b.map((e) => `${e.rel}\0${e.size}\0${e.mtime}\0${e.link}`).join('\n')).digest('hex');
  }
  const recipeHash = createHash('sha256').update(JSON.stringify(recipe)).digest('hex');
  const manifestPath = join(cacheDir, 'images.json');
  const outputs = ['debian-a.ext4', 'debian-b.ext4', 'dense.raw'].map((n) => join(cacheDir, n));
  if (!force && existsSync(manifestPath) && outputs.every((p) => existsSync(p) && statSync(p).size === IMAGE_SIZE)) {
    const old = JSON.parse(readFileSync(manifestPath, 'utf8'));
    if (old.recipeHash === recipeHash) {
      log(`cached: ${cacheDir} matches recipe ${recipeHash.slice(0, 12)} (source: ${old.source.kind}); --force rebuilds`);
      return;
    }
    log(`recipe changed (${String(old.recipeHash).slice(0, 12)} -> ${recipeHash.slice(0, 12)}); rebuilding`);
  }
  rmSync(manifestPath, { force: true });

  const treeA = join(workDir, 'a');
  const treeB = join(workDir, 'b');
  mkdirSync(workDir, { recursive: true });
  let bytesA;
  let bytesB;
  if (source.kind === 'debootstrap') {
    log(`source: debootstrap ${SUITE} minbase from ${mirror} (${source.why})`);
    bytesA = debootstrapTree(source.debootstrap, treeA, []);
    bytesB = debootstrapTree(source.debootstrap, treeB, EXTRA_PACKAGES);
  } else {
    log(`source: local /usr trees (${source.why})`);
    bytesA = copyTree(selection.a, treeA);
    log(`tree A: ${selection.a.length} entries from /usr/{lib,share}, ${mib(bytesA)}`);
    bytesB = copyTree(selection.b, treeB);
    log(`tree B: ${selection.b.length} entries from /usr/{lib,share,bin,sbin,libexec}, ${mib(bytesB)}`);
  }

  ext4(outputs[0], treeA, '6a0b1c2d-3e4f-4a5b-8c6d-7e8f9a0b1c2d', 'debian-a');
  log(`debian-a.ext4: ${mib(describeFile(outputs[0]).allocatedBytes)} allocated of 1 GiB`);
  ext4(outputs[1], treeB, '7b1c2d3e-4f5a-4b6c-9d7e-8f9a0b1c2d3e', 'debian-b');
  log(`debian-b.ext4: ${mib(describeFile(outputs[1]).allocatedBytes)} allocated of 1 GiB`);
  const tarBytes = dense(outputs[2], [['a', treeA], ['b', treeB]]);
  log(`dense.raw: tar ${mib(tarBytes)} + ${mib(IMAGE_SIZE - tarBytes)} seeded random`);
  rmSync(workDir, { recursive: true, force: true });

  const manifest = {
    recipeHash,
    source: { ...recipe.source, why: source.why },
    mke2fs: mke2fsVersion,
    buildSeconds: Math.round((Date.now() - t0) / 100) / 10,
    images: {
      'debian-a.ext4': { ...describeFile(outputs[0]), treeBytes: bytesA, files: selection?.a.length },
      'debian-b.ext4': { ...describeFile(outputs[1]), treeBytes: bytesB, files: selection?.b.length },
      'dense.raw': { ...describeFile(outputs[2]), tarBytes, paddingBytes: IMAGE_SIZE - tarBytes },
    },
  };
  writeFileSync(manifestPath, JSON.stringify(manifest, null, 2) + '\n');
  log(`wrote ${manifestPath}`);
}

main().catch((e) => {
  process.stderr.write(`make-images: ${e.message}\n`);
  process.exit(1);
});
