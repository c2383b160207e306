/**
 * fio over NBD (issue #16, goals 4 and 5): 4 KiB random read, 4 KiB random
 * write, 1 MiB sequential read, iodepth 16, fio's nbd ioengine (libnbd), on
 * two images; peak RSS of both servers during those runs.
 *
 * Like with like:
 *  - Cache mode. strata acknowledges a write before it is synced and syncs on
 *    FLUSH and FUA; that is qemu's writeback mode, so the peer is
 *    `qemu-nbd --cache=writeback` (qemu-nbd's default, writethrough, syncs
 *    every write). The random-write job ends with a FLUSH on both sides
 *    (fio --end_fsync=1, which the nbd engine sends as NBD_CMD_FLUSH), so each
 *    run's figure includes making its writes durable.
 *  - Layers. The sparse case is a clone of a real ext4 image (mke2fs -d of a
 *    /usr tree): strata serves a leaf cloned from the imported base; qemu-nbd
 *    serves a qcow2 overlay (`qemu-img create -f qcow2 -b base.qcow2 -F qcow2`)
 *    over the qcow2 of the same file. The dense case (seeded random data) is a
 *    flat writable image on both sides: `strata import --writable` and a flat
 *    qcow2 from `qemu-img convert -O qcow2`.
 *  - Same data, same size. Before any fio run `qemu-img compare` reads both
 *    exports through NBD and must find them identical, and both report the
 *    same virtual size.
 *  - Same I/O. Each run moves a fixed amount (--io_size) with the same
 *    --randseed on both sides (seed = run index), so both sides see the same
 *    offsets in the same order and their images stay alike across runs; the
 *    sides alternate which goes first. --runtime caps a run that is too slow.
 *  - RSS: VmHWM (the kernel's peak RSS) of each server after its last run.
 */
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { run, stats, tick, vmHwm } from '../lib/timing.mjs';
import { fig, single } from '../lib/report.mjs';
import { GiB, MiB, onCleanup, randomFile, rmDir, rmDirLater, syncTree, tmpDir, warmFile } from '../lib/inputs.mjs';
import { hasServe, strataArgs, STRATA_MAIN } from '../lib/tools.mjs';

const node = process.execPath;
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

const JOBS = [
  { key: 'randread', label: '4 KiB random read', rw: 'randread', bs: '4k', metric: 'iops', unit: 'IOPS' },
  { key: 'randwrite', label: '4 KiB random write', rw: 'randwrite', bs: '4k', metric: 'iops', unit: 'IOPS', extra: ['--end_fsync=1'] },
  { key: 'seqread', label: '1 MiB sequential read', rw: 'read', bs: '1M', metric: 'bw', unit: 'MB/s' },
];

export const QEMU_NBD_FLAGS = ['--cache=writeback', '-f', 'qcow2', '-t', '-x', 'vm'];

export async function startServer(cmd, args, sock, timeoutMs = 30000, env = process.env) {
  fs.rmSync(sock, { force: true });
  const child = spawn(cmd, args, { stdio: ['ignore', 'ignore', 'pipe'], env });
  let err = '';
  child.stderr.on('data', (d) => (err += d));
  let exited = null;
  child.on('exit', (c) => (exited = c));
  const forget = onCleanup(() => exited === null && child.kill('SIGKILL'));
  const t0 = Date.now();
  while (!fs.existsSync(sock)) {
    if (exited !== null) throw new Error(`${cmd} exited (${exited}) before listening: ${err.slice(0, 500)}`);
    if (Date.now() - t0 > timeoutMs) {
      child.kill('SIGTERM');
      throw new Error(`${cmd} did not create ${sock} within ${timeoutMs} ms`);
    }
    await sleep(20);
  }
  return {
    pid: child.pid,
    alive: () => exited === null,
    /** What the server wrote on stderr so far (its log lines with --log-level). */
    stderr: () => err,
    async stop() {
      forget();
      if (exited !== null) return;
      child.kill('SIGTERM');
      const t = Date.now();
      while (exited === null && Date.now() - t < 10000) await sleep(20);
      if (exited === null) child.kill('SIGKILL');
    },
  };
}

export const uri = (sock) => `nbd+unix:///vm?socket=${sock}`;

