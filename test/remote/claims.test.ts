// Index claims against pack trailers (src/remote/claims.ts), and a trailer decoded from a pack's end alone: pure, no S3.
import { describe, expect, it } from 'vitest';
import { confirmed, falseClaims, trailerOf } from '../../src/remote/objects/claims.js';
import { decodePackTrailer, encodePackTrailer, packTrailerLength, type BlockPlace } from '../../src/remote/objects/index-file.js';
import { sha256 } from '../../src/remote/objects/layout.js';

const digest = (n: number) => sha256(Buffer.from(String(n)));
const P1 = 'a'.repeat(64);
const P2 = 'b'.repeat(64);
const GONE = 'c'.repeat(64);
const place = (n: number, pack: string, offset: number, length = 1000): BlockPlace => ({ digest: digest(n), pack, offset, length, codec: 1, hint: n });

describe('index claims and pack trailers', () => {
  it("a trailer read from the pack's end alone decodes as from the whole pack, offsets checked against the whole", () => {
    const places = [place(1, P1, 0), place(2, P1, 1000), { ...place(3, P1, 2000, 4096), codec: 0 }];
    const pack = Buffer.concat([Buffer.alloc(6096, 1), encodePackTrailer(places)]);
    const need = packTrailerLength(pack.subarray(pack.length - 12), P1);
    expect(need).toBe(12 + 48 * 3);
    expect(decodePackTrailer(pack.subarray(pack.length - need), P1, pack.length)).toEqual(decodePackTrailer(pack, P1));
    // The same trailer claimed for a smaller pack: its entries run past the fragments.
    expect(() => decodePackTrailer(pack.subarray(pack.length - need), P1, need + 5000)).toThrow(expect.objectContaining({ code: 'E_CORRUPT', message: expect.stringMatching(/entry 2 runs past the fragments/) }));
    expect(() => packTrailerLength(Buffer.alloc(12), P1)).toThrow(expect.objectContaining({ code: 'E_CORRUPT', message: `remote pack ${P1} is malformed: no STRATAPK trailer` }));
  });

  it("a place counts only where its pack's trailer lists it; an index saying otherwise is one problem naming it", () => {
    const trailers = new Map([[P1, trailerOf([place(1, P1, 0), place(2, P1, 1000)])]]);
    const packs = new Map([[P1, 3000], [P2, 3000]]);
    expect(confirmed(trailers, place(1, P1, 0))).toBe(true);
    expect(confirmed(trailers, place(1, P1, 1000))).toBe(false); // another offset
    expect(confirmed(trailers, { ...place(1, P1, 0), codec: 0 })).toBe(false);
    expect(falseClaims('i1', [place(1, P1, 0), place(2, P1, 1000)], packs, trailers, new Set())).toBeUndefined();
    const lying = falseClaims('i2', [place(1, P1, 0), place(1, P1, 1000), place(2, GONE, 0), place(3, P2, 0)], packs, trailers, new Set([P2]));
    expect(lying).toEqual({
      object: 'index',
      id: 'i2',
      message: `index i2 is not to be trusted: of its 4 places, 1 in packs not in the bucket, 1 that their pack's trailer does not list (first: block ${digest(1).toString('hex')} at 1000 in pack ${P1}, which lists no such fragment)`,
    });
  });
});
