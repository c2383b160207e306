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

const CYCLES = 40;

interface Op {
  call: 'pwrite' | 'sync';
  file: string;
}

/** The traced calls between the two marker mkdirs, each as call and file (strace -y names the fd's path). */
function tracedLoop(trace: string): Op[] {
  const lines = fs.readFileSync(trace, 'utf8').split('\n');
  const begin = lines.findIndex((l) => l.includes('mark-begin'));
  const end = lines.findIndex((l) => l.includes('mark-end'));
  expect(begin).toBeGreaterThan(0);
  expect(end).toBeGreaterThan(begin);
  return lines.slice(begin + 1, end).flatMap((l) => {
    const m = /\b(pwrite64|fsync|fdatasync)\(\d+<([^>]+)>/.exec(l);
    return m ? [{ call: m[1] === 'pwrite64' ? 'pwrite' : 'sync', file: path.basename(m[2]) } as Op] : [];
  });
}

describe.skipIf(!requireTool('strace'))('lease commits and the WAL checkpoint', () => {
  it('every checkpoint a lease commit triggers syncs the WAL before copying and strata.db after, before the next WAL write', () => {
    const dir = tmpDir();
    const store = path.join(dir, 'st');
    const trace = path.join(dir, 'trace.txt');
    const r = spawnSync(
      'strace',
      ['-f', '-y', '-s', '0', '-o', trace, '-e', 'trace=fsync,fdatasync,pwrite64,mkdir,mkdirat', process.execPath, CHILD, store, String(CYCLES)],
      { encoding: 'utf8', timeout: 60_000 },
    );
    expect(r.status, r.stderr).toBe(0);
    const ops = tracedLoop(trace);
    // A checkpoint is a run of page copies into strata.db.
    const checkpoints: { first: number; last: number }[] = [];
    ops.forEach((op, i) => {
      if (op.call !== 'pwrite' || op.file !== 'strata.db') return;
      const prev = checkpoints[checkpoints.length - 1];
      if (prev && prev.last === i - 1) prev.last = i;
      else checkpoints.push({ first: i, last: i });
    });
    // wal_autocheckpoint = 2 pages and every lease commit writes more: each open and each close checkpoints.
    expect(checkpoints).toHaveLength(2 * CYCLES);
    const wrong: string[] = [];
    for (const [n, c] of checkpoints.entries()) {
      const before = ops[c.first - 1];
      const after = ops[c.last + 1];
      if (before?.call !== 'sync' || before.file !== 'strata.db-wal') wrong.push(`checkpoint ${n}: copied before the WAL was synced (${JSON.stringify(before)})`);
      if (after?.call !== 'sync' || after.file !== 'strata.db') wrong.push(`checkpoint ${n}: strata.db not synced right after the copy (${JSON.stringify(after)})`);
    }
    expect(wrong).toEqual([]);
    // And strata.db is synced only there: nothing else in the loop writes it.
    expect(ops.filter((o) => o.call === 'sync' && o.file === 'strata.db')).toHaveLength(2 * CYCLES);
  });
});
