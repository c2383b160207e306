/**
 * 6. CLI start-up: `strata --version` and `strata ls` vs `node -e 0` and
 *    `qemu-img --version`; hyperfine when present, else a plain loop.
 */
import fs from 'node:fs';
import path from 'node:path';
import { repeat, run, stats } from '../lib/timing.mjs';
import { fig } from '../lib/report.mjs';
import { rmDir, tmpDir } from '../lib/inputs.mjs';
import { STRATA_MAIN, strataArgs } from '../lib/tools.mjs';

const node = process.execPath;
const q = (s) => `'${s.replace(/'/g, `'\\''`)}'`;

export async function startupWorkload(ctx) {
  const { report, quick, log, have } = ctx;
  const runs = ctx.explicitRuns ?? (quick ? 20 : 60);
  const store = tmpDir('store');
  const work = tmpDir('startup');
  try {
    run(node, strataArgs(store, 'create', 'base', '--size', '1G'));
    run(node, strataArgs(store, 'clone', 'base', 'vm1', 'vm2'));
    const cmds = {
      version: [node, STRATA_MAIN, '--version'],
      ls: [node, ...strataArgs(store, 'ls')],
      node: [node, '-e', '0'],
      qemu: ['qemu-img', '--version'],
    };
    const res = {};
    if (have.hyperfine) {
      log(`start-up: hyperfine, ${runs} runs after 3 warm-ups each`);
      const out = path.join(work, 'h.json');
      run('hyperfine', ['-N', '--warmup', '3', '--runs', String(runs), '--export-json', out, ...Object.values(cmds).map((c) => c.map(q).join(' '))]);
      const j = JSON.parse(fs.readFileSync(out, 'utf8'));
      Object.keys(cmds).forEach((k, i) => (res[k] = stats(j.results[i].times.map((t) => t * 1000))));
    } else {
      log(`start-up: built-in loop, ${runs} runs after 3 warm-ups each`);
      for (const [k, [cmd, ...args]] of Object.entries(cmds)) res[k] = await repeat({ runs, warmup: 3, run: () => run(cmd, args) });
    }
    report.add({ workload: 'start-up: strata --version vs node -e 0', strata: fig(res.version, 'ms'), peer: fig(res.node, 'ms'), target: '(reference)' });
    report.add({ workload: 'start-up: strata ls (3 images) vs node -e 0', strata: fig(res.ls, 'ms'), peer: fig(res.node, 'ms'), target: '≤ 1.3×', met: res.ls.median / res.node.median <= 1.3 });
    report.add({ workload: 'start-up: strata --version vs qemu-img --version', strata: fig(res.version, 'ms'), peer: fig(res.qemu, 'ms'), target: '(reference)' });
  } finally {
    rmDir(store);
    rmDir(work);
  }
}
