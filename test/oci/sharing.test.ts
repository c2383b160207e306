/**
 * Layers shared by chain ID, blocks shared by content, and two imports
 * racing for the same base in two real processes.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { strata, strataAsync, strataOk } from '../helpers/cli.js';
import { bytes, ociImage, type Entry } from '../helpers/oci.js';
import { requireTool } from '../helpers/tools.js';
import { liveSlotCount } from '../helpers/slots.js';
import { faultChannel } from '../helpers/fault.js';

const slots = liveSlotCount;

/** A base of a few MiB of files, as a distribution's first layer is. */
const BASE: Entry[] = [
  { type: 'dir', name: 'usr/' },
  { type: 'dir', name: 'usr/lib/' },
  ...Array.from({ length: 24 }, (_, i) => ({ type: 'file' as const, name: `usr/lib/lib${i}.so`, data: bytes(`lib${i}`, 100_000 + i * 1000), mode: 0o755 })),
];
const APP_A: Entry[] = [{ type: 'dir', name: 'app/' }, { type: 'file', name: 'app/a.bin', data: bytes('app-a', 400_000) }];
const APP_B: Entry[] = [{ type: 'dir', name: 'app/' }, { type: 'file', name: 'app/b.bin', data: bytes('app-b', 300_000) }];

describe.skipIf(!requireTool('umoci'))('sharing between container images', () => {
  let work: string;
  let layout: string;

  beforeAll(() => {
    work = fs.mkdtempSync(path.join(os.tmpdir(), 'strata-oci-sharing-'));
    layout = path.join(work, 'oci');
    ociImage(layout, 'a', [BASE, APP_A], work);
    ociImage(layout, 'b', [BASE, APP_B], work);
    // The same files, but in one layer each and in another order: no chain ID in common.
    ociImage(layout, 'flat-a', [[...APP_A, ...BASE.slice().reverse()]], work);
  });
  afterAll(() => fs.rmSync(work, { recursive: true, force: true }));

  it('a second image on the same base reuses its strata layer and stores only its own blocks', () => {
    const store = path.join(work, 's1');
    strataOk(store, ['import', `oci:${layout}:a`, 'a']);
    const afterA = slots(store);
    strataOk(store, ['import', `oci:${layout}:b`, 'b']);
    const afterB = slots(store);
    const chainA = JSON.parse(strataOk(store, ['--json', 'info', 'a']).stdout).chain as string[];
    const chainB = JSON.parse(strataOk(store, ['--json', 'info', 'b']).stdout).chain as string[];
    // Same base layer (by chain ID), different top layers.
    expect(chainB[2]).toBe(chainA[2]);
    expect(chainB[1]).not.toBe(chainA[1]);
    const tree = strataOk(store, ['tree']).stdout;
    expect(tree.split('\n').filter((l) => l.includes(chainA[2]))).toHaveLength(1);
    // b's own blocks: its 300 KB file (74 blocks) and the metadata blocks the file system changed.
    const added = afterB - afterA;
    expect(added).toBeGreaterThanOrEqual(74);
    expect(added).toBeLessThan(74 + 40);
    expect(strata(store, ['check']).status).toBe(0);
  });

  it('images built separately from overlapping trees share their common file blocks', () => {
    const store = path.join(work, 's2');
    strataOk(store, ['import', `oci:${layout}:a`, 'a']);
    const afterA = slots(store);
    strataOk(store, ['import', `oci:${layout}:flat-a`, 'flat-a']);
    const chainFlat = JSON.parse(strataOk(store, ['--json', 'info', 'flat-a']).stdout).chain as string[];
    expect(chainFlat).toHaveLength(2);
    // Every file is already stored: only the new file system's metadata blocks are new.
    expect(slots(store) - afterA).toBeLessThan(40);
    expect(strata(store, ['check']).status).toBe(0);
  });

  it('two concurrent imports of images sharing a base converge on one base layer', async () => {
    const store = path.join(work, 's3');
    strataOk(store, ['init']);
    const [ra, rb] = await Promise.all([strataAsync(store, ['import', `oci:${layout}:a`, 'a']), strataAsync(store, ['import', `oci:${layout}:b`, 'b'])]);
    expect(ra.err).toBe('');
    expect(rb.err).toBe('');
    expect([ra.status, rb.status]).toEqual([0, 0]);
    const ls = JSON.parse(strataOk(store, ['--json', 'ls']).stdout) as { name: string; parent: string | null }[];
    // a, b, their two top layers and one base: no duplicate layer, no leftover.
    expect(ls.map((i) => i.name).sort()).toHaveLength(5);
    expect(ls.filter((i) => i.parent === null)).toHaveLength(1);
    const check = strata(store, ['check']);
    expect(check.status).toBe(0);
    // Both read their own files over the shared base.
    const base = ls.find((i) => i.parent === null)!.name;
    expect(JSON.parse(strataOk(store, ['--json', 'info', 'a']).stdout).chain[2]).toBe(base);
    expect(JSON.parse(strataOk(store, ['--json', 'info', 'b']).stdout).chain[2]).toBe(base);
  });

  it('an import held after building the shared base, while the other makes and names it: both finish over one base', async () => {
    // Deterministic form of the race above. a is held with its copy of the base built but not yet
    // named; b must not be refused as a rival (the base's name comes from its content), names the
    // base first, and a then goes on over b's.
    const store = path.join(work, 's4');
    strataOk(store, ['init']);
    const fault = faultChannel();
    const a = strataAsync(store, ['import', `oci:${layout}:a`, 'a'], { env: fault.env('import.after-flush') });
    await fault.reached('import.after-flush', { exited: a });
    const b = await strataAsync(store, ['import', `oci:${layout}:b`, 'b']);
    expect(b.err).toBe('');
    expect(b.status).toBe(0);
    fault.release();
    const ra = await a;
    expect(ra.err).toBe('');
    expect(ra.status).toBe(0);
    const ls = JSON.parse(strataOk(store, ['--json', 'ls']).stdout) as { name: string; parent: string | null }[];
    expect(ls.map((i) => i.name).sort()).toHaveLength(5);
    expect(ls.filter((i) => i.parent === null)).toHaveLength(1);
    expect(strata(store, ['check']).status).toBe(0);
  });
});
