/**
 * Import and export (issue #16, goals 1-3 and 6).
 *
 * Import is durable in strata: the data is synced before the commit that
 * references it, and the command returns after that commit. `qemu-img convert`
 * leaves its output in the page cache, so its side is timed as the pair a user
 * who wants the same guarantee runs:
 *     qemu-img convert -O qcow2 IN OUT && sync OUT
 * (coreutils `sync FILE` is fsync(FILE): only that file, not the whole file
 * system). Both sides read an input that is already in the page cache, write
 * to the same file system, and start from a fresh store / no output file.
 *
 * Inputs: 1 GiB of seeded random data; a 1 GiB ext4 image built by mke2fs -d
 * from a /usr tree (bench/make-images.mjs); for linearity 4 GiB of random
 * data (full mode) or 256 MiB (quick mode, against 1 GiB), the two sizes and
 * both sides taking turns in the same rounds. Each strata and
 * qemu-img process runs under /usr/bin/time -v for its peak RSS.
 *
 * Export: `strata export IMG OUT` (raw, sparse, no fsync by default) vs
 * `qemu-img convert -O raw IMG.qcow2 OUT` (no fsync either): neither side
 * syncs, both leave the output in the page cache.
 */
import path from 'node:path';
import { compare, rounds, run, runWithRss } from '../lib/timing.mjs';
import { fig, single } from '../lib/report.mjs';
import { GiB, MiB, randomFile, rmDir, rmFile, tmpDir, warmFile } from '../lib/inputs.mjs';
import { strataArgs } from '../lib/tools.mjs';

const node = process.execPath;

/** One timed strata import into a fresh store: { ms, rss }. */
function strataImportSide(file) {
  let store;
  return {
    setup: () => {
      store = tmpDir('store');
      run(node, strataArgs(store, 'init'));
    },
    run: () => runWithRss(node, strataArgs(store, 'import', file, 'img')),
    teardown: () => rmDir(store),
  };
}

/** qemu-img convert -O qcow2 IN OUT, then sync OUT; the two times added. */
function qemuImportSide(file, out) {
  return {
    run: async () => {
      const c = await runWithRss('qemu-img', ['convert', '-O', 'qcow2', file, out]);
      const s = run('sync', [out]);
      return { ms: c.ms + s.ms, rss: c.rss, convertMs: c.ms, syncMs: s.ms };
    },
    teardown: () => rmFile(out),
  };
}

const mib = (b) => (b >= GiB ? `${b / GiB} GiB` : `${b / MiB} MiB`);
const peerImportCmd = (inName) => `qemu-img convert -O qcow2 ${inName} out.qcow2 && sync out.qcow2`;

