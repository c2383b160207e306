/**
 * Compressed blocks (commit 2942ffc): the three goals of the feature, each a
 * row of their own goals table (report section 'compress'), every peer
 * measured in this run.
 *
 * 1. Space. Both ext4 images imported into one fresh store with
 *    `--compress zstd`; strata's figure is `stats --json` storedBytes (data
 *    slots in use after compression, fragments packed into container slots).
 *    Peer A, the ideal for 4 KiB dedup plus per-block zstd: every 4 KiB block
 *    of both raw files hashed here (SHA-256), the distinct non-zero ones each
 *    compressed alone at zstd level 3 with the strata addon's compressBlocks
 *    (ZSTD_compressCCtx, the library strata links), a block that does not
 *    shrink counted as 4096. Peer B: `qemu-img convert -c -O qcow2` of each
 *    file, allocated bytes added.
 * 2. Import speed. `strata import --compress zstd debian-a.ext4` into a fresh
 *    store (durable when it returns) vs `qemu-img convert -c -O qcow2
 *    debian-a.ext4 out.qcow2 && sync out.qcow2` (coreutils `sync FILE` is
 *    fsync of that file), alternating, 5 runs each after a warm-up.
 * 3. Random reads of compressed blocks. The ext4 images are mostly free
 *    space, where a random read hits a hole and decodes nothing, so this uses
 *    a dense compressible input: the first 256 MiB of bench/cache/dense.raw
 *    (all of it the tar of the two /usr trees make-images copies, so text and
 *    binaries; cached as bench/cache/dense-tar-256m.raw). It is imported once
 *    with `--compress zstd` and once with `--compress none`, into two stores
 *    (one store would dedup the second import against the first), each
 *    cloned to a leaf `vm` and served by its own `strata serve vm --socket`,
 *    as bench/workloads/nbd.mjs serves its clone case; fio 4 KiB randread
 *    with nbd.mjs's engine, iodepth, io_size and runtime cap, the two servers
 *    alternating run by run with the same --randseed per run, 5 runs each
 *    after a warm-up (--runs N overrides both this and goal 2's 5).
 */
import fs from 'node:fs';
import crypto from 'node:crypto';
import path from 'node:path';
import { createRequire } from 'node:module';
import { compare, run, runWithRss, stats, tick } from '../lib/timing.mjs';
import { fig, single } from '../lib/report.mjs';
import { MiB, allocatedBytes, rmDir, rmFile, slice, syncTree, tmpDir, warmFile } from '../lib/inputs.mjs';
import { ROOT, STRATA_MAIN, hasServe, strataArgs } from '../lib/tools.mjs';
import { fio, fioArgs, startServer, uri, virtualSize } from './nbd.mjs';

const node = process.execPath;
const BLOCK = 4096;
const SECTION = 'compress';
const ADDON = path.join(ROOT, 'native', 'build', 'Release', 'strata_native.node');

function strataStats(store) {
  return JSON.parse(run(node, strataArgs(store, 'stats', '--json')).stdout);
}

/** The native addon when it can compress zstd, else null. */
export function zstdAddon() {
  try {
    const a = createRequire(import.meta.url)(ADDON);
    return a.features?.zstd && typeof a.compressBlocks === 'function' ? a : null;
  } catch {
    return null;
  }
}

/**
 * Peer A: distinct non-zero 4 KiB blocks of `files` (SHA-256), each
 * compressed on its own with zstd at `level`. Returns the sum with a block
 * that does not shrink counted as 4096, the same with strata's rule (stored
 * raw unless it shrinks to 7/8 of a block), and the counts. With `countFrom`
 * k, the blocks of files[0..k) are only remembered: the figures are those of
 * the later files' blocks that none of the first k holds (a second image's
 * new blocks; bench/workloads/remote.mjs).
 */
