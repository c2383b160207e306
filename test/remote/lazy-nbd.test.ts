/**
 * A lazy clone served over NBD (`strata serve`), read by qemu-img,
 * nbdcopy and fio, against a real Ceph RGW (no mock): byte-identical to the pushed
 * image, and only the blocks read are fetched (counted as the store's
 * blocks still remote, before and after). Then the RGW gateway stopped in
 * the middle: a read of blocks not yet fetched fails with an I/O error
 * (never zeros), and succeeds once the gateway is back. The gateway stopped
 * is a second one on the same cluster (rgw.sh gw-start b), so other test
 * files running meanwhile see no outage.
 */
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { execFileSync } from 'node:child_process';
import Database from 'better-sqlite3';
import { beforeAll, describe, expect, it, vi } from 'vitest';
import { strataOk } from '../helpers/cli.js';
import { rng } from '../helpers/random.js';
import { RGW_SCRIPT, freshBucket, haveRgw, outageGateway, rgw } from '../helpers/rgw.js';
import { startServe } from '../helpers/serve.js';
import { tmpDir } from '../helpers/tmp.js';
import { distinctBlocks as distinct } from '../helpers/blocks.js';
import { requireTool, run, runOk } from '../helpers/tools.js';

const MiB = 1024 * 1024;
const SIZE = 16 * MiB;

/** Blocks of the store still in a remote pack (read beside the server: WAL readers do not block). */
function stillRemote(store: string): number {
  const db = new Database(path.join(store, 'strata.db'), { readonly: true });
  try {
    return db.prepare('SELECT count(*) FROM remote_locs').pluck().get() as number;
  } finally {
    db.close();
  }
}

/** A pushed image and a second store with a lazy clone `vm7` of it (B reaching the bucket through `endpointB`). */
function setUp(seed: number, endpointB?: string): { img: Buffer; B: string; dir: string } {
  const { endpoint } = rgw();
  const dir = tmpDir();
  const r = rng(seed);
  const img = Buffer.alloc(SIZE);
  r.text(6 * MiB).copy(img);
  r.bytes(2 * MiB).copy(img, 8 * MiB);
  const file = path.join(dir, 'src.raw');
  fs.writeFileSync(file, img);
  const A = path.join(dir, 'A');
  const B = path.join(dir, 'B');
  const bucket = freshBucket('lazynbd');
  for (const s of [A, B]) {
    strataOk(s, ['init']);
    strataOk(s, ['remote', 'add', 'fleet', `s3://${bucket}`, '--create', '--endpoint', s === B && endpointB ? endpointB : endpoint]);
  }
  strataOk(A, ['create', 'deb', '--from', file]);
  strataOk(A, ['freeze', 'deb']);
  strataOk(A, ['push', 'deb', 'fleet', '--pack-size', '1M']);
  strataOk(B, ['clone', 'fleet/deb', 'vm7']);
  return { img, B, dir };
}

const tools = () => requireTool('qemu-img') && requireTool('nbdcopy') && requireTool('qemu-io');

