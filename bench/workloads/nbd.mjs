/**
 * 4. fio over NBD (ioengine=nbd, iodepth 16): 4 KiB random read, 4 KiB random
 *    write, 1 MiB sequential read; strata serve vs qemu-nbd serving the same
 *    content as qcow2. Without `strata serve` only qemu-nbd's side runs (so
 *    the harness is proven) and strata's cells say skipped.
 * 7b. peak RSS of `strata serve` during the fio runs (VmHWM).
 */
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { run, stats, vmHwm } from '../lib/timing.mjs';
import { fig, single } from '../lib/report.mjs';
import { GiB, MiB, rmDir, slice, tmpDir, warmFile } from '../lib/inputs.mjs';
import { hasServe, strataArgs, STRATA_MAIN } from '../lib/tools.mjs';

const node = process.execPath;
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

const JOBS = [
  { key: 'randread', label: '4 KiB random read', rw: 'randread', bs: '4k', metric: 'iops', unit: 'IOPS' },
  { key: 'randwrite', label: '4 KiB random write', rw: 'randwrite', bs: '4k', metric: 'iops', unit: 'IOPS' },
  { key: 'seqread', label: '1 MiB sequential read', rw: 'read', bs: '1M', metric: 'bw', unit: 'MB/s' },
];

async function startServer(cmd, args, sock, timeoutMs = 20000) {
  fs.rmSync(sock, { force: true });
  const child = spawn(cmd, args, { stdio: ['ignore', 'ignore', 'pipe'] });
  let err = '';
  child.stderr.on('data', (d) => (err += d));
  let exited = null;
  child.on('exit', (c) => (exited = c));
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
    async stop() {
      if (exited !== null) return;
      child.kill('SIGTERM');
      const t = Date.now();
      while (exited === null && Date.now() - t < 5000) await sleep(20);
      if (exited === null) child.kill('SIGKILL');
    },
  };
}

function fio(job, sock, size, runtime) {
  const r = run('fio', [
    `--name=${job.key}`,
    '--ioengine=nbd',
    `--uri=nbd+unix:///?socket=${sock}`,
    `--rw=${job.rw}`,
    `--bs=${job.bs}`,
    '--iodepth=16',
    `--size=${size}`,
    `--runtime=${runtime}`,
    '--time_based',
    '--randrepeat=1',
    '--output-format=json',
  ]);
  const j = JSON.parse(r.stdout.slice(r.stdout.indexOf('{')));
  const side = job.rw.includes('write') ? j.jobs[0].write : j.jobs[0].read;
  return job.metric === 'iops' ? side.iops : side.bw_bytes / 1e6;
}

export async function nbdWorkload(ctx) {
  const { report, quick, inputs, log, have } = ctx;
  if (!have.fioNbd) {
    for (const j of JOBS) report.skip(`fio ${j.label} over NBD`, 'fio has no nbd ioengine');
    return;
  }
  const size = quick ? 256 * MiB : GiB;
  const file = quick ? slice(inputs.dense, size, 'dense-256m.raw') : inputs.dense;
  const runtime = quick ? 2 : 5;
  const runs = ctx.runs('cheap');
  const serve = hasServe();
  const work = tmpDir('nbd');
  const store = tmpDir('store');
  const qsock = path.join(work, 'qemu.sock');
  const ssock = path.join(work, 'strata.sock');
  let qemu;
  let strata;
  try {
    warmFile(file);
    const qcow = path.join(work, 'img.qcow2');
    run('qemu-img', ['convert', '-O', 'qcow2', file, qcow]);
    qemu = await startServer('qemu-nbd', ['-f', 'qcow2', '-k', qsock, '-t', qcow], qsock);
    if (serve) {
      run(node, strataArgs(store, 'import', file, 'base'));
      run(node, strataArgs(store, 'clone', 'base', 'vm'));
      strata = await startServer(node, [STRATA_MAIN, '--store', store, 'serve', 'vm', '--socket', ssock], ssock);
    }
    let serveRss = 0;
    for (const job of JOBS) {
      log(`fio ${job.label}: ${runs} runs of ${runtime} s + warm-up per side${serve ? '' : ' (qemu-nbd only: strata serve not available)'}`);
      const a = [];
      const b = [];
      for (let i = -1; i < runs; i++) {
        if (strata) {
          const v = fio(job, ssock, size, runtime);
          serveRss = Math.max(serveRss, vmHwm(strata.pid));
          if (i >= 0) a.push(v);
        }
        const v = fio(job, qsock, size, runtime);
        if (i >= 0) b.push(v);
      }
      const sa = strata ? stats(a) : null;
      const sb = stats(b);
      const row = {
        workload: `fio ${job.label} over NBD, iodepth 16, vs qemu-nbd (qcow2)`,
        peer: fig(sb, job.unit),
        target: '≥ 1.0×',
      };
      if (strata) report.add({ ...row, strata: fig(sa, job.unit), met: sa.median / sb.median >= 1.0 });
      else report.skip(row.workload, 'not available', row);
    }
    if (strata) {
      report.add({ workload: 'peak RSS of strata serve during the fio runs', strata: single(serveRss, 'bytes'), peer: single(vmHwm(qemu.pid), 'bytes'), target: '≤ 200 MB', met: serveRss <= 200e6, note: 'peer: qemu-nbd' });
    } else {
      report.skip('peak RSS of strata serve during the fio runs', 'not available', { peer: single(vmHwm(qemu.pid), 'bytes'), target: '≤ 200 MB' });
    }
  } finally {
    await strata?.stop();
    await qemu?.stop();
    rmDir(work);
    rmDir(store);
  }
}
