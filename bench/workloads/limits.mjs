/**
 * Rate limits through `strata serve` (the timing half of the tests in
 * test/nbd/serve-tls.test.ts and test/nbd/limits.test.ts, which assert only
 * what events show): fio over NBD against one server with --iops-limit and
 * one with --bandwidth-limit, each beside the same job on an unlimited
 * server of the same image. Rows go to the "other" table.
 *
 * What a limit should give: the bucket starts full (one second's worth), so
 * a job of N units at a limit of L per second takes (N - L) / L seconds and
 * averages L * N / (N - L) per second. The row compares the measured rate
 * with that expectation (target: within 15%), and says how much faster the
 * same job runs unlimited.
 */
import fs from 'node:fs';
import path from 'node:path';
import { stats } from '../lib/timing.mjs';
import { fig } from '../lib/report.mjs';
import { MiB, randomFile, rmDir, tmpDir } from '../lib/inputs.mjs';
import { hasServe, strataArgs, STRATA_MAIN } from '../lib/tools.mjs';
import { run } from '../lib/timing.mjs';
import { fio, startServer } from './nbd.mjs';

const node = process.execPath;
const SIZE = 64 * MiB;

const CASES = [
  { key: 'iops', flag: ['--iops-limit', '500'], limit: 500, rw: 'randread', bs: '4k', io: 16 * MiB, unit: 'IOPS', metric: (d) => d.iops, units: (io) => io / 4096 },
  { key: 'bandwidth', flag: ['--bandwidth-limit', '8M'], limit: 8 * MiB, rw: 'read', bs: '1M', io: 64 * MiB, unit: 'MB/s', metric: (d) => d.bw_bytes / 1e6, units: (io) => io },
];

function job(c, sock, seed) {
  return [
    `--name=limit-${c.key}`,
    '--ioengine=nbd',
    `--uri=nbd+unix:///vm?socket=${sock}`,
    `--rw=${c.rw}`,
    `--bs=${c.bs}`,
    '--iodepth=16',
    `--size=${SIZE}`,
    `--io_size=${c.io}`,
    `--randseed=${seed}`,
    '--output-format=json',
  ];
}

export async function limitsWorkload(ctx) {
  const { report, have, log } = ctx;
  if (!have.fioNbd || !hasServe()) {
    for (const c of CASES) report.skip(`strata serve ${c.flag.join(' ')}: fio rate vs the limit`, !have.fioNbd ? 'fio has no nbd ioengine' : 'strata serve not available', { section: 'other' });
    return;
  }
  const runs = ctx.runs('heavy');
  const work = tmpDir('limits');
  const store = path.join(work, 'store');
  try {
    const file = randomFile(SIZE, 'random-64m.raw');
    run(node, strataArgs(store, 'import', file, 'vm', '--writable'));
    for (const c of CASES) {
      const limited = [];
      const free = [];
      for (let i = -1; i < runs; i++) {
        // A fresh server per run: each starts with a full bucket, as the expectation assumes.
        for (const [args, xs] of [
          [c.flag, limited],
          [[], free],
        ]) {
          const sock = path.join(work, `${c.key}.sock`);
          const srv = await startServer(node, [STRATA_MAIN, '--store', store, 'serve', 'vm', '--socket', sock, ...args], sock);
          try {
            const d = fio(job(c, sock, 2000 + i)).read;
            if (i >= 0) xs.push(c.metric(d));
          } finally {
            await srv.stop();
          }
        }
      }
      const n = c.units(c.io);
      const expected = (c.limit * n) / (n - c.limit);
      const expectedShown = c.unit === 'IOPS' ? expected : expected / 1e6;
      const sl = stats(limited);
      const sf = stats(free);
      log(`limits ${c.key}: limited median ${sl.median.toFixed(1)} ${c.unit}, expected ${expectedShown.toFixed(1)}, unlimited ${sf.median.toFixed(1)}`);
      report.add({
        section: 'other',
        goal: `strata serve ${c.flag.join(' ')}: fio ${c.bs} ${c.rw} of ${c.io / MiB} MiB, rate vs the limit's ${expectedShown.toFixed(1)} ${c.unit} (1 s burst included)`,
        strata: fig(sl, c.unit),
        peerCmd: `the same job on strata serve without ${c.flag[0]}`,
        peer: fig(sf, c.unit),
        target: `within 15% of ${expectedShown.toFixed(1)} ${c.unit}`,
        met: Math.abs(sl.median / expectedShown - 1) <= 0.15,
        note: `fio --ioengine=nbd --iodepth=16 --bs=${c.bs} --rw=${c.rw} --io_size=${c.io / MiB}M, a fresh server per run; the ratio column is limited/unlimited`,
      });
    }
  } finally {
    rmDir(work);
    if (fs.existsSync(work)) log(`limits: could not remove ${work}`);
  }
}
