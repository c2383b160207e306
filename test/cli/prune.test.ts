/**
 * Prune, as `docker image prune` after `docker rmi`: rm says what it left
 * that no name leads to any more (container layers, snapshots of removed
 * images) and how much they hold; `prune -n` lists them and changes nothing;
 * `prune` removes exactly those and returns their space, never a leaf, a
 * named image, a snapshot whose image exists, or an image a server holds.
 */
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { strata, strataOk } from '../helpers/cli.js';
import { bytes, ociImage, type Entry } from '../helpers/oci.js';
import { startServe } from '../helpers/serve.js';
import { liveSlotCount } from '../helpers/slots.js';
import { requireTool } from '../helpers/tools.js';
import { tmpDir } from '../helpers/tmp.js';

const KiB = 1024;
const names = (store: string) => (JSON.parse(strataOk(store, ['ls', '--json']).stdout) as { name: string }[]).map((i) => i.name);
const json = (store: string, args: string[]) => JSON.parse(strataOk(store, ['--json', ...args]).stdout);
const slots = liveSlotCount;
function expectClean(store: string): void {
  const r = strata(store, ['check']);
  expect(r.status, r.stdout + r.stderr).toBe(0);
}

const BASE: Entry[] = [
  { type: 'dir', name: 'usr/' },
  ...Array.from({ length: 6 }, (_, i) => ({ type: 'file' as const, name: `usr/lib${i}.so`, data: bytes(`prune-lib${i}`, 100_000), mode: 0o755 })),
];
const APP_A: Entry[] = [{ type: 'dir', name: 'app/' }, { type: 'file', name: 'app/a.bin', data: bytes('prune-a', 200_000) }];
const APP_B: Entry[] = [{ type: 'dir', name: 'app/' }, { type: 'file', name: 'app/b.bin', data: bytes('prune-b', 150_000) }];

describe.skipIf(!requireTool('umoci'))('container layers left by rm', () => {
  let work: string;
  let layout: string;
  beforeAll(() => {
    work = fs.mkdtempSync(path.join(os.tmpdir(), 'strata-prune-'));
    layout = path.join(work, 'oci');
    ociImage(layout, 'a', [BASE, APP_A], work);
    ociImage(layout, 'b', [BASE, APP_B], work);
  });
  afterAll(() => fs.rmSync(work, { recursive: true, force: true }));

  it('rm names the layers it leaves and their size; prune -n lists them; prune removes them and frees exactly that', () => {
    const store = path.join(work, 's');
    strataOk(store, ['import', `oci:${layout}:a`, 'a']);
    strataOk(store, ['import', `oci:${layout}:b`, 'b']);
    const [, topA, base] = json(store, ['info', 'a']).chain as string[];
    const topB = (json(store, ['info', 'b']).chain as string[])[1];

    // a's own layer is left; the base layer b still stands on is not.
    const rmA = strataOk(store, ['rm', 'a']);
    const leftA = rmA.stdout.split('\n').at(-2)!;
    expect(leftA).toMatch(/^1 container layer, [\d.]+ KiB, no longer used: strata prune$/);
    const rmB = json(store, ['rm', 'b']);
    expect(rmB.unused.images).toEqual([
      { name: topB, kind: 'container layer' },
      { name: base, kind: 'container layer' },
    ]);
    const ls = strataOk(store, ['ls', '--json']).stdout;

    const dry = strataOk(store, ['prune', '-n']).stdout.split('\n');
    expect(dry.slice(0, 3).sort()).toEqual([topA, topB, base].map((n) => `would remove ${n} (container layer: no container image uses it)`).sort());
    expect(dry[3]).toMatch(/^would remove 3 container layers and free [\d.]+ [KM]iB \(\d+ bytes\)$/);
    expect(strataOk(store, ['ls', '--json']).stdout).toBe(ls);

    const before = slots(store);
    const pruned = json(store, ['prune']);
    expect(pruned.pruned.map((p: { name: string }) => p.name).sort()).toEqual([topA, topB, base].sort());
    // Nothing else used those layers' blocks: every slot comes back, and it is the figure prune -n gave.
    expect(pruned.freedBytes).toBe(before * 4 * KiB);
    expect(pruned.reclaimedBytes).toBe(pruned.freedBytes);
    expect(Number(/\((\d+) bytes\)/.exec(dry[3])![1])).toBe(pruned.freedBytes);
    expect(slots(store)).toBe(0);
    expect(names(store)).toEqual([]);
    expect(strataOk(store, ['prune']).stdout).toBe('nothing to prune: a name leads to every image\n');
    expectClean(store);
  });
});

