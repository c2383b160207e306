/** Segment rows of image maps. An absent row is an all-INHERIT segment. */
import { INHERIT, SEGMENT_ENTRIES, isSlotEntry, type ImageId, type SegmentIndex } from '../core/types.js';
import { segDecode, segEncode, type Segment } from './segment.js';
import { prepared } from '../core/statements.js';
import { refreshLocations } from '../blocks/locations.js';
import { sqlOf, type Reader, type WriteTx } from '../core/tx.js';

// Every load of map entries first drops stale block locations (locations.ts): the entries may name
// slots freed and reused, with new locations, since this process last looked.

export function loadSegment(on: Reader, image: ImageId, seg: SegmentIndex): Segment {
  const db = sqlOf(on);
  refreshLocations(on);
  const row = prepared(db, 'SELECT entries FROM segments WHERE image_id = ? AND seg = ?').get(image, seg) as { entries: Buffer } | undefined;
  return row ? segDecode(row.entries, `${image}/${seg}`) : INHERIT;
}

/** Segment `seg` of each image, in the order given (INHERIT where an image has no row): one query for a whole chain. */
export function loadSegmentOfEach(on: Reader, images: readonly ImageId[], seg: SegmentIndex): Segment[] {
  const db = sqlOf(on);
  refreshLocations(on);
  const rows = prepared(db, 'SELECT image_id, entries FROM segments WHERE seg = ? AND image_id IN (SELECT value FROM json_each(?))')
    .raw()
    .all(seg, JSON.stringify(images)) as [number, Buffer][];
  const found = new Map(rows.map(([id, entries]) => [id, entries]));
  return images.map((id) => {
    const b = found.get(id);
    return b ? segDecode(b, `${id}/${seg}`) : INHERIT;
  });
}

export function saveSegment(tx: WriteTx, image: ImageId, seg: SegmentIndex, s: Segment): void {
  const db = sqlOf(tx);
  if (s === INHERIT) {
    prepared(db, 'DELETE FROM segments WHERE image_id = ? AND seg = ?').run(image, seg);
    return;
  }
  prepared(db, 'INSERT INTO segments(image_id, seg, entries) VALUES (?, ?, ?) ON CONFLICT(image_id, seg) DO UPDATE SET entries = excluded.entries').run(
    image,
    seg,
    segEncode(s),
  );
}

/**
 * Gives image `to` a copy of every segment row of `from` (a point-in-time
 * view of a leaf). Refcounts are the caller's: the copy adds references.
 */
export function copySegments(tx: WriteTx, from: ImageId, to: ImageId): void {
  prepared(sqlOf(tx), 'INSERT INTO segments(image_id, seg, entries) SELECT ?, seg, entries FROM segments WHERE image_id = ?').run(to, from);
}

/** Drops every segment row of an image: its map becomes all INHERIT. Refcounts are the caller's. */
export function dropSegments(tx: WriteTx, image: ImageId): void {
  prepared(sqlOf(tx), 'DELETE FROM segments WHERE image_id = ?').run(image);
}

/** Every stored segment of an image, in order. */
export function* segmentsOf(on: Reader, image: ImageId): Generator<[SegmentIndex, Segment]> {
  const db = sqlOf(on);
  refreshLocations(on);
  const it = db.prepare('SELECT seg, entries FROM segments WHERE image_id = ? ORDER BY seg').iterate(image) as IterableIterator<{ seg: number; entries: Buffer }>;
  for (const r of it) yield [r.seg as SegmentIndex, segDecode(r.entries, `${image}/${r.seg}`)];
}

/** The segment numbers where any of `images` has a row, ascending (each once). */
export function segmentNumbersOf(on: Reader, images: readonly ImageId[]): number[] {
  const db = sqlOf(on);
  return prepared(db, 'SELECT DISTINCT seg FROM segments WHERE image_id IN (SELECT value FROM json_each(?)) ORDER BY seg')
    .pluck()
    .all(JSON.stringify(images)) as number[];
}

/** The segment numbers in [from, to) where any of `images` has a row, ascending (each once). */
export function segmentNumbersIn(on: Reader, images: readonly ImageId[], from: number, to: number): number[] {
  const db = sqlOf(on);
  if (images.length === 0 || from >= to) return [];
  return prepared(db, 'SELECT DISTINCT seg FROM segments WHERE seg >= ? AND seg < ? AND image_id IN (SELECT value FROM json_each(?)) ORDER BY seg')
    .pluck()
    .all(from, to, JSON.stringify(images)) as number[];
}

/** The references the own maps of `images` hold, per slot: what du, sharing and rm's estimate count. */
export function ownSlotRefs(on: Reader, images: readonly ImageId[]): Map<number, number> {
  const refs = new Map<number, number>();
  for (const id of images) for (const [, s] of segmentsOf(on, id)) countSlotRefs(s, refs);
  return refs;
}

/** Adds one to `counts` per entry of the segment that references a slot (map-edit.ts keeps refcounts by the same count). */
export function countSlotRefs(s: Segment, counts: Map<number, number>): void {
  if (typeof s === 'number') {
    if (isSlotEntry(s)) counts.set(s - 2, (counts.get(s - 2) ?? 0) + SEGMENT_ENTRIES);
    return;
  }
  for (let i = 0; i < s.length; i++) {
    const e = s[i];
    if (e >= 2) counts.set(e - 2, (counts.get(e - 2) ?? 0) + 1);
  }
}
