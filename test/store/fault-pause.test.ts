/**
 * The pause fault point (STRATA_FAULT=<point>:pause, src/store/core/faults.ts) that
 * two-process tests hold a process at: it announces the step with its pid,
 * stays there until released, and never outlives a test that went away; the
 * test side fails with a message naming the point instead of hanging.
 */
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { strataAsync, strataOk } from '../helpers/cli.js';
import { faultChannel } from '../helpers/fault.js';
import { tmpDir } from '../helpers/tmp.js';

const KiB = 1024;

function importSetup() {
  const store = tmpDir();
  strataOk(store, ['init']);
  const file = path.join(store, 'in.raw');
  const data = randomBytes(64 * KiB);
  fs.writeFileSync(file, data);
  return { store, file, data };
}

describe('STRATA_FAULT=<point>:pause', () => {
  it('announces the point with its pid, does not pass it until released, then finishes', async () => {
    const { store, file, data } = importSetup();
    const fault = faultChannel();
    const importer = strataAsync(store, ['import', file, 'img'], { env: fault.env('import.after-flush') });
    const pid = await fault.reached('import.after-flush', { exited: importer });
    // Held after the data is durable, before the image takes its name.
    expect(fs.readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0')).toContain('import');
    const ls = await strataAsync(store, ['ls', '--json']);
    expect(ls.status, ls.err).toBe(0);
    expect(JSON.parse(ls.out.toString())).toEqual([]);
    fault.release();
    const r = await importer;
    expect(r.status, r.err).toBe(0);
    expect(strataOk(store, ['read', 'img']).out.equals(data)).toBe(true);
    expect(fault.announced).toEqual(['import.after-flush']);
  });

  it('pauses at the Nth hit only', async () => {
    const store = tmpDir();
    strataOk(store, ['init']);
    const file = path.join(store, 'in.raw');
    fs.writeFileSync(file, randomBytes(12 * 1024 * KiB));
    const log = path.join(store, 'points.log');
    const fault = faultChannel();
    // Flushing every 4 MiB: flush.after-commit is passed three times.
    const importer = strataAsync(store, ['import', file, 'img', '--dirty-limit', '4M'], { env: { ...fault.env('flush.after-commit', 2), STRATA_FAULT_LOG: log } });
    await fault.reached('flush.after-commit', { exited: importer });
    expect(fs.readFileSync(log, 'utf8').split('\n').filter((l) => l === 'flush.after-commit')).toHaveLength(2);
    fault.release();
    expect((await importer).status).toBe(0);
    expect(fault.announced).toEqual(['flush.after-commit']);
  });

  it('a process the test stopped listening to kills itself, saying why, instead of waiting for ever', async () => {
    const { store, file } = importSetup();
    const fault = faultChannel();
    const importer = strataAsync(store, ['import', file, 'img'], { env: fault.env('import.after-create') });
    await fault.reached('import.after-create', { exited: importer });
    const dir = fault.env('x').STRATA_FAULT_CHANNEL!;
    fault.close();
    const r = await importer;
    expect(r.status).toBe(-1); // killed by a signal
    expect(r.err).toBe(`strata: fault point import.after-create: the test closed ${dir} before releasing it; stopping\n`);
    // As after any crash: the next command drops the hidden import.
    expect(JSON.parse(strataOk(store, ['ls', '--json']).stdout)).toEqual([]);
    expect((await strataAsync(store, ['check'])).status).toBe(0);
  });

  it('reached() fails naming the point when the process exits without passing it', async () => {
    const { store, file } = importSetup();
    const fault = faultChannel();
    const importer = strataAsync(store, ['import', file, 'img'], { env: fault.env('import.no-such-step') });
    await expect(fault.reached('import.no-such-step', { exited: importer })).rejects.toThrow(
      'the process ended (exit status 0) before reaching fault point import.no-such-step',
    );
  });

  it('reached() fails naming both points when the process paused somewhere else', async () => {
    const { store, file } = importSetup();
    const fault = faultChannel();
    const importer = strataAsync(store, ['import', file, 'img'], { env: fault.env('import.after-create') });
    await expect(fault.reached('import.after-flush', { exited: importer })).rejects.toThrow('waiting for fault point import.after-flush, the process paused at import.after-create');
    fault.release();
    expect((await importer).status).toBe(0);
  });

  it('reached() fails after its timeout, naming the point and what was announced, instead of hanging', async () => {
    const fault = faultChannel();
    await expect(fault.reached('import.after-flush', { timeoutMs: 200 })).rejects.toThrow('fault point import.after-flush not reached in 0.2 s; announced so far: nothing');
  });
});
