/**
 * The ordering rules of one NBD connection's requests (src/nbd/range-order.ts),
 * without a socket: a request that must fetch first waits for its fetch; one
 * overlapping a request still waiting queues behind it, in arrival order;
 * anything else, a FLUSH included, runs at once.
 *
 * "Not yet run" is asserted after draining every pending promise callback
 * (settled(): one macrotask turn), so nothing could still be on its way.
 */
import { describe, expect, it } from 'vitest';
import { RangeOrder, type Ordered } from '../../src/nbd/range-order.js';

interface Deferred {
  promise: Promise<void>;
  resolve(): void;
  reject(e: Error): void;
}

function deferred(): Deferred {
  let resolve!: () => void;
  let reject!: (e: Error) => void;
  const promise = new Promise<void>((res, rej) => {
    resolve = res;
    reject = rej;
  });
  return { promise, resolve, reject };
}

/** Every promise callback queued so far has run. */
const settled = () => new Promise<void>((resolve) => setImmediate(resolve));

/** A connection's requests, recording what ran (or failed) in which order. */
function harness() {
  const order = new RangeOrder();
  const events: string[] = [];
  const prepared: string[] = [];
  const submit = (name: string, start: number, end: number, fetch?: Promise<void>) => {
    const req: Ordered = {
      start,
      end,
      prepare: () => {
        prepared.push(name);
        return fetch ?? null;
      },
      run: () => void events.push(name),
      fail: (e) => void events.push(`${name} failed: ${(e as Error).message}`),
    };
    order.submit(req);
  };
  return { order, events, prepared, submit };
}

describe('NBD range ordering', () => {
  it('a request that needs no fetch and overlaps nothing waiting runs at once, inside submit', () => {
    const h = harness();
    h.submit('read', 0, 4096);
    h.submit('write', 0, 4096);
    expect(h.events).toEqual(['read', 'write']);
    expect(h.order.waiting).toBe(0);
  });

  it('a request waiting for its fetch runs once the fetch is done; a disjoint one runs meanwhile', async () => {
    const h = harness();
    const fetch = deferred();
    h.submit('remote read', 0, 8192, fetch.promise);
    h.submit('local write', 8192, 12288);
    await settled();
    expect(h.events).toEqual(['local write']);
    expect(h.order.waiting).toBe(1);
    fetch.resolve();
    await settled();
    expect(h.events).toEqual(['local write', 'remote read']);
    expect(h.order.waiting).toBe(0);
  });

  it('a write overlapping a read that waits for its fetch waits behind it, and is prepared only then', async () => {
    const h = harness();
    const fetch = deferred();
    h.submit('read', 0, 8192, fetch.promise);
    h.submit('write', 4096, 12288);
    await settled();
    expect(h.events).toEqual([]);
    expect(h.prepared).toEqual(['read']);
    fetch.resolve();
    await settled();
    expect(h.events).toEqual(['read', 'write']);
    expect(h.prepared).toEqual(['read', 'write']);
  });

  it('overlapping requests run in arrival order, also when a later one\'s own fetch is done first', async () => {
    const h = harness();
    const first = deferred();
    const second = deferred();
    h.submit('A', 0, 8192, first.promise);
    h.submit('B', 0, 4096, second.promise);
    second.resolve();
    await settled();
    expect(h.events).toEqual([]);
    first.resolve();
    await settled();
    expect(h.events).toEqual(['A', 'B']);
  });

  it('a request overlapping two waiting ones waits for both', async () => {
    const h = harness();
    const left = deferred();
    const right = deferred();
    h.submit('left', 0, 4096, left.promise);
    h.submit('right', 8192, 12288, right.promise);
    h.submit('both', 0, 12288);
    right.resolve();
    await settled();
    expect(h.events).toEqual(['right']);
    left.resolve();
    await settled();
    expect(h.events).toEqual(['right', 'left', 'both']);
  });

  it('a queued request is itself waited for: C overlapping only B still runs after A, which B waits behind', async () => {
    const h = harness();
    const fetch = deferred();
    h.submit('A', 0, 4096, fetch.promise);
    h.submit('B', 0, 8192);
    h.submit('C', 4096, 8192);
    await settled();
    expect(h.events).toEqual([]);
    fetch.resolve();
    await settled();
    expect(h.events).toEqual(['A', 'B', 'C']);
  });

  it('ranges that only touch do not overlap', async () => {
    const h = harness();
    const fetch = deferred();
    h.submit('A', 4096, 8192, fetch.promise);
    h.submit('before', 0, 4096);
    h.submit('after', 8192, 12288);
    expect(h.events).toEqual(['before', 'after']);
    fetch.resolve();
    await settled();
    expect(h.events).toEqual(['before', 'after', 'A']);
  });

  it('a FLUSH (an empty range) never waits, not even for a write that waits for its fetch', async () => {
    const h = harness();
    const fetch = deferred();
    h.submit('write', 0, 4096, fetch.promise);
    h.submit('flush', 0, 0);
    expect(h.events).toEqual(['flush']);
    fetch.resolve();
    await settled();
    expect(h.events).toEqual(['flush', 'write']);
  });

  it('a failed fetch fails that request only; the one queued behind it still runs', async () => {
    const h = harness();
    const fetch = deferred();
    h.submit('read', 0, 4096, fetch.promise);
    h.submit('write', 0, 4096);
    fetch.reject(new Error('bucket unreachable'));
    await settled();
    expect(h.events).toEqual(['read failed: bucket unreachable', 'write']);
    expect(h.order.waiting).toBe(0);
  });

  it('once nothing waits, an overlapping request runs at once again', async () => {
    const h = harness();
    const fetch = deferred();
    h.submit('A', 0, 4096, fetch.promise);
    fetch.resolve();
    await settled();
    expect(h.order.waiting).toBe(0);
    h.submit('B', 0, 4096);
    expect(h.events).toEqual(['A', 'B']);
  });
});