export function idealCompressedBytes(addon, files, level, { countFrom = 0 } = {}) {
  const seen = new Set();
  const zero = Buffer.alloc(BLOCK);
  const buf = Buffer.allocUnsafe(16 * MiB);
  const BATCH = 4096; // blocks per compressBlocks call
  const batch = Buffer.allocUnsafe(BATCH * BLOCK);
  const out = Buffer.allocUnsafe(BATCH * BLOCK);
  const sizes = new Int32Array(BATCH);
  const strataLimit = BLOCK - BLOCK / 8;
  const r = { distinct: 0, bytes: 0, bytesStrataRule: 0, fragments: 0, fragmentBytes: 0, raw: 0 };
  let n = 0;
  const flush = () => {
    if (n === 0) return;
    addon.compressBlocks(1, level, batch, n, out, sizes, BLOCK);
    for (let i = 0; i < n; i++) {
      const s = sizes[i];
      r.bytes += s > 0 ? s : BLOCK;
      if (s > 0 && s <= strataLimit) {
        r.bytesStrataRule += s;
        r.fragments++;
        r.fragmentBytes += s;
      } else {
        r.bytesStrataRule += BLOCK;
        r.raw++;
      }
    }
    n = 0;
  };
  for (const [fi, f] of files.entries()) {
    const counting = fi >= countFrom;
    const fd = fs.openSync(f, 'r');
    try {
      for (let pos = 0; ; ) {
        const got = fs.readSync(fd, buf, 0, buf.length, pos);
        if (got <= 0) break;
        if (got % BLOCK) throw new Error(`${f}: size is not a multiple of 4 KiB`);
        for (let o = 0; o < got; o += BLOCK) {
          const blk = buf.subarray(o, o + BLOCK);
          if (blk.equals(zero)) continue;
          const h = crypto.createHash('sha256').update(blk).digest('base64');
          if (seen.has(h)) continue;
          seen.add(h);
          if (!counting) continue;
          r.distinct++;
          blk.copy(batch, n * BLOCK);
          if (++n === BATCH) flush();
        }
        pos += got;
      }
    } finally {
      fs.closeSync(fd);
    }
  }
  flush();
  return r;
}

