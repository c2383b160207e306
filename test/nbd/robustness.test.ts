/**
 * A raw-socket client sends what real clients never would, and checks that
 * each bad request costs at most its own connection.
 */
import { describe, expect, it } from 'vitest';
import { StrataError } from '../../src/errors.js';
import { CMD, CMD_FLAG, NBD_ERRNO, REPLY_TYPE } from '../../src/nbd/protocol.js';
import { MemoryDevice } from '../helpers/memory-device.js';
import { fixtureScope, startFixture } from '../helpers/nbd-fixture.js';
import { RawClient } from '../helpers/nbd-raw-client.js';
import { waitUntil } from '../helpers/wait.js';

const MiB = 1024 * 1024;
const scope = fixtureScope();

async function open(name: string, opts?: { structured?: boolean; meta?: boolean }): Promise<RawClient> {
  const c = await RawClient.open(scope.fx!.socketPath, name, opts);
  scope.clients.push(c);
  return c;
}

describe('bad requests', () => {
  it('out-of-range read gets EINVAL and the connection keeps serving', async () => {
    const dev = new MemoryDevice(MiB);
    dev.write(0, Buffer.alloc(4096, 7));
    scope.fx = await startFixture({ disk: dev });
    for (const structured of [false, true]) {
      const c = await open('disk', { structured });
      expect((await c.call(CMD.READ, MiB - 512, 1024)).error).toBe(NBD_ERRNO.EINVAL);
      expect((await c.call(CMD.READ, 2n ** 63n, 512)).error).toBe(NBD_ERRNO.EINVAL);
      expect((await c.call(CMD.TRIM, MiB, 1)).error).toBe(NBD_ERRNO.EINVAL);
      expect((await c.call(CMD.CACHE, MiB + 4096, 0)).error).toBe(NBD_ERRNO.EINVAL);
      // Writing past the end is ENOSPC, as the spec asks.
      expect((await c.call(CMD.WRITE, MiB - 1, 2, 0, Buffer.alloc(2))).error).toBe(NBD_ERRNO.ENOSPC);
      expect((await c.call(CMD.WRITE_ZEROES, MiB, 4096)).error).toBe(NBD_ERRNO.ENOSPC);
      const ok = await c.call(CMD.READ, 0, 4096);
      expect(ok.error).toBe(0);
      expect(ok.data!.equals(Buffer.alloc(4096, 7))).toBe(true);
    }
  });

  it('unknown commands and flags get EINVAL without dropping the connection', async () => {
    scope.fx = await startFixture({ disk: new MemoryDevice(MiB) });
    const c = await open('disk');
    expect((await c.call(42, 0, 0)).error).toBe(NBD_ERRNO.EINVAL);
    expect((await c.call(CMD.WRITE_ZEROES, 0, 4096, 1 << 9)).error).toBe(NBD_ERRNO.EINVAL);
    expect((await c.call(CMD.READ, 0, 512, CMD_FLAG.DF)).error).toBe(NBD_ERRNO.EINVAL); // DF needs structured replies
    expect((await c.call(CMD.BLOCK_STATUS, 0, 512)).error).toBe(NBD_ERRNO.EINVAL); // no meta context
    expect((await c.call(CMD.FLUSH, 0, 0)).error).toBe(0);
  });

  it('a bad request magic drops only that connection', async () => {
    scope.fx = await startFixture({ disk: new MemoryDevice(MiB) });
    const good = await open('disk');
    const bad = await open('disk');
    bad.request(CMD.READ, 0, 512, 0, undefined, 0xdeadbeef);
    expect(await bad.waitClosed()).toBe(true);
    expect((await good.call(CMD.READ, 0, 512)).error).toBe(0);
    const fresh = await open('disk');
    expect((await fresh.call(CMD.WRITE, 0, 3, 0, Buffer.from('abc'))).error).toBe(0);
  });

  it('a write larger than maxPayload is refused, then that client is disconnected', async () => {
    const dev = new MemoryDevice(MiB);
    scope.fx = await startFixture({ disk: dev }, { maxPayload: 64 * 1024 });
    const c = await open('disk');
    const other = await open('disk');
    const r = await c.call(CMD.WRITE, 0, 64 * 1024 + 1, 0, Buffer.alloc(64 * 1024 + 1, 1));
    expect(r.error).toBe(NBD_ERRNO.EINVAL);
    expect(await c.waitClosed()).toBe(true);
    expect(dev.bytes.every((b) => b === 0)).toBe(true);
    // A read of the same size has no payload to refuse: EINVAL, connection stays.
    expect((await other.call(CMD.READ, 0, 64 * 1024 + 1)).error).toBe(NBD_ERRNO.EINVAL);
    expect((await other.call(CMD.READ, 0, 64 * 1024)).error).toBe(0);
  });

  it('a read-only export refuses writes, trims and zeroes with EPERM', async () => {
    const dev = new MemoryDevice(MiB, true);
    dev.bytes.fill(9);
    scope.fx = await startFixture({ ro: dev });
    const c = await open('ro');
    expect(c.transmissionFlags & 2).toBe(2); // NBD_FLAG_READ_ONLY
    expect((await c.call(CMD.WRITE, 0, 4, 0, Buffer.alloc(4))).error).toBe(NBD_ERRNO.EPERM);
    expect((await c.call(CMD.TRIM, 0, 4096)).error).toBe(NBD_ERRNO.EPERM);
    expect((await c.call(CMD.WRITE_ZEROES, 0, 4096)).error).toBe(NBD_ERRNO.EPERM);
    expect((await c.call(CMD.READ, 0, 8)).data).toEqual(Buffer.alloc(8, 9));
  });

  it('device errors map to NBD errors: E_NO_SPACE→ENOSPC, E_READONLY→EPERM, E_RANGE→EINVAL, others→EIO', async () => {
    const dev = new MemoryDevice(MiB);
    scope.fx = await startFixture({ disk: dev });
    const c = await open('disk', { structured: true });
    const cases: [Error, number][] = [
      [new StrataError('E_NO_SPACE', 'full'), NBD_ERRNO.ENOSPC],
      [new StrataError('E_READONLY', 'frozen'), NBD_ERRNO.EPERM],
      [new StrataError('E_RANGE', 'past end'), NBD_ERRNO.EINVAL],
      [new StrataError('E_CORRUPT', 'bad slot'), NBD_ERRNO.EIO],
      [new TypeError('bug'), NBD_ERRNO.EIO],
    ];
    for (const [err, errno] of cases) {
      dev.failNext = err;
      const r = await c.call(CMD.WRITE, 0, 4, 0, Buffer.alloc(4));
      expect(r.error).toBe(errno);
      expect(r.chunks![0].type).toBe(REPLY_TYPE.ERROR);
    }
    dev.failNext = new StrataError('E_IO', 'disk gone');
    expect((await c.call(CMD.READ, 0, 4096)).error).toBe(NBD_ERRNO.EIO);
    expect((await c.call(CMD.READ, 0, 4096)).error).toBe(0);
  });
});

