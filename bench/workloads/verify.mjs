/**
 * The cost of verifying every block read against its slot's recorded hash
 * (issue #22 item 7; src/store/blocks/verify.ts): fio over NBD with verification on
 * (strata as shipped) beside the same server with it off
 * (STRATA_VERIFY_READS=0, a knob for this bench only, not a user setting).
 *
 * One store, one dense image of seeded random data (every block distinct, so
 * every read is a real slot read and hash), imported once and cloned twice;
 * `strata serve` of each clone, one server per side, both reading the same
 * slots through the same page cache. fio 4 KiB randread (the goal: at most
 * 5% fewer IOPS) and 1 MiB sequential read (where hashing is the largest
 * share of a request), nbd.mjs's engine, iodepth, io_size and runtime cap,
 * the two servers alternating run by run with the same --randseed.
 */
import { createRequire } from 'node:module';
import path from 'node:path';
import { run, stats, tick } from '../lib/timing.mjs';
import { fig } from '../lib/report.mjs';
import { MiB, randomFile, rmDir, syncTree, tmpDir, warmFile } from '../lib/inputs.mjs';
import { ROOT, STRATA_MAIN, hasServe, strataArgs } from '../lib/tools.mjs';
import { fio, fioArgs, startServer } from './nbd.mjs';

const node = process.execPath;
const JOBS = [
  { key: 'randread', label: '4 KiB random read', rw: 'randread', bs: '4k', unit: 'IOPS', target: 0.95 },
  { key: 'seqread', label: '1 MiB sequential read', rw: 'read', bs: '1M', unit: 'MB/s', target: null },
];

/** Microseconds the addon takes to hash one 4 KiB block and compare it (verifyBlocks over 64 MiB, best of 5), or null without it. */
function hashMicros() {
  let addon;
  try {
    addon = createRequire(import.meta.url)(path.join(ROOT, 'native', 'build', 'Release', 'strata_native.node'));
  } catch {
    return null;
  }
  if (typeof addon.verifyBlocks !== 'function') return null;
  const n = (64 * MiB) / 4096;
  const buf = Buffer.alloc(64 * MiB, 7);
  const expected = new Float64Array(n).fill(NaN); // never equal: keep it from stopping early, so each pass hashes one block
  let best = Infinity;
  for (let r = 0; r < 5; r++) {
    const t0 = process.hrtime.bigint();
    for (let i = 0; i < n; i++) addon.verifyBlocks(buf, i * 4096, 1, expected, i);
    best = Math.min(best, Number(process.hrtime.bigint() - t0) / 1e3 / n);
  }
  return best;
}

export async function verifyWorkload(ctx) {
  const { report, quick, log } = ctx;
  const goal = (job) => `fio ${job.label} over NBD, iodepth 16: reads verified vs not (STRATA_VERIFY_READS=0)`;
  if (!ctx.have.fioNbd || !hasServe()) {
    for (const job of JOBS) report.skip(goal(job), !ctx.have.fioNbd ? 'fio has no nbd ioengine' : 'strata serve not available', { section: 'other', order: 70 });
    return;
  }
  const size = 256 * MiB;
  const name = 'random-256m.raw';
  const file = randomFile(size, name);
  const runs = ctx.runs('heavy');
  const micros = hashMicros();
  const work = tmpDir('verify');
  const store = tmpDir('store');
  const sides = [
    { key: 'on', image: 'von', sock: path.join(work, 'on.sock'), env: process.env },
    { key: 'off', image: 'voff', sock: path.join(work, 'off.sock'), env: { ...process.env, STRATA_VERIFY_READS: '0' } },
  ];
  try {
    log(`verify: importing ${name}, two clones`);
    warmFile(file);
    run(node, strataArgs(store, 'import', file, 'base'));
    run(node, strataArgs(store, 'clone', 'base', 'von', 'voff'));
    syncTree(store);
    for (const s of sides) s.server = await startServer(node, [STRATA_MAIN, '--store', store, 'serve', s.image, '--socket', s.sock], s.sock, 30000, s.env);
    // Each export is named for its image (nbd.mjs's uri() names 'vm').
    const exportUri = (s) => `nbd+unix:///${s.image}?socket=${s.sock}`;
    const cmp = run('qemu-img', ['compare', '-f', 'raw', '-F', 'raw', exportUri(sides[0]), file], { allowFail: true });
    if (cmp.status !== 0) throw new Error(`the verified server does not serve the input's bytes: ${cmp.stdout}${cmp.stderr}`.slice(0, 400));
    const ioSmall = quick ? 192 * MiB : 384 * MiB;
    const ioSeq = quick ? 2 * size : 4 * size;
    const capS = quick ? 30 : 60;
    for (const [k, job] of JOBS.entries()) {
      const ioSize = job.bs === '4k' ? ioSmall : ioSeq;
      log(`verify: fio ${job.label}, ${runs} runs of ${ioSize / MiB} MiB + warm-up per side`);
      const xs = { on: [], off: [] };
      let capped = false;
      for (let i = -1; i < runs; i++) {
        const order = i % 2 !== 0 ? [...sides].reverse() : sides;
        for (const s of order) {
          await tick();
          const args = fioArgs(job, s.sock, size, ioSize, 1000 + i, capS).map((a) => (a.startsWith('--uri=') ? `--uri=${exportUri(s)}` : a));
          const j = fio(args);
          if (j.read.io_bytes < ioSize) capped = true;
          if (i >= 0) xs[s.key].push(job.unit === 'IOPS' ? j.read.iops : j.read.bw_bytes / 1e6);
        }
      }
      if (!sides.every((s) => s.server.alive())) throw new Error('a server died during the fio runs');
      const on = stats(xs.on);
      const off = stats(xs.off);
      const ratio = on.median / off.median;
      log(`verify: ${job.label}: verified ${on.median.toFixed(0)}, unverified ${off.median.toFixed(0)} ${job.unit}, ratio ${ratio.toFixed(3)}`);
      report.add({
        section: 'other',
        order: 70 + k,
        goal: goal(job),
        strata: fig(on, job.unit, 'verified'),
        peerCmd: 'STRATA_VERIFY_READS=0 strata serve voff --socket SOCK (same store, same strata, verification off)',
        peer: fig(off, job.unit, 'unverified'),
        target: job.target === null ? 'reference' : `≥ ${job.target}× (≤ 5% slower)`,
        met: job.target === null ? null : ratio >= job.target,
        note:
          `${(100 * Math.abs(1 - ratio)).toFixed(1)}% ${ratio <= 1 ? 'fewer' : 'more'} ${job.unit} with verification (run-to-run spread on a shared machine is larger than the difference). ` +
          (k === 0 && micros !== null ? `Hashing and comparing one 4 KiB block in the addon: ${micros.toFixed(2)} µs per call (best of 5 over 64 MiB, in process). ` : '') +
          (k === 0
            ? `input: ${name} (seeded AES-CTR keystream, every block distinct); strata import ${name} base; strata clone base von voff; strata serve von|voff --socket SOCK, one server each. ` +
              `fio --ioengine=nbd --uri=nbd+unix:///von?socket=SOCK --rw=randread --bs=4k --iodepth=16 --size=256M --io_size=${ioSmall / MiB}M --randseed=RUN --runtime=${capS}, the two servers alternating`
            : `fio --rw=read --bs=1M --io_size=${ioSeq / MiB}M, otherwise as above`) +
          (capped ? `; some runs hit the ${capS} s cap before moving --io_size` : ''),
      });
    }
  } finally {
    for (const s of sides) await s.server?.stop();
    rmDir(store);
    rmDir(work);
  }
}
