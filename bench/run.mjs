#!/usr/bin/env node
/**
 * strata benchmark harness.
 *
 *   npm run bench                      quick mode (3-5 minutes on 2 cores, more when shared)
 *   npm run bench -- --full            full mode (12-15 minutes): 4 GiB linearity, 1000 clones, longer fio runs, more runs
 *   npm run bench -- --only nbd,startup
 *   npm run bench -- --runs 7          runs per side for every workload
 *
 * Workloads: import (import, linearity, import RSS, export), nbd (fio and
 * serve RSS), startup, chain, clone, space, container (OCI import beside
 * umoci unpack + mke2fs -d, and two images sharing a base vs ideal dedup),
 * ui (the web page of a 10,000-image store in Chromium), compress (compressed
 * blocks: space vs per-block zstd and qemu-img convert -c, compressed import vs
 * qemu-img convert -c, fio random read of a compressed image vs uncompressed;
 * a goals table of its own), remote (issue #13 on a loopback Ceph RGW of its
 * own, test/setup/rgw.sh on STRATA_RGW_DIR/PORT/MON_PORT, default
 * /tmp/strata-rgw-bench, 7530, 6830: push vs an SDK upload of the qemu-img
 * convert -c file, a second image's upload vs its new blocks compressed, and
 * the bytes a lazy clone fetches for a boot-style read; a goals table of its
 * own), limits (fio through strata serve --iops-limit / --bandwidth-limit: the
 * rate beside what the limit should give, and beside the same job unlimited), bitmap (NBD dirty
 * bitmap block status on a 1 TiB leaf with 1% changed), send (an incremental send stream's size
 * after a package install vs zstd of the changed blocks and vs qcow2, and send | receive of a
 * 1 GiB ext4 image vs qemu-img convert + sync); bitmap and send share issue #26's goals table;
 * verify (fio 4 KiB random read and 1 MiB sequential read through strata serve with every block
 * read verified against its hash, beside STRATA_VERIFY_READS=0, a knob for this bench only: the
 * cost of verification, goal at most 5%). Every goal of issue #16 is one row
 * of one goals table, strata beside its peer measured in the same run, with
 * the peer's exact command; the other workloads go to a second table.
 * Prints markdown on stdout (progress on stderr) and writes
 * bench/results/<time>-<mode>.json, latest-<mode>.json and latest-<mode>.md.
 * Installs nothing: missing tools are named with the apt-get line to add them.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Report } from './lib/report.mjs';
import { cleanupAll, ensureInputs } from './lib/inputs.mjs';
import { ROOT, checkBuilt, checkTools } from './lib/tools.mjs';
import { importWorkload } from './workloads/import.mjs';
import { cloneWorkload } from './workloads/clone.mjs';
import { chainWorkload } from './workloads/chain.mjs';
import { nbdWorkload } from './workloads/nbd.mjs';
import { spaceWorkload } from './workloads/space.mjs';
import { startupWorkload } from './workloads/startup.mjs';
import { containerWorkload } from './workloads/container.mjs';
import { uiWorkload } from './workloads/ui.mjs';
import { compressWorkload } from './workloads/compress.mjs';
import { remoteWorkload } from './workloads/remote.mjs';
import { limitsWorkload } from './workloads/limits.mjs';
import { bitmapWorkload } from './workloads/bitmap.mjs';
import { sendWorkload } from './workloads/send.mjs';
import { verifyWorkload } from './workloads/verify.mjs';

const WORKLOADS = {
  import: importWorkload,
  nbd: nbdWorkload,
  startup: startupWorkload,
  chain: chainWorkload,
  clone: cloneWorkload,
  space: spaceWorkload,
  container: containerWorkload,
  ui: uiWorkload,
  compress: compressWorkload,
  remote: remoteWorkload,
  limits: limitsWorkload,
  bitmap: bitmapWorkload,
  send: sendWorkload,
  verify: verifyWorkload,
};

function parseArgs(argv) {
  const o = { full: false, only: null, runs: null };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (a === '--full') o.full = true;
    else if (a === '--quick') o.full = false;
    else if (a === '--only') o.only = argv[++i];
    else if (a.startsWith('--only=')) o.only = a.slice(7);
    else if (a === '--runs') o.runs = Number(argv[++i]);
    else if (a.startsWith('--runs=')) o.runs = Number(a.slice(7));
    else if (a === '-h' || a === '--help') {
      console.log(`usage: node bench/run.mjs [--full] [--only ${Object.keys(WORKLOADS).join(',')}] [--runs N]`);
      process.exit(0);
    } else {
      console.error(`unknown argument ${a}`);
      process.exit(2);
    }
  }
  if (o.runs !== null && !(Number.isInteger(o.runs) && o.runs >= 1)) {
    console.error('--runs needs a positive integer');
    process.exit(2);
  }
  const names = o.only ? o.only.split(',').map((s) => s.trim()).filter(Boolean) : Object.keys(WORKLOADS);
  for (const n of names) {
    if (!WORKLOADS[n]) {
      console.error(`unknown workload ${n}: one of ${Object.keys(WORKLOADS).join(', ')}`);
      process.exit(2);
    }
  }
  return { ...o, names };
}

/** One line on the ext4 inputs, from bench/cache/images.json when make-images wrote it. */
function describeInputs(report) {
  try {
    const m = JSON.parse(fs.readFileSync(path.join(ROOT, 'bench', 'cache', 'images.json'), 'utf8'));
    const a = m.images['debian-a.ext4'];
    report.say(`inputs: debian-a.ext4 = 1 GiB ext4 from mke2fs -d of a ${m.source.kind === 'usr' ? '/usr' : m.source.kind} tree, ${(a.treeBytes / 2 ** 20).toFixed(0)} MiB of files, ${(a.allocatedBytes / 2 ** 20).toFixed(0)} MiB allocated; random-*.raw = seeded AES-CTR keystream`);
  } catch {
    // make-images' manifest is optional
  }
}

