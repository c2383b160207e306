import { Command } from 'commander';
import { addRemote, listRemotes, parseEndpoint, parseS3Url, remoteName, remoteUrl, removeRemote, type RemoteConfig } from '../../remote/config.js';
import { listRemoteImages, openRemote } from '../../remote/remote.js';
import { runCommand } from '../context.js';
import { localTime, table } from '../render.js';
import { humanBytes } from '../parse.js';

const describe = (c: RemoteConfig) => ({ name: c.name, url: remoteUrl(c), endpoint: c.endpoint ?? null, region: c.region ?? null, pathStyle: c.pathStyle ?? c.endpoint !== undefined });

const addCommand = () =>
  new Command('add')
    .description('name a bucket (s3://BUCKET[/PREFIX]) that images are pushed to and pulled from')
    .argument('<name>', 'remote name')
    .argument('<url>', 's3://BUCKET or s3://BUCKET/PREFIX')
    .option('--endpoint <url>', 'S3 endpoint of Ceph RGW, MinIO, ... (default: AWS S3)')
    .option('--region <region>', 'S3 region (default: $AWS_REGION, else us-east-1)')
    .option('--no-path-style', 'virtual-host requests (BUCKET.host) instead of path-style (default with --endpoint)')
    .option('--no-check', 'do not reach the endpoint now')
    .option('--replace', 'replace a remote of that name')
    .action(async (name: string, url: string, o: { endpoint?: string; region?: string; pathStyle: boolean; check: boolean; replace?: boolean }, cmd: Command) =>
      runCommand(
        cmd,
        async (ctx) => {
          await ctx.store();
          const { bucket, prefix } = parseS3Url(url);
          const config: RemoteConfig = { name: remoteName(name), bucket, prefix };
          if (o.endpoint !== undefined) config.endpoint = parseEndpoint(o.endpoint);
          if (o.region !== undefined) config.region = o.region;
          if (!o.pathStyle || o.endpoint === undefined) config.pathStyle = o.pathStyle && o.endpoint !== undefined;
          addRemote(ctx.storeDir, config, { replace: o.replace });
          if (o.check) {
            // Made first, then reached: the bucket is created by the first push if it does not exist.
            const r = openRemote(ctx.storeDir, name);
            try {
              await r.bucket.ensure();
            } catch (e) {
              removeRemote(ctx.storeDir, name);
              throw e;
            } finally {
              r.close();
            }
          }
          return describe(config);
        },
        (r) => `remote ${r.name} is ${r.url}${r.endpoint ? ` at ${r.endpoint}` : ''}\n`,
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
          if (name === undefined) return { remotes: listRemotes(ctx.storeDir).map(describe), remote: undefined, images: undefined };
          const r = openRemote(ctx.storeDir, name);
          try {
            const images = await listRemoteImages(r);
            return {
              remotes: undefined,
              remote: name,
              images: images.map((i) => ({ name: i.name, ...i.manifests[0], pushes: i.manifests.length, ...(o.all ? { manifests: i.manifests } : {}) })),
            };
          } finally {
            r.close();
          }
        },
        (r) => {
          if (r.remotes) return table(r.remotes.map((c) => ({ name: c.name, url: c.url, endpoint: c.endpoint ?? '(AWS S3)' })), [['name', 'NAME'], ['url', 'URL'], ['endpoint', 'ENDPOINT']]) || 'no remotes (strata remote add NAME s3://BUCKET --endpoint URL)\n';
          const rows = r.images!.flatMap((i) =>
            (i.manifests ?? [i]).map((m) => ({ name: i.name, size: humanBytes(m.virtualSize), data: humanBytes(m.blocks * 4096), layers: m.layers, pushed: localTime(m.pushedAt), host: m.host, id: m.id.slice(0, 12) })),
          );
          return table(rows, [['name', 'NAME'], ['size', 'SIZE'], ['data', 'DATA'], ['layers', 'LAYERS'], ['pushed', 'PUSHED'], ['host', 'HOST'], ['id', 'MANIFEST']]) || `remote ${r.remote} holds no images\n`;
        },
      ),
    );

const rmCommand = () =>
  new Command('rm')
    .description("forget a remote and this store's cache of it (the bucket is not touched)")
    .argument('<name>', 'remote')
    .action(async (name: string, _o, cmd: Command) =>
      runCommand(
        cmd,
        async (ctx) => {
          await ctx.store();
          removeRemote(ctx.storeDir, name);
          return { removed: name };
        },
        (r) => `forgot remote ${r.removed}\n`,
      ),
    );

export const remoteCommand = () => {
  const cmd = new Command('remote').description('buckets on S3 (or Ceph RGW, MinIO) that stores push images to and pull them from');
  for (const make of [addCommand, lsCommand, rmCommand]) cmd.addCommand(make());
  return cmd;
};
