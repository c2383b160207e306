#!/usr/bin/env node
/**
 * Stand-in for bench/make-images.mjs (being written on the `native` branch):
 * builds the same three inputs so the harness can be developed and run.
 *
 *   bench/cache/debian-a.ext4  1 GiB sparse ext4 (mke2fs -d) of a /usr subset
 *   bench/cache/debian-b.ext4  1 GiB sparse ext4: the same subset plus python3
 *   bench/cache/dense.raw      1 GiB dense: a tar of /usr files, then seeded random
 *
 * The two ext4 images share most files, placed differently by mke2fs, the way
 * two separately built root file systems do. Nothing here needs root.
 * Usage: node bench/lib/fallback-images.mjs [--out DIR] [--force]
 */
import { spawnSync } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const HERE = path.dirname(fileURLToPath(import.meta.url));
const GiB = 1024 ** 3;

const TREE_A = ['/usr/share/doc', '/usr/share/perl', '/usr/lib/git-core'];
const TREE_B = [...TREE_A, '/usr/lib/python3.11', '/usr/lib/python3'];

function run(cmd, args, opts = {}) {
  const r = spawnSync(cmd, args, { stdio: ['ignore', 'inherit', 'pipe'], ...opts });
  if (r.status !== 0 && !opts.allowFail) {
    throw new Error(`${cmd} ${args.join(' ')} failed (${r.status}): ${r.stderr?.toString().slice(0, 500)}`);
  }
  return r;
}

function stageTree(dirs, dest) {
  fs.mkdirSync(dest, { recursive: true });
  for (const d of dirs) {
    if (!fs.existsSync(d)) continue;
    const target = path.join(dest, d);
    fs.mkdirSync(path.dirname(target), { recursive: true });
    // Unreadable files are skipped; cp exits non-zero but copies the rest.
    run('cp', ['-a', '--no-preserve=ownership', d, target], { allowFail: true });
  }
}

function buildExt4(dirs, out, label) {
  const stage = fs.mkdtempSync(path.join(os.tmpdir(), 'strata-bench-stage-'));
  try {
    stageTree(dirs, path.join(stage, 'root'));
    fs.rmSync(out, { force: true });
    run('truncate', ['-s', String(GiB), out]);
    run('mke2fs', ['-q', '-F', '-t', 'ext4', '-L', label, '-E', 'root_owner=0:0', '-d', path.join(stage, 'root'), out]);
  } finally {
    fs.rmSync(stage, { recursive: true, force: true });
  }
}

function buildDense(out) {
  const tmp = out + '.tmp';
  const tar = spawnSync('tar', ['-cf', '-', '--ignore-failed-read', '/usr/lib/x86_64-linux-gnu'], { maxBuffer: 2 * GiB, stdio: ['ignore', 'pipe', 'ignore'] });
  const head = tar.stdout.subarray(0, Math.min(tar.stdout.length, GiB / 2));
  const fd = fs.openSync(tmp, 'w');
  try {
    fs.writeSync(fd, head);
    // Seeded random: AES-128-CTR over zeros with a fixed key is reproducible and fast.
    const cipher = crypto.createCipheriv('aes-128-ctr', Buffer.alloc(16, 7), Buffer.alloc(16, 0));
    const zeros = Buffer.alloc(16 << 20);
    let pos = head.length;
    while (pos < GiB) {
      const n = Math.min(zeros.length, GiB - pos);
      fs.writeSync(fd, cipher.update(zeros.subarray(0, n)));
      pos += n;
    }
    fs.fsyncSync(fd);
  } finally {
    fs.closeSync(fd);
  }
  fs.renameSync(tmp, out);
}

export function buildFallbackImages(outDir = path.join(HERE, '..', 'cache'), { force = false, log = console.error } = {}) {
  fs.mkdirSync(outDir, { recursive: true });
  const a = path.join(outDir, 'debian-a.ext4');
  const b = path.join(outDir, 'debian-b.ext4');
  const d = path.join(outDir, 'dense.raw');
  if (force || !fs.existsSync(a)) {
    log(`building ${a} (fallback inputs)`);
    buildExt4(TREE_A, a, 'debian-a');
  }
  if (force || !fs.existsSync(b)) {
    log(`building ${b} (fallback inputs)`);
    buildExt4(TREE_B, b, 'debian-b');
  }
  if (force || !fs.existsSync(d)) {
    log(`building ${d} (fallback inputs)`);
    buildDense(d);
  }
  return { sparseA: a, sparseB: b, dense: d };
}

if (process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const args = process.argv.slice(2);
  const oi = args.indexOf('--out');
  buildFallbackImages(oi >= 0 ? args[oi + 1] : undefined, { force: args.includes('--force') });
}
