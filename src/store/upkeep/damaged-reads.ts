/**
 * Who reads a damaged slot: every image, and the byte range of it, whose
 * view resolves to that slot. A slot is named by the map of the image that
 * wrote it (its owner) and read through inheritance by each descendant that
 * left those blocks INHERIT, so a damaged block of a base shows in every
 * clone at the same offset. check reports these so a user can tell which
 * disks, and which bytes of them, the damage reaches.
 */
import { segDecode, segGet, type Segment } from '../images/segment.js';
import { BLOCK_SIZE, INHERIT, SEGMENT_ENTRIES } from '../core/types.js';
import { sqlOf, type Reader } from '../core/tx.js';

export interface DamagedRead {
  image: string;
  /** Byte offset in the image, and bytes from there that read the slot. */
  offset: number;
  length: number;
  slot: number;
}

interface ImageRow {
  id: number;
  name: string;
  parent_id: number | null;
  virtual_size: number;
}

/** [from, to) in blocks. */
type Run = [number, number];

/**
 * The reads of `slots` by every image, in image-name then offset order, a
 * run of blocks that read one slot as one entry; at most `max` listed, and
 * how many more there are. Call inside a read transaction, so the maps are
 * one state.
 */
export function damagedReads(on: Reader, slots: ReadonlySet<number>, max = 1000): { reads: DamagedRead[]; more: number } {
  const db = sqlOf(on);
  const out: DamagedRead[] = [];
  if (slots.size === 0) return { reads: out, more: 0 };
  const images = db.prepare('SELECT id, name, parent_id, virtual_size FROM images').all() as ImageRow[];
  const byId = new Map(images.map((i) => [i.id, i]));
  const children = new Map<number, ImageRow[]>();
  for (const i of images) {
    if (i.parent_id === null || !byId.has(i.parent_id)) continue;
    const list = children.get(i.parent_id) ?? [];
    list.push(i);
    children.set(i.parent_id, list);
  }
  const segs = new Map<string, Segment>();
  const ownSegment = (id: number, seg: number): Segment => {
    const key = `${id}:${seg}`;
    let s = segs.get(key);
    if (s === undefined) {
      const blob = db.prepare('SELECT entries FROM segments WHERE image_id = ? AND seg = ?').pluck().get(id, seg) as Buffer | undefined;
      s = blob ? segDecode(blob, `${id}/${seg}`) : INHERIT;
      segs.set(key, s);
    }
    return s;
  };

  /** `img` reads `slot` at the blocks of `runs` (clipped to its size), and so does each child that inherits them. */
  const visit = (img: ImageRow, slot: number, runs: readonly Run[], seen: Set<number>) => {
    if (seen.has(img.id)) return; // a looping chain, reported by check itself
    seen.add(img.id);
    const end = Math.ceil(img.virtual_size / BLOCK_SIZE);
    const mine = runs.map(([a, b]): Run => [a, Math.min(b, end)]).filter(([a, b]) => a < b);
    for (const [a, b] of mine) out.push({ image: img.name, offset: a * BLOCK_SIZE, length: (b - a) * BLOCK_SIZE, slot });
    for (const child of children.get(img.id) ?? []) {
      const inherited: Run[] = [];
      for (const [a, b] of mine) {
        let start = -1;
        for (let blk = a; blk < b; blk++) {
          const inherits = segGet(ownSegment(child.id, Math.floor(blk / SEGMENT_ENTRIES)), blk % SEGMENT_ENTRIES) === INHERIT;
          if (inherits && start < 0) start = blk;
          if (!inherits && start >= 0) {
            inherited.push([start, blk]);
            start = -1;
          }
        }
        if (start >= 0) inherited.push([start, b]);
      }
      if (inherited.length > 0) visit(child, slot, inherited, seen);
    }
    seen.delete(img.id);
  };

  const rows = db.prepare('SELECT image_id, seg, entries FROM segments ORDER BY image_id, seg').raw().iterate() as IterableIterator<[number, number, Buffer]>;
  const owned: { img: ImageRow; slot: number; runs: Run[] }[] = [];
  for (const [id, seg, blob] of rows) {
    const img = byId.get(id);
    if (!img) continue;
    const s = segDecode(blob, `${img.name}/${seg}`);
    const base = seg * SEGMENT_ENTRIES;
    if (typeof s === 'number') {
      if (s >= 2 && slots.has(s - 2)) owned.push({ img, slot: s - 2, runs: [[base, base + SEGMENT_ENTRIES]] });
      continue;
    }
    for (let i = 0; i < s.length; i++) {
      if (s[i] < 2 || !slots.has(s[i] - 2)) continue;
      let j = i + 1;
      while (j < s.length && s[j] === s[i]) j++; // a repeated block: one run
      owned.push({ img, slot: s[i] - 2, runs: [[base + i, base + j]] });
      i = j - 1;
    }
  }
  for (const o of owned) visit(o.img, o.slot, o.runs, new Set());
  out.sort((x, y) => (x.image < y.image ? -1 : x.image > y.image ? 1 : x.offset - y.offset));
  return { reads: out.slice(0, max), more: Math.max(0, out.length - max) };
}
