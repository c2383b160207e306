/**
 * Disk full: ENOSPC injected into data-file writes part-way through an
 * operation (STRATA_FAULT=datafile.write:enospc:N, every write from the Nth
 * on fails, as on a full disk). The operation fails with E_NO_SPACE and one
 * line, the store stays consistent, and once space returns the same
 * operation succeeds.
 */
import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { ERROR_CODES } from '../../src/errors.js';
import { listImages } from '../../src/store/images/catalog.js';
import { openStore } from '../../src/store/core/store.js';
import { strata, strataOk } from '../helpers/cli.js';
import { auditStore } from '../helpers/consistency.js';
import { rng } from '../helpers/random.js';
import { tmpDir } from '../helpers/tmp.js';

const MiB = 1024 * 1024;
const full = (n: number) => ({ env: { STRATA_FAULT: `datafile.write:enospc:${n}` } });

function expectNoSpace(r: { status: number; stderr: string }) {
  expect(r.status).toBe(ERROR_CODES.E_NO_SPACE);
  const lines = r.stderr.trimEnd().split('\n');
  expect(lines).toHaveLength(1);
  expect(lines[0]).toMatch(/^strata: no space left to write .*\.dat$/);
}

async function namesAndAudit(store: string): Promise<{ names: string[]; audit: string[] }> {
  const s = await openStore(store, { create: false });
  try {
    return { names: listImages(s).map((i) => i.name), audit: auditStore(s) };
  } finally {
    s.close();
  }
}

describe('disk full', () => {
  it('write: E_NO_SPACE, the image is unchanged, check clean; the same write succeeds once space returns', () => {
    const store = tmpDir();
    strataOk(store, ['create', 'a', '--size', '4M']);
    strataOk(store, ['write', 'a', '--offset', '0'], { input: rng(1).bytes(100_000) });
    const before = strataOk(store, ['read', 'a']).out;
    const data = Buffer.concat([rng(2).bytes(300_000), Buffer.alloc(4096 * 20, 7)]);
    expectNoSpace(strata(store, ['write', 'a', '--offset', '5000'], { input: data, ...full(1) }));
    expect(strataOk(store, ['read', 'a']).out.equals(before)).toBe(true);
    expect(strata(store, ['check']).status).toBe(0);
    strataOk(store, ['write', 'a', '--offset', '5000'], { input: data });
    const after = Buffer.from(before);
    data.copy(after, 5000);
    expect(strataOk(store, ['read', 'a']).out.equals(after)).toBe(true);
    expect(strata(store, ['check']).status).toBe(0);
  });

  it('import that fills the disk after two committed flushes: E_NO_SPACE, no image (not even a hidden one), check clean; retried, it succeeds', async () => {
    const store = tmpDir();
    strataOk(store, ['create', 'keep', '--size', '1M']);
    strataOk(store, ['write', 'keep'], { input: rng(3).bytes(50_000) });
    const file = path.join(store, 'src.raw');
    const content = Buffer.concat([rng(4).bytes(9 * MiB), Buffer.alloc(MiB, 0x44)]);
    fs.writeFileSync(file, content);
    // Chunks of 4 MiB with a 1 MiB dirty limit: the first two flushes commit, the third runs out of space.
    expectNoSpace(strata(store, ['import', file, 'imp', '--dirty-limit', '1M'], full(3)));
    // The import cleaned up after itself: no later run of recoverAbandoned is needed.
    const mid = await namesAndAudit(store);
    expect(mid.names).toEqual(['keep']);
    expect(mid.audit).toEqual([]);
    expect(strata(store, ['check']).status).toBe(0);
    strataOk(store, ['import', file, 'imp', '--dirty-limit', '1M']);
    expect(strataOk(store, ['read', 'imp']).out.equals(content)).toBe(true);
    expect(strata(store, ['check']).status).toBe(0);
  });

  it('clone and snapshot need no data space; resize --shrink that must store a block fails cleanly', () => {
    const store = tmpDir();
    strataOk(store, ['create', 'a', '--size', '1M']);
    strataOk(store, ['write', 'a'], { input: rng(5).bytes(200_000) });
    strataOk(store, ['clone', 'a', 'b'], full(1));
    strataOk(store, ['snapshot', 'b'], full(1));
    const before = strataOk(store, ['read', 'b']).out;
    expectNoSpace(strata(store, ['resize', 'b', '100001', '--shrink'], full(1)));
    expect(strataOk(store, ['info', 'b', '--json']).stdout).toContain('"virtualSize": 1048576');
    expect(strataOk(store, ['read', 'b']).out.equals(before)).toBe(true);
    expect(strata(store, ['check']).status).toBe(0);
    strataOk(store, ['resize', 'b', '100001', '--shrink']);
    expect(strataOk(store, ['read', 'b']).out.equals(before.subarray(0, 100001))).toBe(true);
    expect(strata(store, ['check']).status).toBe(0);
  });
});
