/**
 * Raw import and export of real file-system images: an ext4 image built by
 * mke2fs -d goes in and comes out bit-exact, and a second, similar image
 * imported over the first stores only the blocks that are new.
 */
import { createHash } from 'node:crypto';
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { hasMke2fs, makeExt4, makeTree } from '../helpers/ext4.js';
import { strataOk } from '../helpers/cli.js';
import { tmpDir } from '../helpers/tmp.js';

const MiB = 1024 * 1024;

/** Distinct non-zero 4 KiB blocks of the given files, by content. */
function distinctBlocks(files: string[]): Set<string> {
  const zero = Buffer.alloc(4096);
  const seen = new Set<string>();
  for (const f of files) {
    const data = fs.readFileSync(f);
    for (let off = 0; off < data.length; off += 4096) {
      const b = data.subarray(off, off + 4096);
      if (!b.equals(zero.subarray(0, b.length))) seen.add(createHash('sha256').update(b).digest('hex'));
    }
  }
  return seen;
}

describe.skipIf(!hasMke2fs())('ext4 images through raw import and export', () => {
  it('import then export is byte-identical (cmp), and the export is sparse', () => {
    const dir = tmpDir();
    const store = path.join(dir, 'store');
    const tree = makeTree(path.join(dir, 'tree'), { seed: 11, files: 40 });
    const img = makeExt4(path.join(dir, 'a.ext4'), tree.dir, 64 * MiB);
    strataOk(store, ['create', 'a', '--from', img]);
    const info = JSON.parse(strataOk(store, ['info', 'a', '--json']).stdout);
    expect(info.kind).toBe('base');
    expect(info.virtualSize).toBe(64 * MiB);
    expect(info.source.format).toBe('raw');

    const out = path.join(dir, 'a.out');
    strataOk(store, ['export', 'a', out]);
    execFileSync('cmp', [img, out]); // throws on any difference
    // Holes stay holes: the export allocates about what the image's data needs.
    expect(fs.statSync(out).blocks * 512).toBeLessThan(fs.statSync(img).blocks * 512 + MiB);
  });

  it('a second, similar image over the first stores only the blocks that are new', () => {
    const dir = tmpDir();
    const store = path.join(dir, 'store');
    const baseTree = { seed: 21, files: 40 };
    const a = makeExt4(path.join(dir, 'a.ext4'), makeTree(path.join(dir, 'ta'), baseTree).dir, 64 * MiB);
    const b = makeExt4(path.join(dir, 'b.ext4'), makeTree(path.join(dir, 'tb'), { seed: 22, files: 10, sharedWith: baseTree }).dir, 64 * MiB);
    strataOk(store, ['create', 'a', '--from', a]);
    const storedA = JSON.parse(strataOk(store, ['stats', '--json']).stdout).storedBytes;
    expect(storedA).toBe(distinctBlocks([a]).size * 4096);

    strataOk(store, ['import', b, 'b', '--parent', 'a']);
    const stats = JSON.parse(strataOk(store, ['stats', '--json']).stdout);
    const both = distinctBlocks([a, b]);
    // Exactly the distinct non-zero blocks of both files, counted independently.
    expect(stats.storedBytes).toBe(both.size * 4096);
    const newInB = both.size - distinctBlocks([a]).size;
    expect(stats.storedBytes - storedA).toBe(newInB * 4096);
    // b's own layer maps every block that differs from a at the same offset (some of
    // them shared content that moved), which holds the new blocks and less than b itself.
    const infoB = JSON.parse(strataOk(store, ['info', 'b', '--json']).stdout);
    expect(infoB.kind).toBe('layer');
    expect(infoB.ownBytes).toBeGreaterThanOrEqual(newInB * 4096);
    expect(infoB.ownBytes).toBeLessThan(distinctBlocks([b]).size * 4096);

    const out = path.join(dir, 'b.out');
    strataOk(store, ['export', 'b', out]);
    execFileSync('cmp', [b, out]);
  });
});
