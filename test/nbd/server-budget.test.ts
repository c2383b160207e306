/**
 * The server-wide limits of `strata serve`, against clients that never read
 * their replies: each sends one 32 MiB READ and leaves the reply unread.
 * Whatever their number, the server holds no more than its in-flight budget;
 * a client past the connection limit is told why in the handshake; and once
 * the hostile clients are gone, an ordinary client reads the right bytes.
 */
import { randomBytes } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { CMD, OPT, REP } from '../../src/nbd/protocol.js';
import { strata, strataOk } from '../helpers/cli.js';
import { RawClient } from '../helpers/nbd-raw-client.js';
import { startServe, type Served } from '../helpers/serve.js';
import { tmpDir } from '../helpers/tmp.js';
import { requireTool, run, runOk } from '../helpers/tools.js';

const MiB = 1024 * 1024;
const SIZE = 64 * MiB;
/** The defaults of strata serve that the README states: --shared 16, --inflight-limit 128M, requests up to 32 MiB. */
const SHARED = 16;
const INFLIGHT_LIMIT = 128 * MiB;
const MAX_REQUEST = 32 * MiB;
const REFUSAL = `too many clients: this server serves at most ${SHARED} at once (strata serve --shared); try again when one has disconnected`;

function rssBytes(pid: number): number {
  const m = /^VmRSS:\s+(\d+) kB$/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  if (!m) throw new Error(`no VmRSS for ${pid}`);
  return Number(m[1]) * 1024;
}

const count = (text: string, re: RegExp) => text.match(re)?.length ?? 0;

/** Resolves once `done()` holds, checked whenever the server logs or one of `clients` receives data. */
function until(srv: Served, clients: RawClient[], done: () => boolean): Promise<void> {
  return new Promise((resolve, reject) => {
    const check = () => done() && resolve();
    srv.onStderr(check);
    for (const c of clients) c.socket.on('data', check);
    void srv.exited.then((e) => reject(new Error(`strata serve exited (${e.code ?? e.signal}): ${srv.stderr}`)));
    check();
  });
}

describe('strata serve: server-wide limits', () => {
  it.runIf(requireTool('qemu-img') && requireTool('nbdcopy'))(
    'clients that never read hold at most the in-flight budget; one past --shared is refused; then a client reads the right bytes',
    async () => {
      const store = tmpDir();
      const data = randomBytes(SIZE);
      const raw = join(tmpDir(), 'disk.raw');
      writeFileSync(raw, data);
      strataOk(store, ['import', raw, 'disk']);
      const srv = await startServe(store, ['disk'], { extraArgs: ['--log-level', 'debug'] });
      const baseline = rssBytes(srv.pid);

      const hostile: RawClient[] = [];
      try {
        for (let i = 0; i < SHARED; i++) hostile.push(await RawClient.open(srv.socketPath, 'disk'));
        // Each asks for 32 MiB and never reads past what its socket buffers take. The server
        // either starts sending (the first bytes arrive) or logs that the request waits.
        let sending = 0;
        for (const c of hostile) c.socket.once('data', () => sending++);
        const waiting = () => count(srv.stderr, /request waits for the server-wide in-flight budget/g);
        for (const [i, c] of hostile.entries()) c.request(CMD.READ, (i % 2) * 32 * MiB, MAX_REQUEST);
        await until(srv, hostile, () => sending + waiting() >= hostile.length);

        // Without a server-wide budget each would hold its 32 MiB reply: 512 MiB here.
        const held = rssBytes(srv.pid) - baseline;
        expect(held).toBeLessThan(INFLIGHT_LIMIT + 64 * MiB);
        expect(sending).toBe(INFLIGHT_LIMIT / MAX_REQUEST);

        // One more is told why, in the handshake, by a raw client and by nbdinfo.
        const extra = await RawClient.connect(srv.socketPath);
        await extra.greet();
        const replies = await extra.option(OPT.GO, RawClient.goData('disk'));
        expect(replies.map((r) => [r.type, r.data.toString()])).toEqual([[REP.ERR_POLICY, REFUSAL]]);
        expect(await extra.option(OPT.ABORT)).toEqual([expect.objectContaining({ type: REP.ACK })]);
        expect(await extra.waitClosed()).toBe(true);
        const info = await run('qemu-img', ['info', srv.uri('disk')]);
        expect(info.code).not.toBe(0);
        expect(info.stderr).toContain(REFUSAL);
        expect(count(srv.stderr, /connection refused: the server serves at most this many clients/g)).toBe(2);
      } finally {
        for (const c of hostile) c.close();
      }
      await until(srv, [], () => count(srv.stderr, /"msg":"connection closed"/g) >= SHARED);

      // nbdcopy opens four connections of its own.
      const out = join(tmpDir(), 'copy.raw');
      await runOk('nbdcopy', [srv.uri('disk'), out]);
      expect(readFileSync(out).equals(data)).toBe(true);
      expect((await srv.stop()).code).toBe(0);
    },
  );

  it.runIf(requireTool('qemu-img'))('--shared 1 serves one client and tells the second why; once the first is gone the next is served', async () => {
    const store = tmpDir();
    strataOk(store, ['create', 'disk', '--size', '1M']);
    const srv = await startServe(store, ['disk'], { extraArgs: ['--shared', '1', '--log-level', 'debug'] });
    const first = await RawClient.open(srv.socketPath, 'disk');
    const refused = await run('qemu-img', ['info', srv.uri('disk')]);
    expect(refused.code).toBe(1);
    expect(refused.stderr).toContain('server reported: too many clients: this server serves at most 1 at once (strata serve --shared); try again when one has disconnected');
    first.close();
    await until(srv, [], () => /"msg":"connection closed"/.test(srv.stderr));
    const served = await run('qemu-img', ['info', '--output=json', srv.uri('disk')]);
    expect(served.code).toBe(0);
    expect(JSON.parse(served.stdout)['virtual-size']).toBe(1024 * 1024);
  });

  it('refuses a --shared or --inflight-limit it cannot use, naming it', () => {
    const store = tmpDir();
    strataOk(store, ['init']);
    const shared = strata(store, ['serve', '--shared', 'many']);
    expect(shared.status).toBe(2);
    expect(shared.stderr).toBe('strata: invalid --shared "many": expected a whole number of clients (0 for no limit)\n');
    const small = strata(store, ['serve', '--inflight-limit', '1M']);
    expect(small.status).toBe(2);
    expect(small.stderr).toBe('strata: the in-flight limit (1 MiB) is below the largest request a client may send (32 MiB): raise --inflight-limit\n');
  });
});
