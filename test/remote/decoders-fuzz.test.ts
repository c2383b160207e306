/**
 * Seeded fuzz of every decoder of what a bucket holds (manifest, layer,
 * index, pack trailer, and the zstd fragments packs carry): random
 * mutations of valid objects must end in a StrataError E_CORRUPT or in a
 * correct result (one that encodes back to the same bytes, or for a
 * manifest decodes again to itself), never another exception, and what a
 * decoder returns is bounded by the bytes it was given. A fixed number of
 * cases per decoder, a few seconds each; FUZZ_SEED picks another sequence.
 */
import { decompress as fzstdDecompress } from 'fzstd';
import { describe, expect, it } from 'vitest';
import { StrataError } from '../../src/errors.js';
import { decodeIndex, decodePackTrailer, encodeIndex, encodePackTrailer, type BlockPlace } from '../../src/remote/objects/index-file.js';
import { decodeLayer, encodeLayer, RUN_DATA, RUN_ZERO, type LayerRun } from '../../src/remote/objects/layer-file.js';
import { decodeManifest, encodeManifest, MANIFEST_FORMAT, type Manifest } from '../../src/remote/objects/manifest.js';
import { decodeFragment } from '../../src/remote/objects/fetch.js';
import { sha256 } from '../../src/remote/objects/layout.js';
import { zstdFrameProblem } from '../../src/store/blocks/zstd-frame.js';
import { canCompress, compressEach } from '../../src/store/blocks/codecs.js';
import { rng } from '../helpers/random.js';

const SEED = Number(process.env.FUZZ_SEED ?? 0xdec0de);
const CASES = 3000;
/** What the whole file may add to the process's memory, whatever the mutations. */
const MEMORY_BOUND = 256 * 1024 * 1024;

type R = ReturnType<typeof rng>;

const U32 = [0, 1, 2, 0x7fffffff, 0x80000000, 0xfffffffe, 0xffffffff, 4096, 65535, 1 << 20];
const F64 = [0, -0, 1, -1, 0.5, 2 ** 32, 2 ** 53, 2 ** 53 - 4096, 2 ** 60, NaN, Infinity, -Infinity, 4096 * 0xffffffff];

/** One random change to `b`: truncation, extension, bit flips, an interesting u32/u16/u8/f64, a region copied elsewhere. */
function mutate(b: Buffer, r: R): Buffer {
  const out = Buffer.from(b);
  const at = (w: number) => (out.length > w ? r.int(out.length - w + 1) : 0);
  switch (r.int(8)) {
    case 0:
      return out.subarray(0, r.int(out.length));
    case 1:
      return Buffer.concat([out, r.bytes(1 + r.int(64))]);
    case 2:
      for (let n = 1 + r.int(4); n > 0 && out.length; n--) out[r.int(out.length)] ^= 1 << r.int(8);
      return out;
    case 3:
      if (out.length >= 4) out.writeUInt32LE(r.pick(U32) >>> 0, at(4));
      return out;
    case 4:
      if (out.length >= 8) out.writeDoubleLE(r.pick(F64), at(8));
      return out;
    case 5:
      if (out.length >= 2) out.writeUInt16LE(r.pick([0, 1, 3584, 3585, 4095, 4096, 4097, 65535]), at(2));
      return out;
    case 6: {
      if (out.length < 2) return out;
      const from = r.int(out.length);
      const len = 1 + r.int(Math.min(64, out.length - from));
      out.copy(out, r.int(out.length), from, from + len);
      return out;
    }
    default:
      if (out.length) out[r.int(out.length)] = r.pick([0, 1, 2, 3, 0x7f, 0x80, 0xff]);
      return out;
  }
}

/** Runs `decode` on `bytes`: 'ok' after `check`ing the result, or the StrataError code; anything else fails the test. */
function outcome<T>(bytes: Buffer, decode: (b: Buffer) => T, check: (v: T, b: Buffer) => void): string {
  let v: T;
  try {
    v = decode(bytes);
  } catch (e) {
    if (e instanceof StrataError) return e.code;
    throw new Error(`non-StrataError on ${bytes.length} bytes ${bytes.subarray(0, 64).toString('hex')}: ${(e as Error)?.stack ?? e}`);
  }
  check(v, bytes);
  return 'ok';
}

