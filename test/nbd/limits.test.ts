/**
 * Token buckets on a fake clock, then the limits end to end: a burst on a
 * limited export is measurably slowed, and another export is not.
 */
import { describe, expect, it } from 'vitest';
import { RateLimiter, TokenBucket } from '../../src/nbd/limits.js';
import { CMD } from '../../src/nbd/protocol.js';
import { MemoryDevice } from '../helpers/memory-device.js';
import { fixtureScope, startFixture } from '../helpers/nbd-fixture.js';
import { RawClient } from '../helpers/nbd-raw-client.js';
import { silentLogger } from '../../src/log.js';

describe('TokenBucket', () => {
  it('allows one second of burst, then refills at the rate', () => {
    let t = 0;
    const b = new TokenBucket(10, () => t);
    for (let i = 0; i < 10; i++) {
      expect(b.delayFor(1)).toBe(0);
      b.take(1);
    }
    expect(b.delayFor(1)).toBeCloseTo(100);
    t = 250;
    expect(b.delayFor(2)).toBe(0);
  });

  it('lets a cost above the burst through from a full bucket, leaving debt', () => {
    let t = 0;
    const b = new TokenBucket(100, () => t);
    expect(b.delayFor(500)).toBe(0);
    b.take(500);
    expect(b.delayFor(1)).toBeCloseTo(4010);
  });
});

describe('RateLimiter', () => {
  it('admits in arrival order', async () => {
    const lim = new RateLimiter({ iopsLimit: 1000 });
    const order: number[] = [];
    const waits: Promise<unknown>[] = [];
    for (let i = 0; i < 1100; i++) {
      const w = lim.admit(0);
      if (w) waits.push(w.then(() => order.push(i)));
      else order.push(i);
    }
    await Promise.all(waits);
    expect(order).toEqual([...order].sort((a, b) => a - b));
    expect(order.length).toBe(1100);
  });

  it('shutdown rejects waiters', async () => {
    const lim = new RateLimiter({ iopsLimit: 1 });
    expect(lim.admit(0)).toBeUndefined();
    const w = lim.admit(0)!;
    lim.shutdown(new Error('bye'));
    await expect(w).rejects.toThrow('bye');
  });
});

const scope = fixtureScope();

/**
 * Sends `n` reads at once and resolves with how long their replies took;
 * `onReply` sees each reply arrive, for tests that order one export's replies
 * against another's. Only lower bounds are asserted on the time: a limiter
 * can never answer early, but a loaded machine can always answer late.
 */
async function burst(c: RawClient, n: number, length = 4096, onReply?: () => void): Promise<number> {
  const start = performance.now();
  const lengths = new Map<bigint, number>();
  for (let i = 0; i < n; i++) lengths.set(c.request(CMD.READ, (i * length) % (c.size - length), length), length);
  for (let i = 0; i < n; i++) {
    expect((await c.readReply(lengths)).error).toBe(0);
    onReply?.();
  }
  return performance.now() - start;
}

describe('rate limits end to end', () => {
  it('iopsLimit slows a burst on its export, without delaying another export', async () => {
    scope.fx = await startFixture({ a: new MemoryDevice(1 << 20), b: new MemoryDevice(1 << 20) }, { iopsLimit: 100 });
    const a = await RawClient.open(scope.fx.socketPath, 'a');
    const b = await RawClient.open(scope.fx.socketPath, 'b');
    scope.clients.push(a, b);
    let aReplies = 0;
    const slow = burst(a, 250, 4096, () => aReplies++); // 100 from the burst, 150 at 100/s: at least 1.5 s
    // b's 20 fit in its own bucket: it is answered while a's queue still waits, never behind it.
    await burst(b, 20);
    const aRepliesWhenBDone = aReplies;
    const elapsed = await slow;
    expect(elapsed).toBeGreaterThan(1300);
    expect(aRepliesWhenBDone, "b's last reply came before a's queue drained").toBeLessThan(250);
    expect(aReplies).toBe(250);
  });

  it('without limits the same burst is not held: it ends before a limited export has drained the same burst', async () => {
    scope.fx = await startFixture({ a: new MemoryDevice(1 << 20) });
    const limited = await startFixture({ x: new MemoryDevice(1 << 20) }, { iopsLimit: 100 });
    try {
      const a = await RawClient.open(scope.fx.socketPath, 'a');
      const x = await RawClient.open(limited.socketPath, 'x');
      scope.clients.push(a, x);
      const order: string[] = [];
      // Both start together; the limited one needs at least 1.5 s, whatever the load.
      await Promise.all([burst(x, 250).then(() => order.push('limited')), burst(a, 250).then(() => order.push('unlimited'))]);
      expect(order).toEqual(['unlimited', 'limited']);
    } finally {
      await limited.close();
    }
  });

  it('bandwidthLimit paces data', async () => {
    scope.fx = await startFixture({ a: new MemoryDevice(8 << 20) }, { bandwidthLimit: 2 << 20 });
    const a = await RawClient.open(scope.fx.socketPath, 'a');
    scope.clients.push(a);
    // 4 MiB at 2 MiB/s with a 2 MiB burst: at least 1 s (the ratio to an unlimited run is in bench/).
    const ms = await burst(a, 64, 64 * 1024);
    expect(ms).toBeGreaterThan(800);
  });
});

