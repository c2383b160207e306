/** Shared helpers for the qcow2 tests: qemu-img as the oracle, fixtures, header patching. */
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync, openSync, writeSync, closeSync, ftruncateSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Extent, ExtentKind } from '../../src/image/device.js';

export const hasQemu = available(spawnSync('qemu-img', ['--version']).status === 0 && spawnSync('qemu-io', ['--version']).status === 0, 'qemu-img and qemu-io (qemu-utils) do not run');
if (!hasQemu) console.warn('qcow2 tests skipped: qemu-img/qemu-io not found on PATH');

export function tmp(prefix = 'strata-qcow2-'): { dir: string; cleanup: () => void } {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  return { dir, cleanup: () => rmSync(dir, { recursive: true, force: true }) };
}

export function qemuImg(...args: string[]): string {
  return execFileSync('qemu-img', args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
}

export function qemuImgStatus(...args: string[]): { status: number; out: string } {
  const r = spawnSync('qemu-img', args, { encoding: 'utf8' });
  return { status: r.status ?? -1, out: (r.stdout ?? '') + (r.stderr ?? '') };
}

/** qemu-io with one -c per command. */
export function qemuIo(file: string, cmds: string[], fmt = 'qcow2'): void {
  const args = ['-f', fmt];
  for (const c of cmds) args.push('-c', c);
  args.push(file);
  const r = spawnSync('qemu-io', args, { encoding: 'utf8' });
  if (r.status !== 0 || /error|fail/i.test(r.stdout + r.stderr)) throw new Error(`qemu-io ${cmds.join('; ')}: ${r.stdout}${r.stderr}`);
}

/** `qemu-img convert -O raw` of a file (optionally one snapshot) into a Buffer. */
export function rawOf(file: string, dir: string, snapshot?: string): Buffer {
  const out = join(dir, `raw-${Math.random().toString(36).slice(2)}.raw`);
  const args = ['convert'];
  if (snapshot) args.push('-l', `snapshot.name=${snapshot}`);
  args.push('-O', 'raw', file, out);
  qemuImg(...args);
  const b = readFileSync(out);
  rmSync(out);
  return b;
}

interface MapEntry {
  start: number;
  length: number;
  depth: number;
  present?: boolean;
  zero: boolean;
  data: boolean;
}

/** qemu-img map as strata extents for the top layer: data, zero (depth 0), or hole. */
export function qemuMap(file: string): { offset: number; length: number; kind: ExtentKind }[] {
  const entries = JSON.parse(qemuImg('map', '--output=json', file)) as MapEntry[];
  return normalize(
    entries.map((e) => ({
      offset: e.start,
      length: e.length,
      kind: e.depth > 0 || e.present === false ? 'hole' : e.data ? 'data' : e.zero ? 'zero' : 'hole',
    })),
  );
}

export function normalize(exts: { offset: number; length: number; kind: ExtentKind }[]): { offset: number; length: number; kind: ExtentKind }[] {
  const out: { offset: number; length: number; kind: ExtentKind }[] = [];
  for (const e of exts) {
    if (e.length === 0) continue;
    const last = out[out.length - 1];
    if (last && last.kind === e.kind && last.offset + last.length === e.offset) last.length += e.length;
    else out.push({ offset: e.offset, length: e.length, kind: e.kind });
  }
  return out;
}

export function stripDepth(exts: Extent[]) {
  return normalize(exts.map((e) => ({ offset: e.offset, length: e.length, kind: e.kind })));
}

/** Deterministic PRNG (mulberry32). */
import { mulberry32 as rng } from '../helpers/random.js';
import { available } from '../helpers/available.js';

export { rng };

/** A raw test image: random, text-like (compressible), zero and sparse regions. */
export function makeRaw(path: string, size: number, seed = 1): Buffer {
  const r = rng(seed);
  const buf = Buffer.alloc(size);
  const block = 64 * 1024;
  for (let off = 0; off < size; off += block) {
    const kind = Math.floor(r() * 4);
    const end = Math.min(size, off + block);
    if (kind === 0) for (let i = off; i < end; i++) buf[i] = Math.floor(r() * 256);
    else if (kind === 1) buf.write('strata qcow2 test line ' + off + '\n'.repeat(1), off);
    else if (kind === 2) for (let i = off; i < end; i++) buf[i] = 'abcdefgh ijkl\n'.charCodeAt(i % 14);
    // kind 3: zeros
  }
  writeFileSync(path, buf);
  return buf;
}

/** Patch bytes of a file in place. */
export function patch(path: string, offset: number, bytes: Buffer | number[]): void {
  const fd = openSync(path, 'r+');
  try {
    const b = Buffer.isBuffer(bytes) ? bytes : Buffer.from(bytes);
    writeSync(fd, b, 0, b.length, offset);
  } finally {
    closeSync(fd);
  }
}

export const be32 = (v: number) => {
  const b = Buffer.alloc(4);
  b.writeUInt32BE(v >>> 0);
  return b;
};
export const be64 = (v: number | bigint) => {
  const b = Buffer.alloc(8);
  b.writeBigUInt64BE(BigInt(v));
  return b;
};
export function truncate(path: string, size: number): void {
  const fd = openSync(path, 'r+');
  try {
    ftruncateSync(fd, size);
  } finally {
    closeSync(fd);
  }
}
export const fileSize = (p: string) => statSync(p).size;

/** Header fields (offsets per docs/interop/qcow2.txt). */
export const H = {
  version: 4,
  backingFileOffset: 8,
  backingFileSize: 16,
  clusterBits: 20,
  size: 24,
  cryptMethod: 32,
  l1Size: 36,
  l1TableOffset: 40,
  refcountTableOffset: 48,
  refcountTableClusters: 56,
  nbSnapshots: 60,
  snapshotsOffset: 64,
  incompatible: 72,
  refcountOrder: 96,
  headerLength: 100,
} as const;

export function readHeaderField(path: string, off: number, bytes: 4 | 8): number {
  const b = readFileSync(path).subarray(off, off + bytes);
  return bytes === 4 ? b.readUInt32BE(0) : Number(b.readBigUInt64BE(0));
}
