/**
 * Commands started at the same moment on a store that does not exist yet
 * (a fleet of hosts provisioning one shared volume, a script that runs
 * several strata commands in parallel): each creates or opens the store, and
 * exactly one of them may run the schema migration. All of them succeed.
 */
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { strataAsync, strataOk } from '../helpers/cli.js';
import { tmpDir } from '../helpers/tmp.js';

const PROCS = 6;
const ROUNDS = 4;

const cli = (store: string, args: string[]) => strataAsync(store, args);

describe('racing on a new store', () => {
  it(`${PROCS} processes (init and create) on a fresh store path, ${ROUNDS} rounds: all exit 0, the store works`, async () => {
    const dir = tmpDir();
    for (let round = 0; round < ROUNDS; round++) {
      const store = path.join(dir, `st${round}`);
      const runs = await Promise.all(Array.from({ length: PROCS }, (_, i) => cli(store, i % 2 === 0 ? ['init'] : ['create', `img${i}`, '--size', '1M'])));
      const failed = runs.filter((r) => r.status !== 0).map((r) => `exit ${r.status}: ${r.err.trim()}`);
      expect(failed, `round ${round}`).toEqual([]);
      strataOk(store, ['create', 'a', '--size', '64K']);
      strataOk(store, ['write', 'a'], { input: Buffer.alloc(4096, 7) });
      expect(strataOk(store, ['read', 'a', '--length', '4096']).out.equals(Buffer.alloc(4096, 7))).toBe(true);
      expect(strataOk(store, ['check']).status).toBe(0);
    }
  });
});