export function fioArgs(job, sock, size, ioSize, seed, capS) {
  return [
    `--name=${job.key}`,
    '--ioengine=nbd',
    `--uri=${uri(sock)}`,
    `--rw=${job.rw}`,
    `--bs=${job.bs}`,
    '--iodepth=16',
    `--size=${size}`,
    `--io_size=${ioSize}`,
    `--randseed=${seed}`,
    `--runtime=${capS}`,
    ...(job.extra ?? []),
    '--output-format=json',
  ];
}

export function fio(args) {
  const r = run('fio', args);
  const j = JSON.parse(r.stdout.slice(r.stdout.indexOf('{')));
  return j.jobs[0];
}

export function virtualSize(sock) {
  const r = run('qemu-img', ['info', '--output=json', '-f', 'raw', uri(sock)]);
  return JSON.parse(r.stdout)['virtual-size'];
}

async function runCase(ctx, c) {
  const { report, quick, log } = ctx;
  const runs = ctx.runs('heavy');
  const work = tmpDir('nbd');
  const store = tmpDir('store');
  const qsock = path.join(work, 'qemu.sock');
  const ssock = path.join(work, 'strata.sock');
  let qemu;
  let strata;
  try {
    log(`nbd ${c.label}: preparing both images`);
    warmFile(c.file);
    const base = path.join(work, 'base.qcow2');
    run('qemu-img', ['convert', '-O', 'qcow2', c.file, base]);
    let served = base;
    let qemuPrep;
    if (c.kind === 'clone') {
      served = path.join(work, 'overlay.qcow2');
      run('qemu-img', ['create', '-q', '-f', 'qcow2', '-b', 'base.qcow2', '-F', 'qcow2', served], { cwd: work });
      run(node, strataArgs(store, 'import', c.file, 'base'));
      run(node, strataArgs(store, 'clone', 'base', 'vm'));
      qemuPrep = `qemu-img convert -O qcow2 ${c.name} base.qcow2; qemu-img create -f qcow2 -b base.qcow2 -F qcow2 overlay.qcow2`;
    } else {
      run(node, strataArgs(store, 'import', c.file, 'vm', '--writable'));
      qemuPrep = `qemu-img convert -O qcow2 ${c.name} base.qcow2`;
    }
    syncTree(work);
    syncTree(store);
    const qemuCmd = ['qemu-nbd', ...QEMU_NBD_FLAGS, '-k', qsock, served];
    qemu = await startServer(qemuCmd[0], qemuCmd.slice(1), qsock);
    strata = await startServer(node, [STRATA_MAIN, '--store', store, 'serve', 'vm', '--socket', ssock], ssock);

    log(`nbd ${c.label}: servers up; comparing what they export`);
    // Same bytes, same size, before any write.
    const [vs, vq] = [virtualSize(ssock), virtualSize(qsock)];
    if (vs !== vq || vs !== c.size) throw new Error(`virtual sizes differ: strata ${vs}, qemu-nbd ${vq}, input ${c.size}`);
    const cmp = run('qemu-img', ['compare', '-f', 'raw', '-F', 'raw', uri(ssock), uri(qsock)], { allowFail: true });
    if (cmp.status !== 0) throw new Error(`strata and qemu-nbd serve different bytes: ${cmp.stdout}${cmp.stderr}`.slice(0, 400));
    log(`nbd ${c.label}: both servers export ${c.size / MiB} MiB, qemu-img compare: identical`);

    // A run should last a second or more at the rates seen here (30-90k IOPS,
    // 1-2.5 GB/s): shorter ones were mostly fio's and the connection's start-up.
    const ioSmall = quick ? 192 * MiB : 384 * MiB;
    const capS = quick ? 30 : 60;
    const ioSeq = quick ? 2 * c.size : 4 * c.size;
    for (const job of JOBS) {
      const ioSize = job.bs === '4k' ? ioSmall : ioSeq;
      log(`fio ${job.label} on ${c.label}: ${runs} runs of ${ioSize / MiB} MiB + warm-up per side`);
      const a = [];
      const b = [];
      let capped = false;
      for (let i = -1; i < runs; i++) {
        const seed = 1000 + i;
        const sides = [
          [ssock, a],
          [qsock, b],
        ];
        if (i % 2 !== 0) sides.reverse();
        for (const [sock, xs] of sides) {
          await tick();
          const j = fio(fioArgs(job, sock, c.size, ioSize, seed, capS));
          const d = job.rw.includes('write') ? j.write : j.read;
          if (d.io_bytes < ioSize) capped = true;
          if (i >= 0) xs.push(job.metric === 'iops' ? d.iops : d.bw_bytes / 1e6);
        }
      }
      if (!strata.alive() || !qemu.alive()) throw new Error('a server died during the fio runs');
      const sa = stats(a);
      const sb = stats(b);
      report.add({
        order: c.order + JOBS.indexOf(job),
        goal: `fio ${job.label}, iodepth 16, ${c.label}`,
        strata: fig(sa, job.unit),
        peerCmd: `${qemuCmd.slice(0, -3).join(' ')} -k SOCK ${path.basename(served)}`,
        peer: fig(sb, job.unit),
        target: '≥ 1.0×',
        met: sa.median / sb.median >= 1.0,
        note:
          (job === JOBS[0]
            ? `strata: ${c.strataPrep}; peer image: ${qemuPrep}. fio --ioengine=nbd --uri=nbd+unix:///vm?socket=SOCK --iodepth=16 --size=${c.size / MiB}M --io_size=${ioSmall / MiB}M (4 KiB jobs) or ${ioSeq / MiB}M (1 MiB) --randseed=RUN --runtime=${capS}; random write adds --end_fsync=1`
            : '') + (capped ? `${job === JOBS[0] ? '; ' : ''}some runs hit the ${capS} s cap before moving --io_size` : ''),
      });
    }
    const rs = vmHwm(strata.pid);
    const rq = vmHwm(qemu.pid);
    report.add({
      order: 58 + c.rssOrder,
      goal: `peak RSS of strata serve during the fio runs, ${c.label}`,
      strata: single(rs, 'bytes'),
      peerCmd: `${qemuCmd.slice(0, -3).join(' ')} -k SOCK ${path.basename(served)}`,
      peer: single(rq, 'bytes'),
      target: '≤ 96 MiB',
      met: rs <= 96 * MiB,
      note: c.rssOrder === 0 ? 'VmHWM from /proc/PID/status of each server after its last fio run (one server process per side per image, serving all the runs)' : '',
    });
  } finally {
    log(`nbd ${c.label}: stopping the servers`);
    await strata?.stop();
    await qemu?.stop();
    rmDirLater(work);
    rmDir(store);
  }
}

