/**
 * What this store's images hold only in a remote's bucket, as a store-wide
 * question: `check` reports it (and with --remote confirms the bucket still
 * has it), `remote rm` refuses to forget a remote local images still need.
 * The per-image figures come from store/remote-usage.ts.
 */
import { StrataError } from '../../errors.js';
import { descendantsOf, getImageById } from '../../store/images/index.js';
import { remoteOnlyByImage, type RemoteOnly } from '../../store/upkeep/index.js';
import { remotePlacesOf } from '../../store/blocks/index.js';
import type { Store } from '../../store/core/index.js';
import { BLOCK_SIZE, type ImageId } from '../../store/core/index.js';
import { confirmed, readTrailers } from '../objects/claims.js';
import type { BlockPlace } from '../objects/index-file.js';
import { listIds, syncIndexes, type Remote } from '../remote.js';

export interface HeldRemotely {
  remote: string;
  /** Distinct blocks held only in that remote's bucket. */
  blocks: number;
  bytes: number;
  /** Local images that need them: those whose own maps name them, and the images over those. */
  images: string[];
}

/** The images whose own maps name any of `slots` of `remote` (every such slot when `slots` is undefined), with the images over them. */
function needing(store: Store, only: RemoteOnly, remote: string, slots?: ReadonlySet<number>): string[] {
  const ids = new Set<ImageId>();
  for (const [id, byRemote] of only) {
    const mine = byRemote.get(remote);
    if (!mine) continue;
    if (slots && ![...mine].some((s) => slots.has(s))) continue;
    ids.add(id);
    for (const d of descendantsOf(store, id)) ids.add(d.id);
  }
  return [...ids].map((id) => getImageById(store, id).name).sort();
}

/** Per remote, what local images hold only there. */
export function heldRemotely(store: Store): HeldRemotely[] {
  const only = remoteOnlyByImage(store);
  const slots = new Map<string, Set<number>>();
  for (const byRemote of only.values()) {
    for (const [remote, s] of byRemote) {
      let all = slots.get(remote);
      if (!all) slots.set(remote, (all = new Set()));
      for (const x of s) all.add(x);
    }
  }
  return [...slots]
    .sort(([a], [b]) => (a < b ? -1 : 1))
    .map(([remote, s]) => ({ remote, blocks: s.size, bytes: s.size * BLOCK_SIZE, images: needing(store, only, remote) }));
}

const names = (l: readonly string[]) => (l.length > 5 ? `${l.slice(0, 5).join(', ')} and ${l.length - 5} more` : l.join(', '));

/** `remote rm NAME`: refused while local images hold blocks only in that remote's bucket (forgetting it would make them unreadable). */
export function refuseForgetting(store: Store, name: string): void {
  const h = heldRemotely(store).find((x) => x.remote === name);
  if (!h) return;
  throw new StrataError(
    'E_HAS_DEPENDENTS',
    `remote ${name} holds ${h.blocks} block(s) (${h.bytes} bytes) that ${h.images.length} local image(s) have nowhere else (${names(h.images)}); ` +
      'read them whole first (strata export IMAGE FILE fetches every block), remove them, or use --force',
    { remote: name, blocks: h.blocks, bytes: h.bytes, images: h.images },
  );
}

export interface RemoteConfirmation {
  remote: string;
  /** Remote-only blocks whose place was confirmed by its pack's trailer. */
  confirmedBlocks: number;
  /** Blocks whose recorded place and every place the indexes give are gone or unconfirmed. */
  missingBlocks: number;
  missingBytes: number;
  /** The local images those blocks leave unreadable (in part). */
  images: string[];
}

/**
 * `check --remote`: asks `remote`'s bucket whether it still holds every block
 * this store holds only there. A block is there when its pack's trailer
 * (claims.ts) lists it at its recorded place, or at another place the
 * bucket's indexes give (remote gc repacks). One listing of the packs, one
 * trailer read per pack in use; no block is downloaded.
 */
export async function confirmHeld(store: Store, r: Remote): Promise<RemoteConfirmation> {
  const name = r.config.name;
  const only = remoteOnlyByImage(store);
  const mine = new Set<number>();
  for (const byRemote of only.values()) for (const s of byRemote.get(name) ?? []) mine.add(s);
  const places = remotePlacesOf(store, mine);
  await syncIndexes(r);
  const packs = new Map((await listIds(r, 'packs')).map((o) => [o.id, o.size]));
  const candidates = new Map<number, BlockPlace[]>();
  const wanted = new Map<string, number>();
  for (const [slot, p] of places) {
    const all = [{ ...p, hint: 0 }, ...r.cache.places(p.digest)].filter((q) => packs.has(q.pack));
    candidates.set(slot, all);
    for (const q of all) wanted.set(q.pack, packs.get(q.pack)!);
  }
  const { trailers } = await readTrailers(r, wanted);
  const missing = new Set<number>();
  for (const [slot] of places) if (!candidates.get(slot)!.some((q) => confirmed(trailers, q))) missing.add(slot);
  return {
    remote: name,
    confirmedBlocks: places.size - missing.size,
    missingBlocks: missing.size,
    missingBytes: missing.size * BLOCK_SIZE,
    images: missing.size > 0 ? needing(store, only, name, missing) : [],
  };
}
