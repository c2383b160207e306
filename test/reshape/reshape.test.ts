import fs from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { isStrataError } from '../../src/errors.js';
import { importFile } from '../../src/formats/files.js';
import { openImage } from '../../src/image/image.js';
import { diffImages } from '../../src/image/inspect.js';
import { cloneImage, snapshotImage } from '../../src/image/lifecycle.js';
import { commitImage, flattenImage, rebaseImage, resizeImage } from '../../src/image/reshape.js';
import { getImage } from '../../src/store/images/catalog.js';
import { checkStore } from '../../src/store/upkeep/check.js';
import { openStore, type Store } from '../../src/store/core/store.js';
import { contents, makeExt4Pair, metadataDigest, tmpDir } from './fixture.js';

const MiB = 1024 * 1024;

function fill(seed: number, n: number): Buffer {
  const b = Buffer.alloc(n);
  for (let i = 0; i < n; i += 4) b.writeUInt32LE((Math.imul(seed, 2654435761) + i * 40503) >>> 0, i);
  return b;
}

function writeAt(store: Store, name: string, at: number, data: Buffer): void {
  const img = openImage(store, name, { writable: true });
  img.write(at, data);
  img.close();
}

function expectCode(fn: () => unknown, code: string): void {
  try {
    fn();
  } catch (e) {
    expect(isStrataError(e) ? e.code : e).toBe(code);
    return;
  }
  throw new Error(`expected ${code}, nothing was thrown`);
}

