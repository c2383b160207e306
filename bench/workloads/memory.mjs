/**
 * 7a. Peak RSS of `strata import` (dense and sparse) vs qemu-img convert -O
 *     qcow2 of the same file. Reuses the import workload's runs (each wrapped
 *     in /usr/bin/time -v) when it ran; else measures its own.
 *     Serve RSS is measured by the nbd workload, during fio.
 */
import path from 'node:path';
import { compare, run, runWithRss, stats } from '../lib/timing.mjs';
import { fig } from '../lib/report.mjs';
import { rmDir, rmFile, tmpDir } from '../lib/inputs.mjs';
import { strataArgs } from '../lib/tools.mjs';

const node = process.execPath;

export async function memoryWorkload(ctx) {
  const { report, inputs, log } = ctx;
  if (!ctx.shared.importRss) {
    ctx.shared.importRss = {};
    const work = tmpDir('mem');
    try {
      for (const [key, file, label] of [
        ['sparse', inputs.sparseA, 'sparse 1 GiB ext4'],
        ['dense', inputs.dense, 'dense 1 GiB'],
      ]) {
        log(`memory: import ${label} under /usr/bin/time`);
        let store;
        const out = path.join(work, 'o.qcow2');
        const r = await compare({
          runs: ctx.runs('heavy'),
          log,
          a: {
            setup: () => (store = tmpDir('store')),
            run: () => runWithRss(node, strataArgs(store, 'import', file, 'img')),
            teardown: () => rmDir(store),
          },
          b: { run: () => runWithRss('qemu-img', ['convert', '-O', 'qcow2', file, out]), teardown: () => rmFile(out) },
        });
        ctx.shared.importRss[key] = { strata: r.aExtra.map((x) => x.rss), peer: r.bExtra.map((x) => x.rss), label };
      }
    } finally {
      rmDir(work);
    }
  }
  for (const v of Object.values(ctx.shared.importRss)) {
    report.add({
      workload: `peak RSS of strata import ${v.label} vs qemu-img convert -O qcow2`,
      strata: fig(stats(v.strata), 'bytes'),
      peer: fig(stats(v.peer), 'bytes'),
      target: '(reference)',
    });
  }
  void run;
}