async function spaceGoal(ctx, work) {
  const { report, inputs, log } = ctx;
  const files = [inputs.sparseA, inputs.sparseB];
  const store = tmpDir('store');
  try {
    log('compress space: importing debian-a.ext4 and debian-b.ext4 with --compress zstd into one store');
    run(node, strataArgs(store, 'init'));
    run(node, strataArgs(store, 'import', '--compress', 'zstd', files[0], 'a'));
    run(node, strataArgs(store, 'import', '--compress', 'zstd', files[1], 'b'));
    const st = strataStats(store);
    const stored = st.storedBytes;
    const c = st.compression;

    log('compress space: qemu-img convert -c -O qcow2 of both');
    let qc = 0;
    let qcApparent = 0;
    files.forEach((f, i) => {
      const out = path.join(work, `${i}c.qcow2`);
      run('qemu-img', ['convert', '-c', '-O', 'qcow2', f, out]);
      qc += allocatedBytes(out);
      qcApparent += fs.statSync(out).size;
      rmFile(out);
    });

    const addon = zstdAddon();
    const B = (v) => single(v, 'bytes');
    const base = { section: SECTION };
    const strataNote =
      `strata: strata init; strata import --compress zstd debian-a.ext4 a; strata import --compress zstd debian-b.ext4 b; figure = stats --json storedBytes. ` +
      `Data files ${(st.dataFiles.allocatedBytes / MiB).toFixed(1)} MiB allocated (${(st.dataFiles.apparentBytes / MiB).toFixed(1)} MiB apparent), metadata (strata.db*) ${(st.metadataBytes / MiB).toFixed(1)} MiB, ` +
      `whole store ${((st.dataFiles.allocatedBytes + st.metadataBytes) / MiB).toFixed(1)} MiB; distinct ${(st.distinctBytes / MiB).toFixed(1)} MiB; ` +
      `${c.blocks} blocks compressed: ${(c.bytesBefore / MiB).toFixed(1)} MiB -> fragments of ${(c.fragmentBytes / MiB).toFixed(1)} MiB packed into ${(c.bytesAfter / MiB).toFixed(1)} MiB of container slots ` +
      `(containers ${((100 * c.fragmentBytes) / Math.max(1, c.bytesAfter)).toFixed(1)}% full); ${((st.distinctBytes - c.bytesBefore) / MiB).toFixed(1)} MiB stored raw`;
    if (!addon) {
      report.skip('compressed space: store of both ext4 images vs distinct non-zero 4 KiB blocks each zstd-3 compressed alone', `the strata native addon (${path.relative(ROOT, ADDON)}) has no zstd`, {
        ...base,
        order: 1,
      });
    } else {
      log('compress space: hashing every 4 KiB block of both images, compressing each distinct non-zero one alone (zstd 3)');
      const ideal = idealCompressedBytes(addon, files, 3);
      report.add({
        ...base,
        order: 1,
        goal: 'compressed space: store of both ext4 images vs distinct non-zero 4 KiB blocks each zstd-3 compressed alone',
        strata: B(stored),
        peerCmd: `sha256 of every 4 KiB block of a and b; each distinct non-zero block compressed alone by ${path.relative(ROOT, ADDON)} compressBlocks(1 /* zstd */, 3, …, limit 4096) = ZSTD_compressCCtx level 3; sizes added, a block that does not shrink counted as 4096 (computed in bench)`,
        peer: B(ideal.bytes),
        target: '≤ 1.1×',
        met: stored / ideal.bytes <= 1.1,
        note:
          strataNote +
          `. Peer: ${ideal.distinct} distinct non-zero blocks (${((ideal.distinct * BLOCK) / MiB).toFixed(1)} MiB; strata distinctBytes ${st.distinctBytes === ideal.distinct * BLOCK ? 'equal' : `differs: ${(st.distinctBytes / MiB).toFixed(1)} MiB`}); ` +
          `with strata's rule (a block is kept raw unless it compresses to ≤ 3584 bytes) the same blocks take ${(ideal.bytesStrataRule / MiB).toFixed(1)} MiB: ${ideal.fragments} fragments of ${(ideal.fragmentBytes / MiB).toFixed(1)} MiB + ${ideal.raw} raw blocks`,
      });
    }
    report.add({
      ...base,
      order: 2,
      goal: 'compressed space: store of both ext4 images vs two compressed qcow2 files',
      strata: B(stored),
      peerCmd: 'qemu-img convert -c -O qcow2 a.ext4 a.qcow2; the same for b (allocated bytes added)',
      peer: B(qc),
      target: '≤ 0.6×',
      met: stored / qc <= 0.6,
      note: `peer files ${(qcApparent / MiB).toFixed(1)} MiB apparent; strata's whole store (data allocated + metadata) is ${(((st.dataFiles.allocatedBytes + st.metadataBytes) / qc)).toFixed(2)}× the peer`,
    });
  } finally {
    rmDir(store);
  }
}

async function importGoal(ctx, work) {
  const { report, inputs, log } = ctx;
  const runs = ctx.explicitRuns ?? 5;
  const file = inputs.sparseA;
  const out = path.join(work, 'out.qcow2');
  warmFile(file);
  log(`compress import: debian-a.ext4, ${runs} runs + warm-up per side, alternating`);
  let store;
  const r = await compare({
    runs,
    log,
    a: {
      setup: () => {
        store = tmpDir('store');
        run(node, strataArgs(store, 'init'));
      },
      run: () => runWithRss(node, strataArgs(store, 'import', '--compress', 'zstd', file, 'a')),
      teardown: () => rmDir(store),
    },
    b: {
      run: async () => {
        const c = await runWithRss('qemu-img', ['convert', '-c', '-O', 'qcow2', file, out]);
        const s = run('sync', [out]);
        return { ms: c.ms + s.ms, rss: c.rss, convertMs: c.ms, syncMs: s.ms };
      },
      teardown: () => rmFile(out),
    },
  });
  const med = (xs) => stats(xs).median;
  report.add({
    section: SECTION,
    order: 3,
    goal: 'compressed import of a 1 GiB ext4 image built by mke2fs -d (durable on both sides)',
    strata: fig(r.a, 'ms'),
    peerCmd: 'qemu-img convert -c -O qcow2 debian-a.ext4 out.qcow2 && sync out.qcow2',
    peer: fig(r.b, 'ms'),
    target: '≤ 1.0×',
    met: r.a.median / r.b.median <= 1.0,
    note:
      `strata: strata init (untimed); strata import --compress zstd debian-a.ext4 a into a fresh store each run. ` +
      `peer = convert ${(med(r.bExtra.map((x) => x.convertMs)) / 1000).toFixed(2)} s + sync ${(med(r.bExtra.map((x) => x.syncMs)) / 1000).toFixed(2)} s (medians of each part); ` +
      `peak RSS strata ${(Math.max(...r.aExtra.map((x) => x.rss)) / MiB).toFixed(0)} MiB, qemu-img ${(Math.max(...r.bExtra.map((x) => x.rss)) / MiB).toFixed(0)} MiB`,
  });
}

