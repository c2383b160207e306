/**
 * FORCEDTLS mode: with `tls` set, clients must NBD_OPT_STARTTLS first.
 * Real clients (nbdinfo via libnbd/GnuTLS, qemu-img and qemu-io) connect
 * with a self-signed certificate made by openssl for the test.
 */
import { readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { OPT, REP } from '../../src/nbd/protocol.js';
import { MemoryDevice } from '../helpers/memory-device.js';
import { startFixture, type Fixture } from '../helpers/nbd-fixture.js';
import { RawClient } from '../helpers/nbd-raw-client.js';
import { makeTlsCerts } from '../helpers/tls-certs.js';
import { requireTool, run, runOk } from '../helpers/tools.js';

const MiB = 1024 * 1024;
const haveTools = requireTool('openssl') && requireTool('nbdinfo') && requireTool('qemu-img') && requireTool('qemu-io');

describe.runIf(haveTools)('TLS', () => {
  let dir = '';
  let clientDir = '';
  let tls: { cert: Buffer; key: Buffer };
  let fx: Fixture | null = null;
  const clients: RawClient[] = [];

  beforeAll(async () => {
    const certs = await makeTlsCerts();
    dir = certs.dir;
    clientDir = certs.clientDir;
    tls = { cert: readFileSync(certs.certFile), key: readFileSync(certs.keyFile) };
  });
  afterEach(async () => {
    for (const c of clients.splice(0)) c.close();
    await fx?.close();
    fx = null;
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('nbdinfo connects with nbds+unix and sees the export', async () => {
    fx = await startFixture({ disk: new MemoryDevice(2 * MiB) }, { tls });
    expect(fx.address.startsWith('nbds+unix://')).toBe(true);
    const uri = `nbds+unix:///disk?socket=${fx.socketPath}&tls-certificates=${clientDir}`;
    const r = await runOk('nbdinfo', [uri], { timeoutMs: 20_000 });
    expect(r.stdout).toMatch(/with TLS/);
    expect(r.stdout).toMatch(/export-size: 2097152/);
  });

  it('qemu-io writes and qemu-img reads back over TLS', async () => {
    const dev = new MemoryDevice(2 * MiB);
    fx = await startFixture({ disk: dev }, { tls });
    const object = `tls-creds-x509,id=tls0,dir=${clientDir},endpoint=client`;
    const opts = `driver=raw,file.driver=nbd,file.path=${fx.socketPath},file.export=disk,file.tls-creds=tls0,file.tls-hostname=localhost`;
    await runOk('qemu-io', ['--object', object, '--image-opts', '-c', 'write -P 0x5c 4096 64k', opts], { timeoutMs: 30_000 });
    expect(dev.bytes.subarray(4096, 4096 + 65536).every((b) => b === 0x5c)).toBe(true);
    const out = join(dir, 'copy.raw');
    await runOk('qemu-img', ['convert', '--object', object, '--image-opts', opts, '-O', 'raw', out], { timeoutMs: 30_000 });
    expect(readFileSync(out).equals(dev.bytes)).toBe(true);
  });

  it('a client without TLS is refused: options get ERR_TLS_REQD, EXPORT_NAME hangs up', async () => {
    fx = await startFixture({ disk: new MemoryDevice(MiB) }, { tls });
    const plain = await run('nbdinfo', [fx.uri('disk')], { timeoutMs: 20_000 });
    expect(plain.code).not.toBe(0);
    const c = await RawClient.connect(fx.socketPath);
    clients.push(c);
    await c.greet();
    expect((await c.option(OPT.LIST))[0].type).toBe(REP.ERR_TLS_REQD);
    expect((await c.option(OPT.GO, RawClient.goData('disk')))[0].type).toBe(REP.ERR_TLS_REQD);
    expect((await c.option(OPT.STRUCTURED_REPLY))[0].type).toBe(REP.ERR_TLS_REQD);
    c.sendOption(OPT.EXPORT_NAME, Buffer.from('disk'));
    expect(await c.waitClosed()).toBe(true);
  });

  it('a failed TLS handshake drops only that connection', async () => {
    fx = await startFixture({ disk: new MemoryDevice(MiB) }, { tls });
    const c = await RawClient.connect(fx.socketPath);
    clients.push(c);
    await c.greet();
    expect((await c.option(OPT.STARTTLS))[0].type).toBe(REP.ACK);
    c.send(Buffer.from('this is not a TLS ClientHello, not at all\r\n'));
    expect(await c.waitClosed()).toBe(true);
    const uri = `nbds+unix:///disk?socket=${fx.socketPath}&tls-certificates=${clientDir}`;
    expect((await runOk('nbdinfo', ['--size', uri], { timeoutMs: 20_000 })).stdout.trim()).toBe(String(MiB));
  });
});
