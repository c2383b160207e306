import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Command } from 'commander';
import { StrataError } from '../../errors.js';
import { findImage, listVisibleImages } from '../../store/images/index.js';
import type { Store } from '../../store/core/index.js';
import { cloneImage, removeImages } from '../../image/lifecycle.js';
import { openImage } from '../../image/image.js';
import { storeStats, type StoreStats } from '../../image/usage.js';
import { importFile } from '../../formats/files.js';
import { runCommand } from '../context.js';
import { humanBytes } from '../parse.js';
import { imageForest, type TreeNode } from '../../image/listing.js';
import { renderForest } from './tree.js';
import { prng, writeTree } from '../demo-data.js';

const IMAGE_SIZE = 256 * 1024 * 1024;
const DEMO_LABEL = { 'strata.demo': '1' };

function say(ctx: { json: boolean }, line: string): void {
  if (!ctx.json) process.stdout.write(line + '\n');
}

function hasMke2fs(): boolean {
  return spawnSync('mke2fs', ['-V'], { stdio: 'ignore' }).status === 0;
}

function makeExt4(file: string, fromDir: string): void {
  const r = spawnSync('mke2fs', ['-q', '-F', '-t', 'ext4', '-d', fromDir, '-E', 'root_owner=0:0', file, String(IMAGE_SIZE / 1024)], {
    env: { ...process.env, E2FSPROGS_FAKE_TIME: '1700000000' },
    encoding: 'utf8',
  });
  if (r.status !== 0) throw new Error(`mke2fs failed: ${r.stderr}`);
}

/** Without mke2fs: a raw file whose 4 KiB blocks are generated with the same seeded mix. */
function makeSynthetic(file: string, seed: number, dataBytes: number, extra: number): void {
  const fd = fs.openSync(file, 'w');
  fs.ftruncateSync(fd, IMAGE_SIZE);
  const rand = prng(seed);
  const block = Buffer.alloc(4096);
  for (let off = 0; off < dataBytes; off += 4096) {
    for (let i = 0; i < 4096; i += 4) block.writeUInt32LE(rand(), i);
    fs.writeSync(fd, block, 0, 4096, off);
  }
  const rand2 = prng(seed + extra);
  for (let off = dataBytes; off < dataBytes + extra; off += 4096) {
    for (let i = 0; i < 4096; i += 4) block.writeUInt32LE(rand2(), i);
    fs.writeSync(fd, block, 0, 4096, off);
  }
  fs.closeSync(fd);
}

export interface DemoResult {
  images: string[];
  cloneMs: number;
  source: 'ext4' | 'synthetic';
  tree: TreeNode[];
  stats: StoreStats;
}

const DEMO_IMAGES = new Set(['demo-base', 'demo-apps', 'demo-vm1', 'demo-vm2', 'demo-vm3']);

/**
 * A second demo starts over, but only over what the demo made: an image of
 * the user's built on demo-base (a clone of demo-vm1, a snapshot) is refused,
 * not removed with the rest.
 */
function removePreviousDemo(store: Store): void {
  const base = findImage(store, 'demo-base');
  if (!base || base.labels['strata.demo'] !== '1') return;
  const all = listVisibleImages(store);
  const below = new Set([base.id]);
  // Parents come before children only by chance of ids: repeat until no image joins.
  for (let grew = true; grew; ) {
    grew = false;
    for (const i of all) {
      if (i.parentId !== null && below.has(i.parentId) && !below.has(i.id)) {
        below.add(i.id);
        grew = true;
      }
    }
  }
  const theirs = all.filter((i) => below.has(i.id) && !DEMO_IMAGES.has(i.name)).map((i) => i.name);
  if (theirs.length > 0) {
    throw new StrataError('E_HAS_CHILDREN', `the demo would remove its images and with them ${theirs.join(', ')}, which it did not make; remove those first, or run the demo on another store (--store DIR)`, { images: theirs });
  }
  removeImages(store, ['demo-base'], { recursive: true });
}