export async function importWorkload(ctx) {
  const { report, inputs, quick, log } = ctx;
  const runs = ctx.runs('heavy');
  const work = tmpDir('import');
  const rss = { strata: [], peer: [] };
  const out = path.join(work, 'out.qcow2');
  const random1g = randomFile(GiB, 'random-1g.raw');
  const small = quick ? 256 * MiB : GiB;
  const big = quick ? GiB : 4 * GiB;
  const keepRss = (r) => {
    rss.strata.push(...r.aExtra.map((x) => x.rss));
    rss.peer.push(...r.bExtra.map((x) => x.rss));
  };
  const syncShare = (peerRuns) => {
    const conv = peerRuns.map((x) => x.convertMs).sort((x, y) => x - y);
    const syn = peerRuns.map((x) => x.syncMs).sort((x, y) => x - y);
    const mid = (xs) => xs[Math.floor(xs.length / 2)];
    return `peer = convert ${(mid(conv) / 1000).toFixed(2)} s + sync ${(mid(syn) / 1000).toFixed(2)} s (medians of each part)`;
  };
  try {
    // 1 and 3. Random data at two sizes in the same rounds: strata and the
    //    peer pair at `small` and at `big` (one of them 1 GiB) take turns, so
    //    the linearity ratio is not a comparison of a quiet minute with a busy one.
    const smallFile = small === GiB ? random1g : randomFile(small, `random-${small / MiB}m.raw`);
    const bigFile = big === GiB ? random1g : randomFile(big, `random-${big / GiB}g.raw`);
    for (const f of new Set([smallFile, bigFile])) warmFile(f);
    log(`import random data, ${mib(small)} and ${mib(big)}: ${runs} rounds + warm-up of 4 imports`);
    const outBig = path.join(work, 'out-big.qcow2');
    const rr = await rounds({
      runs,
      log,
      sides: {
        sSmall: strataImportSide(smallFile),
        qSmall: qemuImportSide(smallFile, out),
        sBig: strataImportSide(bigFile),
        qBig: qemuImportSide(bigFile, outBig),
      },
    });
    for (const k of ['sSmall', 'sBig']) rss.strata.push(...rr.extra[k].map((x) => x.rss));
    for (const k of ['qSmall', 'qBig']) rss.peer.push(...rr.extra[k].map((x) => x.rss));
    const [s1, q1, q1x] = small === GiB ? [rr.sSmall, rr.qSmall, rr.extra.qSmall] : [rr.sBig, rr.qBig, rr.extra.qBig];
    report.add({
      order: 10,
      goal: 'import 1 GiB of random data (durable on both sides)',
      strata: fig(s1, 'ms'),
      peerCmd: peerImportCmd('random-1g.raw'),
      peer: fig(q1, 'ms'),
      target: '≤ 1.2×',
      met: s1.median / q1.median <= 1.2,
      note: syncShare(q1x),
    });
    const factor = big / small;
    const lin = rr.sBig.median / rr.sSmall.median;
    report.add({
      order: 30,
      goal: `import time grows linearly: ${mib(big)} of random data vs ${mib(small)}${quick ? ' (quick mode; full mode: 4 GiB vs 1 GiB)' : ''}`,
      strata: fig(rr.sBig, 'ms', mib(big)),
      peerCmd: `strata import of ${mib(small)} (same rounds)`,
      peer: fig(rr.sSmall, 'ms', mib(small)),
      ratio: lin,
      target: `≤ ${(1.1 * factor).toFixed(1)}× (${factor}× the data)`,
      met: lin <= 1.1 * factor,
      note: `the peer pair (${peerImportCmd('IN')}) took ${(rr.qBig.median / rr.qSmall.median).toFixed(2)}× for the same sizes (${(rr.qSmall.median / 1000).toFixed(2)} s → ${(rr.qBig.median / 1000).toFixed(2)} s), which is how linear this disk is`,
    });

    // 2. A real ext4 image (mke2fs -d of a /usr tree), 1 GiB, mostly free space.
    log(`import ext4 image: ${runs} runs + warm-up per side`);
    warmFile(inputs.sparseA);
    const r2 = await compare({ runs, log, a: strataImportSide(inputs.sparseA), b: qemuImportSide(inputs.sparseA, out) });
    keepRss(r2);
    report.add({
      order: 20,
      goal: 'import a 1 GiB ext4 image built by mke2fs -d (durable on both sides)',
      strata: fig(r2.a, 'ms'),
      peerCmd: peerImportCmd('debian-a.ext4'),
      peer: fig(r2.b, 'ms'),
      target: '≤ 1.5×',
      met: r2.a.median / r2.b.median <= 1.5,
      note: syncShare(r2.bExtra),
    });

    // 4. Peak RSS over every import run above.
    const maxS = Math.max(...rss.strata);
    const maxP = Math.max(...rss.peer);
    report.add({
      order: 40,
      goal: `peak RSS of any strata import in this run (${rss.strata.length} runs, up to ${mib(big)})`,
      strata: single(maxS, 'bytes'),
      peerCmd: 'qemu-img convert -O qcow2 IN out.qcow2 (the same inputs)',
      peer: single(maxP, 'bytes'),
      target: '< 128 MiB',
      met: maxS < 128 * MiB,
      note: 'maximum resident set size from /usr/bin/time -v of each import process, warm-ups excluded',
    });

    // 6. Export to raw: neither side syncs its output.
    const store = tmpDir('store');
    run(node, strataArgs(store, 'init'));
    const cases = [
      { key: 'ext4', label: 'the 1 GiB ext4 image', file: inputs.sparseA, name: 'debian-a' },
      { key: 'random', label: '1 GiB of random data', file: random1g, name: 'random-1g' },
    ];
    const runsE = ctx.runs('cheap'); // writing 1 GiB into the page cache varies 0.35-2.3 s run to run on this VM
    for (const c of cases) {
      const qcow = path.join(work, `${c.name}.qcow2`);
      run('qemu-img', ['convert', '-O', 'qcow2', c.file, qcow]);
      run(node, strataArgs(store, 'import', c.file, c.key));
      run('sync', [qcow]);
      warmFile(qcow);
      log(`export raw ${c.label}: ${runsE} runs + warm-up per side`);
      const outRaw = path.join(work, 'out.raw');
      const r = await compare({
        runs: runsE,
        log,
        a: { run: () => run(node, strataArgs(store, 'export', c.key, outRaw)), teardown: () => rmFile(outRaw) },
        b: { run: () => run('qemu-img', ['convert', '-O', 'raw', qcow, outRaw]), teardown: () => rmFile(outRaw) },
      });
      report.add({
        order: 60,
        goal: `export ${c.label} to raw (neither side syncs)`,
        strata: fig(r.a, 'ms'),
        peerCmd: `qemu-img convert -O raw ${c.name}.qcow2 out.raw`,
        peer: fig(r.b, 'ms'),
        target: '≤ 1.2×',
        met: r.a.median / r.b.median <= 1.2,
        note:
          c.key === 'ext4'
            ? 'strata: `strata export IMG out.raw` (sparse, no --sync); both outputs are left in the page cache and deleted between runs; the qcow2 was converted from the same input'
            : '',
      });
      rmFile(qcow);
    }
    rmDir(store);
  } finally {
    rmDir(work);
  }
}
