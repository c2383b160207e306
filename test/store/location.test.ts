/**
 * A block's location (src/store/blocks/location.ts): the words stores on disk
 * hold for each kind, the round trip through them, and the compile-time rule
 * that every `switch (loc.kind)` handles every kind.
 */
import { describe, expect, it } from 'vitest';
import {
  CONTAINER,
  OWN,
  REMOTE,
  containersOf,
  decodeLocation,
  encodeLocation,
  fragmentSpans,
  locationAt,
  packedLocation,
  putLocation,
  unreachable,
  type Location,
} from '../../src/store/blocks/location.js';
import { MAX_SLOT, type SlotNumber } from '../../src/store/core/types.js';

const slot = (n: number) => n as SlotNumber;

describe('location words', () => {
  it('are the ones stores on disk hold (schema 4 and 5)', () => {
    expect(encodeLocation(OWN)).toEqual([0, 0]);
    expect(encodeLocation(CONTAINER)).toEqual([0xffffffff, 0]);
    expect(encodeLocation(REMOTE)).toEqual([0xfffffffe, 0]);
    // [container + 1, codec << 28 | offset << 14 | length]
    expect(encodeLocation(packedLocation(slot(41), 3000, 1500, 2))).toEqual([42, ((2 << 28) | (3000 << 14) | 1500) >>> 0]);
    expect(decodeLocation(42, ((2 << 28) | (3000 << 14) | 1500) >>> 0)).toEqual({ kind: 'packed', container: 41, offset: 3000, length: 1500, codec: 2 });
    expect(decodeLocation(0, 0)).toBe(OWN);
    expect(decodeLocation(0xffffffff, 0)).toBe(CONTAINER);
    expect(decodeLocation(0xfffffffe, 0)).toBe(REMOTE);
  });

  it('decode what they encode, at the edges of each field', () => {
    const all: Location[] = [
      OWN,
      CONTAINER,
      REMOTE,
      packedLocation(slot(0), 0, 1, 0),
      packedLocation(slot(MAX_SLOT - 1), 4095, 4096, 15),
      packedLocation(slot(7), 0x3fff, 0x3fff, 1),
    ];
    for (const loc of all) expect(decodeLocation(...encodeLocation(loc))).toEqual(loc);
  });

  it('refuse a packed location they cannot hold, rather than write another kind', () => {
    // container + 1 would be REMOTE's word
    expect(() => encodeLocation(packedLocation(slot(0xfffffffd), 0, 100, 1))).toThrow(/packed location out of range/);
    expect(() => encodeLocation(packedLocation(slot(1), 0x4000, 100, 1))).toThrow(/out of range/);
    expect(() => encodeLocation(packedLocation(slot(1), 0, 0x4000, 1))).toThrow(/out of range/);
    expect(() => encodeLocation(packedLocation(slot(1), 0, 100, 16))).toThrow(/out of range/);
    expect(() => encodeLocation(packedLocation(slot(-1), 0, 100, 1))).toThrow(/out of range/);
  });

  it('sit two per slot in a row; an absent row is all own; putLocation says what it replaced', () => {
    expect(locationAt(null, 123)).toBe(OWN);
    const row = new Uint32Array(2 * 4);
    const p = packedLocation(slot(9), 4000, 200, 1);
    expect(putLocation(row, 2, p)).toBe(OWN);
    expect(putLocation(row, 2, p)).toBeNull(); // unchanged
    expect(putLocation(row, 3, REMOTE)).toBe(OWN);
    expect(locationAt(row, 2)).toEqual(p);
    expect(locationAt(row, 3)).toBe(REMOTE);
    expect(locationAt(row, 1)).toBe(OWN);
    expect(Array.from(row.subarray(4, 8))).toEqual([...encodeLocation(p), 0xfffffffe, 0]);
    expect(putLocation(row, 2, OWN)).toEqual(p);
  });
});

describe('a fragment', () => {
  it('lies in one container, or runs on into the next when it passes the end of the first', () => {
    expect(fragmentSpans(packedLocation(slot(5), 2000, 2096, 1))).toBe(false);
    expect(containersOf(packedLocation(slot(5), 2000, 2096, 1))).toEqual([5]);
    expect(fragmentSpans(packedLocation(slot(5), 2000, 2097, 1))).toBe(true);
    expect(containersOf(packedLocation(slot(5), 2000, 2097, 1))).toEqual([5, 6]);
  });
});

describe('a switch over a location', () => {
  it('compiles only when it handles every kind (checked by npm run typecheck)', () => {
    const name = (loc: Location): string => {
      switch (loc.kind) {
        case 'own':
        case 'packed':
        case 'container':
          return loc.kind;
        default:
          // @ts-expect-error -- 'remote' is not handled, so loc is not never here
          return unreachable(loc);
      }
    };
    expect(name(OWN)).toBe('own');
    expect(() => name(REMOTE)).toThrow(/unhandled case {"kind":"remote"}/);
  });
});
