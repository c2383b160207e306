/**
 * Check pass: the catalog. Every parent exists and no parent chain loops.
 */
import type { CheckContext } from './context.js';

export interface ImageRow {
  id: number;
  name: string;
  parent_id: number | null;
  own_blocks: number;
}

export interface Catalog {
  images: ImageRow[];
  byId: Map<number, ImageRow>;
}

export function checkCatalog(cx: CheckContext): Catalog {
  const { db, fault } = cx;
  const images = db.prepare('SELECT id, name, parent_id, own_blocks FROM images').all() as ImageRow[];
  const byId = new Map(images.map((i) => [i.id, i]));
  for (const img of images) {
    if (img.parent_id !== null && !byId.has(img.parent_id)) {
      fault('corruption', 'missing-parent', `image ${img.name}: parent id ${img.parent_id} is missing`);
      continue;
    }
    const seen = new Set<number>([img.id]);
    for (let p = img.parent_id; p !== null; ) {
      if (seen.has(p)) {
        fault('corruption', 'chain-loop', `image ${img.name}: parent chain loops (through ${byId.get(p)!.name})`);
        break;
      }
      seen.add(p);
      const row = byId.get(p);
      if (!row) break; // reported for the image that names it
      p = row.parent_id;
    }
  }
  return { images, byId };
}