/** Runs `cases` mutations of the valid objects `make` returns; tallies outcomes. */
function fuzz<T>(name: string, make: (r: R) => Buffer, decode: (b: Buffer) => T, check: (v: T, b: Buffer) => void): Record<string, number> {
  const r = rng(SEED ^ name.length * 7919);
  const tally: Record<string, number> = {};
  const before = process.memoryUsage();
  for (let i = 0; i < CASES; i++) {
    const valid = make(r);
    if (i < 20) expect(outcome(valid, decode, check)).toBe('ok');
    let b = mutate(valid, r);
    if (r.next() < 0.3) b = mutate(b, r);
    const o = outcome(b, decode, check);
    tally[o] = (tally[o] ?? 0) + 1;
  }
  const after = process.memoryUsage();
  expect(after.heapUsed + after.arrayBuffers - (before.heapUsed + before.arrayBuffers)).toBeLessThan(MEMORY_BOUND);
  expect(Object.keys(tally).every((k) => k === 'ok' || k === 'E_CORRUPT')).toBe(true);
  expect(tally.E_CORRUPT).toBeGreaterThan(CASES / 4);
  return tally;
}

const digestOf = (n: number) => sha256(Buffer.from(`block ${n}`));
const hex64 = (r: R) => r.bytes(32).toString('hex');

function validLayer(r: R): Buffer {
  const runs: LayerRun[] = [];
  let at = r.int(4);
  let data = 0;
  for (let n = r.int(12); n > 0; n--) {
    const kind = r.next() < 0.6 ? RUN_DATA : RUN_ZERO;
    const last = runs[runs.length - 1];
    if (last && last.kind === kind && last.first + last.count === at) at++; // canonical: never touching runs of one kind
    const count = 1 + r.int(kind === RUN_DATA ? 6 : 5000);
    runs.push({ first: at, count, kind });
    if (kind === RUN_DATA) data += count;
    at += count + r.int(3);
  }
  const digests = Buffer.concat(Array.from({ length: data }, (_, i) => digestOf(i)));
  return encodeLayer({ virtualSize: (at + r.int(10)) * 4096 - r.int(2) * 512, runs, digests });
}

function validPlaces(r: R, packs: string[]): BlockPlace[] {
  return Array.from({ length: 1 + r.int(10) }, (_, i) => {
    const raw = r.next() < 0.3;
    return { digest: digestOf(i), pack: r.pick(packs), offset: r.int(1 << 20), length: raw ? 4096 : 1 + r.int(3584), codec: raw ? 0 : r.pick([1, 2]), hint: r.int(2 ** 31) * 2 ** 21 + r.int(2 ** 21) };
  });
}

function validIndex(r: R): Buffer {
  return encodeIndex(validPlaces(r, Array.from({ length: 1 + r.int(3) }, () => hex64(r))));
}

function validPack(r: R): Buffer {
  const places = validPlaces(r, ['p']);
  let offset = 0;
  const frags = places.map((p) => {
    p.offset = offset;
    offset += p.length;
    return r.bytes(p.length);
  });
  return Buffer.concat([...frags, encodePackTrailer(places)]);
}

const HOSTILE = [null, -1, 1.5, 1e300, '', 'x'.repeat(300), '\u001b]0;pwned\u0007', [], {}, { a: 1 }, '2026-13-45T00:00:00Z', 2 ** 53, true];

function validManifestObject(r: R): Manifest {
  const depth = 1 + r.int(4);
  const chain = Array.from({ length: depth }, (_, i) => ({
    layer: hex64(r),
    name: i === depth - 1 ? 'app' : `app-${i}`,
    kind: i === 0 ? ('base' as const) : ('layer' as const),
    virtualSize: 4096 * (1 + r.int(1000)),
    labels: (r.next() < 0.5 ? {} : { 'org.opencontainers.image.title': 'x' }) as Record<string, string>,
    blocks: r.int(2),
  }));
  return { format: MANIFEST_FORMAT, image: 'app', pushedAt: new Date(1.7e12 + r.int(1e10)).toISOString(), host: `host-${r.int(100)}`, chain };
}

/** A manifest with one field of the object or of a chain entry set to a hostile value, or removed, or the chain made too deep. */
function mutateManifest(m: Manifest, r: R): Buffer {
  const o = JSON.parse(JSON.stringify(m)) as Record<string, unknown> & { chain: Record<string, unknown>[] };
  const target: Record<string, unknown> = r.next() < 0.5 ? o : r.pick(o.chain);
  const key = r.pick(Object.keys(target));
  const k = r.int(10);
  if (k === 0) delete target[key];
  else if (k === 1) o.chain = Array.from({ length: 257 + r.int(3) }, (_, i) => ({ ...o.chain[0], kind: i ? 'layer' : 'base', name: i === 256 ? o.image : `l${i}` })) as never;
  else target[key] = r.pick(HOSTILE);
  return encodeManifest(o as unknown as Manifest).bytes;
}

