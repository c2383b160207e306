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
    log('space: importing both ext4 images; qcow2 of both (flat, -c, and b as a delta over a with -B); hashing 4 KiB blocks');
    run(node, strataArgs(store, 'import', files[0], 'a'));
    run(node, strataArgs(store, 'import', files[1], 'b'));
    const stored = allocatedBytes(store);
    const meta = fs
      .readdirSync(store)
      .filter((f) => f.startsWith('strata.db'))
      .reduce((n, f) => n + allocatedBytes(path.join(store, f)), 0);
    const out = (n) => path.join(work, n);
    let q = 0;
    let qc = 0;
    files.forEach((f, i) => {
      run('qemu-img', ['convert', '-O', 'qcow2', f, out(`${i}.qcow2`)]);
      run('qemu-img', ['convert', '-c', '-O', 'qcow2', f, out(`${i}c.qcow2`)]);
      q += allocatedBytes(out(`${i}.qcow2`));
      qc += allocatedBytes(out(`${i}c.qcow2`));
    });
    // The qemu way to keep b as what differs from a: convert with a backing file.
    run('qemu-img', ['convert', '-O', 'qcow2', '-B', '0.qcow2', '-F', 'qcow2', files[1], out('1-over-0.qcow2')], { cwd: work });
    const qb = allocatedBytes(out('0.qcow2')) + allocatedBytes(out('1-over-0.qcow2'));
    const ideal = idealDedupBytes(files);
    // The target compares data with data; metadata has its own row below.
    const data = allocatedBytes(path.join(store, 'data'));
    const B = (v) => single(v, 'bytes');
    const base = { section: 'other' };
    report.add({
      ...base,
      goal: 'space: data of both ext4 images in one store vs ideal 4 KiB dedup',
      strata: B(data),
      peerCmd: 'distinct non-zero 4 KiB blocks of a and b × 4096 (computed)',
      peer: B(ideal),
      target: '≤ 1.01×',
      met: data / ideal <= 1.01,
      note: 'sizes are allocated bytes (du); a = debian-a.ext4, b = debian-b.ext4 (b = a\'s /usr tree plus more, written by a separate mke2fs -d)',
    });
    report.add({ ...base, goal: 'space: store metadata (strata.db*) vs ideal data', strata: B(meta), peerCmd: '(as above)', peer: B(ideal), target: '≤ 0.03×', met: meta / ideal <= 0.03 });
    report.add({
      ...base,
      goal: 'space: whole store (data + metadata) vs two flat qcow2 files',
      strata: B(stored),
      peerCmd: 'qemu-img convert -O qcow2 a.ext4 a.qcow2; the same for b',
      peer: B(q),
      target: '≤ 0.55×',
      met: stored / q <= 0.55,
    });
    report.add({
      ...base,
      goal: 'space: whole store vs b kept as a qcow2 delta over a',
      strata: B(stored),
      peerCmd: 'qemu-img convert -O qcow2 a.ext4 a.qcow2; qemu-img convert -O qcow2 -B a.qcow2 -F qcow2 b.ext4 b.qcow2',
      peer: B(qb),
      target: '(reference)',
      note: 'qcow2 can share only clusters at the same offset; mke2fs -d places the shared files at different offsets in b',
    });
    report.add({
      ...base,
      goal: 'space: whole store vs two compressed qcow2 files',
      strata: B(stored),
      peerCmd: 'qemu-img convert -c -O qcow2 a.ext4 a.qcow2; the same for b',
      peer: B(qc),
      target: '(reference: strata does not compress)',
    });
  } finally {
    rmDir(store);
    rmDir(work);
  }
}
