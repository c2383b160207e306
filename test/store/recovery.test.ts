/**
 * An import killed after it has committed data leaves a hidden image; the
 * next command drops it and frees its slots, so the store holds exactly what
 * it held before the import.
 */
import fs from 'node:fs';
import path from 'node:path';
import Database from 'better-sqlite3';
import { describe, expect, it } from 'vitest';
import { strata, strataOk } from '../helpers/cli.js';
import { tmpDir } from '../helpers/tmp.js';
import { liveSlots } from '../helpers/slots.js';

describe('recovery of an interrupted import', () => {
  it('the next command drops the hidden image and frees its slots', () => {
    const dir = tmpDir();
    const store = path.join(dir, 'st');
    strataOk(store, ['create', 'keep', '--size', '1M']);
    strataOk(store, ['write', 'keep'], { input: Buffer.alloc(8192, 3) });
    const raw = path.join(dir, 'in.raw');
    const data = Buffer.alloc(4 * 1024 * 1024);
    for (let i = 0; i < data.length; i += 4) data.writeUInt32LE((i * 2654435761) >>> 0, i);
    fs.writeFileSync(raw, data);

    // Killed once its data is committed under the hidden name, before the rename.
    const r = strata(store, ['import', raw, 'big'], { env: { STRATA_FAULT: 'import.before-rename-commit' } });
    expect(r.status, 'killed at its fault point: a signal, no exit status').toBe(-1);
    const peek = () => {
      const db = new Database(path.join(store, 'strata.db'), { readonly: true });
      try {
        return {
          names: db.prepare('SELECT name FROM images ORDER BY name').pluck().all() as string[],
          slots: liveSlots(db).length,
        };
      } finally {
        db.close();
      }
    };
    const killed = peek();
    expect(killed.names.filter((n) => n.startsWith('.import-'))).toHaveLength(1);
    expect(killed.slots).toBeGreaterThan(1);

    // Any command recovers; the user never saw the hidden image.
    expect(JSON.parse(strataOk(store, ['ls', '--json']).stdout).map((i: { name: string }) => i.name)).toEqual(['keep']);
    expect(peek()).toEqual({ names: ['keep'], slots: 1 });
    expect(strata(store, ['check']).status).toBe(0);
  });
});
