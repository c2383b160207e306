// A long-running command (serve, ui) stopped by SIGINT the moment it has said it is ready: a script
// (or a test) that reads the "serving" line and stops it at once must get a clean stop, exit 0, not a
// process killed by a signal that found no listener. The fault point holds the process right after
// its announcement, so the signal lands exactly in the window that used to kill it.
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { strataOk, strataSpawn } from '../helpers/cli.js';
import { faultChannel } from '../helpers/fault.js';
import { signalDelivered } from '../helpers/proc.js';
import { tmpDir } from '../helpers/tmp.js';

describe('stopped as soon as it announces itself', () => {
  it('strata serve: SIGINT right after the "serving" line flushes, stops and exits 0', async () => {
    const store = tmpDir();
    strataOk(store, ['create', 'L', '--size', '1M']);
    const fault = faultChannel();
    const p = strataSpawn(store, ['serve', 'L', '--socket', path.join(store, 'nbd.sock')], { env: fault.env('serve.after-announce') });
    const pid = await fault.reached('serve.after-announce', { exited: p.exited });
    await p.waitFor(/^serving L on /m, 'stdout');
    await signalDelivered(pid, 'SIGINT');
    fault.release();
    expect(await p.exited).toMatchObject({ code: 0, signal: null });
    expect(strataOk(store, ['write', 'L'], { input: Buffer.alloc(4096, 1) }).status).toBe(0); // its lease went with it
  });

  it('strata ui: SIGINT right after the address line stops it and exits 0', async () => {
    const store = tmpDir();
    strataOk(store, ['create', 'L', '--size', '1M']);
    const fault = faultChannel();
    const p = strataSpawn(store, ['ui', '--listen', '127.0.0.1:0'], { env: fault.env('ui.after-announce') });
    const pid = await fault.reached('ui.after-announce', { exited: p.exited });
    await p.waitFor(/^serving the page of .* on http:\/\/127\.0\.0\.1:\d+\/?$/m, 'stdout');
    await signalDelivered(pid, 'SIGINT');
    fault.release();
    expect(await p.exited).toMatchObject({ code: 0, signal: null });
  });
});
