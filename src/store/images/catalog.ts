/** Rows of the images table: the catalog of images, their kinds and parents. */
import { StrataError, corrupt, notFound } from '../../errors.js';
import type { ImageId, ImageKind, ImageName, ImageRecord } from '../core/types.js';
import { prepared } from '../core/statements.js';
import { sqlOf, type Reader, type WriteTx } from '../core/tx.js';

interface ImageRow {
  id: number;
  name: string;
  kind: ImageKind;
  parent_id: number | null;
  virtual_size: number;
  created_at: number;
  labels: string;
  source: string | null;
  own_blocks: number;
  generation: number;
  snap_seq: number;
  snapshot_at: number | null;
}

const COLS = 'id, name, kind, parent_id, virtual_size, created_at, labels, source, own_blocks, generation, snap_seq, snapshot_at';

function toRecord(r: ImageRow): ImageRecord {
  return {
    id: r.id as ImageId,
    name: r.name as ImageName,
    kind: r.kind,
    parentId: r.parent_id as ImageId | null,
    virtualSize: r.virtual_size,
    createdAt: r.created_at,
    labels: JSON.parse(r.labels) as Record<string, string>,
    source: r.source ? (JSON.parse(r.source) as Record<string, unknown>) : null,
    ownBlocks: r.own_blocks,
    generation: r.generation,
    snapSeq: r.snap_seq,
    snapshotAt: r.snapshot_at,
  };
}

export function findImage(on: Reader, name: string): ImageRecord | undefined {
  const db = sqlOf(on);
  const r = prepared(db, `SELECT ${COLS} FROM images WHERE name = ?`).get(name) as ImageRow | undefined;
  return r && toRecord(r);
}

/** What a miss says: its message, and a hint of what was meant (printed after it; its own field in --json). */
export interface Miss {
  message: string;
  hint?: string;
}

/** The image named exactly `name`; E_NOT_FOUND with `missing()`'s message and hint (a resolver's) when there is none. */
export function getImage(on: Reader, name: string, missing: () => Miss = () => ({ message: `no image named ${name}` })): ImageRecord {
  const r = findImage(on, name);
  if (r) return r;
  const m = missing();
  throw notFound(m.message, { image: name, ...(m.hint !== undefined ? { hint: m.hint } : {}) });
}

export function getImageById(on: Reader, id: ImageId): ImageRecord {
  const db = sqlOf(on);
  const r = prepared(db, `SELECT ${COLS} FROM images WHERE id = ?`).get(id) as ImageRow | undefined;
  if (!r) throw corrupt(`image id ${id} is referenced but missing`, { id });
  return toRecord(r);
}

/** The image with id `id`, or undefined if it is gone (removed since the caller saw it). */
export function findImageById(on: Reader, id: ImageId): ImageRecord | undefined {
  const r = prepared(sqlOf(on), `SELECT ${COLS} FROM images WHERE id = ?`).get(id) as ImageRow | undefined;
  return r && toRecord(r);
}

/** The image with id `id` if its map is still at `generation` (nothing changed it since), else undefined. */
export function findImageAt(on: Reader, id: ImageId, generation: number): ImageRecord | undefined {
  const r = findImageById(on, id);
  return r && r.generation === generation ? r : undefined;
}

/** Every image, strata's own hidden ones (imports under construction) included. */
export function listImages(on: Reader): ImageRecord[] {
  const db = sqlOf(on);
  return (prepared(db, `SELECT ${COLS} FROM images ORDER BY name`).all() as ImageRow[]).map(toRecord);
}

/**
 * Names starting with '.' are strata's own: imageName() never accepts one, so
 * a user never sees or names them.
 */
const VISIBLE = "substr(name, 1, 1) <> '.'";

/** The images a user sees. */
export function listVisibleImages(on: Reader): ImageRecord[] {
  const db = sqlOf(on);
  return (prepared(db, `SELECT ${COLS} FROM images WHERE ${VISIBLE} ORDER BY name`).all() as ImageRow[]).map(toRecord);
}

export function countVisibleImages(on: Reader): number {
  const db = sqlOf(on);
  return prepared(db, `SELECT count(*) FROM images WHERE ${VISIBLE}`).pluck().get() as number;
}

