/**
 * What an index says about a pack is a claim, checked against the pack
 * itself before anything depends on it: restic's rule, where a pack's own
 * header is the truth and the index a cache of it.
 *
 * Anyone who can write to the bucket can write an index (an append-only
 * writer too), naming any pack, offset and digest. A pack's name is the
 * SHA-256 of its bytes, trailer included, so the trailer of a pack strata
 * wrote says what that pack holds and cannot be changed under its name. A
 * place an index gives is *confirmed* when the pack exists and its trailer
 * lists that digest at that offset, with that length and codec; any other
 * place is a false claim, reported and never relied on.
 *
 * A trailer read this way costs one ranged GET of the pack's last 64 KiB
 * (two for a longer trailer). It can still be forged: anyone may upload a
 * new pack whose trailer lists blocks its fragments are not. Where that
 * matters (gc deleting a pack because another holds its blocks), the
 * fragment is checked against its digest too (verifyFragments).
 */
import { bucketCorrupt, isStrataError } from '../../errors.js';
import { decodeFragment, planRanges } from './fetch.js';
import { decodePackTrailer, packTrailerLength, type BlockPlace } from './index-file.js';
import { mapLimit } from '../pool.js';
import type { Remote } from '../remote.js';

export interface RemoteProblem {
  /** What kind of object is wrong. */
  object: 'manifest' | 'layer' | 'index' | 'pack' | 'block';
  id: string;
  message: string;
}

/** A pack's trailer, by place: digest@offset → the entry. */
export type Trailer = Map<string, BlockPlace>;

/** A trailer longer than this is refused unread: a 16 MiB pack of 2 KiB fragments has one of 384 KiB. */
export const MAX_TRAILER_BYTES = 64 * 1024 * 1024;
/** Read first from a pack's end: the whole trailer of a pack strata writes by default, in one GET. */
const TAIL_BYTES = 64 * 1024;
const GETS = 8;

export const placeKey = (p: Pick<BlockPlace, 'digest' | 'offset'>): string => `${p.digest.toString('hex')}@${p.offset}`;

export const trailerOf = (places: readonly BlockPlace[]): Trailer => new Map(places.map((p) => [placeKey(p), p]));

/** The trailer of pack `id` of `size` bytes, from its end: one ranged GET, two for a long trailer. */
export async function readPackTrailer(remote: Remote, id: string, size: number): Promise<BlockPlace[]> {
  const key = remote.keys.pack(id);
  let tail = await remote.bucket.getRange(key, Math.max(0, size - TAIL_BYTES), size);
  const need = packTrailerLength(tail, id);
  if (need > size) throw bucketCorrupt(`remote pack ${id} is malformed: a trailer of ${need} bytes in a pack of ${size}`, { pack: id });
  if (need > MAX_TRAILER_BYTES) throw bucketCorrupt(`remote pack ${id} has a trailer of ${need} bytes, more than strata reads (${MAX_TRAILER_BYTES})`, { pack: id });
  if (need > tail.length) tail = Buffer.concat([await remote.bucket.getRange(key, size - need, size - tail.length), tail]);
  return decodePackTrailer(tail, id, size);
}

/**
 * The trailers of `packs` (id → size), a few GETs at once. A pack whose
 * trailer cannot be decoded is a problem, and has none here; one gone
 * meanwhile (a gc beside a check) has none either.
 */
export async function readTrailers(remote: Remote, packs: ReadonlyMap<string, number>): Promise<{ trailers: Map<string, Trailer>; problems: RemoteProblem[] }> {
  const trailers = new Map<string, Trailer>();
  const problems: RemoteProblem[] = [];
  await mapLimit([...packs], GETS, async ([id, size]) => {
    try {
      trailers.set(id, trailerOf(await readPackTrailer(remote, id, size)));
    } catch (e) {
      if (isStrataError(e, 'E_CORRUPT') || isStrataError(e, 'E_RANGE')) problems.push({ object: 'pack', id, message: e.message });
      else if (!isStrataError(e, 'E_NOT_FOUND')) throw e;
    }
  });
  return { trailers, problems };
}

/** Whether pack p.pack's trailer lists p as the index gives it. */
export function confirmed(trailers: ReadonlyMap<string, Trailer>, p: BlockPlace): boolean {
  const t = trailers.get(p.pack)?.get(placeKey(p));
  return t !== undefined && t.length === p.length && t.codec === p.codec;
}

/**
 * Index `id`'s false claims, as one problem (or none): places in packs
 * that are not in the bucket, and places a pack's trailer does not list.
 * A pack whose trailer could not be read proves nothing either way: its
 * places are left to the problem reported about it.
 */
export function falseClaims(id: string, places: readonly BlockPlace[], packs: ReadonlyMap<string, number>, trailers: ReadonlyMap<string, Trailer>, unreadable: ReadonlySet<string>): RemoteProblem | undefined {
  let missing = 0;
  let unlisted = 0;
  let first: string | undefined;
  for (const p of places) {
    if (unreadable.has(p.pack)) continue;
    const absent = !packs.has(p.pack);
    if (!absent && confirmed(trailers, p)) continue;
    if (absent) missing++;
    else unlisted++;
    first ??= `block ${p.digest.toString('hex')} at ${p.offset} in pack ${p.pack}, which ${absent ? 'is not in the bucket' : 'lists no such fragment'}`;
  }
  if (first === undefined) return undefined;
  const what = [missing && `${missing} in packs not in the bucket`, unlisted && `${unlisted} that their pack's trailer does not list`].filter(Boolean).join(', ');
  return { object: 'index', id, message: `index ${id} is not to be trusted: of its ${places.length} places, ${what} (first: ${first})` };
}

/**
 * Checks fragments against their digests, neighbours in one ranged GET.
 * Returns those that are not their block (a pack that does not hold what
 * its trailer says); a pack gone or unreadable is an error, as any fetch.
 */
export async function verifyFragments(remote: Remote, places: readonly BlockPlace[]): Promise<BlockPlace[]> {
  const bad: BlockPlace[] = [];
  await mapLimit(planRanges(places, 64 * 1024, 8 * 1024 * 1024), GETS, async (r) => {
    const body = await remote.bucket.getRange(remote.keys.pack(r.pack), r.start, r.end);
    for (const p of r.places) {
      try {
        decodeFragment(p, body, p.offset - r.start);
      } catch (e) {
        if (!isStrataError(e, 'E_CORRUPT')) throw e;
        bad.push(p);
      }
    }
  });
  return bad;
}
