import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { strataOk } from '../helpers/cli.js';
import { tmpDir } from '../helpers/tmp.js';

const addonBuilt = fs.existsSync(path.resolve('native/build/Release/strata_native.node'));

describe('strata info without a name describes the store', () => {
  it('says which of the native addon and the fallback is in use', () => {
    const store = tmpDir();
    strataOk(store, ['create', 'a', '--size', '1M']);
    const info = JSON.parse(strataOk(store, ['info', '--json']).stdout);
    expect(info).toMatchObject({ store, schemaVersion: 6, images: 1, distinctBlocks: 0, distinctBytes: 0, storedBytes: 0 });
    expect(info.native.mode).toBe(addonBuilt ? 'native' : 'fallback');
    expect(info.leases).toBe(addonBuilt ? 'ofd-lock' : 'pid');
    const forced = JSON.parse(strataOk(store, ['info', '--json'], { env: { STRATA_NO_NATIVE: '1' } }).stdout);
    expect(forced.native).toEqual({ mode: 'fallback', reason: 'disabled by STRATA_NO_NATIVE=1' });
    expect(forced.leases).toBe('pid');
    expect(strataOk(store, ['info']).stdout).toMatch(addonBuilt ? /native addon:\s+in use/ : /native addon:\s+fallback/);
  });
});
