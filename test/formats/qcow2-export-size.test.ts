/**
 * qcow2 export of an image whose size is not a multiple of 512. QEMU counts
 * a qcow2 file's size in 512-byte sectors and rounds the header's size down,
 * so an exact odd size would lose the image's last bytes. strata rounds up,
 * like qemu-img create, pads with zeros, and says so.
 */
import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { strataOk } from '../helpers/cli.js';
import { tmpDir } from '../helpers/tmp.js';
import { hasQemu, qemuImg, qemuImgStatus } from './qcow2-helpers.js';

const SIZE = 1_000_000;
const ROUNDED = Math.ceil(SIZE / 512) * 512; // 1_000_448

describe.skipIf(!hasQemu)('qcow2 export of a size that is not a multiple of 512', () => {
  it('the file has the size rounded up to 512; qemu-img reads every byte, then zeros; check is clean', () => {
    const dir = tmpDir();
    const store = path.join(dir, 'st');
    strataOk(store, ['create', 'odd', '--size', String(SIZE)]);
    strataOk(store, ['write', 'odd'], { input: Buffer.alloc(4096, 0x11) });
    const tail = Buffer.alloc(1000);
    for (let i = 0; i < tail.length; i++) tail[i] = 1 + (i % 251);
    strataOk(store, ['write', 'odd', '--offset', String(SIZE - tail.length)], { input: tail });
    const content = strataOk(store, ['read', 'odd']).out;
    expect(content.length).toBe(SIZE);

    for (const opts of [[], ['--compress', '--cluster-size', '512']]) {
      const out = path.join(dir, `odd${opts.length}.qcow2`);
      const r = strataOk(store, ['export', 'odd', out, '--format', 'qcow2', ...opts]);

      expect(JSON.parse(qemuImg('info', '--output=json', out))['virtual-size']).toBe(ROUNDED);
      const check = qemuImgStatus('check', out);
      expect(check.out).toMatch(/No errors/);
      expect(check.status).toBe(0);
      const raw = path.join(dir, 'back.raw');
      qemuImg('convert', '-f', 'qcow2', '-O', 'raw', out, raw);
      const back = fs.readFileSync(raw);
      expect(back.length).toBe(ROUNDED);
      expect(back.subarray(0, SIZE).equals(content)).toBe(true);
      expect(back.subarray(SIZE).equals(Buffer.alloc(ROUNDED - SIZE))).toBe(true);
      expect(r.stderr).toBe(`strata: warning: qcow2 sizes are whole 512-byte sectors: ${out} has a virtual size of ${ROUNDED} bytes, the last ${ROUNDED - SIZE} reading as zeros\n`);
    }

    const json = JSON.parse(strataOk(store, ['--json', 'export', 'odd', path.join(dir, 'j.qcow2'), '--format', 'qcow2']).stdout);
    expect(json).toMatchObject({ size: SIZE, fileVirtualSize: ROUNDED });
  });
});
