/**
 * Bytes past an image's end, inside its last partial block, must read zero
 * once anything makes them visible: a grow, or a larger layer over it. The
 * block a leaf reads there may be inherited whole from a larger parent (a
 * qcow2 overlay smaller than its backing file, imported over it), or its own
 * copy of such a block after a write into it; either way the parent's bytes
 * past the leaf's end are still in the slot.
 *
 * qemu-img makes the overlays and is the oracle for the layered case.
 */
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { createImage, freezeImage } from '../../src/image/lifecycle.js';
import { openImage } from '../../src/image/image.js';
import { insertImage } from '../../src/store/images/catalog.js';
import { openStore } from '../../src/store/core/store.js';
import type { ImageName } from '../../src/store/core/types.js';
import { strataOk } from '../helpers/cli.js';
import { requireTool } from '../helpers/tools.js';
import { tmpDir } from '../helpers/tmp.js';

const haveQemu = requireTool('qemu-img');
const AA = Buffer.alloc(8192, 0xaa);

function q(args: string[], cwd: string): void {
  execFileSync('qemu-img', args, { cwd, stdio: 'ignore' });
}

/** P.qcow2: 8 KiB of 0xaa; small.qcow2: a 5120-byte overlay of it with nothing of its own. */
function overlays(dir: string): void {
  fs.writeFileSync(path.join(dir, 'aa.raw'), AA);
  q(['convert', '-f', 'raw', '-O', 'qcow2', 'aa.raw', 'P.qcow2'], dir);
  q(['create', '-q', '-f', 'qcow2', '-b', 'P.qcow2', '-F', 'qcow2', 'small.qcow2', '5120'], dir);
}

describe('growing over an inherited partial last block', () => {
  it('shrink into a block, then grow: the cut bytes read zero', () => {
    const dir = tmpDir();
    const store = path.join(dir, 'st');
    fs.writeFileSync(path.join(dir, 'aa.raw'), AA);
    strataOk(store, ['create', 'P', '--from', path.join(dir, 'aa.raw')]);
    strataOk(store, ['clone', 'P', 'L']);
    strataOk(store, ['resize', 'L', '5000', '--shrink']);
    strataOk(store, ['resize', 'L', '8192']);
    const got = strataOk(store, ['read', 'L']).out;
    expect(got.subarray(0, 5000).equals(AA.subarray(0, 5000))).toBe(true);
    expect(got.subarray(5000).equals(Buffer.alloc(8192 - 5000))).toBe(true);
  });

  it('leaves an older strata left over a larger parent, inheriting their last block whole: a grow reads zeros past the old end', async () => {
    const dir = tmpDir();
    const store = path.join(dir, 'st');
    const st = await openStore(store);
    try {
      createImage(st, 'P', 8192);
      const p = openImage(st, 'P', { writable: true });
      p.write(0, AA);
      p.close();
      const parent = freezeImage(st, 'P');
      // What importing a 5120-byte qcow2 overlay with no clusters of its own over P used to leave.
      for (const name of ['L', 'M']) st.write((tx) => insertImage(tx, { name: name as ImageName, kind: 'leaf', parentId: parent.id, virtualSize: 5120 }));
    } finally {
      st.close();
    }
    // M writes into its last block first: its own copy keeps P's bytes past 5120.
    strataOk(store, ['write', 'M', '--offset', '4200'], { input: Buffer.alloc(100, 0x33) });
    const want = Buffer.concat([AA.subarray(0, 5120), Buffer.alloc(8192 - 5120)]);
    const wantM = Buffer.from(want).fill(0x33, 4200, 4300);
    for (const [name, w] of [['L', want], ['M', wantM]] as const) {
      strataOk(store, ['resize', name, '8192']);
      const got = strataOk(store, ['read', name]).out;
      expect(got.subarray(5120).equals(Buffer.alloc(8192 - 5120)), `${name} past its old end`).toBe(true);
      expect(got.equals(w), name).toBe(true);
    }
    expect(strataOk(store, ['read', 'P']).out.equals(AA)).toBe(true);
    expect(strataOk(store, ['check']).status).toBe(0);
  });

  it.skipIf(!haveQemu)('a leaf smaller than its parent, grown without a shrink: the parent bytes past its old end read zero', () => {
    const dir = tmpDir();
    const store = path.join(dir, 'st');
    overlays(dir);
    strataOk(store, ['create', 'P', '--from', path.join(dir, 'P.qcow2')]);
    // L inherits its last block whole; M writes into it first, so its own copy holds the parent's tail.
    strataOk(store, ['import', '--parent', 'P', '--writable', path.join(dir, 'small.qcow2'), 'L']);
    strataOk(store, ['import', '--parent', 'P', '--writable', path.join(dir, 'small.qcow2'), 'M']);
    strataOk(store, ['write', 'M', '--offset', '4200'], { input: Buffer.alloc(100, 0x33) });
    const want = Buffer.concat([AA.subarray(0, 5120), Buffer.alloc(8192 - 5120)]);
    expect(strataOk(store, ['read', 'L']).out.equals(want.subarray(0, 5120))).toBe(true);
    for (const name of ['L', 'M']) {
      strataOk(store, ['resize', name, '8192']);
      const got = strataOk(store, ['read', name]).out;
      expect(got.length).toBe(8192);
      expect(got.subarray(5120).equals(Buffer.alloc(8192 - 5120)), `${name} past its old end`).toBe(true);
    }
    expect(strataOk(store, ['read', 'L']).out.equals(want)).toBe(true);
    want.fill(0x33, 4200, 4300);
    expect(strataOk(store, ['read', 'M']).out.equals(want)).toBe(true);
    // The parent is untouched.
    expect(strataOk(store, ['read', 'P']).out.equals(AA)).toBe(true);
    expect(strataOk(store, ['check']).status).toBe(0);
  });

  it.skipIf(!haveQemu)('a larger qcow2 layer over a smaller one reads zeros past the smaller one\'s end, as qemu does', () => {
    const dir = tmpDir();
    const store = path.join(dir, 'st');
    overlays(dir);
    q(['create', '-q', '-f', 'qcow2', '-b', 'small.qcow2', '-F', 'qcow2', 'top.qcow2', '8192'], dir);
    q(['convert', '-O', 'raw', 'top.qcow2', 'top.raw'], dir);
    const want = fs.readFileSync(path.join(dir, 'top.raw'));
    expect(want.subarray(5120).equals(Buffer.alloc(8192 - 5120))).toBe(true);
    strataOk(store, ['import', path.join(dir, 'top.qcow2'), 'top', '--with-backing']);
    expect(strataOk(store, ['read', 'top']).out.equals(want)).toBe(true);
    expect(strataOk(store, ['check']).status).toBe(0);
  });
});
