/**
 * Send streams (issue #26): rows of the 'backup' goals table, every peer
 * measured in this run.
 *
 * 1. Incremental stream size. old = debian-a.ext4; new = a copy of it after
 *    a "package install": debugfs -w writes a tree of host files (the first
 *    INSTALL_BYTES of /usr/lib/python3*) under /opt/pkg, allocating blocks,
 *    inodes, directory blocks and bitmaps as an install does. strata: import
 *    old as mon, new as tue --parent mon (only the blocks that differ are
 *    stored), `strata send -i mon tue -o inc.stream`; the figure is the
 *    stream's size.
 *    Peer A: every 4 KiB block of new that differs from old's, non-zero,
 *    compressed alone with zstd level 3 (the addon's compressBlocks, the
 *    libzstd strata links), one that does not shrink counted as 4096.
 *    Peer B: the command, qemu-img convert -c -O qcow2 -B old.qcow2
 *    -F qcow2 new.raw inc.qcow2 (file size). A raw source has no backing
 *    chain, so convert copies every allocated cluster: the file is about the
 *    whole image compressed, and the note says so.
 *    Reference: what a qcow2 overlay holds for the same change, the changed
 *    64 KiB clusters written compressed into an overlay of old.qcow2 with
 *    qemu-io write -c -s (one command per cluster, on stdin).
 * 2. send | receive of debian-a.ext4 into an empty store (init untimed),
 *    durable when receive returns, vs qemu-img convert -O qcow2 + sync of the
 *    file, alternating.
 */
import fs from 'node:fs';
import path from 'node:path';
import { compare, run, stats } from '../lib/timing.mjs';
import { fig, single } from '../lib/report.mjs';
import { MiB, rmDir, rmFile, tmpDir, warmFile } from '../lib/inputs.mjs';
import { STRATA_MAIN, strataArgs } from '../lib/tools.mjs';
import { zstdAddon } from './compress.mjs';

const node = process.execPath;
const BLOCK = 4096;
const CLUSTER = 64 * 1024;
const SECTION = 'backup';
const INSTALL_BYTES = 24 * MiB;

