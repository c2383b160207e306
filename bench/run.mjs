#!/usr/bin/env node
/**
 * strata benchmark harness.
 *
 *   npm run bench                      quick mode (about 3-4 minutes)
 *   npm run bench -- --full            full mode: all inputs at full size, more runs
 *   npm run bench -- --only clone,chain
 *   npm run bench -- --runs 7          runs per side for every workload
 *
 * Workloads: import (incl. export), clone, chain, nbd, space, startup, memory.
 * Prints a markdown table on stdout (progress on stderr) and writes
 * bench/results/<time>-<mode>.json, latest-<mode>.json and latest-<mode>.md.
 * Installs nothing: missing tools are named with the apt-get line to add them.
 */
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
import { memoryWorkload } from './workloads/memory.mjs';

const WORKLOADS = {
  import: importWorkload,
  clone: cloneWorkload,
  chain: chainWorkload,
  nbd: nbdWorkload,
  space: spaceWorkload,
  startup: startupWorkload,
  memory: memoryWorkload,
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

const args = parseArgs(process.argv.slice(2));
const log = (m) => console.error(m);
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
  /** Runs per side: `cheap` workloads 5 (quick) / 10 (full); 1 GiB imports 3 / 5. */
  runs(kind) {
    if (args.runs) return args.runs;
    if (kind === 'heavy') return quick ? 3 : 5;
    return quick ? 5 : 10;
  },
};

const t0 = Date.now();
let failed = 0;
process.on('SIGINT', () => {
  cleanupAll();
  process.exit(130);
});
try {
  ctx.inputs = await ensureInputs(log);
  for (const name of args.names) {
    log(`\n== ${name}`);
    try {
      await WORKLOADS[name](ctx);
    } catch (e) {
      failed++;
      log(`workload ${name} failed: ${e.stack ?? e}`);
      report.add({ workload: `${name}: failed`, strata: null, peer: null, skipped: `error: ${String(e.message ?? e).split('\n')[0].slice(0, 160)}` });
    }
  }
} finally {
  cleanupAll();
}
const secs = ((Date.now() - t0) / 1000).toFixed(0);
const file = report.write(path.join(ROOT, 'bench', 'results'));
process.stdout.write('\n' + report.markdown() + `\n(${mode} mode, ${secs} s; JSON: ${path.relative(ROOT, file)})\n`);
process.exitCode = failed ? 1 : 0;
