import { Command } from 'commander';
import { addRemote, listRemotes, loadRemote, parseRemoteUrl, remoteName, remoteUrl, removeRemote, setCacheSize, type RemoteConfig } from '../../remote/config.js';
import { cacheUsage, evictRemoteCache, type CacheUsage } from '../../remote/store-side/cache-limit.js';
import { checkRemote, type RemoteCheckResult } from '../../remote/upkeep/check.js';
import { remoteGc, type RemoteGcResult } from '../../remote/upkeep/gc.js';
import { dependentInfo, dependentText, type DependentInfo } from '../../remote/upkeep/dependents.js';
import { refuseForgetting } from '../../remote/store-side/held-remotely.js';
import { listRemoteImages, openRemote, type Remote } from '../../remote/remote.js';
import { deleteRemoteImage } from '../../remote/upkeep/delete-image.js';
import type { Store } from '../../store/core/index.js';
import { BLOCK_SIZE } from '../../store/core/index.js';
import { StrataError, badInput, isStrataError } from '../../errors.js';
import { parseRef } from './pull.js';
import { runCommand } from '../context.js';
import { warnSkipped } from '../skipped.js';
import { printable } from '../../untrusted.js';
import { localTime, table } from '../render.js';
import { humanBytes, parseBytes } from '../parse.js';

const describe = (c: RemoteConfig) => ({ name: c.name, url: remoteUrl(c), endpoint: c.endpoint ?? null, region: c.region ?? null, pathStyle: c.pathStyle ?? c.endpoint !== undefined });

/** A remote and its local cache: the limit and what is cached now. */
const describeWithCache = (store: Store, c: RemoteConfig) => ({ ...describe(c), cache: cacheUsage(store, c) });

/** --cache-size: a size as the other size options take it, or none (no limit). */
const parseCacheSize = (raw: string): number | undefined => (/^(none|unlimited)$/i.test(raw.trim()) ? undefined : parseBytes(raw, 'cache size'));

const cacheText = (u: CacheUsage) => `${humanBytes(u.cachedBytes)}${u.limit === null ? '' : ` of ${humanBytes(u.limit)}`}${u.inUseBytes > 0 ? ` (${humanBytes(u.inUseBytes)} in use)` : ''}`;

const addCommand = () =>
  new Command('add')
    .description('name a bucket (s3://BUCKET[/PREFIX], or a directory: file:///PATH) that images are pushed to and pulled from')
    .argument('<name>', 'remote name')
    .argument('<url>', 's3://BUCKET, s3://BUCKET/PREFIX or file:///PATH')
    .option('--endpoint <url>', 'S3 endpoint of Ceph RGW, MinIO, ... (default: AWS S3)')
    .option('--region <region>', 'S3 region (default: $AWS_REGION, else us-east-1)')
    .option('--no-path-style', 'virtual-host requests (BUCKET.host) instead of path-style (default with --endpoint)')
    .option('--no-check', 'do not reach the endpoint now')
    .option('--create', 'create the bucket (or directory) if it does not exist (without it, one that does not exist is an error, as with restic before init)')
    .option('--replace', 'replace a remote of that name')
    .option('--cache-size <size>', "keep at most this much of the remote's fetched blocks locally (512M, 10G; none: no limit)")
    .action(async (name: string, url: string, o: { endpoint?: string; region?: string; pathStyle: boolean; check: boolean; create?: boolean; replace?: boolean; cacheSize?: string }, cmd: Command) =>
      runCommand(
        cmd,
        async (ctx) => {
          if (o.create && !o.check) throw badInput('--create reaches the endpoint to make the bucket: leave out --no-check');
          await ctx.store();
          const config: RemoteConfig = { name: remoteName(name), ...parseRemoteUrl(url, o) };
          const cacheSize = o.cacheSize === undefined ? undefined : parseCacheSize(o.cacheSize);
          if (cacheSize !== undefined) config.cacheSize = cacheSize;
          addRemote(ctx.storeDir, config, { replace: o.replace });
          if (o.check) {
            // Made first, then reached. A mistyped bucket name must not become a new empty bucket:
            // it is created only when asked for.
            const r = openRemote(ctx.storeDir, name);
            try {
              if (o.create) await r.bucket.ensure();
              else await r.bucket.check();
            } catch (e) {
              removeRemote(ctx.storeDir, name);
              if (isStrataError(e, 'E_NOT_FOUND')) throw new StrataError('E_NOT_FOUND', e.message, { ...e.data, hint: `check the name, or create it: strata remote add ${name} ${url} --create` });
              throw e;
            } finally {
              r.close();
            }
          }
          return { ...describe(config), cacheSize: config.cacheSize };
        },
        (r) => `remote ${r.name} is ${r.url}${r.endpoint ? ` at ${r.endpoint}` : ''}${r.cacheSize !== undefined ? `, cache limit ${humanBytes(r.cacheSize)}` : ''}\n`,
      ),
    );

