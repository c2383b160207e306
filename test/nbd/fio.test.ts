/**
 * fio's nbd engine (libnbd, 16 requests in flight) writes random blocks with
 * crc32c verification headers, then reads them all back and verifies.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { MemoryDevice } from '../helpers/memory-device.js';
import { startFixture, type Fixture } from '../helpers/nbd-fixture.js';
import { requireTool, runOk } from '../helpers/tools.js';

const MiB = 1024 * 1024;
let fx: Fixture | null = null;
afterEach(async () => {
  await fx?.close();
  fx = null;
});

describe.runIf(requireTool('fio'))('fio ioengine=nbd', () => {
  it('random writes at iodepth 16 verify with crc32c', async () => {
    const dev = new MemoryDevice(64 * MiB);
    fx = await startFixture({ disk: dev });
    const r = await runOk(
      'fio',
      [
        '--name=strata-verify',
        '--ioengine=nbd',
        `--uri=${fx.uri('disk')}`,
        '--rw=randwrite',
        '--bsrange=4k-64k',
        '--size=64M',
        '--io_size=32M',
        '--iodepth=16',
        '--verify=crc32c',
        '--do_verify=1',
        '--verify_fatal=1',
        '--randseed=1234',
        '--verify_state_save=0', // no state file left in the working directory
        '--output-format=json',
      ],
      { timeoutMs: 120_000 },
    );
    const job = JSON.parse(r.stdout.slice(r.stdout.indexOf('{'))).jobs[0];
    expect(job.error).toBe(0);
    // The job's io_size, overshot by at most its last block (4k-64k), each block once (fio's random map) ...
    expect(job.write.io_bytes).toBeGreaterThanOrEqual(32 * MiB);
    expect(job.write.io_bytes).toBeLessThan(32 * MiB + 64 * 1024);
    // ... every byte of it reached the device, and the verify pass read exactly that back.
    expect(dev.calls.filter((c) => c.op === 'write').reduce((n, c) => n + c.length, 0)).toBe(job.write.io_bytes);
    expect(job.read.io_bytes).toBe(job.write.io_bytes);
  });
});