describe('reshape: content is byte-identical before and after, check clean after each', () => {
  let dir: string;
  let store: Store;

  beforeAll(async () => {
    dir = tmpDir('reshape');
    const f = makeExt4Pair(dir);
    store = await openStore(path.join(dir, 'store'));
    // a: base; b: a layer over a holding only what differs from it.
    importFile(store, f.a, 'a', { format: 'raw' });
    importFile(store, f.b, 'b', { parent: 'a', format: 'raw' });
    cloneImage(store, 'b', ['vm1', 'vm2', 'vm3']);
    writeAt(store, 'vm1', 3 * MiB, fill(1, 2 * MiB));
    writeAt(store, 'vm2', 30 * MiB, fill(2, MiB));
    const z = openImage(store, 'vm2', { writable: true });
    z.writeZeroes(0, 64 * 1024); // zero over the parent's data: ZERO entries
    z.close();
    writeAt(store, 'vm3', 5 * MiB + 100, fill(3, 10_000));
  });
  afterAll(() => {
    store?.close();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  const unchanged = (before: Map<string, string>) => expect(contents(store, dir)).toEqual(before);
  const clean = () => {
    const r = checkStore(store);
    expect(r.faults).toEqual([]);
    expect(r.exitStatus).toBe(0);
  };

  it('flatten: the image stops depending on its parents, its own map becomes what it reads', () => {
    const before = contents(store, dir);
    const r = flattenImage(store, 'vm1');
    expect(r.parent).toBeNull();
    expect(getImage(store, 'vm1').parentId).toBeNull();
    unchanged(before);
    clean();
  });

  it('flatten of a frozen layer with children keeps the children intact', () => {
    snapshotImage(store, 'vm3', 's1');
    const before = contents(store, dir);
    flattenImage(store, 'b');
    expect(getImage(store, 'b').kind).toBe('base');
    unchanged(before);
    clean();
  });

  it('rebase onto another frozen image: same content, own map keeps only the blocks that differ from it', () => {
    const before = contents(store, dir);
    const own0 = getImage(store, 'vm2').ownBlocks;
    rebaseImage(store, 'vm2', 'a');
    const vm2 = getImage(store, 'vm2');
    expect(vm2.parentId).toBe(getImage(store, 'a').id);
    unchanged(before);
    // Own data blocks = blocks where vm2 and a differ and vm2 reads data there.
    const differ = diffImages(store, 'vm2', 'a').differingBytes / 4096;
    expect(vm2.ownBlocks).toBeLessThanOrEqual(differ);
    expect(vm2.ownBlocks).toBeGreaterThan(own0);
    // And back onto b (flattened): only vm2's own writes remain.
    rebaseImage(store, 'vm2', 'b');
    expect(getImage(store, 'vm2').ownBlocks).toBe(own0);
    unchanged(before);
    clean();
  });

  it("commit: the parent takes the leaf's content, the leaf goes on empty above it", () => {
    // vm3@s1 (frozen) has vm3 as its only child.
    writeAt(store, 'vm3', 7 * MiB, fill(4, 3 * 4096));
    const before = contents(store, dir);
    const r = commitImage(store, 'vm3', { force: true }); // vm3@s1 is a snapshot
    expect(r.into).toBe('vm3@s1');
    expect(getImage(store, 'vm3').ownBlocks).toBe(0);
    const after = contents(store, dir);
    expect(after.get('vm3')).toBe(before.get('vm3'));
    expect(after.get('vm3@s1')).toBe(before.get('vm3'));
    for (const [n, c] of before) if (n !== 'vm3@s1') expect(after.get(n)).toBe(c);
    clean();
  });

  it('resize: grow reads zeros past the old end, shrink drops what lies past the new end, a cut partial block stays cut', () => {
    const before = contents(store, dir);
    const size = getImage(store, 'vm3').virtualSize;
    resizeImage(store, 'vm3', size + MiB + 1000);
    let img = openImage(store, 'vm3');
    expect(img.read(size, MiB + 1000).equals(Buffer.alloc(MiB + 1000))).toBe(true);
    img.close();
    // Shrink into the middle of a written block of vm3 (5 MiB + 100 .. + 10100), then grow back.
    const cut = 5 * MiB + 5000;
    const old = openImage(store, 'vm3');
    const head = old.read(0, cut);
    old.close();
    resizeImage(store, 'vm3', cut, { shrink: true });
    clean();
    resizeImage(store, 'vm3', size);
    img = openImage(store, 'vm3');
    expect(img.read(0, cut).equals(head)).toBe(true);
    // Past the cut: zeros, although the parent vm3@s1 has ext4 data up there.
    const tail = img.read(cut, size - cut);
    img.close();
    expect(tail.equals(Buffer.alloc(size - cut))).toBe(true);
    const after = contents(store, dir);
    for (const [n, c] of before) if (n !== 'vm3') expect(after.get(n)).toBe(c);
    clean();
  });

  it('bad arguments fail with their code and change nothing', () => {
    const meta = metadataDigest(store);
    expectCode(() => flattenImage(store, 'nope'), 'E_NOT_FOUND');
    expectCode(() => rebaseImage(store, 'nope', 'a'), 'E_NOT_FOUND');
    expectCode(() => rebaseImage(store, 'vm2', 'nope'), 'E_NOT_FOUND');
    expectCode(() => commitImage(store, 'nope'), 'E_NOT_FOUND');
    expectCode(() => resizeImage(store, 'nope', MiB), 'E_NOT_FOUND');
    expectCode(() => commitImage(store, 'b'), 'E_READONLY'); // frozen where a leaf is needed
    expectCode(() => resizeImage(store, 'a', 64 * MiB), 'E_READONLY');
    expectCode(() => rebaseImage(store, 'b', 'vm3@s1'), 'E_BAD_INPUT'); // vm3@s1 is below b: a loop
    expectCode(() => rebaseImage(store, 'b', 'b'), 'E_BAD_INPUT');
    expectCode(() => rebaseImage(store, 'vm2', 'vm1'), 'E_BAD_INPUT'); // vm1 is a writable leaf
    expectCode(() => resizeImage(store, 'vm1', MiB), 'E_BAD_INPUT'); // shrink without --shrink
    expectCode(() => commitImage(store, 'vm1'), 'E_BAD_INPUT'); // flattened: no parent
    cloneImage(store, 'vm3@s1', ['vm4']);
    const meta2 = metadataDigest(store);
    expectCode(() => commitImage(store, 'vm3'), 'E_HAS_CHILDREN'); // vm3@s1 now has vm4 too
    expect(metadataDigest(store)).toBe(meta2);
    expect(meta).not.toBe(meta2);
    clean();
  });

  it('every reshape refuses with E_BUSY while an affected image is open, and changes nothing', () => {
    const meta = metadataDigest(store);
    const open = openImage(store, 'vm2', { writable: true });
    try {
      expectCode(() => flattenImage(store, 'vm2'), 'E_BUSY');
      expectCode(() => rebaseImage(store, 'vm2', 'a'), 'E_BUSY');
      expectCode(() => resizeImage(store, 'vm2', 64 * MiB), 'E_BUSY');
      expectCode(() => flattenImage(store, 'b'), 'E_BUSY'); // vm2 reads through b
    } finally {
      open.close();
    }
    // Commit's busy case needs a parent with one child: see the next test.
    expect(metadataDigest(store)).toBe(meta);
  });

  it('commit refuses with E_BUSY while the parent is open', () => {
    snapshotImage(store, 'vm1', 's1');
    writeAt(store, 'vm1', 0, fill(5, 4096));
    const meta = metadataDigest(store);
    const p = openImage(store, 'vm1@s1');
    try {
      expectCode(() => commitImage(store, 'vm1', { force: true }), 'E_BUSY');
    } finally {
      p.close();
    }
    expect(metadataDigest(store)).toBe(meta);
    const before = contents(store, dir);
    expectCode(() => commitImage(store, 'vm1'), 'E_BAD_INPUT'); // vm1@s1 is a snapshot: never changed unasked
    expect(metadataDigest(store)).toBe(meta);
    commitImage(store, 'vm1', { force: true });
    expect(contents(store, dir).get('vm1')).toBe(before.get('vm1'));
    clean();
  });
});
