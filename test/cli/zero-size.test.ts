/**
 * A zero-length image is a valid image, as in qemu: created, imported from an
 * empty file, exported, read, resized and served with size 0. Negative and
 * fractional sizes stay refused.
 */
import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { ERROR_CODES } from '../../src/errors.js';
import { strata, strataOk } from '../helpers/cli.js';
import { startServe } from '../helpers/serve.js';
import { requireTool, runOk } from '../helpers/tools.js';
import { tmpDir } from '../helpers/tmp.js';

describe('zero-length images', () => {
  it('create, import, read, export (raw and qcow2), resize, check', () => {
    const dir = tmpDir();
    const store = path.join(dir, 'st');
    expect(strataOk(store, ['create', 'z', '--size', '0']).stdout).toBe('created leaf z (0 B)\n');
    fs.writeFileSync(path.join(dir, 'empty.raw'), '');
    strataOk(store, ['import', path.join(dir, 'empty.raw'), 'e']);
    expect(JSON.parse(strataOk(store, ['info', 'e', '--json']).stdout).virtualSize).toBe(0);
    expect(strataOk(store, ['read', 'z']).out.length).toBe(0);
    strataOk(store, ['export', 'e', path.join(dir, 'e.out')]);
    expect(fs.statSync(path.join(dir, 'e.out')).size).toBe(0);
    strataOk(store, ['export', 'z', path.join(dir, 'z.qcow2'), '--format', 'qcow2']);
    strataOk(store, ['import', path.join(dir, 'z.qcow2'), 'zq']);
    expect(JSON.parse(strataOk(store, ['info', 'zq', '--json']).stdout).virtualSize).toBe(0);
    strataOk(store, ['resize', 'z', '4K']);
    strataOk(store, ['resize', 'z', '0', '--shrink']);
    expect(JSON.parse(strataOk(store, ['info', 'z', '--json']).stdout).virtualSize).toBe(0);
    expect(strataOk(store, ['check']).status).toBe(0);
    for (const bad of ['-1', '1.5']) expect(strata(store, ['create', 'n', '--size', bad]).status).toBe(ERROR_CODES.E_BAD_INPUT);
  });

  it.skipIf(!requireTool('qemu-img') || !requireTool('nbdinfo'))('qemu-img reads strata\'s empty qcow2, and nbdinfo sees size 0 over NBD', async () => {
    const dir = tmpDir();
    const store = path.join(dir, 'st');
    strataOk(store, ['create', 'z', '--size', '0']);
    strataOk(store, ['export', 'z', path.join(dir, 'z.qcow2'), '--format', 'qcow2']);
    await runOk('qemu-img', ['check', path.join(dir, 'z.qcow2')]);
    expect(JSON.parse((await runOk('qemu-img', ['info', '--output=json', path.join(dir, 'z.qcow2')])).stdout)['virtual-size']).toBe(0);
    const srv = await startServe(store, ['z']);
    try {
      const info = JSON.parse((await runOk('nbdinfo', ['--json', srv.uri('z')])).stdout);
      expect(info.exports[0]['export-size']).toBe(0);
    } finally {
      await srv.stop();
    }
  });
});
