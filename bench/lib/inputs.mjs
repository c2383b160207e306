/**
 * Bench inputs and scratch space. The three cached inputs come from
 * bench/make-images.mjs; until that script is on this branch the stand-in
 * bench/lib/fallback-images.mjs builds equivalent ones.
 */
import { spawnSync } from 'node:child_process';
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
export function cleanupAll() {
  for (const d of scratch) fs.rmSync(d, { recursive: true, force: true });
  scratch.clear();
}

/** Bytes the file system has allocated under a path (st_blocks, like du). */
export function allocatedBytes(p) {
  const st = fs.lstatSync(p);
  if (!st.isDirectory()) return st.blocks * 512;
  let n = 0;
  for (const e of fs.readdirSync(p)) n += allocatedBytes(path.join(p, e));
  return n;
}

export function rmFile(f) {
  fs.rmSync(f, { force: true });
}
