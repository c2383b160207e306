/**
 * 5. Space: the store after importing both ext4 images vs the two qcow2 files
 *    (plain and -c), and vs the ideal for 4 KiB dedup: distinct non-zero
 *    4 KiB blocks of the two raw files × 4096, hashed here.
 */
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { run } from '../lib/timing.mjs';
import { single } from '../lib/report.mjs';
import { MiB, allocatedBytes, rmDir, tmpDir } from '../lib/inputs.mjs';
import { strataArgs } from '../lib/tools.mjs';

const node = process.execPath;

/** Distinct non-zero 4 KiB blocks across files (SHA-256 per block). */
export function idealDedupBytes(files) {
  const seen = new Set();
  const buf = Buffer.allocUnsafe(16 * MiB);
  const zero = Buffer.alloc(4096);
  for (const f of files) {
    const fd = fs.openSync(f, 'r');
    try {
      for (let pos = 0; ; ) {
        const n = fs.readSync(fd, buf, 0, buf.length, pos);
        if (n <= 0) break;
        for (let o = 0; o < n; o += 4096) {
          const blk = buf.subarray(o, Math.min(o + 4096, n));
          if (blk.length === 4096 ? blk.equals(zero) : blk.every((x) => x === 0)) continue;
          seen.add(crypto.createHash('sha256').update(blk).digest('base64'));
        }
        pos += n;
      }
    } finally {
      fs.closeSync(fd);
    }
  }
  return seen.size * 4096;
}

export async function spaceWorkload(ctx) {
  const { report, inputs, log } = ctx;
  const files = [inputs.sparseA, inputs.sparseB];
  const store = tmpDir('store');
  const work = tmpDir('space');
  try {
    log('space: importing both ext4 images, converting both to qcow2 (plain and -c), hashing 4 KiB blocks');
    run(node, strataArgs(store, 'import', files[0], 'a'));
    run(node, strataArgs(store, 'import', files[1], 'b'));
    const stored = allocatedBytes(store);
    const meta = fs
      .readdirSync(store)
      .filter((f) => f.startsWith('strata.db'))
      .reduce((n, f) => n + allocatedBytes(path.join(store, f)), 0);
    let q = 0;
    let qc = 0;
    files.forEach((f, i) => {
      const o = path.join(work, `${i}.qcow2`);
      const oc = path.join(work, `${i}c.qcow2`);
      run('qemu-img', ['convert', '-O', 'qcow2', f, o]);
      run('qemu-img', ['convert', '-c', '-O', 'qcow2', f, oc]);
      q += allocatedBytes(o);
      qc += allocatedBytes(oc);
    });
    const ideal = idealDedupBytes(files);
    // The target compares data with data; metadata has its own row below.
    const data = allocatedBytes(path.join(store, 'data'));
    const B = (v) => single(v, 'bytes');
    report.add({ workload: 'space: data of both ext4 images in one store vs ideal 4 KiB dedup', strata: B(data), peer: B(ideal), target: '≤ 1.01×', met: data / ideal <= 1.01, note: 'data = the data files, allocated bytes (du); ideal = distinct non-zero 4 KiB blocks × 4096' });
    report.add({ workload: 'space: store metadata (strata.db*) vs ideal', strata: B(meta), peer: B(ideal), target: '≤ 0.03×', met: meta / ideal <= 0.03 });
    report.add({ workload: 'space: whole store (data + metadata) vs the two qcow2 files', strata: B(stored), peer: B(q), target: '≤ 0.55×', met: stored / q <= 0.55 });
    report.add({ workload: 'space: store vs the two qcow2 -c files', strata: B(stored), peer: B(qc), target: '(reference)' });
  } finally {
    rmDir(store);
    rmDir(work);
  }
}