describe('prune keeps what a name or a process leads to', () => {
  it('a snapshot of a removed image goes only once nothing stands on it and no server holds it', async () => {
    const store = tmpDir();
    strataOk(store, ['create', 'golden', '--size', '64K']);
    strataOk(store, ['write', 'golden'], { input: Buffer.alloc(64 * KiB, 7) });
    strataOk(store, ['freeze', 'golden']);
    strataOk(store, ['clone', 'golden', 'vm']);
    strataOk(store, ['write', 'vm'], { input: Buffer.alloc(8 * KiB, 8) });
    strataOk(store, ['snapshot', 'vm']);
    strataOk(store, ['create', 't1', '--size', '64K']);
    strataOk(store, ['write', 't1'], { input: randomBytes(16 * KiB) });
    strataOk(store, ['snapshot', 't1']);
    strataOk(store, ['clone', 't1@snap1', 'c1']);
    expect(strataOk(store, ['rm', 't1']).stdout).toBe('removed t1\nkept t1@snap1: c1 stands on it\nfreed 0 B: no stored block was used by these images alone\n');
    expect(strataOk(store, ['prune']).stdout).toBe('nothing to prune: a name leads to every image\n');
    expect(strataOk(store, ['rm', 'c1']).stdout).toBe('removed c1\nfreed 0 B: no stored block was used by these images alone\n1 snapshot, 16 KiB, no longer used: strata prune\n');

    const srv = await startServe(store, ['t1@snap1']);
    try {
      expect(strataOk(store, ['prune', '-n']).stdout).toBe('nothing to prune: a name leads to every image\n');
      expect(json(store, ['prune']).pruned).toEqual([]);
    } finally {
      await srv.stop();
    }
    expect(strataOk(store, ['prune']).stdout).toBe('removed t1@snap1 (snapshot: its image t1 is gone)\nremoved 1 snapshot; freed 16 KiB (16384 bytes), returned to the file system\n');
    expect(names(store)).toEqual(['golden', 'vm', 'vm@snap1']);
    expect(strataOk(store, ['read', 'vm', '--length', '8K']).out.equals(Buffer.alloc(8 * KiB, 8))).toBe(true);
    expectClean(store);
  });

  it('rm keeps a snapshot a server exports, and says so; prune takes it once the server is gone', async () => {
    const store = tmpDir();
    strataOk(store, ['create', 'vm', '--size', '16K']);
    strataOk(store, ['write', 'vm'], { input: randomBytes(16 * KiB) });
    strataOk(store, ['snapshot', 'vm']);
    const srv = await startServe(store, ['vm@snap1']);
    try {
      expect(strataOk(store, ['rm', 'vm']).stdout).toMatch(/^removed vm\nkept vm@snap1: open by process \d+\nfreed 0 B: no stored block was used by these images alone\n$/);
      expect(strataOk(store, ['prune']).stdout).toBe('nothing to prune: a name leads to every image\n');
    } finally {
      await srv.stop();
    }
    expect(strataOk(store, ['prune']).stdout).toBe('removed vm@snap1 (snapshot: its image vm is gone)\nremoved 1 snapshot; freed 16 KiB (16384 bytes), returned to the file system\n');
    expect(names(store)).toEqual([]);
    expectClean(store);
  });
});