describe.skipIf(!haveRgw() || !tools())('a lazy clone served over NBD (Ceph RGW)', () => {
  beforeAll(() => {
    rgw();
  });

  it('reads byte-identical through qemu-img and nbdcopy, fetching only the blocks read', async () => {
    const { img, B, dir } = setUp(91);
    const all = distinct(img).size;
    expect(stillRemote(B)).toBe(all);
    const served = await startServe(B, ['vm7'], { extraArgs: ['--log-level', 'info'] });
    const uri = served.uri('vm7');

    // 64 KiB at 1 MiB with qemu-img convert through a raw window (qemu-img dd cannot skip on nbd):
    // only those blocks come from the bucket.
    const part = path.join(dir, 'part.raw');
    const opts = `driver=raw,offset=${MiB},size=65536,file.driver=nbd,file.path=${served.socketPath},file.export=vm7`;
    await runOk('qemu-img', ['convert', '--image-opts', opts, '-O', 'raw', part]);
    expect(fs.readFileSync(part).equals(img.subarray(MiB, MiB + 65536))).toBe(true);
    // Exactly the window's distinct blocks were fetched (its probes read inside the window).
    expect(all - stillRemote(B)).toBe(distinct(img.subarray(MiB, MiB + 65536)).size);

    // The whole disk with nbdcopy: byte-identical, and then nothing is remote.
    const whole = path.join(dir, 'whole.raw');
    await runOk('nbdcopy', [uri, whole]);
    expect(fs.readFileSync(whole).equals(img)).toBe(true);
    expect(stillRemote(B)).toBe(0);
    await served.stop();
    // At exit the server logs what it fetched (bench/workloads/remote.mjs reads this line): every
    // block (at least once: two requests in flight may both fetch a block they share), in ranged GETs.
    await vi.waitFor(() => expect(served.stderr).toMatch(/"msg":"stopped"/));
    const line = served.stderr.split('\n').find((l) => l.includes('"msg":"stopped"'))!;
    const stopped = JSON.parse(line) as { fetchedBlocks: number; fetchedBytes: number; gets: number };
    expect(stopped.fetchedBlocks).toBeGreaterThanOrEqual(all);
    expect(stopped.gets).toBeGreaterThanOrEqual(2);
    expect(stopped.fetchedBytes).toBeGreaterThan(0);
    strataOk(B, ['check']);
  }, 180_000);

  it.runIf(requireTool('fio'))('fio (ioengine=nbd) random reads of one MiB fetch exactly that MiB\'s blocks', async () => {
    const { img, B } = setUp(94);
    const all = distinct(img).size;
    const served = await startServe(B, ['vm7']);
    const r = await run(
      'fio',
      ['--name=lazy-randread', '--ioengine=nbd', `--uri=${served.uri('vm7')}`, '--rw=randread', '--bs=4k', `--offset=${4 * MiB}`, `--size=${MiB}`, '--iodepth=8', '--randseed=94', '--output-format=json'],
      { timeoutMs: 120_000 },
    );
    expect(r.code, r.stderr + r.stdout.slice(0, 2000)).toBe(0);
    const job = JSON.parse(r.stdout.slice(r.stdout.indexOf('{'))).jobs[0];
    expect(job.error).toBe(0);
    expect(job.read.io_bytes).toBe(MiB);
    await served.stop();
    // Every 4 KiB of that MiB was read once (fio's random map); only its blocks left the bucket.
    expect(all - stillRemote(B)).toBe(distinct(img.subarray(4 * MiB, 5 * MiB)).size);
    strataOk(B, ['check']);
  }, 180_000);

  it('the RGW gateway stopped mid-read: an I/O error, then the same read succeeds once it is back', async () => {
    // B reads through gateway b, which only this test stops: the files running beside it use a.
    const { img, B } = setUp(92, outageGateway());
    const served = await startServe(B, ['vm7']);
    const uri = served.uri('vm7');
    // A first read works.
    await runOk('qemu-io', ['-r', '-f', 'raw', '-c', 'read 0 64k', uri]);
    try {
      execFileSync(RGW_SCRIPT, ['gw-stop', 'b'], { stdio: 'inherit' });
      const r = await run('qemu-io', ['-r', '-f', 'raw', '-c', 'read 2M 64k', uri], { timeoutMs: 120_000 });
      expect(`${r.stdout}${r.stderr}`).toMatch(/Input\/output error/);
    } finally {
      execFileSync(RGW_SCRIPT, ['gw-start', 'b'], { stdio: 'inherit', timeout: 90_000 });
    }
    const r2 = await runOk('qemu-io', ['-r', '-f', 'raw', '-c', 'read -v 2M 16', uri]);
    const hex = img.subarray(2 * MiB, 2 * MiB + 16).toString('hex').replace(/(..)/g, '$1 ').trim();
    expect(r2.stdout.replace(/\s+/g, ' ')).toContain(hex.slice(0, 23));
    await served.stop();
  }, 240_000);

  it('a slow remote stalls only the reads that need it: a local block read after a remote one is answered first', async () => {
    const { endpoint } = rgw();
    const { img, B } = setUp(95);
    // A proxy in front of the gateway that holds every answer back DELAY ms while `slow`.
    const DELAY = 3000;
    let slow = false;
    const target = new URL(endpoint);
    const proxy = net.createServer((client) => {
      const up = net.connect(Number(target.port), target.hostname);
      client.pipe(up);
      up.on('data', (d) => (slow ? setTimeout(() => client.write(d), DELAY) : client.write(d)));
      up.on('end', () => (slow ? setTimeout(() => client.end(), DELAY) : client.end()));
      const drop = () => (client.destroy(), up.destroy());
      client.on('error', drop);
      up.on('error', drop);
    });
    await new Promise<void>((r) => proxy.listen(0, '127.0.0.1', r));
    const port = (proxy.address() as net.AddressInfo).port;
    try {
      strataOk(B, ['remote', 'add', 'fleet', `s3://${JSON.parse(fs.readFileSync(path.join(B, 'remotes', 'fleet', 'remote.json'), 'utf8')).bucket}`, '--endpoint', `http://127.0.0.1:${port}`, '--replace', '--no-check']);
      const served = await startServe(B, ['vm7']);
      const uri = served.uri('vm7');
      await runOk('qemu-io', ['-r', '-f', 'raw', '-c', 'read 0 4k', uri]); // now local
      slow = true;
      const t0 = Date.now();
      const r = await runOk('qemu-io', ['-r', '-f', 'raw', '-c', 'aio_read -v 2M 16', '-c', 'aio_read -v 0 16', '-c', 'aio_flush', uri], { timeoutMs: 120_000 });
      expect(Date.now() - t0).toBeGreaterThanOrEqual(DELAY);
      // Completions print in the order they arrive: the local block's first, though asked second.
      const at0 = r.stdout.indexOf('bytes at offset 0');
      const at2M = r.stdout.indexOf(`bytes at offset ${2 * MiB}`);
      expect(at0, r.stdout).toBeGreaterThanOrEqual(0);
      expect(at2M, r.stdout).toBeGreaterThan(at0);
      const hex = (o: number) => img.subarray(o, o + 16).toString('hex').replace(/(..)/g, '$1 ').trim().slice(0, 23);
      expect(r.stdout.replace(/\s+/g, ' ')).toContain(hex(0));
      expect(r.stdout.replace(/\s+/g, ' ')).toContain(hex(2 * MiB));
      await served.stop();
    } finally {
      proxy.close();
    }
  }, 180_000);

  it('strata read and export of a lazy clone fetch what they read first', () => {
    const { img, B, dir } = setUp(93);
    const part = path.join(dir, 'part.raw');
    strataOk(B, ['read', 'vm7', part, '--offset', '9M', '--length', '64K']);
    expect(fs.readFileSync(part).equals(img.subarray(9 * MiB, 9 * MiB + 65536))).toBe(true);
    expect(distinct(img).size - stillRemote(B)).toBe(distinct(img.subarray(9 * MiB, 9 * MiB + 65536)).size);
    const out = path.join(dir, 'out.raw');
    strataOk(B, ['export', 'vm7', out]);
    expect(fs.readFileSync(out).equals(img)).toBe(true);
    expect(stillRemote(B)).toBe(0);
    strataOk(B, ['check']);
  }, 180_000);
});