describe('fuzzing the decoders of bucket objects', () => {
  it('layers: E_CORRUPT or a canonical layer that encodes back to its bytes, runs bounded by the object', () => {
    const t = fuzz('layer', validLayer, (b) => decodeLayer(b, 'fuzz'), (m, b) => {
      expect(encodeLayer(m).equals(b)).toBe(true);
      expect(m.runs.length).toBeLessThanOrEqual(b.length / 16);
      for (let i = 1; i < m.runs.length; i++) {
        const [p, q] = [m.runs[i - 1], m.runs[i]];
        expect(q.first).toBeGreaterThanOrEqual(p.first + p.count);
        expect(p.kind === q.kind && p.first + p.count === q.first).toBe(false);
      }
    });
    console.log('layer fuzz', t);
  });

  it('indexes: E_CORRUPT or places that encode back to the same index, every fragment one strata can write', () => {
    const t = fuzz('index', validIndex, (b) => decodeIndex(b, 'fuzz'), (places, b) => {
      expect(encodeIndex(places).equals(b)).toBe(true);
      for (const p of places) {
        expect(p.codec === 0 ? p.length === 4096 : (p.codec === 1 || p.codec === 2) && p.length >= 1 && p.length <= 3584).toBe(true);
        expect(Number.isSafeInteger(p.hint) && p.hint >= 0).toBe(true);
      }
    });
    console.log('index fuzz', t);
  });

  it('pack trailers: E_CORRUPT or entries that encode back to the trailer, each inside the fragments', () => {
    const t = fuzz('pack trailer', validPack, (b) => decodePackTrailer(b, 'fuzz'), (places, b) => {
      const trailer = encodePackTrailer(places);
      expect(trailer.equals(b.subarray(b.length - trailer.length))).toBe(true);
      for (const p of places) expect(p.offset + p.length).toBeLessThanOrEqual(b.length - trailer.length);
    });
    console.log('pack trailer fuzz', t);
  });

  it('manifests: E_CORRUPT or a manifest whose every field is in range, escapes never pass as a time', () => {
    const r = rng(SEED);
    const check = (m: Manifest) => {
      expect(decodeManifest(encodeManifest(m).bytes, 'again')).toEqual(m);
      expect(m.chain.length).toBeLessThanOrEqual(256);
      expect(Number.isNaN(Date.parse(m.pushedAt))).toBe(false);
      expect(typeof m.host === 'string' && m.host.length <= 255).toBe(true);
      for (const l of m.chain) expect(Number.isSafeInteger(l.blocks) && l.blocks >= 0 && l.blocks <= Math.ceil(l.virtualSize / 4096)).toBe(true);
    };
    const tally: Record<string, number> = {};
    for (let i = 0; i < CASES; i++) {
      const m = validManifestObject(r);
      const bytes = r.next() < 0.5 ? mutateManifest(m, r) : mutate(encodeManifest(m).bytes, r);
      const o = outcome(bytes, (b) => decodeManifest(b, 'fuzz'), check);
      tally[o] = (tally[o] ?? 0) + 1;
    }
    console.log('manifest fuzz', tally);
    expect(Object.keys(tally).every((k) => k === 'ok' || k === 'E_CORRUPT')).toBe(true);
    expect(tally.E_CORRUPT).toBeGreaterThan(CASES / 4);
  });

  it.skipIf(!canCompress('zstd'))('zstd fragments: a frame the fallback would decode is one 4 KiB block, else E_CORRUPT', () => {
    const r = rng(SEED + 1);
    const frames: Buffer[] = [];
    const blocks = [Buffer.alloc(4096, 7), r.text(4096), Buffer.concat([r.text(2048), Buffer.alloc(2048)])];
    compressEach({ codec: 'zstd', level: 3 }, blocks, (_i, buf, at, len) => frames.push(Buffer.from(buf.subarray(at, at + len))));
    const tally: Record<string, number> = {};
    for (let i = 0; i < CASES; i++) {
      const k = i % frames.length;
      const frame = i < frames.length ? frames[k] : mutate(frames[k], r);
      const place = { digest: sha256(blocks[k]), pack: 'fuzz', offset: 0, length: frame.length, codec: 1, hint: 0 };
      // Shape first (what guards fzstd), then a real decode: a frame of the right shape still decodes only to its own block.
      const why = zstdFrameProblem(frame, 4096);
      if (why === undefined) {
        // What the fallback decoder does with a frame of that shape: at most the one block, or an error.
        let got: Uint8Array | undefined;
        try {
          got = fzstdDecompress(frame);
        } catch {
          got = undefined;
        }
        if (got) expect(got.length).toBeLessThanOrEqual(4096);
      }
      const o = outcome(frame, (b) => decodeFragment(place, b, 0), (out) => expect(out.equals(blocks[k])).toBe(true));
      const key = `${why === undefined ? 'shape ok' : 'shape refused'} ${o}`;
      tally[key] = (tally[key] ?? 0) + 1;
    }
    console.log('zstd fragment fuzz', tally);
    expect(tally['shape ok ok']).toBeGreaterThanOrEqual(frames.length);
  });
});
