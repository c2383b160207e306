/**
 * strata remote delete: a remote image's manifests out of the bucket, unless
 * lazy clones recorded in the bucket still need them (dependents.ts).
 */
import { StrataError } from '../../errors.js';
import { hasDependents, listDependents, type Dependent } from './dependents.js';
import { listManifests, type Remote } from '../remote.js';

/**
 * Deletes the manifests of `image` (or the one whose id starts with `id`):
 * the image is no longer listed or pullable; its blocks go at the next
 * `remote gc` unless another manifest reaches them. Lazy clones of it (on
 * any host) would lose the blocks they have not fetched yet, as a clone of
 * a destroyed snapshot would: refused while the bucket records such clones
 * (dependents.ts), unless `force`. `dryRun` deletes nothing and says what
 * would go and who depends on it.
 */
export async function deleteRemoteImage(r: Remote, image: string, id?: string, opts: { force?: boolean; dryRun?: boolean } = {}): Promise<{ image: string; deleted: string[]; dryRun: boolean; dependents: Dependent[] }> {
  // By key, unread: a damaged manifest is deleted as readily as a good one.
  const pick = (await listManifests(r, image)).filter((m) => m.image === image && (id === undefined || m.id.startsWith(id)));
  if (pick.length === 0) throw new StrataError('E_NOT_FOUND', `remote ${r.config.name} has no image ${image}${id ? `@${id}` : ''}`, { remote: r.config.name, image });
  if (id !== undefined && pick.length > 1) throw new StrataError('E_BAD_INPUT', `${image}@${id} names ${pick.length} manifests; give more of the id`, { image, id });
  const ids = new Set(pick.map((m) => m.id));
  const dependents = (await listDependents(r, image)).filter((d) => ids.has(d.manifest));
  const dryRun = opts.dryRun === true;
  if (dependents.length > 0 && !opts.force && !dryRun) throw hasDependents(r, `image ${image}`, dependents);
  if (!dryRun) for (const m of pick) await r.bucket.remove(r.keys.manifest(image, m.id));
  return { image, deleted: pick.map((m) => m.id), dryRun, dependents };
}