async function readGoal(ctx, work) {
  const { report, inputs, quick, log } = ctx;
  const goal = 'fio 4 KiB random read, iodepth 16, compressed (zstd) vs uncompressed, dense 256 MiB of /usr files';
  if (!ctx.have.fioNbd || !hasServe()) {
    report.skip(goal, !ctx.have.fioNbd ? 'fio has no nbd ioengine' : 'strata serve not available', { section: SECTION, order: 4 });
    return;
  }
  const size = 256 * MiB;
  const name = 'dense-tar-256m.raw';
  const file = slice(inputs.dense, size, name);
  // 5 like the import goal (nbd.mjs takes 3 in quick mode): one run on a busy 2-core machine moves a median of 3.
  const runs = ctx.explicitRuns ?? 5;
  const sides = [
    { key: 'zstd', compress: 'zstd', store: tmpDir('store'), sock: path.join(work, 'zstd.sock') },
    { key: 'none', compress: 'none', store: tmpDir('store'), sock: path.join(work, 'none.sock') },
    // lz4hc beside them: lz4 blocks, which decode in a third of zstd's time (a row of its own, after the goal).
    { key: 'lz4', compress: 'lz4hc', store: tmpDir('store'), sock: path.join(work, 'lz4.sock') },
  ];
  try {
    log(`compress read: importing ${name} with --compress zstd, none and lz4hc (three stores)`);
    warmFile(file);
    for (const s of sides) {
      run(node, strataArgs(s.store, 'init'));
      run(node, strataArgs(s.store, 'import', '--compress', s.compress, file, 'base'));
      run(node, strataArgs(s.store, 'clone', 'base', 'vm'));
      s.stats = strataStats(s.store);
      syncTree(s.store);
    }
    const zc = sides[0].stats.compression;
    if (zc.blocks === 0) throw new Error('the --compress zstd import stored no block compressed');
    for (const s of sides) s.server = await startServer(node, [STRATA_MAIN, '--store', s.store, 'serve', 'vm', '--socket', s.sock], s.sock);
    const [vz, vn, vl] = sides.map((s) => virtualSize(s.sock));
    if (vz !== size || vn !== size || vl !== size) throw new Error(`virtual sizes: zstd ${vz}, uncompressed ${vn}, lz4 ${vl}, input ${size}`);
    const cmpLz4 = run('qemu-img', ['compare', '-f', 'raw', '-F', 'raw', uri(sides[2].sock), file], { allowFail: true });
    if (cmpLz4.status !== 0) throw new Error(`the lz4 image does not serve the input's bytes: ${cmpLz4.stdout}${cmpLz4.stderr}`.slice(0, 400));
    const cmp = run('qemu-img', ['compare', '-f', 'raw', '-F', 'raw', uri(sides[0].sock), uri(sides[1].sock)], { allowFail: true });
    if (cmp.status !== 0) throw new Error(`the compressed and uncompressed images serve different bytes: ${cmp.stdout}${cmp.stderr}`.slice(0, 400));
    // A raw file byte-compare too: both must be the input.
    const cmpIn = run('qemu-img', ['compare', '-f', 'raw', '-F', 'raw', uri(sides[0].sock), file], { allowFail: true });
    if (cmpIn.status !== 0) throw new Error(`the compressed image does not serve the input's bytes: ${cmpIn.stdout}${cmpIn.stderr}`.slice(0, 400));
    log('compress read: both servers export 256 MiB, qemu-img compare: identical (and equal to the input)');

    // As in nbd.mjs.
    const ioSize = quick ? 192 * MiB : 384 * MiB;
    const capS = quick ? 30 : 60;
    const job = { key: 'randread', rw: 'randread', bs: '4k' };
    const xs = { zstd: [], none: [], lz4: [] };
    let capped = false;
    log(`compress read: fio randread 4k, ${runs} runs of ${ioSize / MiB} MiB + warm-up per side`);
    for (let i = -1; i < runs; i++) {
      const order = i % 2 !== 0 ? [...sides].reverse() : sides;
      for (const s of order) {
        await tick();
        const j = fio(fioArgs(job, s.sock, size, ioSize, 1000 + i, capS));
        if (j.read.io_bytes < ioSize) capped = true;
        if (i >= 0) xs[s.key].push(j.read.iops);
      }
      log(`  run ${i < 0 ? 'warm-up' : i + 1}/${runs}`);
    }
    if (!sides.every((s) => s.server.alive())) throw new Error('a server died during the fio runs');
    const sz = stats(xs.zstd);
    const sn = stats(xs.none);
    const st = (s) => s.stats;
    report.add({
      section: SECTION,
      order: 4,
      goal,
      strata: fig(sz, 'IOPS', 'zstd'),
      peerCmd: `strata import --compress none ${name} base; strata clone base vm; strata serve vm --socket SOCK (same strata, uncompressed)`,
      peer: fig(sn, 'IOPS', 'none'),
      target: '≥ 0.8×',
      met: sz.median / sn.median >= 0.8,
      note:
        `input: the first 256 MiB of bench/cache/dense.raw (tar of the /usr trees, ${name}); strata: strata import --compress zstd ${name} base; strata clone base vm; strata serve vm --socket SOCK; ` +
        `compressed store ${(st(sides[0]).storedBytes / MiB).toFixed(1)} MiB stored (${zc.blocks} blocks compressed, ${(zc.bytesBefore / MiB).toFixed(1)} -> ${(zc.bytesAfter / MiB).toFixed(1)} MiB), uncompressed ${(st(sides[1]).storedBytes / MiB).toFixed(1)} MiB. ` +
        `fio --ioengine=nbd --uri=nbd+unix:///vm?socket=SOCK --rw=randread --bs=4k --iodepth=16 --size=256M --io_size=${ioSize / MiB}M --randseed=RUN --runtime=${capS}, the two servers alternating` +
        (capped ? `; some runs hit the ${capS} s cap before moving --io_size` : '') +
        '. Each zstd fragment of 4 KiB costs a frame decode (entropy tables built per frame) of about 8.5 µs on this host, measured in C against libzstd; the whole uncompressed read costs the server about 15 µs',
    });
    const sl = stats(xs.lz4);
    const lc = sides[2].stats.compression;
    report.add({
      section: SECTION,
      order: 5,
      goal: 'fio 4 KiB random read, iodepth 16, compressed (lz4hc) vs uncompressed, same input (reference for the row above)',
      strata: fig(sl, 'IOPS', 'lz4hc'),
      peerCmd: '(the uncompressed server of the row above, the three servers alternating)',
      peer: fig(sn, 'IOPS', 'none'),
      target: '≥ 0.8×',
      met: sl.median / sn.median >= 0.8,
      note: `lz4hc store ${(st(sides[2]).storedBytes / MiB).toFixed(1)} MiB stored (${lc.blocks} blocks compressed, ${(lc.bytesBefore / MiB).toFixed(1)} -> ${(lc.bytesAfter / MiB).toFixed(1)} MiB)`,
    });
  } finally {
    for (const s of sides) await s.server?.stop();
    for (const s of sides) rmDir(s.store);
  }
}

export async function compressWorkload(ctx) {
  const work = tmpDir('compress');
  const failed = [];
  try {
    // Each goal on its own: one failing does not lose the others' rows.
    for (const [label, fn] of [
      ['space', spaceGoal],
      ['import', importGoal],
      ['random read', readGoal],
    ]) {
      try {
        await fn(ctx, work);
      } catch (e) {
        ctx.log(`compress ${label} failed: ${e.stack ?? e}`);
        failed.push(`${label}: ${String(e.message ?? e).split('\n')[0]}`);
      }
    }
  } finally {
    rmDir(work);
  }
  // run.mjs turns this into one failed row and a non-zero exit.
  if (failed.length) throw new Error(failed.join('; '));
}
