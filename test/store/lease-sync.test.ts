/**
 * Lease commits skip the WAL fsync (a crash drops leases anyway), but a WAL
 * auto-checkpoint they trigger must still sync strata.db: the checkpoint
 * copies committed, acknowledged frames into it, and the next writer then
 * restarts the WAL over those frames. Observed with strace, since an fsync is
 * invisible from JavaScript.
 */
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { requireTool } from '../helpers/tools.js';
import { tmpDir } from '../helpers/tmp.js';

const CHILD = path.resolve('test/fixtures/lease-cycles.mjs');

describe.skipIf(!requireTool('strace'))('lease commits and the WAL checkpoint', () => {
  it('a checkpoint triggered by a lease commit fsyncs strata.db', () => {
    const dir = tmpDir();
    const store = path.join(dir, 'st');
    const trace = path.join(dir, 'trace.txt');
    const r = spawnSync(
      'strace',
      ['-f', '-y', '-s', '0', '-o', trace, '-e', 'trace=fsync,fdatasync,pwrite64,mkdir,mkdirat', process.execPath, CHILD, store, '40'],
      { encoding: 'utf8', timeout: 60_000 },
    );
    expect(r.status, r.stderr).toBe(0);
    const lines = fs.readFileSync(trace, 'utf8').split('\n');
    const begin = lines.findIndex((l) => l.includes('mark-begin'));
    const end = lines.findIndex((l) => l.includes('mark-end'));
    expect(begin).toBeGreaterThan(0);
    expect(end).toBeGreaterThan(begin);
    const loop = lines.slice(begin, end);
    const db = path.join(store, 'strata.db>');
    // Checkpoints happened: pages were copied from the WAL into strata.db ...
    expect(loop.filter((l) => l.includes('pwrite64(') && l.includes(db)).length).toBeGreaterThan(0);
    // ... and each was made durable before the WAL could be restarted over its frames.
    expect(loop.filter((l) => /\b(fsync|fdatasync)\(/.test(l) && l.includes(db)).length).toBeGreaterThan(0);
  });
});
