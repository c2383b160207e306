/**
 * 3. Reading a whole image through chains of depth 1, 20 and 100 vs qcow2
 *    backing chains of the same depth and content. strata: `strata read IMG
 *    > /dev/null`; qemu: `qemu-img convert` into a null-co target (reads every
 *    block through the chain, writes nothing). Each layer holds one 4 KiB
 *    write of the same bytes at the same offset on both sides.
 */
import crypto from 'node:crypto';
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { compare, run } from '../lib/timing.mjs';
import { fig } from '../lib/report.mjs';
import { GiB, MiB, rmDir, slice, tmpDir, warmFile } from '../lib/inputs.mjs';
import { ROOT, strataArgs } from '../lib/tools.mjs';
import { layerOffset } from '../lib/chain-layout.mjs';

const node = process.execPath;
const DEPTHS = [1, 20, 100];

function sha256Of(cmd, args) {
  const r = spawnSync(cmd, args, { maxBuffer: 2 * GiB, stdio: ['ignore', 'pipe', 'pipe'] });
  if (r.status !== 0) throw new Error(`${cmd} failed: ${r.stderr}`);
  return crypto.createHash('sha256').update(r.stdout).digest('hex');
}

export async function chainWorkload(ctx) {
  const { report, quick, inputs, log } = ctx;
  const size = quick ? 256 * MiB : GiB;
  const baseFile = quick ? slice(inputs.dense, size, 'dense-256m.raw') : inputs.dense;
  const runs = ctx.runs('cheap');
  const maxDepth = Math.max(...DEPTHS);
  const store = tmpDir('store');
  const work = tmpDir('chain');
  try {
    log(`chain: building depth-${maxDepth} chains over a ${size / MiB} MiB dense image`);
    run(node, [path.join(ROOT, 'bench', 'lib', 'build-chain.mjs'), store, baseFile, String(maxDepth)]);
    const q = (i) => path.join(work, `q${i}.qcow2`);
    run('qemu-img', ['convert', '-O', 'qcow2', baseFile, q(0)]);
    for (let i = 1; i < maxDepth; i++) {
      run('qemu-img', ['create', '-q', '-f', 'qcow2', '-b', path.basename(q(i - 1)), '-F', 'qcow2', q(i)], { cwd: work });
      run('qemu-io', ['-f', 'qcow2', '-c', `write -q -P ${i} ${layerOffset(i, size)} 4k`, q(i)]);
    }
    // Same bytes on both sides at the deepest point, or the comparison means nothing.
    const top = `l${maxDepth - 1}`;
    const rawTop = path.join(work, 'top.raw');
    run('qemu-img', ['convert', '-O', 'raw', q(maxDepth - 1), rawTop]);
    const hs = sha256Of(node, strataArgs(store, 'read', top));
    const hq = crypto.createHash('sha256').update(fs.readFileSync(rawTop)).digest('hex');
    fs.rmSync(rawTop);
    if (hs !== hq) throw new Error(`chain content differs between strata (${hs}) and qcow2 (${hq})`);
    warmFile(baseFile);

    const tput = (st) => ({ ...st, median: (size / st.median) * 1e3 / 1e6, min: (size / st.max) * 1e3 / 1e6, max: (size / st.min) * 1e3 / 1e6 });
    const results = {};
    for (const d of DEPTHS) {
      const img = d === 1 ? 'base' : `l${d - 1}`;
      log(`read through depth ${d}: ${runs} runs + warm-up per side`);
      const r = await compare({
        runs,
        log,
        a: { run: () => run(node, strataArgs(store, 'read', img), { stdout: 'null' }) },
        b: { run: () => run('qemu-img', ['convert', '-n', '-f', 'qcow2', '--target-image-opts', q(d - 1), `driver=null-co,size=${size}`]) },
      });
      results[d] = { a: tput(r.a), b: tput(r.b) };
    }
    for (const d of DEPTHS) {
      const rel = results[d].a.median / results[1].a.median;
      report.add({
        workload: `read ${size / MiB} MiB through chain depth ${d} vs qcow2 backing chain (throughput)`,
        strata: fig(results[d].a, 'MB/s'),
        peer: fig(results[d].b, 'MB/s'),
        target: d === maxDepth ? `≥ 0.9× strata depth 1 (is ${rel.toFixed(2)}×)` : d === 1 ? '(reference)' : `(${rel.toFixed(2)}× strata depth 1)`,
        met: d === maxDepth ? rel >= 0.9 : null,
        note: d === 1 ? `${quick ? 'quick mode reads the first 256 MiB of dense.raw, full mode the whole 1 GiB; ' : ''}both sides are whole processes, so strata's figure includes its start-up (see the start-up rows)` : '',
      });
    }
  } finally {
    rmDir(store);
    rmDir(work);
  }
}