export async function nbdWorkload(ctx) {
  const { report, inputs, have } = ctx;
  // 512 MiB, as in issue #16, in both modes (full mode moves more I/O per run instead).
  const denseSize = 512 * MiB;
  const cases = [
    {
      key: 'sparse',
      kind: 'clone',
      label: 'clone of a 1 GiB ext4 image (mke2fs -d)',
      file: inputs.sparseA,
      name: 'debian-a.ext4',
      size: GiB,
      order: 50,
      rssOrder: 0,
      strataPrep: 'strata import debian-a.ext4 base; strata clone base vm; strata serve vm --socket SOCK',
    },
    {
      key: 'dense',
      kind: 'flat',
      label: `dense ${denseSize / MiB} MiB image (random data), flat`,
      file: randomFile(denseSize, denseSize === GiB ? 'random-1g.raw' : `random-${denseSize / MiB}m.raw`),
      name: denseSize === GiB ? 'random-1g.raw' : `random-${denseSize / MiB}m.raw`,
      size: denseSize,
      order: 54,
      rssOrder: 1,
      strataPrep: `strata import ${denseSize === GiB ? 'random-1g.raw' : `random-${denseSize / MiB}m.raw`} vm --writable; strata serve vm --socket SOCK`,
    },
  ];
  if (!have.fioNbd || !hasServe()) {
    const why = !have.fioNbd ? 'fio has no nbd ioengine' : 'strata serve not available';
    for (const c of cases) for (const j of JOBS) report.skip(`fio ${j.label}, iodepth 16, ${c.label}`, why, { order: c.order + JOBS.indexOf(j) });
    return;
  }
  for (const c of cases) await runCase(ctx, c);
}