const lsCommand = () =>
  new Command('ls')
    .description('list the images in a remote (or, without a name, the remotes)')
    .argument('[name]', 'remote')
    .option('-a, --all', 'every push of each image, not only the newest')
    .action(async (name: string | undefined, o: { all?: boolean }, cmd: Command) =>
      runCommand(
        cmd,
        async (ctx) => {
          await ctx.store();
          if (name === undefined) {
            const store = await ctx.store();
            return { remotes: listRemotes(ctx.storeDir).map((c) => describeWithCache(store, c)), remote: undefined, images: undefined };
          }
          const r = openRemote(ctx.storeDir, name);
          try {
            const images = await listRemoteImages(r);
            return {
              remotes: undefined,
              remote: name,
              images: images.map((i) => ({ name: i.name, ...i.manifests[0], pushes: i.manifests.length, ...(o.all ? { manifests: i.manifests } : {}) })),
              skipped: r.skipped,
            };
          } finally {
            warnSkipped(r);
            r.close();
          }
        },
        (r) => {
          if (r.remotes) {
            const rows = r.remotes.map((c) => ({ name: c.name, url: c.url, endpoint: c.endpoint ?? (c.url.startsWith('s3:') ? '(AWS S3)' : '-'), cache: cacheText(c.cache) }));
            return table(rows, [['name', 'NAME'], ['url', 'URL'], ['endpoint', 'ENDPOINT'], ['cache', 'CACHED']]) || 'no remotes (strata remote add NAME s3://BUCKET --endpoint URL)\n';
          }
          const rows = r.images!.flatMap((i) =>
            (i.manifests ?? [i]).map((m) => ({ name: i.name, size: humanBytes(m.virtualSize), data: humanBytes(m.blocks * 4096), layers: m.layers, pushed: localTime(m.pushedAt), host: m.host, id: m.id.slice(0, 12) })),
          );
          return table(rows, [['name', 'NAME'], ['size', 'SIZE'], ['data', 'DATA'], ['layers', 'LAYERS'], ['pushed', 'PUSHED'], ['host', 'HOST'], ['id', 'MANIFEST']]) || `remote ${r.remote} holds no readable images\n`;
        },
      ),
    );

const rmCommand = () =>
  new Command('rm')
    .description("forget a remote and this store's cache of it (the bucket is not touched); refused while local images hold blocks only there")
    .argument('<name>', 'remote')
    .option('--force', 'forget it even though local images hold blocks only there (they cannot be read until it is added again)')
    .action(async (name: string, o: { force?: boolean }, cmd: Command) =>
      runCommand(
        cmd,
        async (ctx) => {
          const store = await ctx.store();
          loadRemote(ctx.storeDir, name);
          if (!o.force) refuseForgetting(store, name);
          removeRemote(ctx.storeDir, name);
          return { removed: name };
        },
        (r) => `forgot remote ${r.removed}\n`,
      ),
    );

/** Runs fn with the remote open, closing it after. */
async function withRemote<T>(storeDir: string, name: string, fn: (r: Remote) => Promise<T>): Promise<T> {
  const r = openRemote(storeDir, name);
  try {
    return await fn(r);
  } finally {
    r.close();
  }
}

