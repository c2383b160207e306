/**
 * Many hosts, one bucket (issue #13): the three goals of the feature, each a
 * row of their own goals table (report section 'remote'), on a loopback Ceph
 * RGW, every peer measured in this run.
 *
 * The RGW is test/setup/rgw.sh's, on a directory and ports of its own so that
 * it never meets the tests' instance (/tmp/strata-rgw, 7480):
 * STRATA_RGW_DIR, STRATA_RGW_PORT and STRATA_RGW_MON_PORT when set, else
 * /tmp/strata-rgw-bench, 7530 and 6830. One already running there is used
 * and left running; else the workload starts it and stops it at the end. A
 * fresh bucket per run of the workload; every push and upload goes to a
 * prefix of its own and is deleted after its run, then `radosgw-admin gc
 * process` frees it (the OSD keeps objects in RAM, 2 GiB).
 *
 * 1. Push speed. debian-a.ext4 imported once into a fresh store (untimed);
 *    each run `strata push a rN --json` to a remote rN added just before on
 *    a fresh prefix (so its cache knows no index and nothing is skipped), vs
 *    bench/lib/s3-cp.mjs (what `aws s3 cp` does, with the same SDK: a
 *    multipart upload of 8 MiB parts, 4 in flight) of `qemu-img convert -c
 *    -O qcow2 debian-a.ext4` made once (its conversion time is printed, not
 *    counted). Both sides are whole processes timed from spawn to exit,
 *    alternating, after a warm-up each.
 * 2. Second image over the same base. debian-b.ext4 imported into the same
 *    store (it dedups against a); a, then b pushed to one remote. strata's
 *    figure is b's push `uploadedBytes` (its packs: fragments and trailers);
 *    the peer, computed here: the distinct non-zero 4 KiB blocks of b whose
 *    SHA-256 no block of a has, each compressed alone at zstd level 3 (push's
 *    default codec) by the addon strata links, with push's rule (kept raw, 4096
 *    bytes, unless it shrinks to 3584 bytes or less).
 * 3. Lazy first boot-style read. A second store clones a from that remote
 *    (`strata clone fleet/a vm`, nothing fetched) and serves it (`strata serve
 *    vm --socket SOCK --log-level info`); qemu-io reads over NBD what a boot
 *    reads first: the superblock, the group descriptors, the journal's
 *    superblock, then the inodes in inode order (root, then 11 on), for each
 *    its inode-table block (once) and its data (debugfs `ex`: each extent
 *    read 128 KiB at a time, the kernel's default
 *    readahead) until 64 MiB of file and directory data are read. strata's
 *    figure is what the server fetched from the bucket (bytes of its ranged
 *    GETs, from the `stopped` line serve logs at exit), the peer's the bytes
 *    read. A reference row does the same with scattered reads: 4-64 KiB at
 *    seeded random data blocks, none read twice, until 64 MiB (16 MiB in
 *    quick mode), on a third store.
 */
import fs from 'node:fs';
import path from 'node:path';
import { spawnSync } from 'node:child_process';
import { DeleteBucketCommand } from '@aws-sdk/client-s3';
import { randomBytes } from 'node:crypto';
import { compare, nowMs, run, stats } from '../lib/timing.mjs';
import { fig, single } from '../lib/report.mjs';
import { MiB, onCleanup, rmDir, tmpDir, warmFile } from '../lib/inputs.mjs';
import { ROOT, STRATA_MAIN, strataArgs, which } from '../lib/tools.mjs';
import { deletePrefix, ensureBucket, listPrefix, s3Client } from '../lib/s3-cp.mjs';
import { mulberry32 } from '../../test/helpers/mulberry32.mjs';
import { idealCompressedBytes, zstdAddon } from './compress.mjs';
import { startServer } from './nbd.mjs';

const node = process.execPath;
const SECTION = 'remote';
const BLOCK = 4096;
const RGW = path.join(ROOT, 'test', 'setup', 'rgw.sh');
const S3CP = path.join(ROOT, 'bench', 'lib', 's3-cp.mjs');
const CEPH_APT = 'sudo apt-get install -y --no-install-recommends ceph-mon ceph-osd ceph-mgr radosgw ceph-common';
const PART = '8M';
const IN_FLIGHT = 4;