describe('transmission', () => {
  it('answers many pipelined requests, each with its own handle', async () => {
    const dev = new MemoryDevice(4 * MiB);
    scope.fx = await startFixture({ disk: dev });
    const c = await open('disk', { structured: true });
    const reads = new Map<bigint, number>();
    const sent: bigint[] = [];
    for (let i = 0; i < 200; i++) {
      sent.push(c.request(CMD.WRITE, i * 8192, 8192, 0, Buffer.alloc(8192, i & 0xff)));
      const h = c.request(CMD.READ, i * 8192, 8192);
      reads.set(h, 8192);
      sent.push(h);
    }
    const seen = new Set<bigint>();
    for (let i = 0; i < sent.length; i++) {
      const r = await c.readReply(reads);
      expect(r.error).toBe(0);
      seen.add(r.handle);
    }
    expect(seen.size).toBe(sent.length);
    for (let i = 0; i < 200; i++) expect(dev.bytes[i * 8192 + 100]).toBe(i & 0xff);
  });

  it('structured reads send holes as OFFSET_HOLE chunks and data as OFFSET_DATA', async () => {
    const dev = new MemoryDevice(MiB);
    dev.write(4096, Buffer.alloc(4096, 0xaa));
    dev.write(20000, Buffer.alloc(100, 0xbb));
    dev.writeZeroes(65536, 65536);
    scope.fx = await startFixture({ disk: dev });
    const c = await open('disk', { structured: true });
    const r = await c.call(CMD.READ, 1000, 200_000);
    expect(r.error).toBe(0);
    expect(r.data!.equals(dev.bytes.subarray(1000, 201_000))).toBe(true);
    const types = r.chunks!.map((k) => k.type);
    expect(types).toContain(REPLY_TYPE.OFFSET_HOLE);
    expect(types).toContain(REPLY_TYPE.OFFSET_DATA);
    // With DF, one data chunk carries everything, zeros included.
    const df = await c.call(CMD.READ, 1000, 200_000, CMD_FLAG.DF);
    expect(df.chunks!.length).toBe(1);
    expect(df.data!.equals(dev.bytes.subarray(1000, 201_000))).toBe(true);
  });

  it('BLOCK_STATUS reports base:allocation, and REQ_ONE limits it to one extent', async () => {
    const dev = new MemoryDevice(MiB);
    dev.write(8192, Buffer.alloc(8192, 1));
    dev.writeZeroes(16384, 4096);
    scope.fx = await startFixture({ disk: dev });
    const c = await open('disk', { structured: true, meta: true });
    const r = await c.call(CMD.BLOCK_STATUS, 0, MiB);
    const p = r.chunks![0].payload;
    const desc = [];
    for (let at = 4; at < p.length; at += 8) desc.push([p.readUInt32BE(at), p.readUInt32BE(at + 4)]);
    expect(desc).toEqual([
      [8192, 3],
      [8192, 0],
      [MiB - 16384, 3],
    ]);
    const one = await c.call(CMD.BLOCK_STATUS, 8192, 100, CMD_FLAG.REQ_ONE);
    expect(one.chunks![0].payload.length).toBe(12);
    expect(one.chunks![0].payload.readUInt32BE(4)).toBe(100);
  });

  it('FUA writes and FLUSH reach device.flush before the reply', async () => {
    const dev = new MemoryDevice(MiB);
    scope.fx = await startFixture({ disk: dev });
    const c = await open('disk');
    await c.call(CMD.WRITE, 0, 4, 0, Buffer.alloc(4, 1));
    expect(dev.flushes).toBe(0);
    await c.call(CMD.WRITE, 0, 4, CMD_FLAG.FUA, Buffer.alloc(4, 1));
    expect(dev.flushes).toBe(1);
    await c.call(CMD.WRITE_ZEROES, 0, 4096, CMD_FLAG.FUA | CMD_FLAG.FAST_ZERO | CMD_FLAG.NO_HOLE);
    expect(dev.flushes).toBe(2);
    await c.call(CMD.FLUSH, 0, 0);
    expect(dev.flushes).toBe(3);
  });

  it('DISC answers outstanding requests, then closes; the last connection closes the device', async () => {
    const dev = new MemoryDevice(MiB);
    scope.fx = await startFixture({ disk: dev });
    const a = await open('disk');
    const b = await open('disk');
    expect(scope.fx.opened).toEqual(['disk']); // one device shared by both connections
    const h = a.request(CMD.WRITE, 0, 4, 0, Buffer.from('last'));
    a.request(CMD.DISC, 0, 0);
    a.request(CMD.READ, 0, 4); // after DISC: must be ignored
    const r = await a.readReply();
    expect(r.handle).toBe(h);
    expect(await a.waitClosed()).toBe(true);
    expect(dev.closed).toBe(false);
    b.request(CMD.DISC, 0, 0);
    expect(await b.waitClosed()).toBe(true);
    // The server releases the device as it tears the last connection down, a turn after the socket closes.
    await waitUntil('the server to close the device after its last connection', () => dev.closed);
    expect(dev.bytes.subarray(0, 4).toString()).toBe('last');
  });
});