const deleteCommand = () =>
  new Command('delete')
    .description("delete an image's manifests from a remote (all its pushes, or one); its blocks go at the next remote gc unless another image reaches them")
    .argument('<ref>', 'REMOTE/IMAGE, or REMOTE/IMAGE@MANIFEST for one push')
    .option('-n, --dry-run', 'say what would be deleted and which lazy clones depend on it; change nothing')
    .option('--force', 'delete even though lazy clones (on any host) still fetch its blocks')
    .action(async (ref: string, o: { dryRun?: boolean; force?: boolean }, cmd: Command) =>
      runCommand(
        cmd,
        async (ctx) => {
          const { remote, image, manifest } = parseRef(ref);
          await ctx.store();
          const r = await withRemote(ctx.storeDir, remote, (rem) => deleteRemoteImage(rem, image, manifest, o));
          return { remote, ...r, dependents: r.dependents.map(dependentInfo) };
        },
        (r) =>
          r.dependents.map((d) => `needed by lazy clone: ${dependentText(d)}\n`).join('') +
          (r.dryRun
            ? `would delete ${r.deleted.length} push(es) of ${r.image} from ${r.remote} (${r.deleted.map((id) => id.slice(0, 12)).join(', ')})` +
              `${r.dependents.length > 0 ? `; refused without --force: ${r.dependents.length} lazy clone(s) depend on it` : ''}\n`
            : `deleted ${r.deleted.length} push(es) of ${r.image} from ${r.remote} (${r.deleted.map((id) => id.slice(0, 12)).join(', ')}); strata remote gc ${r.remote} frees their blocks\n`),
      ),
    );

const renderGc = (r: Omit<RemoteGcResult, 'dependents'> & { dependents: DependentInfo[] }) =>
  r.problems.map((p) => `NOT TRUSTED: ${p.message}\n`).join('') +
  r.dependents.map((d) => `needed by lazy clone: ${dependentText(d)}${r.dryRun ? ' (refused without --force)' : ' (collected: --force)'}\n`).join('') +
  // The same sentence either way, so a dry run's line and the run's line compare word for word.
  `${r.dryRun ? 'would delete' : 'deleted'} ${r.packs.deleted} dead pack(s) and repack ${r.packs.repacked} sparse one(s) into ${r.packs.written}, ` +
  `${r.layers.deleted} unreachable layer(s); ${r.indexes.rewritten} index(es) rewritten, ${r.indexes.deleted} deleted\n` +
  `${r.manifests} manifest(s) reach ${r.layers.live} layer(s), ${r.blocks.live} block(s); packs ${humanBytes(r.bytes.before)} -> ${humanBytes(r.bytes.after)}\n` +
  (r.problems.length > 0 ? `${r.problems.length} object(s) not trusted, none relied on; strata remote check ${r.remote} reports what is wrong\n` : '');

const gcCommand = () =>
  new Command('gc')
    .description('delete packs and layers no manifest reaches, repack packs less than half live (runs alone: waits for no push, fails E_BUSY beside one)')
    .argument('<name>', 'remote')
    .option('-n, --dry-run', 'say what would be deleted and repacked; change nothing')
    .option('--repack-below <percent>', 'repack packs whose live blocks fill less than this', '50')
    .option('--force', 'collect deleted images even though lazy clones (on any host) still fetch their blocks')
    .action(async (name: string, o: { dryRun?: boolean; repackBelow: string; force?: boolean }, cmd: Command) =>
      runCommand(
        cmd,
        async (ctx) => {
          const pct = Number(o.repackBelow.replace(/%$/, ''));
          if (!Number.isFinite(pct) || pct < 0 || pct > 100) throw badInput(`--repack-below ${JSON.stringify(o.repackBelow)} is not a percentage from 0 to 100`, { repackBelow: o.repackBelow });
          await ctx.store();
          const r = await withRemote(ctx.storeDir, name, (rem) => remoteGc(rem, { dryRun: o.dryRun, repackBelow: pct / 100, force: o.force }));
          return { ...r, dependents: r.dependents.map(dependentInfo) };
        },
        renderGc,
      ),
    );

const renderRemoteCheck = (r: RemoteCheckResult) =>
  // A problem's message may quote what the bucket holds.
  r.problems.map((p) => `ERROR: ${printable(p.message)}\n`).join('') +
  `${r.manifests} manifest(s), ${r.layers} layer(s), ${r.indexes} index(es), ${r.packs} pack(s), ${r.blocks} live block(s)` +
  `${r.readData ? `, ${humanBytes(r.bytesRead)} of packs read and every block verified` : ' (metadata only; --read-data verifies every block)'}\n` +
  (r.waste.packs || r.waste.layers ? `waste for remote gc: ${r.waste.packs} pack(s) (${humanBytes(r.waste.bytes)}), ${r.waste.layers} layer(s)\n` : '') +
  (r.status === 'clean' ? `No errors were found on remote ${r.remote}.\n` : `${r.problems.length} problem(s): remote ${r.remote} is DAMAGED\n`);

