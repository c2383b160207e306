import { canCompress, compressionText, storeCompression, nativeStatus } from '../../store/blocks/index.js';
import { Command } from 'commander';
import { schemaVersion, splitSnapshotName, storeDamage, type StoreDamage } from '../../store/core/index.js';
import { damageText } from './stats.js';
import { STRATA_VERSION } from '../version.js';
import { countVisibleImages } from '../../store/images/index.js';
import { describeImage, isContainer, type ImageInfo } from '../../image/listing.js';
import type { Store } from '../../store/core/index.js';
import { blockTotals } from '../../image/usage.js';
import { runCommand } from '../context.js';
import { humanBytes } from '../parse.js';
import { keyValues, localTime } from '../render.js';

/**
 * Where an import came from, as a sentence: "raw file /srv/a.raw (4 MiB)",
 * "qcow2 v3 file /srv/b.qcow2, 64 KiB clusters, snapshot snap1". Keys this
 * does not know (a later version's) follow as key=value.
 */
export function sourceText(source: Record<string, unknown>): string {
  if (source.format === 'oci-layer') {
    return `OCI layer ${String(source.layer)}: ${String(source.digest ?? '(docker-archive)')}, diffID ${String(source.diffId)}, chain ID ${String(source.chainId)}, ext4 of ${humanBytes(Number(source.fsBytes))}`;
  }
  if (isContainer(source)) {
    const { format, file, reference, manifestDigest, configDigest, platform, layers } = source;
    return `${String(format)}:${String(file)}${reference ? ` ${String(reference)}` : ''}, ${platform ? `${String(platform)}, ` : ''}${String(layers)} layers, ${manifestDigest ? `manifest ${String(manifestDigest)}, ` : ''}config ${String(configDigest)}`;
  }
  // fileBytes and modifiedAt only tell a changed file from the one imported: not worth a line.
  const { format, file, size, clusterSize, version, snapshot, fileBytes: _bytes, modifiedAt: _at, ...rest } = source;
  const parts = [`${String(format ?? 'unknown')}${version !== undefined ? ` v${String(version)}` : ''} file ${String(file ?? '?')}${typeof size === 'number' ? ` (${humanBytes(size)})` : ''}`];
  if (typeof clusterSize === 'number') parts.push(`${humanBytes(clusterSize)} clusters`);
  if (snapshot !== undefined) parts.push(`snapshot ${String(snapshot)}`);
  for (const [k, v] of Object.entries(rest)) parts.push(`${k}=${typeof v === 'string' ? v : JSON.stringify(v)}`);
  return parts.join(', ');
}

/** Chains longer than this show their top three and bottom two links; --json has them all. */
const CHAIN_SHOWN = 7;

/** `vm -> vm@snap30 -> vm@snap29 -> … 26 more snapshots … -> vm@snap1 -> debian`: one readable line at any depth. */
export function chainText(chain: readonly string[]): string {
  if (chain.length <= CHAIN_SHOWN) return chain.join(' -> ');
  const hidden = chain.slice(3, -2);
  const what = hidden.every((n) => splitSnapshotName(n) !== null) ? 'snapshots' : 'images';
  return [...chain.slice(0, 3), `… ${hidden.length} more ${what} …`, ...chain.slice(-2)].join(' -> ');
}

export interface StoreInfo {
  store: string;
  schemaVersion: number;
  images: number;
  /** Distinct blocks, their bytes uncompressed, and what they take on disk (image/usage.ts blockTotals). */
  distinctBlocks: number;
  distinctBytes: number;
  storedBytes: number;
  /** The store's damage mark (store/core/damage.ts), null when it has none: a marked store refuses writes. */
  damage: StoreDamage | null;
  /** The store's compression for imports, and which codecs this process can write. */
  compression: { setting: string; codecs: string[] };
  native: { mode: 'native' | 'fallback'; reason?: string };
  /** How a lease's holder is known to be alive: a kernel lock (any PID namespace), or its pid (this namespace only). */
  leases: 'ofd-lock' | 'pid';
  node: string;
  strata: string;
}

export function describeStore(store: Store): StoreInfo {
  return {
    store: store.dir,
    schemaVersion: schemaVersion(store),
    images: countVisibleImages(store),
    ...(({ distinctBlocks, distinctBytes, storedBytes }) => ({ distinctBlocks, distinctBytes, storedBytes }))(blockTotals(store)),
    damage: storeDamage(store) ?? null,
    compression: { setting: compressionText(storeCompression(store)), codecs: (['zstd', 'lz4', 'lz4hc'] as const).filter(canCompress) },
    native: nativeStatus(),
    leases: store.locks.supported ? 'ofd-lock' : 'pid',
    node: process.version,
    strata: STRATA_VERSION,
  };
}

function renderStore(r: StoreInfo): string {
  return keyValues([
    ['store', r.store],
    ['schema version', r.schemaVersion],
    ['images', r.images],
    ['distinct blocks', `${r.distinctBlocks} (${humanBytes(r.distinctBytes)} uncompressed)`],
    ['stored on disk', humanBytes(r.storedBytes)],
    ...(r.damage ? [['DAMAGED', damageText(r.damage)] as [string, string]] : []),
    ['compression', `${r.compression.setting} for imports; can write ${r.compression.codecs.length ? r.compression.codecs.join(', ') : 'none (native addon without libzstd/liblz4)'}`],
    ['native addon', r.native.mode === 'native' ? 'in use (punch-hole, SEEK_DATA/SEEK_HOLE, OFD locks)' : `fallback: ${r.native.reason ?? 'not built'}`],
    ['leases', r.leases === 'ofd-lock' ? 'kernel locks on STORE/lock (safe across containers)' : 'pid checks (one PID namespace only: build the native addon to share a store with containers)'],
    ['strata', `${r.strata} on node ${r.node}`],
  ]);
}

export const infoCommand = () =>
  new Command('info')
    .description('show one image (kind, parent, chain, sizes, origin), or without a name the store (and whether the native addon is in use)')
    .argument('[name]', 'image')
    .action(async (name: string | undefined, _o, cmd: Command) =>
      runCommand<ImageInfo | StoreInfo>(
        cmd,
        async (ctx) => (name === undefined ? describeStore(await ctx.store()) : describeImage(await ctx.store(), name)),
        (r) =>
          'store' in r
            ? renderStore(r)
            : keyValues([
            ['name', r.name],
            ['kind', r.kind + (r.writable ? ' (writable)' : ' (read-only)')],
            ['parent', r.parent ?? '-'],
            ['chain', chainText(r.chain)],
            ['virtual size', `${humanBytes(r.virtualSize)} (${r.virtualSize} bytes)`],
            ['own bytes', `${humanBytes(r.ownBytes)} (${r.ownBytes} bytes)`],
            ['created', localTime(r.createdAt)],
            ...(r.source ? ([['source', sourceText(r.source)]] as [string, string][]) : []),
            ...(r.lazy
              ? ([['lazy', `${Object.entries(r.lazy.remotes).map(([n, b]) => `${humanBytes(b)} only in remote ${n}`).join(', ')}, fetched on first read`]] as [string, string][])
              : []),
            ...(r.layers ?? []).map((l): [string, string] => [`  ${l.name}`, `OCI layer ${l.layer}: ${l.digest ?? `diffID ${l.diffId}`}`]),
          ]),
      ),
    );
