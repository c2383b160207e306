/**
 * 2. clone of a 1 GiB and a 1 TiB sparse image vs qemu-img create -f qcow2 -b:
 *    whole process, and in-process (cloneImage from dist/, timed with hrtime);
 *    then many clones in one `strata clone` call vs a loop of qemu-img create -b.
 */
import path from 'node:path';
import { compare, run, stats } from '../lib/timing.mjs';
import { fig } from '../lib/report.mjs';
import { rmDir, tmpDir } from '../lib/inputs.mjs';
import { ROOT, strataArgs } from '../lib/tools.mjs';

const node = process.execPath;

export async function cloneWorkload(ctx) {
  const { report, quick, log } = ctx;
  const runs = ctx.runs('cheap');
  const store = tmpDir('store');
  const work = tmpDir('clone');
  try {
    const sizes = [
      { key: 'g', label: '1 GiB', size: '1G' },
      { key: 't', label: '1 TiB', size: '1T' },
    ];
    for (const s of sizes) {
      run(node, strataArgs(store, 'create', `base${s.key}`, '--size', s.size));
      run(node, strataArgs(store, 'freeze', `base${s.key}`));
      run('qemu-img', ['create', '-q', '-f', 'qcow2', path.join(work, `base${s.key}.qcow2`), s.size]);
    }
    const inproc = {};
    const peers = {};
    for (const s of sizes) {
      log(`clone ${s.label}: whole process, ${runs} runs + warm-up per side`);
      let n = 0;
      let m = 0;
      const r = await compare({
        runs,
        log,
        a: { run: () => run(node, strataArgs(store, 'clone', `base${s.key}`, `p${s.key}${n++}`)) },
        b: {
          run: () =>
            run('qemu-img', ['create', '-q', '-f', 'qcow2', '-b', path.join(work, `base${s.key}.qcow2`), '-F', 'qcow2', path.join(work, `c${s.key}${m++}.qcow2`)]),
        },
      });
      peers[s.key] = r.b;
      report.add({ workload: `clone ${s.label}, whole process, vs qemu-img create -b`, strata: fig(r.a, 'ms'), peer: fig(r.b, 'ms'), target: '(reference)' });

      const inRuns = Math.max(runs, 20);
      const out = run(node, [path.join(ROOT, 'bench', 'lib', 'inproc-clone.mjs'), store, `base${s.key}`, String(inRuns), '3', `i${s.key}`]);
      inproc[s.key] = stats(JSON.parse(out.stdout).samples);
    }
    report.add({
      workload: 'clone 1 GiB in-process (cloneImage) vs qemu-img create -b (process)',
      strata: fig(inproc.g, 'ms'),
      peer: fig(peers.g, 'ms'),
      target: '(reference)',
    });
    const within = inproc.t.median / inproc.g.median;
    report.add({
      workload: 'clone 1 TiB in-process (cloneImage) vs qemu-img create -b (process)',
      strata: fig(inproc.t, 'ms'),
      peer: fig(peers.t, 'ms'),
      target: `≤ 5 ms and ≤ 1.2× 1 GiB in-process (is ${within.toFixed(2)}×)`,
      met: inproc.t.median <= 5 && within <= 1.2,
    });

    // Many clones: one strata call vs a loop of qemu-img create -b.
    const count = quick ? 50 : 1000;
    log(`${count} clones: ${runs} runs + warm-up per side`);
    let store2;
    let dir2;
    const names = Array.from({ length: count }, (_, i) => `c${i}`);
    const r = await compare({
      runs,
      log,
      a: {
        setup: () => {
          store2 = tmpDir('store');
          run(node, strataArgs(store2, 'create', 'base', '--size', '1G'));
          run(node, strataArgs(store2, 'freeze', 'base'));
        },
        run: () => run(node, strataArgs(store2, 'clone', 'base', ...names)),
        teardown: () => rmDir(store2),
      },
      b: {
        setup: () => {
          dir2 = tmpDir('qclones');
          run('qemu-img', ['create', '-q', '-f', 'qcow2', path.join(dir2, 'base.qcow2'), '1G']);
        },
        run: () =>
          run('bash', ['-c', `cd "${dir2}" && for i in $(seq 1 ${count}); do qemu-img create -q -f qcow2 -b base.qcow2 -F qcow2 c$i.qcow2 || exit 1; done`]),
        teardown: () => rmDir(dir2),
      },
    });
    report.add({
      workload: `${count} clones in one strata clone call vs a loop of ${count} qemu-img create -b`,
      strata: fig(r.a, 'ms'),
      peer: fig(r.b, 'ms'),
      target: '≤ 0.2×',
      met: r.a.median / r.b.median <= 0.2,
      note: quick ? `quick mode makes ${count} clones per side instead of 1000 (qemu-img create -b costs ~90 ms a call here); full mode makes 1000` : '',
    });
  } finally {
    rmDir(store);
    rmDir(work);
  }
}
