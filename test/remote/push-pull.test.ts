/**
 * Two stores ("hosts") share one bucket on a real Ceph RGW (no mock), and
 * again in a directory (file://): they
 * push images that share most blocks, the bucket holds each block once,
 * each pulls the other's image, fetching only what it lacks, and exports it
 * byte-identical.
 */
import fs from 'node:fs';
import path from 'node:path';
import { createHash } from 'node:crypto';
import { beforeEach, describe, expect, it } from 'vitest';
import type { Bucket } from '../../src/remote/bucket.js';
import { decodeIndex, decodePackTrailer } from '../../src/remote/objects/index-file.js';
import { strata, strataOk } from '../helpers/cli.js';
import { rng } from '../helpers/random.js';
import { REMOTE_KINDS, storesOn } from '../helpers/remotes.js';
import { tmpDir } from '../helpers/tmp.js';

const MiB = 1024 * 1024;
const SIZE = 16 * MiB;

/** Distinct non-zero 4 KiB blocks of the files, by SHA-256. */
function distinctBlocks(...files: string[]): Set<string> {
  const out = new Set<string>();
  const zero = Buffer.alloc(4096);
  for (const f of files) {
    const b = fs.readFileSync(f);
    for (let at = 0; at < b.length; at += 4096) {
      const blk = b.subarray(at, at + 4096);
      if (!blk.equals(zero)) out.add(createHash('sha256').update(blk).digest('hex'));
    }
  }
  return out;
}

async function bucketContents(bucket: Bucket): Promise<{ indexed: string[]; packed: string[]; packs: number; layers: number; manifests: number }> {
  const indexed: string[] = [];
  for (const o of await bucket.list('index/')) for (const p of decodeIndex(await bucket.get(o.key, 1 << 30), o.key)) indexed.push(p.digest.toString('hex'));
  const packs = await bucket.list('packs/');
  const packed: string[] = [];
  for (const o of packs) for (const p of decodePackTrailer(await bucket.get(o.key, 1 << 30), o.key)) packed.push(p.digest.toString('hex'));
  return { indexed, packed, packs: packs.length, layers: (await bucket.list('layers/')).length, manifests: (await bucket.list('manifests/')).length };
}

const json = (r: { stdout: string }) => JSON.parse(r.stdout);

