/**
 * Seeded fuzz: mutate valid qemu-img-made files (header fields, L1, L2,
 * refcount and snapshot tables, compressed data, truncation). Every outcome
 * must be a clean read of the whole image or a StrataError: no other
 * exception, no hang (each case's work is bounded and timed).
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openQcow2, readQcow2Info } from '../../src/formats/qcow2/index.js';
import { StrataError } from '../../src/errors.js';
import { hasQemu, makeRaw, qemuImg, qemuIo, rng, tmp } from './qcow2-helpers.js';

const CASES = 2400;
const TIME_BUDGET_MS = 20_000;
const MAX_FULL_READ = 64 << 20;
const PER_CASE_MS = 3000;

interface Base {
  name: string;
  buf: Buffer;
  regions: { name: string; offset: number; length: number }[];
  snapshot?: string;
}

/** Where the interesting structures are, from a minimal parse of a known-good file. */
function regionsOf(buf: Buffer): Base['regions'] {
  const cs = 2 ** buf.readUInt32BE(20);
  const ext = buf.readUInt32BE(4) === 3 && (buf.readBigUInt64BE(72) & 16n) !== 0n;
  const l1Off = Number(buf.readBigUInt64BE(40));
  const l1Size = buf.readUInt32BE(36);
  const rtOff = Number(buf.readBigUInt64BE(48));
  const regions: Base['regions'] = [
    { name: 'header', offset: 0, length: 112 },
    { name: 'header cluster', offset: 0, length: Math.min(cs, 1024) },
    { name: 'L1', offset: l1Off, length: l1Size * 8 },
    { name: 'refcount table', offset: rtOff, length: 64 },
  ];
  const rb = Number(buf.readBigUInt64BE(rtOff) & ~511n);
  if (rb) regions.push({ name: 'refcount block', offset: rb, length: Math.min(cs, 256) });
  const snapOff = Number(buf.readBigUInt64BE(64));
  if (buf.readUInt32BE(60)) regions.push({ name: 'snapshot table', offset: snapOff, length: 128 });
  for (let i = 0; i < l1Size; i++) {
    const l2 = Number(buf.readBigUInt64BE(l1Off + i * 8) & 0x00fffffffffffe00n);
    if (!l2) continue;
    regions.push({ name: 'L2', offset: l2, length: Math.min(cs, 1024) });
    const e = buf.readBigUInt64BE(l2);
    if (e >> 62n === 1n) {
      const shift = 62n - BigInt(buf.readUInt32BE(20) - 8);
      regions.push({ name: 'compressed data', offset: Number(e & ((1n << shift) - 1n)), length: 256 });
    } else if (!ext) {
      const d = Number(e & 0x00fffffffffffe00n);
      if (d) regions.push({ name: 'data', offset: d, length: 64 });
    }
  }
  return regions.filter((r) => r.offset + r.length <= buf.length);
}

const INTERESTING = [0n, 1n, 0x1ffn, 0x200n, 0xffffffffn, 0x100000000n, 1n << 62n, 1n << 63n, 0xffffffffffffffffn, 0x10000n, 0x30000n];

function mutate(base: Base, r: () => number): Buffer {
  const b = Buffer.from(base.buf);
  const pick = <T>(xs: T[]): T => xs[Math.floor(r() * xs.length)];
  const kind = Math.floor(r() * 10);
  if (kind === 0) {
    // Truncate anywhere.
    return b.subarray(0, Math.floor(r() * b.length));
  }
  if (kind <= 3) {
    // An interesting value into an 8- or 4-byte-aligned field of a structure.
    const reg = pick(base.regions);
    const off = reg.offset + Math.floor((r() * reg.length) / 4) * 4;
    const v = pick(INTERESTING) + (r() < 0.3 ? BigInt(Math.floor(r() * b.length)) : 0n);
    if (r() < 0.5 && off + 8 <= b.length) b.writeBigUInt64BE(v & 0xffffffffffffffffn, off);
    else if (off + 4 <= b.length) b.writeUInt32BE(Number(v & 0xffffffffn), off);
    return b;
  }
  // Random bytes or bit flips inside one structure.
  const reg = pick(base.regions);
  const n = 1 + Math.floor(r() * 8);
  for (let i = 0; i < n; i++) {
    const off = reg.offset + Math.floor(r() * reg.length);
    if (off >= b.length) continue;
    b[off] = r() < 0.5 ? Math.floor(r() * 256) : b[off] ^ (1 << Math.floor(r() * 8));
  }
  return b;
}

