/**
 * TLS and rate limits through `strata serve` itself, as a real process with
 * real clients: the in-process tests (tls.test.ts, limits.test.ts) prove the
 * server; these prove the command's options reach it. Certificates are made
 * by openssl for the test. Rate limits are asserted by what can be observed
 * as events (the options taken and reported, the data exact under the
 * limit); how fast a limited export runs is measured in bench/, not here.
 */
import { copyFileSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { OPT, REP } from '../../src/nbd/protocol.js';
import { strata, strataOk } from '../helpers/cli.js';
import { RawClient } from '../helpers/nbd-raw-client.js';
import { rng } from '../helpers/random.js';
import { startServe } from '../helpers/serve.js';
import { tmpDir } from '../helpers/tmp.js';
import { makeTlsCerts } from '../helpers/tls-certs.js';
import { requireTool, run, runOk } from '../helpers/tools.js';
import { waitUntil } from '../helpers/wait.js';

const KiB = 1024;
const MiB = 1024 * KiB;
const haveTools = ['openssl', 'nbdinfo', 'qemu-img', 'qemu-io', 'fio'].every((t) => requireTool(t));

describe.runIf(haveTools)('strata serve with TLS and rate limits, through real clients', () => {
  let pki = '';
  let clientDir = '';
  let certArgs: string[] = [];

  beforeAll(async () => {
    const certs = await makeTlsCerts();
    pki = certs.dir;
    clientDir = certs.clientDir;
    certArgs = ['--tls-cert', certs.certFile, '--tls-key', certs.keyFile];
  });
  afterAll(() => rmSync(pki, { recursive: true, force: true }));

  /** A store with leaf `disk` of 2 MiB whose first 1 MiB is seeded data. */
  function storeWithDisk(): { store: string; data: Buffer } {
    const store = tmpDir();
    const data = Buffer.concat([rng(77).bytes(MiB), Buffer.alloc(MiB)]);
    strataOk(store, ['create', 'disk', '--size', String(2 * MiB)]);
    strataOk(store, ['write', 'disk'], { input: data.subarray(0, MiB) });
    return { store, data };
  }

  const tlsUri = (socket: string) => `nbds+unix:///disk?socket=${socket}&tls-certificates=${clientDir}`;
  const qemuObject = () => `tls-creds-x509,id=tls0,dir=${clientDir},endpoint=client`;
  const qemuOpts = (socket: string) => `driver=raw,file.driver=nbd,file.path=${socket},file.export=disk,file.tls-creds=tls0,file.tls-hostname=localhost`;

  it('--json says TLS is required and no limits are set; nbdinfo over nbds+unix sees the export, TLS on, exact size', async () => {
    const { store } = storeWithDisk();
    const srv = await startServe(store, ['disk'], { extraArgs: [...certArgs, '--json'] });
    const line = JSON.parse(srv.stdout.split('\n')[0]);
    expect(line).toEqual({
      address: `nbds+unix:///?socket=${srv.socketPath}`,
      exports: [{ name: 'disk', uri: `nbds+unix:///disk?socket=${srv.socketPath}` }],
      tls: 'required',
      limits: { iops: null, bandwidth: null },
    });
    const info = JSON.parse((await runOk('nbdinfo', ['--json', tlsUri(srv.socketPath)], { timeoutMs: 60_000 })).stdout);
    expect(info.TLS).toBe(true);
    expect(info.exports.map((e: { 'export-name': string; 'export-size': number }) => [e['export-name'], e['export-size']])).toEqual([['disk', 2 * MiB]]);
    expect((await srv.stop()).code).toBe(0);
  });

  it('qemu-img info and convert over nbd with tls-creds read exactly the image; qemu-io writes land in the store', async () => {
    const { store, data } = storeWithDisk();
    const srv = await startServe(store, ['disk'], { extraArgs: certArgs });
    const object = qemuObject();
    const opts = qemuOpts(srv.socketPath);
    const info = JSON.parse((await runOk('qemu-img', ['info', '--output=json', '--object', object, '--image-opts', opts], { timeoutMs: 60_000 })).stdout);
    expect(info['virtual-size']).toBe(2 * MiB);
    const out = join(pki, `convert-${srv.pid}.raw`);
    await runOk('qemu-img', ['convert', '--object', object, '--image-opts', opts, '-O', 'raw', out], { timeoutMs: 60_000 });
    expect(readFileSync(out).equals(data)).toBe(true);
    await runOk('qemu-io', ['--object', object, '--image-opts', '-c', 'write -P 0x5c 1536k 64k', opts], { timeoutMs: 60_000 });
    expect((await srv.stop()).code).toBe(0);
    const want = Buffer.from(data);
    want.fill(0x5c, 1536 * KiB, 1600 * KiB);
    expect(strataOk(store, ['read', 'disk']).out.equals(want)).toBe(true);
    expect(strata(store, ['check']).status).toBe(0);
  });

  it('a plain-text client is refused: nbdinfo without TLS exits 1, every option gets ERR_TLS_REQD; the server serves TLS on', async () => {
    const { store } = storeWithDisk();
    const srv = await startServe(store, ['disk'], { extraArgs: certArgs });
    const plain = await run('nbdinfo', [`nbd+unix:///disk?socket=${srv.socketPath}`], { timeoutMs: 60_000 });
    expect(plain.code).toBe(1);
    expect(plain.stdout).toBe('protocol: newstyle-fixed without TLS, using simple packets\n');
    expect(plain.stderr).toContain('nbdinfo: nbd_opt_go: server replied with error to opt_go request');
    const c = await RawClient.connect(srv.socketPath);
    try {
      await c.greet();
      expect((await c.option(OPT.LIST))[0].type).toBe(REP.ERR_TLS_REQD);
      expect((await c.option(OPT.GO, RawClient.goData('disk')))[0].type).toBe(REP.ERR_TLS_REQD);
      c.sendOption(OPT.EXPORT_NAME, Buffer.from('disk'));
      expect(await c.waitClosed()).toBe(true);
    } finally {
      c.close();
    }
    // Refusing them cost the server nothing: a TLS client still gets in.
    expect((await runOk('nbdinfo', ['--size', tlsUri(srv.socketPath)], { timeoutMs: 60_000 })).stdout).toBe(`${2 * MiB}\n`);
    expect((await srv.stop()).code).toBe(0);
  });

  it('a certificate that is not one, or a key that is not its own, is one line, exit 2, and no server', async () => {
    const { store } = storeWithDisk();
    const bogus = join(pki, 'bogus.pem');
    writeFileSync(bogus, 'not a certificate\n');
    const r = strata(store, ['serve', 'disk', '--socket', join(pki, 'never.sock'), '--tls-cert', bogus, '--tls-key', join(pki, 'server-key.pem')]);
    expect(r.status).toBe(2);
    expect(r.stdout).toBe('');
    expect(r.stderr).toMatch(new RegExp(`^strata: ${bogus.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')} is not a PEM certificate \\(.*\\): --tls-cert takes a file starting -----BEGIN CERTIFICATE-----\\n$`));
    const other = join(pki, 'other-key.pem');
    await runOk('openssl', ['genpkey', '-algorithm', 'RSA', '-pkeyopt', 'rsa_keygen_bits:2048', '-out', other], { timeoutMs: 60_000 });
    const mismatch = strata(store, ['serve', 'disk', '--socket', join(pki, 'never.sock'), '--tls-cert', join(pki, 'server-cert.pem'), '--tls-key', other]);
    expect(mismatch.status).toBe(2);
    expect(mismatch.stderr).toMatch(new RegExp(`^strata: the TLS key ${other} does not belong to the certificate ${join(pki, 'server-cert.pem')} \\(.*\\)\\n$`));
  });

  it('--iops-limit and --bandwidth-limit with TLS: reported in --json and the log; fio verifies every block it wrote under the limits', async () => {
    const store = tmpDir();
    strataOk(store, ['create', 'disk', '--size', '8M']);
    const srv = await startServe(store, ['disk'], { extraArgs: [...certArgs, '--iops-limit', '400', '--bandwidth-limit', '2M', '--json', '--log-level', 'info'] });
    expect(JSON.parse(srv.stdout.split('\n')[0])).toMatchObject({ tls: 'required', limits: { iops: 400, bandwidth: 2 * MiB } });
    // The log line follows the "serving" line on another stream: wait for it, not for a time.
    // The server's own line, with what it applies (the command's line after it names the exports).
    const serverLines = () =>
      srv.stderr.split('\n').filter((l) => l.endsWith('}')).map((l) => JSON.parse(l)).filter((l) => l.msg === 'nbd server listening' && !('exports' in l));
    await waitUntil('the server to log that it listens', () => serverLines().length > 0);
    expect(serverLines()).toEqual([expect.objectContaining({ address: `nbds+unix:///?socket=${srv.socketPath}`, tls: 'required', limits: { iops: 400, bandwidth: 2 * MiB } })]);
    const fioHome = join(pki, 'fio-home');
    mkdirSync(join(fioHome, '.pki', 'libnbd'), { recursive: true });
    copyFileSync(join(clientDir, 'ca-cert.pem'), join(fioHome, '.pki', 'libnbd', 'ca-cert.pem'));
    // 512 KiB in 4 KiB blocks: 128 writes and 128 verify reads, past the 400-request burst's reach only in sum.
    const r = await run(
      'fio',
      [
        '--name=limited-tls',
        '--ioengine=nbd',
        `--uri=nbds+unix:///disk?socket=${srv.socketPath}`,
        '--rw=randwrite',
        '--bs=4k',
        '--size=8M',
        '--io_size=512k',
        '--iodepth=8',
        '--verify=crc32c',
        '--do_verify=1',
        '--verify_fatal=1',
        '--randseed=99',
        '--verify_state_save=0',
        '--output-format=json',
      ],
      // fio's engine may not name a certificate dir in the URI: libnbd then looks in $HOME/.pki/libnbd.
      // The timeout is a hang guard: the job is a fixed amount of I/O, however long the limits make it.
      { timeoutMs: 600_000, env: { ...process.env, HOME: fioHome } },
    );
    expect(r.code, r.stderr + r.stdout.slice(0, 2000)).toBe(0);
    const job = JSON.parse(r.stdout.slice(r.stdout.indexOf('{'))).jobs[0];
    expect(job.error).toBe(0);
    expect(job.write.io_bytes).toBe(512 * KiB);
    expect(job.read.io_bytes).toBe(512 * KiB);
    expect(job.write.total_ios).toBe(128);
    expect((await srv.stop()).code).toBe(0);
    // 128 distinct 4 KiB blocks, none all-zero (verify headers): exactly that much data in the image.
    const map = JSON.parse(strataOk(store, ['map', 'disk', '--json']).stdout) as { extents: { length: number; kind: string }[] };
    expect(map.extents.filter((e) => e.kind === 'data').reduce((n, e) => n + e.length, 0)).toBe(512 * KiB);
    expect(strata(store, ['check']).status).toBe(0);
  });

  it('a zero or unparsable limit is one line, exit 2, and no server', () => {
    const { store } = storeWithDisk();
    const zero = strata(store, ['serve', 'disk', '--socket', join(pki, 'never.sock'), '--iops-limit', '0']);
    expect({ status: zero.status, stdout: zero.stdout, stderr: zero.stderr }).toEqual({
      status: 2,
      stdout: '',
      stderr: 'strata: --iops-limit must be above 0 (leave it out for no limit)\n',
    });
    const bw = strata(store, ['serve', 'disk', '--socket', join(pki, 'never.sock'), '--bandwidth-limit', '0']);
    expect(bw.stderr).toBe('strata: --bandwidth-limit must be above 0 (leave it out for no limit)\n');
    expect(bw.status).toBe(2);
  });
});
