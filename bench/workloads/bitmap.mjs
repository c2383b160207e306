/**
 * NBD dirty bitmaps (issue #26): NBD_CMD_BLOCK_STATUS on the
 * `qemu:dirty-bitmap:vm@mon` context of a 1 TiB leaf where 1% of the blocks
 * were written since the snapshot `vm@mon` (64 KiB runs at seeded random
 * offsets, through the ordinary write path: bench/lib/build-dirty.mjs).
 *
 * - Goal: one request as long as NBD allows (4 GiB - 4 KiB) at a random
 *   4 GiB-aligned offset, timed from send to the last reply byte, one at a
 *   time on one connection to `strata serve vm --bitmap vm@mon`. The changes
 *   hit about 92% of the map segments, so nearly every segment in a request
 *   is compared entry by entry: the worst case for a spread of 1%.
 * - Reference: the whole disk's bitmap, walked as a client does (each
 *   request continues where the last reply stopped), and the server's peak
 *   RSS after it.
 * No peer: qemu-nbd -B would need the same 11 GB written into a qcow2 first.
 */
import path from 'node:path';
import { run, stats, tick, vmHwm } from '../lib/timing.mjs';
import { fig, single } from '../lib/report.mjs';
import { rmDir, tmpDir } from '../lib/inputs.mjs';
import { ROOT, STRATA_MAIN } from '../lib/tools.mjs';
import { startServer } from './nbd.mjs';
import { connectStatus } from '../lib/nbd-status.mjs';

const node = process.execPath;
const TiB = 2 ** 40;
const MAX_REQUEST = 2 ** 32 - 4096;

export async function bitmapWorkload(ctx) {
  const { report, quick, log } = ctx;
  const requests = ctx.explicitRuns ?? (quick ? 30 : 100);
  const work = tmpDir('bitmap');
  const store = path.join(work, 'store');
  const sock = path.join(work, 'nbd.sock');
  let server;
  let client;
  try {
    log('bitmap: writing 1% of a 1 TiB leaf (about 11 GB) since its snapshot');
    const built = JSON.parse(run(node, [path.join(ROOT, 'bench', 'lib', 'build-dirty.mjs'), store, String(TiB), '0.01', '65536']).stdout);
    log(`bitmap: ${built.runs} runs written in ${(built.ms / 1000).toFixed(1)} s; serving`);
    server = await startServer(node, [STRATA_MAIN, '--store', store, 'serve', 'vm', '--bitmap', 'vm@mon', '--socket', sock], sock);
    client = await connectStatus(sock, 'vm', 'qemu:dirty-bitmap:vm@mon');

    // Seeded offsets: the same requests every run of the bench.
    let seed = 7;
    const nextOffset = () => {
      seed = (seed * 1103515245 + 12345) % 2 ** 31;
      return (seed % 256) * 2 ** 32;
    };
    const xs = [];
    for (let i = -3; i < requests; i++) {
      await tick();
      const t0 = performance.now();
      const d = await client.status(nextOffset(), MAX_REQUEST);
      if (i >= 0) xs.push(performance.now() - t0);
      if (d.length === 0) throw new Error('empty block status reply');
    }
    const one = stats(xs);
    report.add({
      section: 'backup',
      order: 30,
      goal: 'dirty bitmap block status, 1 TiB leaf with 1% changed: one 4 GiB request',
      strata: fig(one, 'ms'),
      peer: null,
      target: '≤ 50 ms',
      met: one.median <= 50,
      note: `${requests} requests of 4 GiB - 4 KiB at seeded offsets, one at a time, NBD_CMD_BLOCK_STATUS on qemu:dirty-bitmap:vm@mon through strata serve; 1% = ${built.runs} runs of 64 KiB written since the snapshot`,
    });

    log('bitmap: walking the whole disk');
    const t0 = performance.now();
    let at = 0;
    let extents = 0;
    let dirty = 0;
    while (at < TiB) {
      const d = await client.status(at, Math.min(MAX_REQUEST, TiB - at));
      for (const [len, flags] of d) {
        extents++;
        if (flags & 1) dirty += len;
        at += len;
      }
    }
    const walk = performance.now() - t0;
    if (dirty !== built.changedBytes) throw new Error(`the bitmap says ${dirty} bytes dirty, ${built.changedBytes} were written`);
    const hwm = vmHwm(server.pid);
    report.add({
      section: 'backup',
      order: 31,
      goal: 'dirty bitmap of a whole 1 TiB leaf with 1% changed, walked as a client does',
      strata: single(walk, 'ms'),
      peer: null,
      target: '(reference)',
      note: `${extents} extents; the dirty bytes equal the bytes written (${built.changedBytes}); peak RSS of the server after the walk ${(hwm / 2 ** 20).toFixed(0)} MiB`,
    });
  } finally {
    client?.close();
    await server?.stop();
    rmDir(work);
  }
}