describe.each(REMOTE_KINDS)('push and pull between two stores through $name', (kind) => {
  beforeEach((ctx) => {
    if (!kind.available()) ctx.skip();
  });

  it('each block once in the bucket; each store pulls the other image byte-identical, fetching only what it lacks', async () => {
    const dir = tmpDir();
    const r = rng(13);
    // Most of both images is one "distribution": text that compresses, some data that does not.
    const shared = Buffer.concat([r.text(6 * MiB), r.bytes(2 * MiB)]);
    const imgA = Buffer.alloc(SIZE);
    shared.copy(imgA);
    r.text(512 * 1024).copy(imgA, 1 * MiB); // A's own changes
    r.text(512 * 1024).copy(imgA, 10 * MiB);
    imgA.copy(imgA, 12 * MiB, 0, 64 * 1024); // blocks repeated within the image
    const imgB = Buffer.alloc(SIZE);
    shared.copy(imgB);
    r.bytes(256 * 1024).copy(imgB, 3 * MiB); // B's own changes
    r.text(256 * 1024).copy(imgB, 9 * MiB);
    const files = { a: path.join(dir, 'a.raw'), b: path.join(dir, 'b.raw') };
    fs.writeFileSync(files.a, imgA);
    fs.writeFileSync(files.b, imgB);

    const A = path.join(dir, 'A');
    const B = path.join(dir, 'B');
    const remote = kind.fresh('pushpull');
    for (const [s, name, file] of [[A, 'deb-a', files.a], [B, 'deb-b', files.b]] as const) {
      strataOk(s, ['init']);
      strataOk(s, ['create', name, '--from', file]);
      strataOk(s, ['remote', 'add', 'fleet', ...remote.addArgs]);
    }

    // Small packs, so a push makes several and a pull's ranges span more than one.
    const pa = json(strataOk(A, ['--json', 'push', 'deb-a', 'fleet', '--pack-size', '1M']));
    const distinctA = distinctBlocks(files.a);
    expect(pa.blocks).toBe(distinctA.size + 16); // the 64 KiB repeated: in the map twice, uploaded once
    expect(pa.newBlocks).toBe(distinctA.size);
    expect(pa.packs).toBeGreaterThan(2);
    // The text compresses: what went up is well under the data.
    expect(pa.uploadedBytes).toBeLessThan(distinctA.size * 4096 * 0.7);

    const pb = json(strataOk(B, ['--json', 'push', 'deb-b', 'fleet', '--pack-size', '1M']));
    const onlyB = [...distinctBlocks(files.b)].filter((d) => !distinctA.has(d));
    expect(pb.newBlocks).toBe(onlyB.length);
    expect(pb.indexesRead).toBe(1);

    const bucket = remote.open();
    try {
      const c = await bucketContents(bucket);
      const all = distinctBlocks(files.a, files.b);
      expect(new Set(c.indexed).size).toBe(c.indexed.length);
      expect(new Set(c.indexed)).toEqual(all);
      expect(c.packed.length).toBe(all.size); // no block in two packs
      expect(c.layers).toBe(2);
      expect(c.manifests).toBe(2);
    } finally {
      bucket.close();
    }

    const ls = json(strataOk(A, ['--json', 'remote', 'ls', 'fleet']));
    expect(ls.images.map((i: { name: string }) => i.name)).toEqual(['deb-a', 'deb-b']);

    // Each pulls the other's image: only the blocks it lacks come over the wire.
    const ua = json(strataOk(A, ['--json', 'pull', 'fleet/deb-b']));
    expect(ua.fetchedBlocks).toBe(onlyB.length);
    expect(ua.localBlocks).toBe(pb.blocks - onlyB.length);
    expect(ua.gets).toBeLessThan(onlyB.length / 8); // neighbours coalesced
    const ub = json(strataOk(B, ['--json', 'pull', 'fleet/deb-a']));
    const distinctB = distinctBlocks(files.b);
    const onlyA = [...distinctA].filter((d) => !distinctB.has(d));
    expect(ub.fetchedBlocks).toBe(onlyA.length);

    for (const [s, name, want] of [[A, 'deb-b', imgB], [B, 'deb-a', imgA]] as const) {
      const out = path.join(dir, `${path.basename(s)}-${name}.raw`);
      strataOk(s, ['export', name, out]);
      expect(fs.readFileSync(out).equals(want), `${s} ${name}`).toBe(true);
      expect(json(strataOk(s, ['--json', 'check'])).errors ?? []).toEqual([]);
    }

    // A pulled image is the layer it came from: pushing it back uploads nothing.
    const again = json(strataOk(A, ['--json', 'push', 'deb-b', 'fleet']));
    expect(again.newBlocks).toBe(0);
    expect(again.layers[0].uploaded).toBe(false);
    // And pulling what is already here fetches nothing.
    const noop = json(strataOk(B, ['--json', 'pull', 'fleet/deb-a']));
    expect(noop.layers[0].reused).toBe(true);
    expect(noop.fetchedBlocks).toBe(0);
  });

  it('pulls a chain (base and layer) and checks every block against its digest', async () => {
    const dir = tmpDir();
    const r = rng(7);
    const base = Buffer.alloc(8 * MiB);
    r.text(4 * MiB).copy(base);
    const app = Buffer.from(base);
    r.text(1 * MiB).copy(app, 5 * MiB);
    app.fill(0, 0, 64 * 1024); // zeros over the base's data: a zero run in the layer
    const files = { base: path.join(dir, 'base.raw'), app: path.join(dir, 'app.raw') };
    fs.writeFileSync(files.base, base);
    fs.writeFileSync(files.app, app);
    const A = path.join(dir, 'A');
    const B = path.join(dir, 'B');
    const C = path.join(dir, 'C');
    const remote = kind.fresh('chain');
    storesOn([A, B, C], remote);
    strataOk(A, ['create', 'base', '--from', files.base]);
    strataOk(A, ['import', files.app, 'app', '--parent', 'base']);
    const pushed = json(strataOk(A, ['--json', 'push', 'app', 'fleet']));
    expect(pushed.layers.map((l: { name: string }) => l.name)).toEqual(['base', 'app']);

    const pulled = json(strataOk(B, ['--json', 'pull', 'fleet/app']));
    expect(pulled.layers.map((l: { name: string; reused: boolean }) => [l.name, l.reused])).toEqual([['base', false], ['app', false]]);
    const info = json(strataOk(B, ['--json', 'info', 'app']));
    expect(info.parent).toBe('base');
    const out = path.join(dir, 'b-app.raw');
    strataOk(B, ['export', 'app', out]);
    expect(fs.readFileSync(out).equals(app)).toBe(true);

    // A damaged pack: the block whose bytes no longer match its digest is refused, nothing is imported.
    const bucket = remote.open();
    try {
      for (const o of await bucket.list('packs/')) {
        const body = await bucket.get(o.key, 1 << 30);
        const first = decodePackTrailer(body, o.key)[0];
        body[first.offset + Math.floor(first.length / 2)] ^= 0xff;
        await bucket.put(o.key, body);
      }
    } finally {
      bucket.close();
    }
    const bad = strata(C, ['--json', 'pull', 'fleet/app']);
    expect(bad.status).toBe(8);
    expect(JSON.parse(bad.stderr).error).toBe('E_CORRUPT');
    expect(json(strataOk(C, ['--json', 'ls']))).toEqual([]);
  });
});