/** Open, read everything (bounded), list extents: returns 'ok' or the StrataError code. */
function exercise(path: string, snapshot?: string): string {
  try {
    readQcow2Info(path);
  } catch (e) {
    if (!(e instanceof StrataError)) throw e;
  }
  let reader;
  try {
    reader = openQcow2(path, snapshot ? { snapshot } : {});
  } catch (e) {
    if (e instanceof StrataError) return e.code;
    throw e;
  }
  try {
    const len = Math.min(reader.size, MAX_FULL_READ);
    for (let off = 0; off < len; off += 4 << 20) reader.read(off, Math.min(4 << 20, len - off));
    reader.extents(0, reader.size);
    if (reader.size > len) reader.read(reader.size - Math.min(reader.size, 1 << 20), Math.min(reader.size, 1 << 20));
    return 'ok';
  } catch (e) {
    if (e instanceof StrataError) return e.code;
    throw e;
  } finally {
    reader.close();
  }
}

describe.skipIf(!hasQemu)('qcow2 fuzz', () => {
  let t: ReturnType<typeof tmp>;
  const bases: Base[] = [];

  beforeAll(() => {
    t = tmp();
    const mk = (name: string, build: (f: string) => void, snapshot?: string) => {
      const f = join(t.dir, `${name}.qcow2`);
      build(f);
      const buf = readFileSync(f);
      bases.push({ name, buf, regions: regionsOf(buf), snapshot });
    };
    const raw = join(t.dir, 'src.raw');
    makeRaw(raw, 2 << 20, 21);
    const writes = ['write -P 0x1 0 64k', 'write -z 128k 64k', 'write -P 0x2 300k 5000', 'write -P 0x3 1M 4k'];
    mk('plain', (f) => { qemuImg('create', '-q', '-f', 'qcow2', f, '2M'); qemuIo(f, writes); });
    mk('c512', (f) => { qemuImg('create', '-q', '-f', 'qcow2', '-o', 'cluster_size=512', f, '2M'); qemuIo(f, writes); });
    mk('v2', (f) => { qemuImg('create', '-q', '-f', 'qcow2', '-o', 'compat=0.10', f, '2M'); qemuIo(f, writes); });
    mk('extl2', (f) => { qemuImg('create', '-q', '-f', 'qcow2', '-o', 'extended_l2=on', f, '2M'); qemuIo(f, [...writes, 'write -P 0x4 1536k 2k', 'write -z 1540k 2k']); });
    mk('deflate', (f) => qemuImg('convert', '-c', '-O', 'qcow2', raw, f));
    mk('zstd', (f) => qemuImg('convert', '-c', '-O', 'qcow2', '-o', 'compression_type=zstd', raw, f));
    mk('snapshot', (f) => { qemuImg('create', '-q', '-f', 'qcow2', f, '2M'); qemuIo(f, writes); qemuImg('snapshot', '-c', 's1', f); qemuIo(f, ['write -P 0x9 0 128k']); }, 's1');
  });
  afterAll(() => t.cleanup());

  it(`${CASES} seeded mutations: clean read or StrataError, bounded time`, () => {
    for (const b of bases) expect(exercise(join(t.dir, `${b.name}.qcow2`), b.snapshot)).toBe('ok');
    const r = rng(Number(process.env.QCOW2_FUZZ_SEED ?? 0x5eed));
    const outcomes: Record<string, number> = {};
    const f = join(t.dir, 'fuzz.qcow2');
    const start = performance.now();
    let ran = 0;
    for (let i = 0; i < CASES; i++) {
      if (performance.now() - start > TIME_BUDGET_MS) break;
      const base = bases[i % bases.length];
      writeFileSync(f, mutate(base, r));
      const t0 = performance.now();
      let outcome: string;
      try {
        outcome = exercise(f, r() < 0.5 ? base.snapshot : undefined);
      } catch (e) {
        throw new Error(`case ${i} (${base.name}): non-StrataError ${(e as Error)?.stack ?? e}`);
      }
      const dt = performance.now() - t0;
      if (dt > PER_CASE_MS) throw new Error(`case ${i} (${base.name}) took ${dt.toFixed(0)} ms`);
      outcomes[outcome] = (outcomes[outcome] ?? 0) + 1;
      ran++;
    }
    console.log(`qcow2 fuzz: ${ran} cases in ${(performance.now() - start).toFixed(0)} ms`, outcomes);
    expect(ran).toBeGreaterThan(200);
    expect(outcomes.ok).toBeGreaterThan(0);
    expect(outcomes.E_BAD_FILE).toBeGreaterThan(0);
  });
});
