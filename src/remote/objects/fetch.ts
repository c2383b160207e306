/**
 * Fetching blocks from packs: neighbouring fragments of one pack in one
 * ranged GET (a gap of up to `gapBytes` is read and dropped: one request
 * costs more than a few KiB on the wire), a few GETs at once, and every
 * block decoded and checked against its digest before anyone sees it. A
 * block whose bytes do not match is E_CORRUPT, never written or served.
 */
import { StrataError, bucketCorrupt, remoteMissing } from '../../errors.js';
import { decompressBlock } from '../../store/blocks/index.js';
import { BLOCK_SIZE } from '../../store/core/index.js';
import type { BlockPlace } from './index-file.js';
import { sha256 } from './layout.js';
import { mapLimit } from '../pool.js';
import { syncIndexes, type Remote } from '../remote.js';

export interface FetchOptions {
  /** Read across gaps up to this size between fragments (default 256 KiB). */
  gapBytes?: number;
  /** A range stops growing at this size (default 8 MiB). */
  rangeBytes?: number;
  /** GETs in flight (default 8). */
  gets?: number;
}

export interface FetchStats {
  gets: number;
  bytes: number;
  blocks: number;
}

interface Range {
  pack: string;
  start: number;
  end: number;
  places: BlockPlace[];
}

/** Groups places into ranged GETs: by pack, in offset order, neighbours together. Pure. */
export function planRanges(places: readonly BlockPlace[], gapBytes: number, rangeBytes: number): Range[] {
  const byPack = new Map<string, BlockPlace[]>();
  for (const p of places) {
    let l = byPack.get(p.pack);
    if (!l) byPack.set(p.pack, (l = []));
    l.push(p);
  }
  const out: Range[] = [];
  for (const [pack, list] of [...byPack].sort((a, b) => (a[0] < b[0] ? -1 : 1))) {
    list.sort((a, b) => a.offset - b.offset);
    let cur: Range | undefined;
    for (const p of list) {
      const end = p.offset + p.length;
      if (cur && p.offset - cur.end <= gapBytes && end - cur.start <= rangeBytes) {
        cur.end = Math.max(cur.end, end);
        cur.places.push(p);
      } else {
        cur = { pack, start: p.offset, end, places: [p] };
        out.push(cur);
      }
    }
  }
  return out;
}

/** Decodes one fragment and checks it is the block its digest names. */
export function decodeFragment(p: BlockPlace, src: Buffer, at: number, out: Buffer = Buffer.allocUnsafe(BLOCK_SIZE)): Buffer {
  if (p.codec === 0) {
    if (p.length !== BLOCK_SIZE) throw bucketCorrupt(`a raw fragment in pack ${p.pack} is ${p.length} bytes, not ${BLOCK_SIZE}`, { pack: p.pack });
    src.copy(out, 0, at, at + BLOCK_SIZE);
  } else decompressBlock(p.codec, src, at, p.length, out, 0);
  if (!sha256(out).equals(p.digest)) {
    throw bucketCorrupt(`block ${p.digest.toString('hex')} at ${p.offset} in pack ${p.pack} does not match its digest`, { pack: p.pack, digest: p.digest.toString('hex') });
  }
  return out;
}

/**
 * Fetches, decodes and verifies `places`, handing each block to onBlock
 * (its buffer is the caller's) once.
 *
 * A place that fails is not the end of its block: an index is anyone's to
 * write, so a place may be false (a pack that does not hold the block
 * there), and a pack may be gone (repacked or collected by `remote gc`
 * since our cache was read: the cache is then synced with the bucket's
 * indexes, once). Each block not yet delivered is fetched again from a
 * place of it not yet tried, until none is left: then a block whose bytes
 * never matched is E_CORRUPT, one the bucket's indexes no longer place in
 * a pack is E_NOT_FOUND. A bucket that cannot be read is E_IO at once.
 */
export async function fetchBlocks(remote: Remote, places: readonly BlockPlace[], onBlock: (p: BlockPlace, data: Buffer) => void, opts: FetchOptions = {}): Promise<FetchStats> {
  const stats: FetchStats = { gets: 0, bytes: 0, blocks: 0 };
  const done = new Set<string>();
  const deliver = (p: BlockPlace, data: Buffer) => {
    const hex = p.digest.toString('hex');
    if (done.has(hex)) return;
    done.add(hex);
    onBlock(p, data);
    stats.blocks++;
  };
  const tried = new Set<string>();
  const placeKey = (p: BlockPlace) => `${p.pack}@${p.offset}`;
  let synced = false;
  for (let todo = places; todo.length > 0; ) {
    for (const p of todo) tried.add(`${p.digest.toString('hex')}:${placeKey(p)}`);
    const failed = await fetchRanges(remote, todo, deliver, opts, stats);
    if (failed.length === 0) break;
    const gone = failed.find((f) => f.error.code === 'E_NOT_FOUND');
    if (gone && !synced) {
      await syncIndexes(remote);
      synced = true;
    }
    const next: BlockPlace[] = [];
    for (const { place: p, error } of failed) {
      const hex = p.digest.toString('hex');
      if (done.has(hex) || next.some((q) => q.digest.equals(p.digest))) continue;
      const known = remote.cache.places(p.digest);
      const other = known.find((q) => !tried.has(`${hex}:${placeKey(q)}`));
      if (other) next.push(other);
      else if (known.length === 0) throw remoteMissing(`remote ${remote.config.name}: block ${hex} is in no pack of ${remote.bucket.where} any more`, { digest: hex }, error);
      else throw error.code === 'E_NOT_FOUND' ? remoteMissing(`remote ${remote.config.name}: pack ${p.pack}, which holds block ${hex}, is not in ${remote.bucket.where}`, { digest: hex, pack: p.pack }, error) : error;
    }
    todo = next;
  }
  return stats;
}

/** Fetches `places`; returns those that failed: their pack gone (E_NOT_FOUND) or their bytes not their block, or not there at all (E_CORRUPT). */
async function fetchRanges(remote: Remote, places: readonly BlockPlace[], deliver: (p: BlockPlace, data: Buffer) => void, opts: FetchOptions, stats: FetchStats): Promise<{ place: BlockPlace; error: StrataError }[]> {
  const failed: { place: BlockPlace; error: StrataError }[] = [];
  const ranges = planRanges(places, opts.gapBytes ?? 256 * 1024, opts.rangeBytes ?? 8 * 1024 * 1024);
  await mapLimit(ranges, opts.gets ?? 8, async (r) => {
    let body: Buffer;
    try {
      body = await remote.bucket.getRange(remote.keys.pack(r.pack), r.start, r.end);
    } catch (e) {
      if (!(e instanceof StrataError && (e.code === 'E_NOT_FOUND' || e.code === 'E_RANGE'))) throw e;
      // A range past the pack's end: the places in it are false (an index said so), as a fragment that is not its block.
      for (const p of r.places) failed.push({ place: p, error: e.code === 'E_RANGE' ? bucketCorrupt(`block ${p.digest.toString('hex')} at ${p.offset} in pack ${p.pack}: ${e.message}`, { pack: p.pack }) : e });
      return;
    }
    stats.gets++;
    stats.bytes += body.length;
    for (const p of r.places) {
      let data: Buffer;
      try {
        data = decodeFragment(p, body, p.offset - r.start);
      } catch (e) {
        if (!(e instanceof StrataError && e.code === 'E_CORRUPT')) throw e;
        failed.push({ place: p, error: e });
        continue;
      }
      deliver(p, data);
    }
  });
  return failed;
}