/** Images whose name starts with `prefix`, found through the name index rather than a scan of the catalog. */
export function listImagesWithPrefix(on: Reader, prefix: string): ImageRecord[] {
  const db = sqlOf(on);
  return (prepared(db, `SELECT ${COLS} FROM images WHERE name >= ? AND substr(name, 1, ?) = ? ORDER BY name`).all(prefix, prefix.length, prefix) as ImageRow[]).map(toRecord);
}

export function childrenOf(on: Reader, id: ImageId): ImageRecord[] {
  const db = sqlOf(on);
  return (prepared(db, `SELECT ${COLS} FROM images WHERE parent_id = ? ORDER BY name`).all(id) as ImageRow[]).map(toRecord);
}

/** The image and its ancestors, nearest first. A loop or a missing parent is corruption. */
export function chainOf(on: Reader, image: ImageRecord): ImageRecord[] {
  const db = sqlOf(on);
  const chain = [image];
  const seen = new Set<number>([image.id]);
  let cur = image;
  while (cur.parentId !== null) {
    if (seen.has(cur.parentId)) throw corrupt(`image ${image.name} has a parent chain that loops`, { image: image.name });
    const r = prepared(db, `SELECT ${COLS} FROM images WHERE id = ?`).get(cur.parentId) as ImageRow | undefined;
    if (!r) throw corrupt(`image ${cur.name} names parent id ${cur.parentId}, which is missing`, { image: cur.name });
    cur = toRecord(r);
    seen.add(cur.id);
    chain.push(cur);
  }
  return chain;
}

/** Every image below `id` in the tree, depth first. */
export function descendantsOf(on: Reader, id: ImageId): ImageRecord[] {
  const out: ImageRecord[] = [];
  const walk = (p: ImageId) => {
    for (const c of childrenOf(on, p)) {
      out.push(c);
      walk(c.id);
    }
  };
  walk(id);
  return out;
}

export function assertNameFree(on: Reader, name: string): void {
  if (findImage(on, name)) throw new StrataError('E_EXISTS', `an image named ${name} already exists`, { image: name });
}

export interface NewImage {
  name: ImageName;
  kind: ImageKind;
  parentId: ImageId | null;
  virtualSize: number;
  labels?: Record<string, string>;
  source?: Record<string, unknown> | null;
  createdAt?: number;
  snapSeq?: number;
}

export function insertImage(tx: WriteTx, img: NewImage): ImageRecord {
  const db = sqlOf(tx);
  assertNameFree(tx, img.name);
  const r = db
    .prepare('INSERT INTO images(name, kind, parent_id, virtual_size, created_at, labels, source, snap_seq) VALUES (?, ?, ?, ?, ?, ?, ?, ?)')
    .run(
      img.name,
      img.kind,
      img.parentId,
      img.virtualSize,
      img.createdAt ?? Date.now(),
      JSON.stringify(img.labels ?? {}),
      img.source ? JSON.stringify(img.source) : null,
      img.snapSeq ?? 0,
    );
  return getImageById(tx, Number(r.lastInsertRowid) as ImageId);
}

/** Fields of an image row that may change. Not ownBlocks: that follows from the map, and only a map edit (map-edit.ts) writes it. */
export type ImagePatch = Partial<Pick<ImageRecord, 'name' | 'kind' | 'parentId' | 'virtualSize' | 'source' | 'labels' | 'snapSeq' | 'snapshotAt'>>;

export function updateImage(tx: WriteTx, id: ImageId, patch: ImagePatch): void {
  const db = sqlOf(tx);
  const sets: string[] = ['generation = generation + 1'];
  const vals: unknown[] = [];
  const col: Record<string, string> = {
    name: 'name',
    kind: 'kind',
    parentId: 'parent_id',
    virtualSize: 'virtual_size',
    source: 'source',
    labels: 'labels',
    snapSeq: 'snap_seq',
    snapshotAt: 'snapshot_at',
  };
  for (const [k, v] of Object.entries(patch)) {
    sets.push(`${col[k]} = ?`);
    vals.push(k === 'source' || k === 'labels' ? (v == null ? null : JSON.stringify(v)) : v);
  }
  prepared(db, `UPDATE images SET ${sets.join(', ')} WHERE id = ?`).run(...vals, id);
}

export function deleteImageRow(tx: WriteTx, id: ImageId): void {
  const db = sqlOf(tx);
  prepared(db, 'DELETE FROM segments WHERE image_id = ?').run(id);
  prepared(db, 'DELETE FROM images WHERE id = ?').run(id);
}
