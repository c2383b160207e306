// The bucket's object formats and the fetch planner: pure, no S3.
import { describe, expect, it } from 'vitest';
import { decodeIndex, decodePackTrailer, encodeIndex, encodePackTrailer, type BlockPlace } from '../../src/remote/objects/index-file.js';
import { decodeLayer, encodeLayer, RUN_DATA, RUN_ZERO } from '../../src/remote/objects/layer-file.js';
import { decodeManifest, encodeManifest, MANIFEST_FORMAT } from '../../src/remote/objects/manifest.js';
import { planRanges } from '../../src/remote/objects/fetch.js';
import { parseEndpoint, parseS3Url } from '../../src/remote/config.js';
import { keysFor, sha256 } from '../../src/remote/objects/layout.js';

const digest = (n: number) => sha256(Buffer.from(String(n)));
const place = (n: number, pack: string, offset: number, length = 1000): BlockPlace => ({ digest: digest(n), pack, offset, length, codec: 1, hint: n * 7 });
const P1 = 'a'.repeat(64);
const P2 = 'b'.repeat(64);

describe('remote object formats', () => {
  it('indexes and pack trailers round-trip; damage is E_CORRUPT', () => {
    const places = [place(1, P1, 0), place(2, P2, 0), { ...place(3, P1, 1000, 4096), codec: 0 }];
    const back = decodeIndex(encodeIndex(places), 'x');
    expect(back).toEqual(places);
    const trailer = encodePackTrailer(places.filter((p) => p.pack === P1));
    const pack = Buffer.concat([Buffer.alloc(5096), trailer]);
    expect(decodePackTrailer(pack, P1)).toEqual(places.filter((p) => p.pack === P1));
    expect(() => decodeIndex(encodeIndex(places).subarray(0, 40), 'x')).toThrow(expect.objectContaining({ code: 'E_CORRUPT' }));
    expect(() => decodePackTrailer(pack.subarray(0, 100), P1)).toThrow(expect.objectContaining({ code: 'E_CORRUPT' }));
  });

  it('layers round-trip and refuse runs out of order or past the end', () => {
    const m = { virtualSize: 1 << 20, runs: [{ first: 0, count: 2, kind: RUN_DATA }, { first: 5, count: 3, kind: RUN_ZERO }, { first: 200, count: 1, kind: RUN_DATA }] as const, digests: Buffer.concat([digest(1), digest(2), digest(3)]) };
    const layer = { ...m, runs: m.runs.map((r) => ({ ...r })) };
    expect(decodeLayer(encodeLayer(layer), 'l')).toEqual(layer);
    expect(() => decodeLayer(encodeLayer({ ...layer, runs: [layer.runs[1], layer.runs[0], layer.runs[2]] }), 'l')).toThrow(expect.objectContaining({ code: 'E_CORRUPT' }));
    expect(() => decodeLayer(encodeLayer({ ...layer, virtualSize: 4096 * 100 }), 'l')).toThrow(expect.objectContaining({ code: 'E_CORRUPT' }));
  });

  it('manifests are checked like any input', () => {
    const good = { format: MANIFEST_FORMAT, image: 'app', pushedAt: '2026-12-01T00:00:00Z', host: 'h', chain: [{ layer: P1, name: 'base', kind: 'base', virtualSize: 4096, labels: {}, blocks: 1 }, { layer: P2, name: 'app', kind: 'layer', virtualSize: 4096, labels: {}, blocks: 0 }] } as const;
    const m = JSON.parse(JSON.stringify(good));
    expect(decodeManifest(encodeManifest(m).bytes, 'm')).toEqual(m);
    for (const bad of [{ ...m, image: '../etc' }, { ...m, chain: [{ ...m.chain[0], layer: 'zz' }, m.chain[1]] }, { ...m, chain: [m.chain[1]] }, { ...m, format: 'other' }]) {
      expect(() => decodeManifest(Buffer.from(JSON.stringify(bad)), 'm')).toThrow(expect.objectContaining({ code: 'E_CORRUPT' }));
    }
  });

  it('neighbouring fragments of a pack are one ranged GET; far ones and other packs are not', () => {
    const ranges = planRanges([place(1, P1, 10_000), place(2, P1, 0), place(3, P1, 1000), place(4, P1, 5_000_000), place(5, P2, 0)], 64 * 1024, 8 << 20);
    expect(ranges.map((r) => [r.pack === P1 ? 'P1' : 'P2', r.start, r.end, r.places.length])).toEqual([
      ['P1', 0, 11_000, 3],
      ['P1', 5_000_000, 5_001_000, 1],
      ['P2', 0, 1000, 1],
    ]);
    // A range stops growing at rangeBytes.
    expect(planRanges([place(1, P1, 0), place(2, P1, 1000)], 64 * 1024, 1500)).toHaveLength(2);
  });

  it('remote URLs, endpoints and keys', () => {
    expect(parseS3Url('s3://images')).toEqual({ bucket: 'images', prefix: '' });
    expect(parseS3Url('s3://images/fleet/a/')).toEqual({ bucket: 'images', prefix: 'fleet/a/' });
    expect(() => parseS3Url('http://images')).toThrow(expect.objectContaining({ code: 'E_BAD_INPUT' }));
    expect(() => parseS3Url('s3://Images')).toThrow(expect.objectContaining({ code: 'E_BAD_INPUT' }));
    expect(() => parseS3Url('s3://images/a/../b')).toThrow(expect.objectContaining({ code: 'E_BAD_INPUT' }));
    expect(parseEndpoint('http://rgw.local:7480/')).toBe('http://rgw.local:7480');
    expect(() => parseEndpoint('http://rgw.local:7480/bucket')).toThrow(expect.objectContaining({ code: 'E_BAD_INPUT' }));
    const k = keysFor('fleet/');
    expect(k.pack(P1)).toBe(`fleet/packs/${P1}`);
    expect(k.manifest('app', P2)).toBe(`fleet/manifests/app/${P2}.json`);
    expect(k.idOf(`fleet/index/${P1}`, 'index/')).toBe(P1);
  });
});
