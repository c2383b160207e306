/**
 * Bench inputs and scratch space. The three cached inputs come from
 * bench/make-images.mjs; until that script is on this branch the stand-in
 * bench/lib/fallback-images.mjs builds equivalent ones.
 */
import { spawn, spawnSync } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { ROOT } from './tools.mjs';

export const CACHE = path.join(ROOT, 'bench', 'cache');
export const MiB = 2 ** 20;
export const GiB = 2 ** 30;

export async function ensureInputs(log = console.error) {
  const files = {
    sparseA: path.join(CACHE, 'debian-a.ext4'),
    sparseB: path.join(CACHE, 'debian-b.ext4'),
    dense: path.join(CACHE, 'dense.raw'),
  };
  if (Object.values(files).every((f) => fs.existsSync(f))) return files;
  const maker = path.join(ROOT, 'bench', 'make-images.mjs');
  if (fs.existsSync(maker)) {
    log('building bench inputs: node bench/make-images.mjs');
    const r = spawnSync(process.execPath, [maker], { stdio: ['ignore', 'inherit', 'inherit'], cwd: ROOT });
    if (r.status !== 0) throw new Error('bench/make-images.mjs failed');
  } else {
    log('bench/make-images.mjs is not on this branch yet: building stand-in inputs with bench/lib/fallback-images.mjs');
    const { buildFallbackImages } = await import('./fallback-images.mjs');
    buildFallbackImages(CACHE, { log });
  }
  for (const f of Object.values(files)) if (!fs.existsSync(f)) throw new Error(`input ${f} was not built`);
  return files;
}

/** The first `bytes` of a file as a new cached file (same content on both sides). */
export function slice(src, bytes, name) {
  const out = path.join(CACHE, name);
  if (fs.existsSync(out) && fs.statSync(out).size === bytes) return out;
  const r = spawnSync('dd', [`if=${src}`, `of=${out}.tmp`, 'bs=4M', `count=${bytes / (4 * MiB)}`, 'conv=sparse', 'status=none']);
  if (r.status !== 0) throw new Error(`dd failed: ${r.stderr}`);
  fs.truncateSync(`${out}.tmp`, bytes);
  fs.renameSync(`${out}.tmp`, out);
  return out;
}

/**
 * `bytes` of seeded random data (AES-128-CTR keystream over zeros: the same
 * bytes on every machine, incompressible, no two 4 KiB blocks alike), cached
 * as bench/cache/<name>. Prefixes of one stream, so random-256m is the first
 * quarter of random-1g.
 */
export function randomFile(bytes, name) {
  const out = path.join(CACHE, name);
  if (fs.existsSync(out) && fs.statSync(out).size === bytes) return out;
  fs.mkdirSync(CACHE, { recursive: true });
  const key = crypto.createHash('sha256').update('strata-bench-random-v1').digest();
  const cipher = crypto.createCipheriv('aes-128-ctr', key.subarray(0, 16), key.subarray(16, 32));
  const zeros = Buffer.alloc(8 * MiB);
  const fd = fs.openSync(`${out}.tmp`, 'w');
  try {
    for (let pos = 0; pos < bytes; ) {
      const n = Math.min(zeros.length, bytes - pos);
      const chunk = cipher.update(zeros.subarray(0, n));
      for (let off = 0; off < n; ) off += fs.writeSync(fd, chunk, off, n - off, pos + off);
      pos += n;
    }
    fs.fsyncSync(fd);
  } finally {
    fs.closeSync(fd);
  }
  fs.renameSync(`${out}.tmp`, out);
  return out;
}

/** Reads a file once so both sides find it in the page cache. */
export function warmFile(file) {
  const fd = fs.openSync(file, 'r');
  const buf = Buffer.allocUnsafe(8 * MiB);
  try {
    let pos = 0;
    for (;;) {
      const n = fs.readSync(fd, buf, 0, buf.length, pos);
      if (n <= 0) break;
      pos += n;
    }
  } finally {
    fs.closeSync(fd);
  }
}

const scratch = new Set();
export function tmpDir(tag) {
  const d = fs.mkdtempSync(path.join(os.tmpdir(), `strata-bench-${tag}-`));
  scratch.add(d);
  return d;
}
export function rmDir(d) {
  fs.rmSync(d, { recursive: true, force: true });
  scratch.delete(d);
}
/**
 * Deletes a scratch directory later, after the last measurement: a file
 * fragmented by random writes (a qcow2 overlay after fio) takes a minute to
 * unlink on a file system mounted with `discard`, and the discards would
 * load the disk under the next workload. cleanupAll() hands these to one
 * detached `rm -rf` that finishes after the harness exits.
 */
const trash = [];
export function rmDirLater(d) {
  const t = `${d}.trash`;
  fs.renameSync(d, t);
  scratch.delete(d);
  trash.push(t);
}
/** Something to stop before the scratch space goes (a server a workload started). */
const stoppers = new Set();
export function onCleanup(fn) {
  stoppers.add(fn);
  return () => stoppers.delete(fn);
}
export function cleanupAll() {
  for (const fn of stoppers) {
    try {
      fn();
    } catch {
      // already gone
    }
  }
  stoppers.clear();
  for (const d of scratch) {
    try {
      fs.rmSync(d, { recursive: true, force: true, maxRetries: 3 });
    } catch (e) {
      console.error(`could not remove ${d}: ${e.message}`);
    }
  }
  scratch.clear();
  if (trash.length) {
    spawn('rm', ['-rf', ...trash.splice(0)], { detached: true, stdio: 'ignore' }).unref();
  }
}

/** Bytes the file system has allocated under a path (st_blocks, like du). */
export function allocatedBytes(p) {
  const st = fs.lstatSync(p);
  if (!st.isDirectory()) return st.blocks * 512;
  let n = 0;
  for (const e of fs.readdirSync(p)) n += allocatedBytes(path.join(p, e));
  return n;
}

/**
 * fsync every file under a path: setup writes reach the disk before timing
 * starts, without `sync -f`, which would also flush whatever else the shared
 * machine has dirty.
 */
export function syncTree(p) {
  const st = fs.lstatSync(p);
  if (st.isDirectory()) {
    for (const e of fs.readdirSync(p)) syncTree(path.join(p, e));
    return;
  }
  if (!st.isFile()) return;
  const fd = fs.openSync(p, 'r');
  try {
    fs.fsyncSync(fd);
  } finally {
    fs.closeSync(fd);
  }
}

export function rmFile(f) {
  fs.rmSync(f, { force: true });
}
