/**
 * 1. import vs qemu-img convert -O qcow2 (and -c), on the sparse ext4 image and
 *    the dense file; export raw vs qemu-img convert -O raw from the qcow2; and
 *    qcow2 export when strata has it. Each import run is wrapped in
 *    /usr/bin/time -v, so the memory workload reuses its peak RSS.
 */
import path from 'node:path';
import { compare, repeat, run, runWithRss } from '../lib/timing.mjs';
import { fig } from '../lib/report.mjs';
import { rmDir, rmFile, tmpDir, warmFile } from '../lib/inputs.mjs';
import { hasQcow2Export, strataArgs } from '../lib/tools.mjs';

const node = process.execPath;

export async function importWorkload(ctx) {
  const { report, inputs, quick, log } = ctx;
  const runs = ctx.runs('heavy');
  const cases = [
    { key: 'sparse', label: 'sparse 1 GiB ext4', file: inputs.sparseA, target: 1.5 },
    { key: 'dense', label: 'dense 1 GiB', file: inputs.dense, target: 1.0 },
  ];
  const work = tmpDir('import');
  ctx.shared.importRss ??= {};
  try {
    for (const c of cases) {
      log(`import ${c.label}: ${runs} runs + warm-up per side`);
      warmFile(c.file);
      let store;
      const out = path.join(work, 'out.qcow2');
      const r = await compare({
        runs,
        log,
        a: {
          setup: () => {
            store = tmpDir('store');
            run(node, strataArgs(store, 'init'));
          },
          run: () => runWithRss(node, strataArgs(store, 'import', c.file, 'img')),
          teardown: () => rmDir(store),
        },
        b: {
          run: () => runWithRss('qemu-img', ['convert', '-O', 'qcow2', c.file, out]),
          teardown: () => rmFile(out),
        },
      });
      report.add({
        workload: `import ${c.label} vs qemu-img convert -O qcow2`,
        strata: fig(r.a, 'ms'),
        peer: fig(r.b, 'ms'),
        target: `≤ ${c.target.toFixed(1)}×`,
        met: r.a.median / r.b.median <= c.target,
        note: quick ? '3 runs (quick mode; full mode runs 5)' : '',
      });
      ctx.shared.importRss[c.key] = { strata: r.aExtra.map((x) => x.rss), peer: r.bExtra.map((x) => x.rss), label: c.label };
      ctx.shared.importTimes ??= {};
      ctx.shared.importTimes[c.key] = r.a;

      if (!quick || c.key === 'sparse') {
        const rc = await repeat({
          runs,
          run: () => run('qemu-img', ['convert', '-c', '-O', 'qcow2', c.file, out]),
          teardown: () => rmFile(out),
        });
        report.add({ workload: `import ${c.label} vs qemu-img convert -c -O qcow2`, strata: fig(r.a, 'ms'), peer: fig(rc, 'ms'), target: '(reference)' });
      } else {
        report.skip(`import ${c.label} vs qemu-img convert -c -O qcow2`, 'full mode only (one -c run of the dense file takes ~40 s)');
      }
    }

    // Export: quick mode exports the sparse image only, full mode both.
    const exportCases = quick ? cases.slice(0, 1) : cases;
    const store = tmpDir('store');
    run(node, strataArgs(store, 'init'));
    for (const c of exportCases) {
      const qcow = path.join(work, `${c.key}.qcow2`);
      run('qemu-img', ['convert', '-O', 'qcow2', c.file, qcow]);
      run(node, strataArgs(store, 'import', c.file, c.key));
      const runsE = ctx.runs(quick ? 'cheap' : 'heavy');
      log(`export raw ${c.label}: ${runsE} runs + warm-up per side`);
      const outRaw = path.join(work, 'out.raw');
      const r = await compare({
        runs: runsE,
        log,
        a: { run: () => run(node, strataArgs(store, 'export', c.key, outRaw)), teardown: () => rmFile(outRaw) },
        b: { run: () => run('qemu-img', ['convert', '-O', 'raw', qcow, outRaw]), teardown: () => rmFile(outRaw) },
      });
      report.add({
        workload: `export raw ${c.label} vs qemu-img convert -O raw (from qcow2)`,
        strata: fig(r.a, 'ms'),
        peer: fig(r.b, 'ms'),
        target: '≤ 1.0×',
        met: r.a.median / r.b.median <= 1.0,
        note: 'neither side fsyncs the output (strata export --sync would)',
      });
      rmFile(qcow);
    }

    // qcow2 export (another branch builds it): skipped until it works.
    const probe = tmpDir('probe');
    const can = hasQcow2Export(probe);
    rmDir(probe);
    const c = cases[0];
    if (!can) {
      report.skip(`export qcow2 ${c.label} vs qemu-img convert -O qcow2 (from raw)`, 'not available');
    } else {
      const out = path.join(work, 'out.qcow2');
      const r = await compare({
        runs: ctx.runs('cheap'),
        log,
        a: { run: () => run(node, strataArgs(store, 'export', c.key, out, '--format', 'qcow2')), teardown: () => rmFile(out) },
        b: { run: () => run('qemu-img', ['convert', '-O', 'qcow2', c.file, out]), teardown: () => rmFile(out) },
      });
      report.add({ workload: `export qcow2 ${c.label} vs qemu-img convert -O qcow2 (from raw)`, strata: fig(r.a, 'ms'), peer: fig(r.b, 'ms'), target: '(reference)' });
    }
    rmDir(store);
  } finally {
    rmDir(work);
  }
}
