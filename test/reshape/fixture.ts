/**
 * Test fixtures for reshape and check: two overlapping ext4 images built
 * with mke2fs -d from generated trees, content digests through export, a
 * digest of every metadata table, and the CLI binary.
 */
import { spawnSync } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { writeTree } from '../../src/cli/demo-data.js';
import { exportRaw } from '../../src/formats/raw.js';
import { listImages } from '../../src/store/images/catalog.js';
import type { Store } from '../../src/store/core/store.js';
import { sqlOf } from '../helpers/sql.js';

export const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
export const IMAGE_SIZE = 32 * 1024 * 1024;

export function tmpDir(tag: string): string {
  return fs.mkdtempSync(path.join(os.tmpdir(), `strata-${tag}-`));
}

function mkext4(file: string, dir: string, size: number): void {
  const r = spawnSync('mke2fs', ['-q', '-F', '-t', 'ext4', '-d', dir, '-E', 'root_owner=0:0', file, `${size / 1024}k`], {
    env: { ...process.env, E2FSPROGS_FAKE_TIME: '1700000000' },
    encoding: 'utf8',
  });
  if (r.status !== 0) throw new Error(`mke2fs failed: ${r.stderr}`);
}

/** a.img from one tree; b.img from the same tree with more files added: different but overlapping. */
export function makeExt4Pair(dir: string, size = IMAGE_SIZE): { a: string; b: string } {
  const tree = path.join(dir, 'tree');
  writeTree(tree, 11, 6 * 1024 * 1024, 'os');
  const a = path.join(dir, 'a.img');
  mkext4(a, tree, size);
  writeTree(tree, 12, 2 * 1024 * 1024, 'pkg');
  fs.rmSync(path.join(tree, 'os3'), { recursive: true });
  const b = path.join(dir, 'b.img');
  mkext4(b, tree, size);
  return { a, b };
}

/** Distinct non-zero 4 KiB blocks over the files, by sha256 (independent of strata's hashing). */
export function distinctNonZeroBlocks(files: readonly string[]): number {
  const seen = new Set<string>();
  const zero = Buffer.alloc(4096);
  for (const f of files) {
    const data = fs.readFileSync(f);
    for (let off = 0; off < data.length; off += 4096) {
      const block = Buffer.alloc(4096);
      data.copy(block, 0, off, Math.min(off + 4096, data.length));
      if (block.equals(zero)) continue;
      seen.add(crypto.createHash('sha256').update(block).digest('hex'));
    }
  }
  return seen.size;
}

export function sha256File(file: string): string {
  return crypto.createHash('sha256').update(fs.readFileSync(file)).digest('hex');
}

/** Content of every visible image, as sha256 of its raw export plus its size. */
export function contents(store: Store, dir: string): Map<string, string> {
  const out = new Map<string, string>();
  for (const img of listImages(store)) {
    if (img.name.startsWith('.')) continue;
    const f = path.join(dir, `export-${img.name}.raw`);
    exportRaw(store, img.name, f);
    out.set(img.name, `${img.virtualSize}:${sha256File(f)}`);
    fs.rmSync(f);
  }
  return out;
}

/** Every metadata table except leases, for "changes nothing" assertions. */
export function metadataDigest(store: Store): string {
  const h = crypto.createHash('sha256');
  for (const [t, order] of [
    ['images', 'id'],
    ['segments', 'image_id, seg'],
    ['slot_refs', 'chunk'],
    ['slot_hashes', 'chunk'],
    ['wide_refs', 'slot'],
    ['free_slots', 'slot'],
    ['meta', 'key'],
  ]) {
    for (const row of sqlOf(store).prepare(`SELECT * FROM ${t} ORDER BY ${order}`).raw().all() as unknown[][]) {
      h.update(t + JSON.stringify(row.map((v) => (Buffer.isBuffer(v) ? v.toString('hex') : v))));
    }
  }
  return h.digest('hex');
}

export interface CliResult {
  status: number | null;
  stdout: string;
  stderr: string;
}

/** The built binary (dist/), so exit statuses are the real ones. */
export function cli(store: string, ...args: string[]): CliResult {
  const r = spawnSync(process.execPath, [path.join(ROOT, 'dist/cli/main.js'), '--store', store, ...args], { encoding: 'utf8', timeout: 300_000, killSignal: 'SIGKILL' });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

let built = false;
/** Builds dist/ once per test file, so the binary matches the sources under test. */
export function buildCli(): void {
  if (built) return;
  const r = spawnSync(process.execPath, [path.join(ROOT, 'node_modules/typescript/bin/tsc'), '-p', path.join(ROOT, 'tsconfig.json')], { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`tsc failed: ${r.stdout}${r.stderr}`);
  built = true;
}
