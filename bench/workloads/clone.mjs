/**
 * Clones (other targets; the whole-process one-name clone is a goal row of
 * the startup workload):
 *  - cloneImage in-process (library from dist/, timed with hrtime) of a 1 TiB
 *    and a 1 GiB base: a clone must not cost more for a bigger image.
 *  - N clones in one `strata clone` call vs N `qemu-img create -b` processes
 *    run as a user in a hurry would: `xargs -P <cores>`, all cores busy. The
 *    peer does not sync its N files; strata's one commit is durable, so the
 *    comparison does not favour strata.
 */
import os from 'node:os';
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
  try {
    const inproc = {};
    for (const s of [
      { key: 'g', size: '1G' },
      { key: 't', size: '1T' },
    ]) {
      run(node, strataArgs(store, 'create', `base${s.key}`, '--size', s.size));
      run(node, strataArgs(store, 'freeze', `base${s.key}`));
    }
    // Interleaved in-process batches: 1 GiB, 1 TiB, 1 GiB, 1 TiB ...
    const xs = { g: [], t: [] };
    const per = quick ? 10 : 20;
    for (let b = 0; b < 4; b++) {
      for (const key of b % 2 ? ['t', 'g'] : ['g', 't']) {
        const out = run(node, [path.join(ROOT, 'bench', 'lib', 'inproc-clone.mjs'), store, `base${key}`, String(per), '3', `i${key}${b}-`]);
        xs[key].push(...JSON.parse(out.stdout).samples);
      }
    }
    inproc.g = stats(xs.g);
    inproc.t = stats(xs.t);
    const within = inproc.t.median / inproc.g.median;
    report.add({
      section: 'other',
      goal: 'clone of a 1 TiB image, in-process (cloneImage), vs the same of a 1 GiB image',
      strata: fig(inproc.t, 'ms', '1 TiB'),
      peerCmd: 'cloneImage of a 1 GiB base (same store, same run)',
      peer: fig(inproc.g, 'ms', '1 GiB'),
      ratio: within,
      target: '≤ 5 ms and ≤ 1.2×',
      met: inproc.t.median <= 5 && within <= 1.2,
      note: 'each clone is one SQLite commit (WAL, synchronous=FULL)',
    });

    // Many clones: one strata call vs qemu-img create -b on every core.
    const count = quick ? 100 : 1000;
    const cores = os.cpus().length;
    log(`${count} clones: ${runs} runs + warm-up per side`);
    let store2;
    let dir2;
    const names = Array.from({ length: count }, (_, i) => `c${i}`);
    const peerCmd = `seq ${count} | xargs -P ${cores} -I{} qemu-img create -q -f qcow2 -b base.qcow2 -F qcow2 c{}.qcow2`;
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
        run: () => run('bash', ['-c', peerCmd], { cwd: dir2 }),
        teardown: () => rmDir(dir2),
      },
    });
    report.add({
      section: 'other',
      goal: `${count} clones in one \`strata clone\` call`,
      strata: fig(r.a, 'ms'),
      peerCmd,
      peer: fig(r.b, 'ms'),
      target: '≤ 0.2×',
      met: r.a.median / r.b.median <= 0.2,
      note: `${quick ? 'quick mode makes 100 clones per side, full mode 1000; ' : ''}the peer does not sync its files, strata's single commit is durable`,
    });
  } finally {
    rmDir(store);
  }
}
