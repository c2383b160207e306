/**
 * 7. Container images (issue #11): a three-layer OCI image (~160 MiB of files
 *    from this machine's /usr, assembled by umoci) imported by strata, beside
 *    what a user does by hand: `umoci unpack` plus `mke2fs -d` of the rootfs
 *    into an ext4 of the same size. Then two images sharing their first two
 *    layers in one store: the bytes stored against the ideal 4 KiB dedup of
 *    their ext4 images (the two top file systems; and every layer's, which
 *    strata keeps too).
 */
import fs from 'node:fs';
import path from 'node:path';
import { run } from '../lib/timing.mjs';
import { fig, single } from '../lib/report.mjs';
import { allocatedBytes, rmDir, tmpDir } from '../lib/inputs.mjs';
import { strataArgs, which } from '../lib/tools.mjs';
import { compare } from '../lib/timing.mjs';
import { idealDedupBytes } from './space.mjs';

const node = process.execPath;
const LAYERS = {
  base: ['usr/lib/python3.11'],
  mid: ['usr/lib/python3', 'usr/lib/node_modules'],
  a: ['usr/share/perl', 'usr/share/i18n'],
  b: ['usr/lib/x86_64-linux-gnu/perl', 'usr/share/zoneinfo'],
};

function layout(work) {
  const dir = path.join(work, 'oci');
  run('umoci', ['init', '--layout', dir]);
  const tars = {};
  for (const [k, dirs] of Object.entries(LAYERS)) {
    tars[k] = path.join(work, `${k}.tar`);
    run('tar', ['-C', '/', '--numeric-owner', '--xattrs', '-cf', tars[k], ...dirs.filter((d) => fs.existsSync(`/${d}`))]);
  }
  for (const [tag, ls] of [
    ['a', ['base', 'mid', 'a']],
    ['b', ['base', 'mid', 'b']],
  ]) {
    run('umoci', ['new', '--image', `${dir}:${tag}`]);
    for (const l of ls) run('umoci', ['raw', 'add-layer', '--image', `${dir}:${tag}`, tars[l]]);
  }
  return dir;
}

export async function containerWorkload(ctx) {
  const { report, log } = ctx;
  const base = { section: 'other' };
  if (!which('umoci') || !which('mke2fs')) {
    report.skip('container: import of a 3-layer OCI image', 'umoci or mke2fs missing (apt-get install umoci e2fsprogs)', base);
    return;
  }
  const work = tmpDir('container');
  try {
    log('container: building a 3-layer OCI layout (and a second image sharing 2 layers) with umoci');
    const oci = layout(work);
    const stores = [];
    // The peer's ext4 gets the size strata chose for the top layer.
    const probe = path.join(work, 'store-probe');
    run(node, strataArgs(probe, 'import', `oci:${oci}:a`, 'a'));
    const size = JSON.parse(run(node, strataArgs(probe, '--json', 'info', 'a')).stdout).virtualSize;
    rmDir(probe);
    const r = await compare({
      runs: ctx.runs('heavy'),
      log,
      a: {
        setup: (i) => stores.push(path.join(work, `store-${i + 10}`)),
        run: () => {
          return run(node, strataArgs(stores[stores.length - 1], 'import', `oci:${oci}:a`, 'a')).ms;
        },
        teardown: () => rmDir(stores.pop()),
      },
      b: {
        run: () => {
          const bundle = path.join(work, 'bundle');
          const img = path.join(work, 'by-hand.ext4');
          rmDir(bundle);
          fs.rmSync(img, { force: true });
          const t = run('umoci', ['unpack', '--image', `${oci}:a`, bundle]).ms;
          fs.writeFileSync(img, '');
          fs.truncateSync(img, size);
          const m = run('mke2fs', ['-q', '-F', '-t', 'ext4', '-b', '4096', '-d', path.join(bundle, 'rootfs'), img]).ms;
          rmDir(bundle);
          return t + m;
        },
      },
    });
    report.add({
      ...base,
      goal: 'container: import a 3-layer OCI image (~160 MiB of files) as ext4 layers',
      strata: fig(r.a, 'ms'),
      peerCmd: 'umoci unpack --image oci:a bundle && mke2fs -t ext4 -b 4096 -d bundle/rootfs img (same size); one ext4, no layers',
      peer: fig(r.b, 'ms'),
      target: '(reference)',
      note: 'strata checks every digest, builds one ext4 per layer (debugfs over the layer below) and stores each',
    });

    log('container: two images sharing their first two layers, in one store');
    const store = path.join(work, 'store-space');
    run(node, strataArgs(store, 'import', `oci:${oci}:a`, 'a'));
    const t = run(node, strataArgs(store, 'import', `oci:${oci}:b`, 'b')).ms;
    const stats = JSON.parse(run(node, strataArgs(store, '--json', 'stats', '-p')).stdout);
    const stored = allocatedBytes(path.join(store, 'data'));
    const tops = ['a', 'b'].map((n) => {
      const f = path.join(work, `${n}.ext4`);
      run(node, strataArgs(store, 'export', n, f));
      return f;
    });
    const layers = JSON.parse(run(node, strataArgs(store, '--json', 'ls')).stdout)
      .filter((i) => i.name.startsWith('oci-'))
      .map((i) => {
        const f = path.join(work, `${i.name}.ext4`);
        run(node, strataArgs(store, 'export', i.name, f));
        return f;
      });
    const idealTops = idealDedupBytes(tops);
    const idealLayers = idealDedupBytes(layers);
    const B = (v) => single(v, 'bytes');
    report.add({ ...base, goal: 'container: second image on a shared base: import time', strata: single(t, 'ms'), peerCmd: '(its own layer only: the base is found by chain ID)', peer: null, target: '(reference)' });
    report.add({
      ...base,
      goal: 'container: data stored for two images sharing 2 of 3 layers vs ideal 4 KiB dedup of their two ext4 images',
      strata: B(stored),
      peerCmd: 'distinct non-zero 4 KiB blocks of the two top ext4 images × 4096 (computed)',
      peer: B(idealTops),
      target: '(reference)',
      note: `store data ${((stats.storedBytes ?? 0) / 2 ** 20).toFixed(1)} MiB in slots; strata also keeps every lower layer's file system (${layers.length} layers): their ideal is ${(idealLayers / 2 ** 20).toFixed(1)} MiB`,
    });
    report.add({ ...base, goal: 'container: same, vs ideal 4 KiB dedup of every layer\'s ext4', strata: B(stored), peerCmd: 'distinct non-zero 4 KiB blocks of all layer ext4 images × 4096', peer: B(idealLayers), target: '≤ 1.01×', met: stored / idealLayers <= 1.01 });
  } finally {
    rmDir(work);
  }
}
