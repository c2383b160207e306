/**
 * The chain matcher: which local frozen image already is a layer of a
 * remote manifest's chain, so pull and lazy clone use it as it is instead
 * of building it again. Known from the remote's cache (a layer this store
 * pulled, cloned or pushed, at the generation it had then), else found by
 * name and compared by its layer id (layers.ts).
 */
import { StrataError } from '../../errors.js';
import { isFrozen, type ImageRecord, type Store } from '../../store/core/index.js';
import { chainOf, findImage, findImageAt } from '../../store/images/index.js';
import { openImage } from '../../image/image.js';
import { lazyRemoteOf } from '../lazy-source.js';
import { localLayer } from './layers.js';
import type { ManifestLayer } from '../objects/manifest.js';
import type { Remote } from '../remote.js';

/**
 * A local frozen image equal to `ml` over `parent`, if there is one.
 * E_EXISTS when an image of that name is something else.
 */
export function localEqual(store: Store, remote: Remote, ml: ManifestLayer, parent: ImageRecord | null): ImageRecord | undefined {
  const fits = (r: ImageRecord) => isFrozen(r) && r.parentId === (parent?.id ?? null) && r.virtualSize === ml.virtualSize;
  for (const { imageId, generation } of remote.cache.imagesWithLayer(ml.layer)) {
    const r = findImageAt(store, imageId as ImageRecord['id'], generation);
    if (r && fits(r)) return r;
  }
  const named = findImage(store, ml.name);
  if (!named) return undefined;
  const clash = (why: string) =>
    new StrataError('E_EXISTS', `this store has an image named ${ml.name} that ${why}; rename it (strata rename) to pull ${remote.config.name}'s`, { image: ml.name });
  if (!fits(named)) throw clash(`is not the same ${parent ? `layer over ${parent.name}` : 'base'}`);
  // Its blocks still remote are fetched from the remote it was cloned from: never reused for another's image.
  const from = lazyRemoteOf(named);
  if (from !== undefined && from !== remote.config.name) throw clash(`is a layer cloned lazily from remote ${from}`);
  const img = openImage(store, named.name);
  try {
    const mine = localLayer(store, chainOf(store, img.record));
    if (mine.id !== ml.layer) throw clash('holds other data');
    remote.cache.setLayer(named.id, named.generation, mine.id);
    return named;
  } finally {
    img.close();
  }
}
