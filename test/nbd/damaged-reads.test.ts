/**
 * A block rotted on disk, read over NBD: the request that covers it gets
 * EIO (not the damaged bytes), and the same connection goes on reading the
 * other ranges, checked byte for byte by qemu-io; nbdcopy stops with EIO
 * rather than copying garbage. The server logs a warning naming where.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BLOCK, DAMAGED_AT, SHARED_AT, flipBytes, makeDamagedStore, patternOf } from '../helpers/damaged-store.js';
import { startServe } from '../helpers/serve.js';
import { requireTool, run } from '../helpers/tools.js';

describe.runIf(requireTool('qemu-io') && requireTool('nbdcopy'))('NBD reads of a damaged block', () => {
  let dir: string;
  let store: string;

  beforeAll(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'strata-nbd-damaged-'));
    store = path.join(dir, 'store');
    const slot = makeDamagedStore(store);
    flipBytes(store, slot * BLOCK + 100, 8);
  });
  afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

  it('qemu-io gets EIO for the damaged block and, on the same connection, the exact bytes of the blocks around it', async () => {
    const srv = await startServe(store, ['vm1', 'vm2'], { extraArgs: ['--log-level', 'warn'] });
    const io = (image: string, cmds: string[]) => run('qemu-io', ['-f', 'raw', '-r', srv.uri(image), ...cmds.flatMap((c) => ['-c', c])]);
    // -P checks every byte read against the block's pattern.
    const pattern = (b: number) => `read -P ${patternOf(b)} ${b * BLOCK} ${BLOCK}`;
    const r = await io('vm1', [pattern(4), `read ${DAMAGED_AT} ${BLOCK}`, pattern(6), `read ${SHARED_AT - BLOCK} ${3 * BLOCK}`, pattern(41)]);
    const lines = r.stdout.split('\n').filter((l) => !/ops; /.test(l) && l !== '');
    expect(lines).toEqual([
      `read ${BLOCK}/${BLOCK} bytes at offset ${4 * BLOCK}`,
      'read failed: Input/output error',
      `read ${BLOCK}/${BLOCK} bytes at offset ${6 * BLOCK}`,
      'read failed: Input/output error',
      `read ${BLOCK}/${BLOCK} bytes at offset ${41 * BLOCK}`,
    ]);
    // vm2 rewrote block 5 (0xee): only the shared block at 40 fails there.
    const r2 = await io('vm2', [`read -P 0xee ${DAMAGED_AT} ${BLOCK}`, `read ${SHARED_AT} ${BLOCK}`]);
    expect(r2.stdout.split('\n').filter((l) => !/ops; /.test(l) && l !== '')).toEqual([`read ${BLOCK}/${BLOCK} bytes at offset ${DAMAGED_AT}`, 'read failed: Input/output error']);
    // nbdcopy of the whole disk stops on the error instead of writing a copy with the damage in it.
    const out = path.join(dir, 'copy.raw');
    const c = await run('nbdcopy', [srv.uri('vm1'), out]);
    expect(c.code).not.toBe(0);
    expect(c.stderr).toMatch(/Input\/output error/);
    // The server logs each one for the operator (the client saw only EIO), and is still up and serving.
    const warned = srv.stderr
      .split('\n')
      .filter((l) => l.startsWith('{'))
      .map((l) => JSON.parse(l) as { msg: string; export?: string; offset?: string; err?: string })
      .filter((l) => l.msg === 'read of a damaged block answered EIO');
    expect(warned[0]).toMatchObject({ export: 'vm1', offset: String(DAMAGED_AT), err: expect.stringMatching(new RegExp(`^E_CORRUPT: image vm1: the block at byte offset ${DAMAGED_AT} \\(slot \\d+\\) is damaged`)) });
    expect(srv.stderr).not.toMatch(/internal error|\n\s+at /);
    const again = await io('vm1', [pattern(0)]);
    expect(again.stdout).toContain(`read ${BLOCK}/${BLOCK} bytes at offset 0`);
    await srv.stop();
  });
});