const checkCommand = () =>
  new Command('check')
    .description('verify a remote: manifests, layers and indexes, and with --read-data every block of every pack (exit 0 clean, 2 damaged)')
    .argument('<name>', 'remote')
    .option('--read-data', 'download every pack and verify every block against its digest')
    .action(async (name: string, o: { readData?: boolean }, cmd: Command) => {
      let status = 0;
      await runCommand(
        cmd,
        async (ctx) => {
          await ctx.store();
          const r = await withRemote(ctx.storeDir, name, (rem) => checkRemote(rem, { readData: o.readData }));
          status = r.status === 'clean' ? 0 : 2;
          return r;
        },
        renderRemoteCheck,
      );
      // As strata check: the status is the finding; the report is printed in full either way.
      process.exitCode = status;
    });

const setCommand = () =>
  new Command('set')
    .description("change a remote's settings: its local cache limit")
    .argument('<name>', 'remote')
    .requiredOption('--cache-size <size>', "keep at most this much of the remote's fetched blocks locally (512M, 10G; none: no limit)")
    .action(async (name: string, o: { cacheSize: string }, cmd: Command) =>
      runCommand(
        cmd,
        async (ctx) => {
          const store = await ctx.store();
          const bytes = parseCacheSize(o.cacheSize);
          loadRemote(ctx.storeDir, name);
          // Applied at the next fetch, or now with strata remote evict.
          return describeWithCache(store, setCacheSize(ctx.storeDir, name, bytes));
        },
        (r) => `remote ${r.name}: cache limit ${r.cache.limit === null ? 'none' : humanBytes(r.cache.limit)}, ${humanBytes(r.cache.cachedBytes)} cached\n`,
      ),
    );

const evictCommand = () =>
  new Command('evict')
    .description("drop local copies of the remote's fetched blocks that no local image owns, oldest fetched first (they are fetched again when read)")
    .argument('<name>', 'remote')
    .option('--to <size>', 'bring the cache down to this size (default: its limit, else 0)')
    .action(async (name: string, o: { to?: string }, cmd: Command) =>
      runCommand(
        cmd,
        async (ctx) => {
          const store = await ctx.store();
          const to = o.to === undefined ? undefined : parseBytes(o.to, 'size');
          const r = openRemote(ctx.storeDir, name);
          try {
            const rep = await evictRemoteCache(store, r, to ?? r.config.cacheSize ?? 0);
            const B = BLOCK_SIZE;
            return {
              remote: name,
              to: rep.to,
              evictedBlocks: rep.evicted,
              evictedBytes: rep.evicted * B,
              keptInUseBlocks: rep.inUse,
              keptInUseBytes: rep.inUse * B,
              unplacedBlocks: rep.unplaced,
              damagedBlocks: rep.damaged,
              cachedBytesBefore: rep.before.blocks * B,
              cachedBytesAfter: rep.after * B,
            };
          } finally {
            r.close();
          }
        },
        (r) =>
          `evicted ${r.evictedBlocks} block(s) (${humanBytes(r.evictedBytes)}) of ${r.remote}'s cache: ${humanBytes(r.cachedBytesBefore)} -> ${humanBytes(r.cachedBytesAfter)}` +
          `${r.keptInUseBlocks > 0 ? `; kept ${r.keptInUseBlocks} block(s) (${humanBytes(r.keptInUseBytes)}) in use by open images` : ''}` +
          `${r.unplacedBlocks > 0 ? `; ${r.unplacedBlocks} not in the remote's index cache, kept` : ''}` +
          `${r.damagedBlocks > 0 ? `; ${r.damagedBlocks} damaged, kept (strata check)` : ''}\n`,
      ),
    );

export const remoteCommand = () => {
  const cmd = new Command('remote').description('buckets on S3 (or Ceph RGW, MinIO) that stores push images to and pull them from');
  for (const make of [addCommand, lsCommand, setCommand, evictCommand, rmCommand, deleteCommand, gcCommand, checkCommand]) cmd.addCommand(make());
  return cmd;
};