const args = parseArgs(process.argv.slice(2));
const tStart = Date.now();
const log = (m) => console.error(`[${((Date.now() - tStart) / 1000).toFixed(0).padStart(4)} s] ${m}`);
const tools = checkTools(log);
if (!tools.ok || !checkBuilt(log)) process.exit(1);

const quick = !args.full;
const mode = quick ? 'quick' : 'full';
const report = new Report({ mode });
const ctx = {
  quick,
  report,
  log,
  have: tools.have,
  shared: {},
  explicitRuns: args.runs,
  /** Runs per side: `heavy` (imports, fio) 3 (quick) / 5 (full); `cheap` (exports, chain reads, clones) 5 / 7. */
  runs(kind) {
    if (args.runs) return args.runs;
    if (kind === 'heavy') return quick ? 3 : 5;
    return quick ? 5 : 7;
  },
};

const t0 = Date.now();
let failed = 0;
// 1-minute load average before each workload and at the end: the bench itself adds about 1.
const loads = [os.loadavg()[0]];
process.on('SIGINT', () => {
  cleanupAll();
  process.exit(130);
});
try {
  // The container, ui, bitmap and verify workloads build their own inputs: the disk images are built only for the others.
  if (args.names.some((n) => !['container', 'ui', 'bitmap', 'verify'].includes(n))) {
    ctx.inputs = await ensureInputs(log);
    describeInputs(report);
  }
  for (const name of args.names) {
    loads.push(os.loadavg()[0]);
    log(`\n== ${name}`);
    try {
      await WORKLOADS[name](ctx);
    } catch (e) {
      failed++;
      log(`workload ${name} failed: ${e.stack ?? e}`);
      report.add({ section: 'other', goal: `${name}: failed`, strata: null, peer: null, skipped: `error: ${String(e.message ?? e).split('\n')[0].slice(0, 160)}` });
    }
  }
} finally {
  cleanupAll();
}
loads.push(os.loadavg()[0]);
{
  const [lo, hi] = [Math.min(...loads), Math.max(...loads)];
  report.say(
    `1-minute load average before each workload: ${loads.map((l) => l.toFixed(1)).join(', ')} on ${os.cpus().length} cores` +
      (hi > 2.5 ? ' (the bench alone makes about 1: the machine was shared with other work during this run)' : lo > 1 ? ' (some other load)' : ''),
  );
}
const secs = ((Date.now() - t0) / 1000).toFixed(0);
const file = report.write(path.join(ROOT, 'bench', 'results'));
process.stdout.write('\n' + report.markdown() + `\n(${mode} mode, ${secs} s; JSON: ${path.relative(ROOT, file)})\n`);
process.exitCode = failed ? 1 : 0;
