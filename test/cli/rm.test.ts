/**
 * rm lists what it removes, previews it with --dry-run, and gives the space
 * the removed images alone used back to the file system at once, except what
 * a live reader may still see (which gc returns once that reader ends).
 */
import crypto from 'node:crypto';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { ERROR_CODES } from '../../src/errors.js';
import { openImage } from '../../src/image/image.js';
import { nativeStatus } from '../../src/store/blocks/native.js';
import { openStore } from '../../src/store/core/store.js';
import { nativeAvailable } from '../helpers/available.js';
import { strata, strataOk } from '../helpers/cli.js';
import { tmpDir } from '../helpers/tmp.js';

const KiB = 1024;
const allocated = (store: string): number => JSON.parse(strataOk(store, ['stats', '--json']).stdout).dataFiles.allocatedBytes;
const names = (store: string): string[] => JSON.parse(strataOk(store, ['ls', '--json']).stdout).map((i: { name: string }) => i.name);

/** a (256 KiB of its own), its clone c (128 KiB of its own) and b (256 KiB) after them in the data file. */
function fixture(): string {
  const store = path.join(tmpDir(), 'st');
  strataOk(store, ['create', 'a', '--size', '1M']);
  strataOk(store, ['write', 'a'], { input: crypto.randomBytes(256 * KiB) });
  strataOk(store, ['freeze', 'a']);
  strataOk(store, ['clone', 'a', 'c']);
  strataOk(store, ['write', 'c', '--offset', '512K'], { input: crypto.randomBytes(128 * KiB) });
  strataOk(store, ['create', 'b', '--size', '1M']);
  strataOk(store, ['write', 'b'], { input: crypto.randomBytes(256 * KiB) });
  return store;
}

describe('rm', () => {
  it('-r --dry-run lists the subtree and the space it would free, and changes nothing', () => {
    const store = fixture();
    const before = strataOk(store, ['ls', '--json']).stdout;
    const r = strataOk(store, ['rm', '-r', 'a', '--dry-run']);
    expect(r.stdout).toBe('would remove c\nwould remove a\nwould free 384 KiB (393216 bytes)\n');
    expect(strataOk(store, ['ls', '--json']).stdout).toBe(before);
    const j = JSON.parse(strataOk(store, ['rm', '-r', 'a', '-n', '--json']).stdout);
    expect(j).toEqual({ dryRun: true, removed: ['c', 'a'], freedBytes: 393216 });
    // Without -r the dry run refuses exactly as rm does.
    const no = strata(store, ['rm', 'a', '--dry-run']);
    expect(no.status).toBe(ERROR_CODES.E_HAS_CHILDREN);
    expect(no.stderr).toBe('strata: image a has 1 child image(s) (c); remove them first or use -r\n');
  });

  it.skipIf(!nativeAvailable(nativeStatus()))('the space comes back to the file system at once, from the middle of the store too', () => {
    const store = fixture();
    const full = allocated(store);
    const r = strataOk(store, ['rm', '-r', 'a']);
    expect(r.stdout).toBe('removed c\nremoved a\nfreed 384 KiB (393216 bytes), returned to the file system\n');
    // a's and c's slots lie before b's: they were punched, not cut from the end.
    expect(allocated(store)).toBe(full - 393216);
    expect(names(store)).toEqual(['b']);
    expect(strataOk(store, ['check']).status).toBe(0);
    const j = JSON.parse(strataOk(store, ['rm', 'b', '--json']).stdout);
    expect(j).toEqual({ dryRun: false, removed: ['b'], freedBytes: 262144, reclaimedBytes: 262144, pinnedBytes: 0, punchSupported: true });
    expect(allocated(store)).toBe(0);
  });

  it('an image sharing all its blocks frees nothing and says so', () => {
    const store = fixture();
    strataOk(store, ['clone', 'a', 'd']);
    expect(strataOk(store, ['rm', 'd']).stdout).toBe('removed d\nfreed 0 B: no stored block was used by these images alone\n');
  });

  it('space a live reader may still see is kept, and named; gc returns it once the reader ends', async () => {
    const store = fixture();
    // A reader of leaf c pins its view: slots freed after it opened are neither reused nor punched.
    const s = await openStore(store, { create: false });
    const reader = openImage(s, 'c');
    try {
      const full = allocated(store);
      const r = strataOk(store, ['rm', 'b']);
      expect(r.stdout).toBe('removed b\nfreed 256 KiB (262144 bytes); 256 KiB still seen by a running reader (strata gc returns it once that reader ends)\n');
      expect(allocated(store)).toBe(full);
    } finally {
      reader.close();
      s.close();
    }
    const before = allocated(store);
    strataOk(store, ['gc']);
    expect(allocated(store)).toBe(before - 262144);
  });
});
