import { createHash } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { hasMke2fs, makeExt4, makeTree, type TreeInfo } from './ext4.js';

const MiB = 1024 * 1024;
const BASE = { seed: 1, files: 60 };

let dir: string;
let base: TreeInfo;
let derived: TreeInfo;
beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'strata-ext4-'));
  base = makeTree(join(dir, 'base'), BASE);
  derived = makeTree(join(dir, 'derived'), { seed: 2, files: 12, sharedWith: BASE, changeFraction: 0.15 });
});
afterAll(() => {
  rmSync(dir, { recursive: true, force: true });
});

function digest(root: string, paths: string[]): Map<string, string> {
  return new Map(paths.map((p) => [p, createHash('sha256').update(readFileSync(join(root, p))).digest('hex')]));
}

/** Hashes of the non-zero 4 KiB blocks of a file. */
function blockSet(file: string): Set<string> {
  const buf = readFileSync(file);
  const zero = Buffer.alloc(4096);
  const set = new Set<string>();
  for (let off = 0; off < buf.length; off += 4096) {
    const b = buf.subarray(off, off + 4096);
    if (!b.equals(zero)) set.add(createHash('sha1').update(b).digest('hex'));
  }
  return set;
}

describe('makeTree', () => {
  it('is deterministic and mixes sizes from 1 KiB to 2 MiB', () => {
    const a = base;
    const b = makeTree(join(dir, 'again'), BASE);
    expect(a.paths).toEqual(b.paths);
    expect(a.paths).toHaveLength(60);
    expect(digest(a.dir, a.paths)).toEqual(digest(b.dir, b.paths));
    const sizes = a.paths.map((p) => statSync(join(a.dir, p)).size);
    expect(Math.min(...sizes)).toBeGreaterThanOrEqual(1024);
    expect(Math.max(...sizes)).toBeLessThanOrEqual(2 * MiB);
    expect(Math.max(...sizes)).toBeGreaterThan(512 * 1024);
    expect(a.bytes).toBe(sizes.reduce((x, y) => x + y, 0));
    expect(statSync(join(a.dir, a.paths[0])).mtimeMs).toBe(1_704_067_200_000);
  });

  it('derives a second tree that keeps most files, changes some and adds more', () => {
    const [a, b] = [base, derived];
    const da = digest(a.dir, a.paths);
    const db = digest(b.dir, b.paths);
    expect(b.paths).toHaveLength(72);
    expect(a.paths.every((p) => db.has(p))).toBe(true);
    const same = a.paths.filter((p) => da.get(p) === db.get(p));
    const differ = a.paths.filter((p) => da.get(p) !== db.get(p));
    expect(differ.sort()).toEqual(b.changed);
    expect(b.changed.length).toBeGreaterThan(0);
    expect(same.length).toBeGreaterThan(a.paths.length * 0.7);
  });
});

describe.skipIf(!hasMke2fs())('makeExt4', () => {
  it('builds a sparse ext4 image, byte-identical from run to run', () => {
    const tree = base;
    const one = makeExt4(join(dir, 'one.ext4'), tree.dir, 64 * MiB);
    const two = makeExt4(join(dir, 'two.ext4'), tree.dir, 64 * MiB);
    const s = statSync(one);
    expect(s.size).toBe(64 * MiB);
    expect(s.blocks * 512).toBeLessThan(s.size); // sparse
    expect(s.blocks * 512).toBeGreaterThan(tree.bytes);
    expect(readFileSync(one).subarray(1024 + 56, 1024 + 58).readUInt16LE(0)).toBe(0xef53); // ext4 magic
    expect(readFileSync(one).equals(readFileSync(two))).toBe(true);
  });

  it('makes images of related trees that share most of their 4 KiB blocks', () => {
    const ia = blockSet(makeExt4(join(dir, 'a.ext4'), base.dir, 64 * MiB));
    const ib = blockSet(makeExt4(join(dir, 'b.ext4'), derived.dir, 64 * MiB));
    const shared = [...ia].filter((h) => ib.has(h)).length;
    expect(shared / ia.size).toBeGreaterThan(0.6);
  });
});
