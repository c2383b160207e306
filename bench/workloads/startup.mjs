/**
 * Whole-process cost of the everyday commands (issue #16, goal 7):
 * `strata ls` on a store of four images and a one-name `strata clone` vs
 * `node -e 0`, the floor any Node CLI starts from. Each is spawned and timed
 * from spawn to exit; the commands take turns in one loop (rotating who
 * goes first), after three warm-up rounds, so load on the shared machine
 * falls on all of them alike. `strata --version`, `qemu-img --version` and
 * `qemu-img create -b` (the qemu way to clone) are references.
 */
import path from 'node:path';
import { run, stats, tick } from '../lib/timing.mjs';
import { fig } from '../lib/report.mjs';
import { rmDir, tmpDir } from '../lib/inputs.mjs';
import { STRATA_MAIN, strataArgs } from '../lib/tools.mjs';

const node = process.execPath;

export async function startupWorkload(ctx) {
  const { report, quick, log } = ctx;
  const runs = ctx.explicitRuns ?? (quick ? 11 : 31);
  const lsStore = tmpDir('store');
  const cloneStore = tmpDir('store');
  const qdir = tmpDir('qclone');
  try {
    run('qemu-img', ['create', '-q', '-f', 'qcow2', path.join(qdir, 'base.qcow2'), '1G']);
    run(node, strataArgs(lsStore, 'create', 'base', '--size', '1G'));
    run(node, strataArgs(lsStore, 'clone', 'base', 'vm1', 'vm2', 'vm3'));
    run(node, strataArgs(cloneStore, 'create', 'base', '--size', '1G'));
    run(node, strataArgs(cloneStore, 'freeze', 'base'));
    let n = 0;
    let m = 0;
    const cmds = {
      node: () => run(node, ['-e', '0']).ms,
      ls: () => run(node, strataArgs(lsStore, 'ls')).ms,
      clone: () => run(node, strataArgs(cloneStore, 'clone', 'base', `c${n++}`)).ms,
      version: () => run(node, [STRATA_MAIN, '--version']).ms,
      qemu: () => run('qemu-img', ['--version']).ms,
      qclone: () => run('qemu-img', ['create', '-q', '-f', 'qcow2', '-b', 'base.qcow2', '-F', 'qcow2', `c${m++}.qcow2`], { cwd: qdir }).ms,
    };
    const keys = Object.keys(cmds);
    const xs = Object.fromEntries(keys.map((k) => [k, []]));
    log(`start-up: ${runs} rounds of ${keys.join(', ')} after 3 warm-up rounds`);
    for (let i = -3; i < runs; i++) {
      const rot = ((i % keys.length) + keys.length) % keys.length;
      for (const k of [...keys.slice(rot), ...keys.slice(0, rot)]) {
        await tick();
        const ms = cmds[k]();
        if (i >= 0) xs[k].push(ms);
      }
    }
    const res = Object.fromEntries(keys.map((k) => [k, stats(xs[k])]));
    report.add({
      order: 70,
      goal: '`strata ls` (4 images) as a whole process',
      strata: fig(res.ls, 'ms'),
      peerCmd: 'node -e 0',
      peer: fig(res.node, 'ms'),
      target: '≤ 1.3×',
      met: res.ls.median / res.node.median <= 1.3,
      note: `same node binary (${process.version}) for both; strata runs the bundled CLI (${STRATA_MAIN.replace(/.*\/(dist\/)/, '$1')})`,
    });
    report.add({
      order: 71,
      goal: 'one-name `strata clone base cN` as a whole process',
      strata: fig(res.clone, 'ms'),
      peerCmd: 'node -e 0',
      peer: fig(res.node, 'ms'),
      target: '≤ 1.3×',
      met: res.clone.median / res.node.median <= 1.3,
      note: 'each run adds one clone of a frozen 1 GiB base to the same store (one commit to strata.db)',
    });
    report.add({
      section: 'other',
      goal: 'one-name `strata clone` vs the qemu way to clone',
      strata: fig(res.clone, 'ms'),
      peerCmd: 'qemu-img create -q -f qcow2 -b base.qcow2 -F qcow2 cN.qcow2',
      peer: fig(res.qclone, 'ms'),
      target: '(reference)',
      note: 'qemu-img create does not sync the new file; strata clone commits',
    });
    report.add({
      section: 'other',
      goal: '`strata --version` as a whole process',
      strata: fig(res.version, 'ms'),
      peerCmd: 'node -e 0',
      peer: fig(res.node, 'ms'),
      target: '(reference)',
    });
    report.add({
      section: 'other',
      goal: '`strata --version` vs a native CLI',
      strata: fig(res.version, 'ms'),
      peerCmd: 'qemu-img --version',
      peer: fig(res.qemu, 'ms'),
      target: '(reference)',
    });
  } finally {
    rmDir(lsStore);
    rmDir(cloneStore);
    rmDir(qdir);
  }
}
