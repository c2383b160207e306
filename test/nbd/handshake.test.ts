/**
 * Option haggling as the spec describes it, driven by a raw client.
 */
import { statSync, existsSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { StrataError } from '../../src/errors.js';
import { startNbdServer } from '../../src/nbd/server.js';
import { CMD, FLAG_FIXED_NEWSTYLE, FLAG_NO_ZEROES, INFO, OPT, REP } from '../../src/nbd/protocol.js';
import { MemoryDevice } from '../helpers/memory-device.js';
import { fixtureScope, startFixture } from '../helpers/nbd-fixture.js';
import { RawClient } from '../helpers/nbd-raw-client.js';

const MiB = 1024 * 1024;
const scope = fixtureScope();

async function connect(): Promise<RawClient> {
  const c = await RawClient.connect(scope.fx!.socketPath);
  scope.clients.push(c);
  return c;
}

describe('handshake', () => {
  it('greets with fixed newstyle and no-zeroes, and answers unknown options with ERR_UNSUP', async () => {
    scope.fx = await startFixture({ disk: new MemoryDevice(MiB) });
    const c = await connect();
    expect(await c.greet()).toBe(FLAG_FIXED_NEWSTYLE | FLAG_NO_ZEROES);
    expect((await c.option(99))[0].type).toBe(REP.ERR_UNSUP);
    expect((await c.option(OPT.LIST, Buffer.from('x')))[0].type).toBe(REP.ERR_INVALID);
    expect((await c.option(OPT.STARTTLS))[0].type).toBe(REP.ERR_UNSUP); // no TLS configured
    const list = await c.option(OPT.LIST);
    expect(list.map((r) => r.type)).toEqual([REP.SERVER, REP.ACK]);
    expect((await c.option(OPT.ABORT))[0].type).toBe(REP.ACK);
    expect(await c.waitClosed()).toBe(true);
  });

  it('INFO describes an export without entering transmission; GO on an unknown export errors', async () => {
    scope.fx = await startFixture({ disk: new MemoryDevice(3 * MiB, true) });
    const c = await connect();
    await c.greet();
    const info = await c.option(OPT.INFO, RawClient.goData('disk', [INFO.NAME, INFO.DESCRIPTION, INFO.BLOCK_SIZE]));
    const byType = new Map(info.filter((r) => r.type === REP.INFO).map((r) => [r.data.readUInt16BE(0), r.data]));
    expect(Number(byType.get(INFO.EXPORT)!.readBigUInt64BE(2))).toBe(3 * MiB);
    expect(byType.get(INFO.NAME)!.subarray(2).toString()).toBe('disk');
    expect(byType.get(INFO.DESCRIPTION)!.subarray(2).toString()).toBe('test export disk');
    const bs = byType.get(INFO.BLOCK_SIZE)!;
    expect([bs.readUInt32BE(2), bs.readUInt32BE(6), bs.readUInt32BE(10)]).toEqual([1, 4096, 32 * MiB]);
    expect(info[info.length - 1].type).toBe(REP.ACK);
    expect((await c.option(OPT.GO, RawClient.goData('nope')))[0].type).toBe(REP.ERR_UNKNOWN);
    expect((await c.option(OPT.GO, Buffer.from([0, 0, 0, 9, 1]))).at(-1)!.type).toBe(REP.ERR_INVALID);
    // The empty name is the default export when there is exactly one.
    expect((await c.option(OPT.GO, RawClient.goData(''))).at(-1)!.type).toBe(REP.ACK);
    expect((await c.call(CMD.READ, 0, 16)).error).toBe(0);
  });

  it('meta contexts need structured replies and name base:allocation', async () => {
    scope.fx = await startFixture({ disk: new MemoryDevice(MiB) });
    const c = await connect();
    await c.greet();
    expect((await c.option(OPT.SET_META_CONTEXT, RawClient.metaData('disk', ['base:allocation'])))[0].type).toBe(REP.ERR_INVALID);
    await c.option(OPT.STRUCTURED_REPLY);
    const all = await c.option(OPT.LIST_META_CONTEXT, RawClient.metaData('disk', []));
    expect(all.map((r) => r.type)).toEqual([REP.META_CONTEXT, REP.ACK]);
    expect(all[0].data.subarray(4).toString()).toBe('base:allocation');
    const wild = await c.option(OPT.LIST_META_CONTEXT, RawClient.metaData('disk', ['base:']));
    expect(wild.map((r) => r.type)).toEqual([REP.META_CONTEXT, REP.ACK]);
    const other = await c.option(OPT.SET_META_CONTEXT, RawClient.metaData('disk', ['qemu:dirty-bitmap:x']));
    expect(other.map((r) => r.type)).toEqual([REP.ACK]);
    expect((await c.option(OPT.SET_META_CONTEXT, RawClient.metaData('nope', ['base:allocation'])))[0].type).toBe(REP.ERR_UNKNOWN);
    const set = await c.option(OPT.SET_META_CONTEXT, RawClient.metaData('disk', ['base:allocation']));
    expect(set.map((r) => r.type)).toEqual([REP.META_CONTEXT, REP.ACK]);
    expect((await c.option(OPT.GO, RawClient.goData('disk'))).at(-1)!.type).toBe(REP.ACK);
    c.structured = true;
    expect((await c.call(CMD.BLOCK_STATUS, 0, 4096)).error).toBe(0);
  });

  it('EXPORT_NAME enters transmission with a no-zeroes reply; an unknown name hangs up', async () => {
    scope.fx = await startFixture({ disk: new MemoryDevice(MiB) });
    const c = await connect();
    await c.greet();
    c.sendOption(OPT.EXPORT_NAME, Buffer.from('disk'));
    const r = await c.reader.read(10);
    expect(Number(r.readBigUInt64BE(0))).toBe(MiB);
    expect((await c.call(CMD.WRITE, 0, 2, 0, Buffer.from('ok'))).error).toBe(0);
    const d = await connect();
    await d.greet();
    d.sendOption(OPT.EXPORT_NAME, Buffer.from('missing'));
    expect(await d.waitClosed()).toBe(true);
  });

  it('a catalog refusal (E_BUSY) is reported to GO as ERR_POLICY', async () => {
    const dir = (await import('node:fs')).mkdtempSync((await import('node:os')).tmpdir() + '/strata-busy-');
    const socketPath = `${dir}/s.sock`;
    const server = await startNbdServer({
      socketPath,
      catalog: {
        list: () => [{ name: 'leaf' }],
        open: () => {
          throw new StrataError('E_BUSY', 'leaf is open elsewhere');
        },
      },
    });
    try {
      const c = await RawClient.connect(socketPath);
      scope.clients.push(c);
      await c.greet();
      const r = await c.option(OPT.GO, RawClient.goData('leaf'));
      expect(r[0].type).toBe(REP.ERR_POLICY);
      expect(r[0].data.toString()).toMatch(/E_BUSY/);
    } finally {
      await server.close();
    }
  });
});

describe('server lifecycle', () => {
  it('creates the socket 0600, and close() flushes and closes open devices and removes it', async () => {
    const dev = new MemoryDevice(MiB);
    scope.fx = await startFixture({ disk: dev });
    expect(statSync(scope.fx.socketPath).mode & 0o777).toBe(0o600);
    const c = await RawClient.open(scope.fx.socketPath, 'disk');
    scope.clients.push(c);
    await c.call(CMD.WRITE, 0, 1, 0, Buffer.from('x'));
    const path = scope.fx.socketPath;
    await scope.fx.close();
    scope.fx = null;
    expect(dev.flushes).toBeGreaterThan(0);
    expect(dev.closed).toBe(true);
    expect(existsSync(path)).toBe(false);
    expect(await c.waitClosed()).toBe(true);
  });

  it('refuses to start on a socket another server is listening on', async () => {
    scope.fx = await startFixture({ disk: new MemoryDevice(MiB) });
    await expect(startNbdServer({ socketPath: scope.fx.socketPath, catalog: { list: () => [], open: () => { throw new Error(); } } })).rejects.toMatchObject({ code: 'E_BUSY' });
  });

  it('listens on TCP with an nbd:// address', async () => {
    const server = await startNbdServer({ port: 0, catalog: { list: () => [], open: () => { throw new Error(); } } });
    try {
      expect(server.address).toMatch(/^nbd:\/\/127\.0\.0\.1:\d+\/$/);
    } finally {
      await server.close();
    }
  });
});