const GOALS = {
  push: 'push of a 1 GiB ext4 image (mke2fs -d) into an empty prefix vs uploading its qemu-img convert -c file with the SDK',
  second: 'push of a second image over the same base: bytes uploaded vs the compressed size of its new blocks',
  lazy: 'lazy clone served over NBD, first boot-style read (64 MiB of files in inode order + their metadata): bytes fetched from the bucket vs bytes read',
  scattered: 'the same, 64 MiB of scattered 4–64 KiB reads of data blocks (seeded): bytes fetched vs bytes read (reference)',
};

/** The loopback RGW: { endpoint, stop() }; null (with the reason) when ceph is not installed. */
function startRgw(log) {
  const env = {
    ...process.env,
    STRATA_RGW_DIR: process.env.STRATA_RGW_DIR ?? '/tmp/strata-rgw-bench',
    STRATA_RGW_PORT: process.env.STRATA_RGW_PORT ?? '7530',
    STRATA_RGW_MON_PORT: process.env.STRATA_RGW_MON_PORT ?? '6830',
  };
  const sh = (cmd) => spawnSync('bash', [RGW, cmd], { env, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'], timeout: 180_000 });
  const where = `${env.STRATA_RGW_DIR}, port ${env.STRATA_RGW_PORT}, mon port ${env.STRATA_RGW_MON_PORT}`;
  const running = sh('status').status === 0;
  if (!running) {
    log(`remote: starting a loopback Ceph RGW (bash test/setup/rgw.sh start; ${where})`);
    const r = sh('start');
    if (r.status !== 0) throw new Error(`test/setup/rgw.sh start failed (${where}): ${r.stderr.slice(-600)}`);
  } else log(`remote: using the RGW already running (${where}); it is left running`);
  const out = sh('env');
  if (out.status !== 0) throw new Error(`test/setup/rgw.sh env failed: ${out.stderr}`);
  const vars = Object.fromEntries([...out.stdout.matchAll(/^export (\w+)=(.*)$/gm)].map((m) => [m[1], m[2]]));
  const endpoint = vars.STRATA_TEST_S3_ENDPOINT;
  if (!endpoint) throw new Error(`test/setup/rgw.sh env printed no endpoint: ${out.stdout}`);
  delete vars.STRATA_TEST_S3_ENDPOINT;
  // The keys go on this process's env for the SDK here and for every strata child (serve included).
  const saved = Object.fromEntries(Object.keys(vars).map((k) => [k, process.env[k]]));
  Object.assign(process.env, vars);
  let stopped = false;
  const stop = () => {
    if (stopped) return;
    stopped = true;
    for (const [k, v] of Object.entries(saved)) {
      if (v === undefined) delete process.env[k];
      else process.env[k] = v;
    }
    if (!running) {
      log('remote: stopping the RGW it started (bash test/setup/rgw.sh stop)');
      sh('stop');
    }
  };
  const forget = onCleanup(stop);
  return {
    endpoint,
    where,
    started: !running,
    /**
     * Frees what deleted objects held now: RGW leaves them to its garbage
     * collector (2 h later by default), and the memstore OSD has 2 GiB.
     */
    gc() {
      const r = spawnSync('radosgw-admin', ['gc', 'process', '--include-all'], {
        env: { ...env, CEPH_CONF: path.join(env.STRATA_RGW_DIR, 'ceph.conf'), PATH: `${process.env.PATH}:/usr/sbin:/sbin` },
        stdio: 'ignore',
        timeout: 120_000,
      });
      if (r.status !== 0) log(`remote: radosgw-admin gc process failed (${r.status ?? r.error?.message}); deleted objects stay in the OSD until RGW's own gc`);
    },
    stop() {
      forget();
      stop();
    },
  };
}

const strata = (store, ...args) => run(node, strataArgs(store, ...args));
const strataJson = (store, ...args) => JSON.parse(strata(store, ...args, '--json').stdout);

async function pushGoal(ctx, env) {
  const { report, inputs, log } = ctx;
  const { store, work, client, bucket, endpoint } = env;
  const runs = ctx.runs('heavy');
  const qcow2 = path.join(work, 'debian-a.qcow2');
  log('remote push: qemu-img convert -c -O qcow2 debian-a.ext4 (once, not timed with the upload)');
  warmFile(inputs.sparseA);
  const tc = nowMs();
  run('qemu-img', ['convert', '-c', '-O', 'qcow2', inputs.sparseA, qcow2]);
  const convertMs = nowMs() - tc;
  const qcowBytes = fs.statSync(qcow2).size;
  warmFile(qcow2);
  const peerCmd = `node bench/lib/s3-cp.mjs debian-a.qcow2 s3://BUCKET/KEY --endpoint ${endpoint} --part-size ${PART} --concurrency ${IN_FLIGHT}`;
  log(`remote push: ${runs} runs + warm-up per side, alternating: strata push a (fresh prefix each) vs ${peerCmd}`);
  const tag = (i) => (i < 0 ? 'w' : String(i));
  const r = await compare({
    runs,
    log,
    a: {
      setup: (i) => strata(store, 'remote', 'add', `r${tag(i)}`, `s3://${bucket}/push-${tag(i)}`, '--create', '--endpoint', endpoint),
      run: (i) => {
        const t = run(node, strataArgs(store, 'push', 'a', `r${tag(i)}`, '--json'));
        return { ms: t.ms, push: JSON.parse(t.stdout) };
      },
      teardown: async (i) => {
        await deletePrefix(client, bucket, `push-${tag(i)}/`);
        env.rgw.gc();
      },
    },
    b: {
      run: (i) => {
        const t = run(node, [S3CP, qcow2, `s3://${bucket}/cp-${tag(i)}/debian-a.qcow2`, '--endpoint', endpoint, '--part-size', PART, '--concurrency', String(IN_FLIGHT)]);
        return { ms: t.ms, cp: JSON.parse(t.stdout) };
      },
      teardown: async (i) => {
        await deletePrefix(client, bucket, `cp-${tag(i)}/`);
        env.rgw.gc();
      },
    },
  });
  const p = r.aExtra[0].push;
  if (r.aExtra.some((x) => x.push.indexesRead > 0)) throw new Error('a push into a fresh prefix found indexes there');
  const uploadMs = stats(r.bExtra.map((x) => x.cp.ms)).median;
  report.add({
    section: SECTION,
    order: 1,
    goal: GOALS.push,
    strata: fig(r.a, 'ms'),
    peerCmd,
    peer: fig(r.b, 'ms'),
    target: '≤ 1.5×',
    met: r.a.median / r.b.median <= 1.5,
    note:
      `strata: strata import debian-a.ext4 a into a fresh store (once, untimed); each run strata remote add rN s3://BUCKET/push-N --endpoint ${endpoint}, then strata push a rN --json (timed, spawn to exit), the prefix deleted after the run. ` +
      `push: ${p.blocks} data blocks, ${p.newBlocks} distinct uploaded in ${p.packs} packs of ${(p.uploadedBytes / MiB).toFixed(1)} MiB (zstd-3 per block; 16 MiB packs, 3 uploading at once, each in 8 MiB parts 4 at a time). ` +
      `peer: debian-a.qcow2 = qemu-img convert -c -O qcow2 debian-a.ext4 debian-a.qcow2, ${(qcowBytes / MiB).toFixed(1)} MiB, made once in ${(convertMs / 1000).toFixed(2)} s (not counted); ` +
      `its upload alone, inside the process (first request to last reply), median ${(uploadMs / 1000).toFixed(2)} s; the rest of the peer's time is node, the SDK's load and the credential chain`,
  });
}

async function secondGoal(ctx, env) {
  const { report, inputs, log } = ctx;
  const { store, client, bucket, endpoint } = env;
  log('remote second: strata import debian-b.ext4 b (same store); remote fleet; push a, then push b');
  strata(store, 'import', inputs.sparseB, 'b');
  strata(store, 'remote', 'add', 'fleet', `s3://${bucket}/fleet`, '--create', '--endpoint', endpoint);
  const pa = strataJson(store, 'push', 'a', 'fleet');
  const before = new Set((await listPrefix(client, bucket, 'fleet/')).map((o) => o.key));
  const t = run(node, strataArgs(store, 'push', 'b', 'fleet', '--json'));
  const pb = JSON.parse(t.stdout);
  const added = (await listPrefix(client, bucket, 'fleet/')).filter((o) => !before.has(o.key));
  const addedBytes = added.reduce((n, o) => n + o.size, 0);
  const kinds = {};
  for (const o of added) {
    const k = o.key.slice('fleet/'.length).split('/')[0];
    kinds[k] = (kinds[k] ?? 0) + o.size;
  }
  const addon = zstdAddon();
  if (!addon) {
    report.skip(GOALS.second, 'the strata native addon has no zstd (the figure needs its per-block compressor)', { section: SECTION, order: 2 });
    return pa;
  }
  log('remote second: hashing every block of a and b; compressing each distinct non-zero block of b that a lacks alone (zstd 3)');
  const ideal = idealCompressedBytes(addon, [inputs.sparseA, inputs.sparseB], 3, { countFrom: 1 });
  const peer = ideal.bytesStrataRule;
  report.add({
    section: SECTION,
    order: 2,
    goal: GOALS.second,
    strata: single(pb.uploadedBytes, 'bytes'),
    peerCmd: `sha256 of every 4 KiB block of debian-a and debian-b; each distinct non-zero block of b whose digest a lacks compressed alone by native/build/Release/strata_native.node compressBlocks(1 /* zstd */, 3, …) as push does: kept raw (4096) unless ≤ 3584 bytes (computed in bench)`,
    peer: single(peer, 'bytes'),
    target: '≤ 1.1×',
    met: pb.uploadedBytes / peer <= 1.1,
    note:
      `strata: in the store of the row above, strata import debian-b.ext4 b (dedups against a); strata remote add fleet s3://BUCKET/fleet; strata push a fleet; strata push b fleet --json: uploadedBytes (packs: fragments and trailers). ` +
      `push b: ${pb.blocks} data blocks, ${pb.newBlocks} uploaded in ${pb.packs} packs, ${pb.indexesRead} indexes read, ${(t.ms / 1000).toFixed(2)} s; push a before it uploaded ${(pa.uploadedBytes / MiB).toFixed(1)} MiB. ` +
      `Every object push b added: ${added.length} objects, ${(addedBytes / MiB).toFixed(2)} MiB (${Object.entries(kinds)
        .map(([k, v]) => `${k} ${(v / MiB).toFixed(2)} MiB`)
        .join(', ')}), ${(addedBytes / peer).toFixed(3)}× the peer. ` +
      `Peer: ${ideal.distinct} new blocks (${((ideal.distinct * BLOCK) / MiB).toFixed(1)} MiB raw${ideal.distinct === pb.newBlocks ? ', the same count push uploaded' : `; push uploaded ${pb.newBlocks}`}): ${ideal.fragments} fragments of ${(ideal.fragmentBytes / MiB).toFixed(1)} MiB + ${ideal.raw} raw`,
  });
  return pa;
}

/**
 * debugfs's view of an ext4 image: geometry, and the extents (physical
 * [first block, count], in logical order) of every inode in use that has
 * them. `ex` (dump_extents), not `blocks`: `blocks` of a fast symlink lists
 * the bytes of its target as block numbers.
 */
export function ext4Layout(img) {
  const debugfs = which('debugfs') ?? ['/usr/sbin/debugfs', '/sbin/debugfs'].find((p) => fs.existsSync(p));
  if (!debugfs) throw new Error('debugfs not found (sudo apt-get install e2fsprogs)');
  const st = run(debugfs, ['-c', '-R', 'stats', img]).stdout;
  const num = (re) => {
    const m = re.exec(st);
    if (!m) throw new Error(`debugfs stats: no ${re}`);
    return Number(m[1]);
  };
  const g = {
    blockSize: num(/^Block size:\s+(\d+)/m),
    blockCount: num(/^Block count:\s+(\d+)/m),
    inodesPerGroup: num(/^Inodes per group:\s+(\d+)/m),
    inodeSize: num(/^Inode size:\s+(\d+)/m),
    descSize: num(/^Group descriptor size:\s+(\d+)/m),
    journalInode: num(/^Journal inode:\s+(\d+)/m),
    firstInode: num(/^First inode:\s+(\d+)/m),
  };
  const groups = [...st.matchAll(/^ Group\s+(\d+): .*inode table at (\d+)\n.*?(\d+) unused inodes/gm)].map((m) => ({ itable: Number(m[2]), unused: Number(m[3]) }));
  if (!groups.length) throw new Error('debugfs stats: no groups');
  const inodes = [2, g.journalInode];
  groups.forEach((gr, k) => {
    for (let i = 1; i <= g.inodesPerGroup - gr.unused; i++) {
      const ino = k * g.inodesPerGroup + i;
      if (ino >= g.firstInode) inodes.push(ino);
    }
  });
  const dir = tmpDir('debugfs');
  const cmd = path.join(dir, 'cmds');
  fs.writeFileSync(cmd, inodes.map((i) => `ex -l <${i}>\n`).join(''));
  const out = run(debugfs, ['-c', '-f', cmd, img]).stdout;
  rmDir(dir);
  const extents = new Map();
  let cur = null;
  for (const line of out.split('\n')) {
    const head = /^debugfs: ex -l <(\d+)>/.exec(line);
    if (head) {
      cur = [];
      extents.set(Number(head[1]), cur);
      continue;
    }
    // " 0/ 0   1/  1     0 -    15   4298 -   4313     16 [Uninit]"
    const m = /^\s*\d+\/\s*\d+\s+\d+\/\s*\d+\s+\d+ -\s*\d+\s+(\d+) -\s*(\d+)\s+(\d+)\s*(.*)$/.exec(line);
    if (!m || !cur || /Uninit/.test(m[4])) continue;
    const [first, count] = [Number(m[1]), Number(m[3])];
    if (first + count > g.blockCount) throw new Error(`debugfs: an extent past the end of ${img}: ${line}`);
    cur.push([first, count]);
  }
  for (const [ino, l] of extents) if (!l.length) extents.delete(ino);
  return { ...g, groups, inodes: inodes.filter((i) => i !== g.journalInode), extents };
}

/** Reads [offset, length] of a boot: metadata, then inodes in order with their data, until `budget` bytes of data. */
export function bootReads(fs4, budget) {
  const bs = fs4.blockSize;
  const reads = [];
  const gdtBlocks = Math.ceil((fs4.groups.length * fs4.descSize) / bs);
  reads.push([0, bs], [bs, gdtBlocks * bs]);
  const journal = fs4.extents.get(fs4.journalInode);
  if (journal) reads.push([journal[0][0] * bs, bs]);
  const itableRead = new Set();
  let data = 0;
  const MAXREQ = 128 * 1024;
  for (const ino of fs4.inodes) {
    if (data >= budget) break;
    const grp = fs4.groups[Math.floor((ino - 1) / fs4.inodesPerGroup)];
    const tb = grp.itable + Math.floor((((ino - 1) % fs4.inodesPerGroup) * fs4.inodeSize) / bs);
    if (!itableRead.has(tb)) {
      itableRead.add(tb);
      reads.push([tb * bs, bs]);
    }
    for (const [first, count] of fs4.extents.get(ino) ?? []) {
      for (let at = first * bs, end = (first + count) * bs; at < end && data < budget; ) {
        const len = Math.min(MAXREQ, end - at, budget - data);
        reads.push([at, len]);
        data += len;
        at += len;
      }
    }
  }
  return { reads, dataBytes: data, metaBytes: reads.reduce((n, r) => n + r[1], 0) - data, inodeTableBlocks: itableRead.size };
}

/** Seeded scattered reads of 4-64 KiB starting at data blocks, none overlapping, until `budget` bytes. */
export function scatteredReads(fs4, budget, seed) {
  const bs = fs4.blockSize;
  const all = [];
  for (const [ino, l] of fs4.extents) if (ino !== fs4.journalInode) for (const [first, count] of l) for (let k = 0; k < count; k++) all.push(first + k);
  const taken = new Set();
  const rnd = mulberry32(seed);
  const reads = [];
  let bytes = 0;
  while (bytes < budget) {
    const start = all[Math.floor(rnd() * all.length)];
    const n = Math.min(1 + Math.floor(rnd() * 16), (budget - bytes) / bs, fs4.blockCount - start);
    let free = true;
    for (let k = 0; k < n && free; k++) free = !taken.has(start + k);
    if (!free) continue;
    for (let k = 0; k < n; k++) taken.add(start + k);
    reads.push([start * bs, n * bs]);
    bytes += n * bs;
  }
  return { reads, dataBytes: bytes, metaBytes: 0 };
}

/**
 * A fresh store cloning `image` from the remote, served; `reads` done by one
 * qemu-io over NBD; the server stopped. What it fetched (its `stopped` log line).
 */
async function lazyRead(env, image, reads, label) {
  const { bucket, endpoint, work } = env;
  const store = tmpDir('remote-lazy');
  const sock = path.join(work, `${label}.sock`);
  let server;
  try {
    strata(store, 'init');
    strata(store, 'remote', 'add', 'fleet', `s3://${bucket}/fleet`, '--create', '--endpoint', endpoint);
    const clone = strataJson(store, 'clone', `fleet/${image}`, 'vm');
    server = await startServer(node, [STRATA_MAIN, '--store', store, 'serve', 'vm', '--socket', sock, '--log-level', 'info'], sock);
    const args = ['-r', '-f', 'raw', ...reads.flatMap(([o, l]) => ['-c', `read ${o} ${l}`]), `nbd+unix:///vm?socket=${sock}`];
    const q = run('qemu-io', args, { timeoutMs: 600_000 });
    const bad = /(failed|error)/i.exec(q.stdout + q.stderr);
    if (bad) throw new Error(`qemu-io: ${(q.stdout + q.stderr).split('\n').find((l) => /failed|error/i.test(l))}`);
    const done = (q.stdout.match(/^read \d+\/\d+ bytes/gm) ?? []).length;
    if (done !== reads.length) throw new Error(`qemu-io did ${done} of ${reads.length} reads`);
    await server.stop();
    let line;
    for (const t0 = Date.now(); !(line = server.stderr().split('\n').find((l) => l.includes('"msg":"stopped"'))) && Date.now() - t0 < 5000; ) await new Promise((r) => setTimeout(r, 20));
    if (!line) throw new Error(`strata serve logged no "stopped" line: ${server.stderr().slice(-400)}`);
    const s = JSON.parse(line);
    return { readMs: q.ms, clone: clone.lazy, fetchedBytes: s.fetchedBytes, fetchedBlocks: s.fetchedBlocks, gets: s.gets };
  } finally {
    await server?.stop();
    rmDir(store);
  }
}

async function lazyGoal(ctx, env) {
  const { report, inputs, log } = ctx;
  if (!which('qemu-io')) {
    report.skip(GOALS.lazy, 'qemu-io not found (sudo apt-get install qemu-utils)', { section: SECTION, order: 3 });
    return;
  }
  const budget = 64 * MiB;
  // One read at a time, each a GET to the gateway (about 50 ms on the loaded test VM): 64 MiB of
  // scattered reads take two minutes, so quick mode scatters 16 MiB (same seed).
  const scattered = ctx.quick ? 16 * MiB : budget;
  const fs4 = ext4Layout(inputs.sparseA);
  const rows = [
    { key: 'lazy', order: 3, plan: bootReads(fs4, budget), target: '≤ 2×', judge: true },
    { key: 'scattered', order: 4, plan: scatteredReads(fs4, scattered, 13), target: '≤ 2× (reference)', judge: false },
  ];
  for (const row of rows) {
    const { reads, dataBytes, metaBytes } = row.plan;
    const readBytes = dataBytes + metaBytes;
    log(`remote ${row.key}: strata clone fleet/a vm on a fresh store; serve; qemu-io: ${reads.length} reads, ${(readBytes / MiB).toFixed(1)} MiB`);
    const f = await lazyRead(env, 'a', reads, row.key);
    const sizes = reads.map((r) => r[1]);
    report.add({
      section: SECTION,
      order: row.order,
      goal: GOALS[row.key].replace('64 MiB of scattered', `${row.plan.dataBytes / MiB} MiB of scattered`),
      strata: single(f.fetchedBytes, 'bytes'),
      peerCmd: `qemu-io -r -f raw -c 'read OFFSET LENGTH' … nbd+unix:///vm?socket=SOCK (${reads.length} reads, ${Math.min(...sizes) / 1024}–${Math.max(...sizes) / 1024} KiB; bytes read)`,
      peer: single(readBytes, 'bytes'),
      target: row.target,
      met: row.judge ? f.fetchedBytes / readBytes <= 2 : null,
      note:
        `strata init; strata remote add fleet s3://BUCKET/fleet; strata clone fleet/a vm (${f.clone.remoteBlocks} blocks left remote, none fetched); strata serve vm --socket SOCK --log-level info; figure = fetchedBytes of the "stopped" line serve logs at exit. ` +
        `${f.gets} GETs; ${f.fetchedBlocks} blocks fetched (${((f.fetchedBlocks * BLOCK) / MiB).toFixed(1)} MiB uncompressed, ${((f.fetchedBlocks * BLOCK) / readBytes).toFixed(2)}× the bytes read); the reads took ${(f.readMs / 1000).toFixed(2)} s in one qemu-io, one at a time. ` +
        (row.key === 'lazy'
          ? `Reads (debugfs -c -R stats / -f 'ex -l <INO>' of debian-a.ext4): superblock, ${row.plan.reads[1][1] / BLOCK} group-descriptor block(s), the journal superblock, ${row.plan.inodeTableBlocks} inode-table blocks (each once, before the first inode in it), and the data of the root and of inodes 11 on in inode order, each extent read 128 KiB at a time, until ${dataBytes / MiB} MiB of data (${(metaBytes / MiB).toFixed(2)} MiB of metadata on top)`
          : `reads at data blocks of debian-a (debugfs) picked by mulberry32(13), 1-16 blocks each, none read twice`),
  });
  }
}

export async function remoteWorkload(ctx) {
  const { report, log } = ctx;
  if (!which('radosgw') || !which('ceph-mon')) {
    log(`remote: ceph is not installed; install with: ${CEPH_APT}`);
    for (const [k, order] of [['push', 1], ['second', 2], ['lazy', 3]]) report.skip(GOALS[k], `no Ceph RGW (install: ${CEPH_APT})`, { section: SECTION, order });
    return;
  }
  const rgw = startRgw(log);
  const client = s3Client(rgw.endpoint);
  const bucket = `strata-bench-${randomBytes(4).toString('hex')}`;
  const work = tmpDir('remote');
  const store = tmpDir('remote-store');
  const env = { store, work, client, bucket, endpoint: rgw.endpoint, rgw };
  const failed = [];
  try {
    await ensureBucket(client, bucket);
    log(`remote: bucket ${bucket} at ${rgw.endpoint}; strata import debian-a.ext4 a into a fresh store`);
    strata(store, 'init');
    strata(store, 'import', ctx.inputs.sparseA, 'a');
    // Each goal on its own: one failing does not lose the others' rows (the lazy read needs the second's push of a).
    for (const [label, fn] of [
      ['push', pushGoal],
      ['second image', secondGoal],
      ['lazy read', lazyGoal],
    ]) {
      try {
        await fn(ctx, env);
      } catch (e) {
        log(`remote ${label} failed: ${e.stack ?? e}`);
        failed.push(`${label}: ${String(e.message ?? e).split('\n')[0]}`);
      }
    }
  } finally {
    try {
      await deletePrefix(client, bucket, '');
      await client.send(new DeleteBucketCommand({ Bucket: bucket }));
      rgw.gc();
    } catch (e) {
      log(`remote: could not empty bucket ${bucket}: ${e.message}`);
    }
    client.destroy();
    rmDir(store);
    rmDir(work);
    rgw.stop();
  }
  if (failed.length) throw new Error(failed.join('; '));
}