/** Regular files under `roots`, in a stable order, up to `limit` bytes in all. */
function installFiles(roots, limit) {
  const out = [];
  let total = 0;
  const walk = (dir) => {
    let entries;
    try {
      entries = fs.readdirSync(dir, { withFileTypes: true }).sort((a, b) => (a.name < b.name ? -1 : 1));
    } catch {
      return;
    }
    for (const e of entries) {
      if (total >= limit) return;
      const p = path.join(dir, e.name);
      // debugfs's command line splits on blanks and quotes.
      if (/[\s"'\\]/.test(p)) continue;
      if (e.isDirectory()) walk(p);
      else if (e.isFile()) {
        const size = fs.statSync(p).size;
        out.push({ file: p, size });
        total += size;
      }
    }
  };
  for (const r of roots) walk(r);
  return { files: out, total };
}

/** new.raw: old with the files installed under /opt/pkg by debugfs. */
function packageInstall(old, out, work, log) {
  run('cp', ['--sparse=always', old, out]);
  const roots = fs.readdirSync('/usr/lib').filter((n) => /^python3(\.\d+)?$/.test(n)).map((n) => path.join('/usr/lib', n));
  const { files, total } = installFiles(roots, INSTALL_BYTES);
  if (files.length === 0) throw new Error('no /usr/lib/python3* files on this host to install');
  const dirs = new Set(['/opt', '/opt/pkg']);
  const lines = ['mkdir /opt', 'mkdir /opt/pkg'];
  for (const f of files) {
    const dest = path.join('/opt/pkg', f.file);
    const missing = [];
    for (let d = path.dirname(dest); !dirs.has(d); d = path.dirname(d)) missing.unshift(d);
    for (const d of missing) {
      dirs.add(d);
      lines.push(`mkdir ${d}`);
    }
    lines.push(`write ${f.file} ${dest}`);
  }
  const script = path.join(work, 'install.debugfs');
  fs.writeFileSync(script, lines.join('\n') + '\n');
  run('debugfs', ['-w', '-f', script, out]);
  log(`backup: installed ${files.length} files (${(total / MiB).toFixed(1)} MiB from ${roots.join(', ')}) into a copy of the image with debugfs -w`);
  return { files: files.length, bytes: total };
}

/** The 4 KiB blocks and 64 KiB clusters where b differs from a (same size), and peer A's zstd figure. */
function changes(addon, a, b) {
  const fa = fs.openSync(a, 'r');
  const fb = fs.openSync(b, 'r');
  const CH = 16 * MiB;
  const ba = Buffer.allocUnsafe(CH);
  const bb = Buffer.allocUnsafe(CH);
  const zero = Buffer.alloc(BLOCK);
  const BATCH = 1024;
  const batch = Buffer.allocUnsafe(BATCH * BLOCK);
  const out = Buffer.allocUnsafe(BATCH * BLOCK);
  const sizes = new Int32Array(BATCH);
  const r = { blocks: 0, zeroed: 0, zstd: 0, clusters: [] };
  let n = 0;
  const flush = () => {
    if (n === 0) return;
    addon.compressBlocks(1, 3, batch, n, out, sizes, BLOCK);
    for (let i = 0; i < n; i++) r.zstd += sizes[i] > 0 ? sizes[i] : BLOCK;
    n = 0;
  };
  try {
    const size = fs.fstatSync(fb).size;
    for (let pos = 0; pos < size; pos += CH) {
      const len = Math.min(CH, size - pos);
      fs.readSync(fa, ba, 0, len, pos);
      fs.readSync(fb, bb, 0, len, pos);
      for (let o = 0; o < len; o += BLOCK) {
        const nb = bb.subarray(o, o + BLOCK);
        if (nb.equals(ba.subarray(o, o + BLOCK))) continue;
        r.blocks++;
        const c = Math.floor((pos + o) / CLUSTER);
        if (r.clusters[r.clusters.length - 1] !== c) r.clusters.push(c);
        if (nb.equals(zero)) {
          r.zeroed++;
          continue;
        }
        nb.copy(batch, n * BLOCK);
        if (++n === BATCH) flush();
      }
    }
    flush();
  } finally {
    fs.closeSync(fa);
    fs.closeSync(fb);
  }
  return r;
}

/** Reference: an overlay of old.qcow2 holding the changed clusters of `raw`, each written compressed. */
function qcow2Overlay(raw, oldQcow2, clusters, work) {
  const ov = path.join(work, 'overlay.qcow2');
  run('qemu-img', ['create', '-q', '-f', 'qcow2', '-b', oldQcow2, '-F', 'qcow2', ov]);
  const dir = path.join(work, 'clusters');
  fs.mkdirSync(dir, { recursive: true });
  const fd = fs.openSync(raw, 'r');
  const buf = Buffer.allocUnsafe(CLUSTER);
  const cmds = [];
  try {
    for (const c of clusters) {
      fs.readSync(fd, buf, 0, CLUSTER, c * CLUSTER);
      const f = path.join(dir, String(c));
      fs.writeFileSync(f, buf);
      cmds.push(`write -q -c -s ${f} ${c * CLUSTER} ${CLUSTER}`);
    }
  } finally {
    fs.closeSync(fd);
  }
  run('qemu-io', ['-f', 'qcow2', ov], { input: cmds.join('\n') + '\nquit\n' });
  rmDir(dir);
  const bytes = fs.statSync(ov).size;
  rmFile(ov);
  return bytes;
}

async function streamGoal(ctx, work) {
  const { report, inputs, log } = ctx;
  const old = inputs.sparseA;
  const neu = path.join(work, 'new.raw');
  const store = tmpDir('store');
  try {
    const install = packageInstall(old, neu, work, log);
    run(node, strataArgs(store, 'init'));
    run(node, strataArgs(store, 'import', old, 'mon'));
    run(node, strataArgs(store, 'import', neu, 'tue', '--parent', 'mon'));
    const file = path.join(work, 'inc.stream');
    const sent = JSON.parse(run(node, strataArgs(store, '--json', 'send', '-i', 'mon', 'tue', '-o', file)).stdout);
    const streamBytes = fs.statSync(file).size;
    rmFile(file);
    const B = (v) => single(v, 'bytes');
    const strataCmd = 'strata import debian-a.ext4 mon; strata import new.raw tue --parent mon; strata send -i mon tue -o inc.stream (file size)';
    const addon = zstdAddon();
    log('backup: comparing new.raw with debian-a.ext4 block by block');
    const ch = addon ? changes(addon, old, neu) : null;
    const note = `the change: ${install.files} files, ${(install.bytes / MiB).toFixed(1)} MiB, written under /opt/pkg by debugfs -w; stream: ${sent.dataBlocks} data blocks (${(sent.payloadBytes / MiB).toFixed(2)} MiB of payload), ${sent.zeroBlocks} zero blocks as runs`;
    if (!ch) {
      report.skip('incremental stream after a package install vs zstd of the changed 4 KiB blocks', 'the strata native addon has no zstd', { section: SECTION, order: 1 });
    } else {
      report.add({
        section: SECTION,
        order: 1,
        goal: 'incremental stream after a package install vs zstd of the changed 4 KiB blocks',
        strata: B(streamBytes),
        peerCmd: 'every 4 KiB block of new.raw that differs from debian-a.ext4, non-zero, compressed alone by the addon compressBlocks(1 /* zstd */, 3, …) = ZSTD_compressCCtx level 3, a block that does not shrink counted as 4096 (computed in bench)',
        peer: B(ch.zstd),
        target: '≤ 1.05×',
        met: streamBytes / ch.zstd <= 1.05,
        note: `${note}; peer: ${ch.blocks} blocks differ (${ch.zeroed} of them now zero), in ${ch.clusters.length} 64 KiB clusters. strata: ${strataCmd}`,
      });
    }
    log('backup: qemu-img convert -O qcow2 debian-a.ext4 old.qcow2, then the issue\'s -B convert');
    const oldQ = path.join(work, 'old.qcow2');
    const incQ = path.join(work, 'inc.qcow2');
    run('qemu-img', ['convert', '-O', 'qcow2', old, oldQ]);
    run('qemu-img', ['convert', '-c', '-O', 'qcow2', '-B', oldQ, '-F', 'qcow2', neu, incQ]);
    const qBytes = fs.statSync(incQ).size;
    rmFile(incQ);
    report.add({
      section: SECTION,
      order: 2,
      goal: 'incremental stream after a package install vs the qcow2 that qemu-img convert -B writes for it',
      strata: B(streamBytes),
      peerCmd: 'qemu-img convert -O qcow2 debian-a.ext4 old.qcow2; qemu-img convert -c -O qcow2 -B old.qcow2 -F qcow2 new.raw inc.qcow2 (file size)',
      peer: B(qBytes),
      target: '≤ 0.5×',
      met: streamBytes / qBytes <= 0.5,
      note: 'convert does not compare a raw source with the backing file: it writes every allocated cluster of new.raw, compressed, so this peer is the whole image; the reference row below is the overlay qcow2 would hold for the same change',
    });
    if (ch) {
      log(`backup: writing the ${ch.clusters.length} changed 64 KiB clusters compressed into an overlay of old.qcow2 (qemu-io)`);
      const ovBytes = qcow2Overlay(neu, oldQ, ch.clusters, work);
      report.add({
        section: SECTION,
        order: 3,
        goal: 'incremental stream vs a compressed qcow2 overlay holding the changed 64 KiB clusters (reference)',
        strata: B(streamBytes),
        peerCmd: `qemu-img create -f qcow2 -b old.qcow2 -F qcow2 overlay.qcow2; qemu-io -f qcow2 overlay.qcow2 < cmds, one 'write -q -c -s CLUSTER_FILE OFFSET 64k' per changed cluster (${ch.clusters.length}) (file size)`,
        peer: B(ovBytes),
        target: 'reference',
        met: null,
        note: 'qcow2 compresses and stores whole 64 KiB clusters, so one changed 4 KiB block costs its cluster; where an install fills whole clusters, one 64 KiB deflate stream compresses better than sixteen 4 KiB frames',
      });
    }
    rmFile(oldQ);
  } finally {
    rmDir(store);
    rmFile(neu);
  }
}

async function pipeGoal(ctx, work) {
  const { report, inputs, log } = ctx;
  const runs = ctx.explicitRuns ?? 3;
  const file = inputs.sparseA;
  const src = tmpDir('store');
  const out = path.join(work, 'out.qcow2');
  let dst;
  try {
    run(node, strataArgs(src, 'import', file, 'a'));
    warmFile(file);
    log(`backup: send | receive of debian-a.ext4 vs qemu-img convert -O qcow2 + sync, ${runs} runs + warm-up per side, alternating`);
    const pipe = `set -o pipefail; ${node} ${STRATA_MAIN} --store ${src} send a | ${node} ${STRATA_MAIN} --store DST receive a`;
    const r = await compare({
      runs,
      log,
      a: {
        setup: () => {
          dst = tmpDir('store');
          run(node, strataArgs(dst, 'init'));
        },
        run: () => run('bash', ['-c', pipe.replace('DST', dst)]),
        teardown: () => rmDir(dst),
      },
      b: {
        run: () => {
          const c = run('qemu-img', ['convert', '-O', 'qcow2', file, out]);
          const s = run('sync', [out]);
          return { ms: c.ms + s.ms, convertMs: c.ms, syncMs: s.ms };
        },
        teardown: () => rmFile(out),
      },
    });
    const med = (xs) => stats(xs).median;
    report.add({
      section: SECTION,
      order: 4,
      goal: 'strata send | strata receive of a 1 GiB ext4 image into an empty store (durable on both sides)',
      strata: fig(r.a, 'ms'),
      peerCmd: 'qemu-img convert -O qcow2 debian-a.ext4 out.qcow2 && sync out.qcow2',
      peer: fig(r.b, 'ms'),
      target: '≤ 1.5×',
      met: r.a.median / r.b.median <= 1.5,
      note:
        `strata: strata import debian-a.ext4 a (once, untimed); each run: strata init DST (untimed); bash -c 'set -o pipefail; strata --store SRC send a | strata --store DST receive a'. ` +
        `peer = convert ${(med(r.bExtra.map((x) => x.convertMs)) / 1000).toFixed(2)} s + sync ${(med(r.bExtra.map((x) => x.syncMs)) / 1000).toFixed(2)} s (medians of each part)`,
    });
  } finally {
    rmDir(src);
  }
}

export async function sendWorkload(ctx) {
  const work = tmpDir('send');
  const failed = [];
  try {
    for (const [label, fn] of [
      ['stream size', streamGoal],
      ['send | receive', pipeGoal],
    ]) {
      try {
        await fn(ctx, work);
      } catch (e) {
        ctx.log(`send ${label} failed: ${e.stack ?? e}`);
        failed.push(`${label}: ${String(e.message ?? e).split('\n')[0]}`);
      }
    }
  } finally {
    rmDir(work);
  }
  if (failed.length) throw new Error(failed.join('; '));
}