export async function runDemo(store: Store, ctx: { json: boolean }): Promise<DemoResult> {
  removePreviousDemo(store);
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'strata-demo-'));
  try {
    const baseFile = path.join(tmp, 'base.img');
    const appsFile = path.join(tmp, 'apps.img');
    let source: DemoResult['source'];
    if (hasMke2fs()) {
      source = 'ext4';
      say(ctx, `1. building two ${humanBytes(IMAGE_SIZE)} ext4 images with mke2fs -d: a base OS tree, and the same tree with packages added`);
      const tree = path.join(tmp, 'tree');
      writeTree(tree, 1, 40 * 1024 * 1024, 'os');
      makeExt4(baseFile, tree);
      writeTree(tree, 2, 12 * 1024 * 1024, 'pkg');
      makeExt4(appsFile, tree);
    } else {
      source = 'synthetic';
      say(ctx, '1. mke2fs not found (apt-get install e2fsprogs): using generated raw images instead of ext4');
      makeSynthetic(baseFile, 1, 40 * 1024 * 1024, 0);
      makeSynthetic(appsFile, 1, 40 * 1024 * 1024, 12 * 1024 * 1024);
    }

    say(ctx, '2. importing the base as a read-only image: demo-base');
    importFile(store, baseFile, 'demo-base', { labels: DEMO_LABEL, format: 'raw' });
    say(ctx, '3. importing the second image over it: demo-apps stores only the blocks that differ');
    importFile(store, appsFile, 'demo-apps', { parent: 'demo-base', labels: DEMO_LABEL, format: 'raw' });

    const names = ['demo-vm1', 'demo-vm2', 'demo-vm3'];
    const t0 = process.hrtime.bigint();
    cloneImage(store, 'demo-apps', names);
    const cloneMs = Number(process.hrtime.bigint() - t0) / 1e6;
    say(ctx, `4. cloned demo-apps into ${names.join(', ')} in ${cloneMs.toFixed(2)} ms (metadata only)`);

    say(ctx, '5. writing into each clone: 1 MiB of its own data, and the same 256 KiB of configuration');
    const shared = Buffer.alloc(256 * 1024);
    const r = prng(99);
    for (let i = 0; i < shared.length; i += 4) shared.writeUInt32LE(r(), i);
    names.forEach((n, k) => {
      const img = openImage(store, n, { writable: true });
      const own = Buffer.alloc(1024 * 1024);
      const rk = prng(1000 + k);
      for (let i = 0; i < own.length; i += 4) own.writeUInt32LE(rk(), i);
      img.write(200 * 1024 * 1024, own);
      img.write(210 * 1024 * 1024, shared);
      img.close();
    });

    const tree = imageForest(listVisibleImages(store).filter((i) => i.labels['strata.demo'] === '1' || i.name.startsWith('demo-')));
    const stats = storeStats(store);
    return { images: ['demo-base', 'demo-apps', ...names], cloneMs, source, tree, stats };
  } finally {
    fs.rmSync(tmp, { recursive: true, force: true });
  }
}

export function renderDemo(r: DemoResult): string {
  const s = r.stats;
  const pct = (a: number, b: number) => (b === 0 ? '0%' : `${((100 * a) / b).toFixed(1)}%`);
  return [
    '',
    renderForest(r.tree).trimEnd(),
    '',
    `The store holds ${s.images} images of ${humanBytes(s.logicalBytes)} virtual size in all:`,
    `  full raw copies would take      ${humanBytes(s.logicalBytes)}`,
    `  sparse copies would take        ${humanBytes(s.referencedBytes)}   (zero blocks not stored: ${humanBytes(s.savings.zeroBytes)} saved)`,
    `  layered chains (qcow2-style)    ${humanBytes(s.ownBytes)}   (layers and clones: ${humanBytes(s.savings.layeringBytes)} more saved)`,
    ...(s.compression.blocks > 0
      ? [
          `  distinct 4 KiB blocks           ${humanBytes(s.distinctBytes)}   (4 KiB dedup across images: ${humanBytes(s.savings.dedupBytes)} more saved)`,
          `  strata stores                   ${humanBytes(s.storedBytes)}   (compression: ${humanBytes(s.savings.compressionBytes)} more saved)`,
        ]
      : [`  strata stores                   ${humanBytes(s.storedBytes)}   (4 KiB dedup across images: ${humanBytes(s.savings.dedupBytes)} more saved)`]),
    `  that is ${pct(s.storedBytes, s.logicalBytes)} of the raw copies and ${pct(s.storedBytes, s.referencedBytes)} of the sparse ones.`,
    '',
    'Try: strata tree; strata info demo-vm1; strata read demo-vm1 --offset 200M --length 64 | xxd; strata export demo-vm1 vm1.raw;',
    '     strata compress demo-base demo-apps; strata stats',
    '',
  ].join('\n');
}

export const demoCommand = () =>
  new Command('demo').description('run the main job on the store: build a base and a layer, clone three instances, show the savings').action(async (_o, cmd: Command) =>
    runCommand(cmd, async (ctx) => runDemo(await ctx.store(), ctx), renderDemo),
  );