describe('the server-wide in-flight budget', () => {
  it('a request waits while a client that never reads holds the budget, and runs once that client is gone', async () => {
    const MiB = 1 << 20;
    const device = new MemoryDevice(8 * MiB);
    device.bytes.fill(0x6b);
    const waits: Record<string, unknown>[] = [];
    let onWait = () => {};
    const logger = { ...silentLogger, debug: (o: Record<string, unknown>, msg: string) => msg.includes('in-flight budget') && (waits.push(o), onWait()) };
    scope.fx = await startFixture({ a: device }, { maxPayload: 4 * MiB, inflightLimit: 4 * MiB, logger });
    const stuck = await RawClient.open(scope.fx.socketPath, 'a');
    const polite = await RawClient.open(scope.fx.socketPath, 'a');
    scope.clients.push(stuck, polite);
    // 4 MiB is more than the socket buffers and the client's reader take: most of the reply stays with the server.
    stuck.request(CMD.READ, 0, 4 * MiB);
    await new Promise<void>((resolve) => stuck.socket.once('data', () => resolve()));
    const waited = new Promise<void>((resolve) => (onWait = resolve));
    const h = polite.request(CMD.READ, 4 * MiB, 4096);
    const reply = polite.readReply(new Map([[h, 4096]]));
    expect(await Promise.race([waited.then(() => 'waits'), reply.then(() => 'answered')])).toBe('waits');
    expect(waits).toEqual([{ conn: 2, bytes: 4096 }]);
    stuck.close();
    const r = await reply;
    expect(r.error).toBe(0);
    expect(r.data!.equals(Buffer.alloc(4096, 0x6b))).toBe(true);
  });

  for (const how of ['never reads its reply', 'never sends the data of its WRITE'] as const) {
    it(`a client that holds the budget and ${how} is dropped once it stalls while another waits`, async () => {
      const MiB = 1 << 20;
      const device = new MemoryDevice(8 * MiB);
      device.bytes.fill(0x3c);
      const warnings: [Record<string, unknown>, string][] = [];
      const logger = { ...silentLogger, warn: (o: Record<string, unknown>, msg: string) => void warnings.push([o, msg]) };
      scope.fx = await startFixture({ a: device }, { maxPayload: 4 * MiB, inflightLimit: 4 * MiB, stallMs: 100, logger });
      const stuck = await RawClient.open(scope.fx.socketPath, 'a');
      const polite = await RawClient.open(scope.fx.socketPath, 'a');
      scope.clients.push(stuck, polite);
      if (how === 'never reads its reply') {
        stuck.request(CMD.READ, 0, 4 * MiB);
        await new Promise<void>((resolve) => stuck.socket.once('data', () => resolve()));
      } else {
        // The header alone: 4 MiB announced, not a byte of it sent. Its reservation is made once
        // the server has parsed the header, before it waits for the payload; a FLUSH behind it
        // is never parsed, so a polite request is what shows the budget taken.
        stuck.request(CMD.WRITE, 0, 4 * MiB);
      }
      const h = polite.request(CMD.READ, 4 * MiB, 4096);
      const r = await polite.readReply(new Map([[h, 4096]]));
      expect(r.error).toBe(0);
      expect(r.data!.equals(Buffer.alloc(4096, 0x3c))).toBe(true);
      // The server hung up on it: what it left unread ends in EOF.
      stuck.reader.detach();
      stuck.socket.resume();
      expect(await stuck.waitClosed()).toBe(true);
      expect(warnings).toEqual([
        [{ conn: 1, heldBytes: 4 * MiB, stallMs: 100 }, 'client dropped: it held in-flight memory others wait for, and neither read its replies nor sent data'],
      ]);
    });
  }

  it('refuses a budget smaller than the largest request', async () => {
    await expect(startFixture({ a: new MemoryDevice(1 << 20) }, { maxPayload: 1 << 20, inflightLimit: 1 << 19 })).rejects.toMatchObject({
      code: 'E_BAD_INPUT',
      message: 'the in-flight limit (512 KiB) is below the largest request a client may send (1 MiB): raise --inflight-limit',
    });
  });
});
