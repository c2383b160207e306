/**
 * qcow2 throughput: strata's reader and writer next to qemu-img convert on the
 * same file. Usage: npx tsx bench/qcow2.ts <image.qcow2> [workdir]
 */
import { execFileSync } from 'node:child_process';
import { rmSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { openQcow2, writeQcow2 } from '../src/formats/qcow2/index.js';

const src = process.argv[2];
const dir = process.argv[3] ?? '/tmp';
if (!src) throw new Error('usage: bench/qcow2.ts <image.qcow2> [workdir]');
const MiB = 1024 * 1024;
/** Best of `runs` (the machine may be shared: the best run is the least disturbed). */
const runs = Number(process.env.BENCH_RUNS ?? 3);
const time = (fn: () => void, n = runs): number => {
  let best = Infinity;
  for (let i = 0; i < n; i++) {
    const t0 = performance.now();
    fn();
    best = Math.min(best, (performance.now() - t0) / 1000);
  }
  return best;
};
const row = (what: string, secs: number, bytes: number) =>
  console.log(`${what.padEnd(44)} ${secs.toFixed(2).padStart(7)} s  ${(bytes / MiB / secs).toFixed(0).padStart(6)} MiB/s`);

const r0 = openQcow2(src);
const size = r0.size;
const allocated = r0.extents(0, size).filter((e) => e.kind === 'data').reduce((a, e) => a + e.length, 0);
r0.close();
console.log(`best of ${runs} runs (compressed writes: 1)`);
console.log(`${src}: virtual ${(size / MiB).toFixed(0)} MiB, allocated data ${(allocated / MiB).toFixed(0)} MiB (rates below are per virtual byte)`);

// Warm the page cache once so both sides read from memory.
execFileSync('cat', [src], { stdio: ['ignore', 'ignore', 'ignore'], maxBuffer: 1 });

let sum = 0;
row('strata read (4 MiB chunks, whole image)', time(() => {
  const r = openQcow2(src);
  for (let off = 0; off < size; off += 4 * MiB) sum ^= r.read(off, Math.min(4 * MiB, size - off))[0];
  r.close();
}), size);
row('strata read, data extents only', time(() => {
  const r = openQcow2(src);
  for (const e of r.extents(0, size)) {
    if (e.kind !== 'data') continue;
    for (let off = e.offset; off < e.offset + e.length; off += 4 * MiB) sum ^= r.read(off, Math.min(4 * MiB, e.offset + e.length - off))[0];
  }
  r.close();
}), size);
const rawOut = join(dir, 'bench-out.raw');
row('qemu-img convert -O raw', time(() => execFileSync('qemu-img', ['convert', '-O', 'raw', src, rawOut])), size);
rmSync(rawOut, { force: true });

for (const compress of [false, true]) {
  const out = join(dir, `bench-strata${compress ? '-c' : ''}.qcow2`);
  const secs = time(() => {
    const r = openQcow2(src);
    writeQcow2(out, r, { compress });
    r.close();
  }, compress ? 1 : runs);
  row(`strata qcow2 -> writeQcow2${compress ? ' (compress)' : ''}`, secs, size);
  console.log(`   output ${(statSync(out).size / MiB).toFixed(0)} MiB; qemu-img compare: ${execFileSync('qemu-img', ['compare', src, out], { encoding: 'utf8' }).trim()}`);
  const qout = join(dir, `bench-qemu${compress ? '-c' : ''}.qcow2`);
  const qs = time(() => execFileSync('qemu-img', ['convert', ...(compress ? ['-c'] : []), '-O', 'qcow2', src, qout]), compress ? 1 : runs);
  row(`qemu-img convert -O qcow2${compress ? ' -c' : ''}`, qs, size);
  // qemu-img convert leaves its output dirty in the page cache; writeQcow2 syncs. Same work, made durable:
  const qsSync = time(() => {
    execFileSync('qemu-img', ['convert', ...(compress ? ['-c'] : []), '-O', 'qcow2', src, qout]);
    execFileSync('sync', [qout]);
  }, compress ? 1 : runs);
  row(`qemu-img convert -O qcow2${compress ? ' -c' : ''} + sync of output`, qsSync, size);
  console.log(`   output ${(statSync(qout).size / MiB).toFixed(0)} MiB`);
  if (compress) {
    // Reading compressed clusters: strata's inflate next to qemu-img's.
    row('strata read of the qemu -c file', time(() => {
      const r = openQcow2(qout);
      for (let off = 0; off < size; off += 4 * MiB) sum ^= r.read(off, Math.min(4 * MiB, size - off))[0];
      r.close();
    }, 1), size);
    row('qemu-img convert -O raw of the qemu -c file', time(() => execFileSync('qemu-img', ['convert', '-O', 'raw', qout, rawOut]), 1), size);
    rmSync(rawOut, { force: true });
  }
  rmSync(out, { force: true });
  rmSync(qout, { force: true });
}
if (sum === -1) console.log(sum);
