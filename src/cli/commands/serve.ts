import path from 'node:path';
import { Command } from 'commander';
import { badInput } from '../../errors.js';
import { faultPoint } from '../../store/core/index.js';
import { tuneMalloc } from '../../store/blocks/index.js';
// The NBD server (node:net, node:tls) is loaded only when serve runs: every other command starts faster.
const DEFAULT_PORT = 10809; // nbd/server.ts DEFAULT_PORT, the IANA port for NBD
import { runCommand } from '../context.js';
import { parseBytes, parseCount } from '../parse.js';
import { LOOPBACK, parseListen } from '../listen.js';
import { bitmapContextName } from '../../nbd/meta-contexts.js';

interface ServeOptions {
  socket?: string;
  listen?: string;
  allowRemote?: boolean;
  iopsLimit?: string;
  bandwidthLimit?: string;
  tlsCert?: string;
  tlsKey?: string;
  tlsCa?: string;
  shared?: string;
  inflightLimit?: string;
  bitmap: string[];
}

/**
 * The first line names the server's address (scripts match `^serving .* on (\S+)$`); then one line per export with its URI;
 * then, with --bitmap, the dirty-bitmap contexts every export offers.
 */
export function renderServing(what: string, address: string, exports: readonly { name: string; uri: string }[], bitmaps: readonly string[] = []): string {
  const w = Math.max(0, ...exports.map((e) => e.name.length));
  const lines = exports.map((e) => `  ${e.name.padEnd(w)}  ${e.uri}\n`);
  if (exports.length === 0) lines.push('  (no images yet: each one created is served as it appears)\n');
  if (bitmaps.length > 0) lines.push(`dirty bitmaps of every export: ${bitmaps.join(', ')}\n`);
  return `serving ${what} on ${address}\n${lines.join('')}`;
}

const collect = (value: string, previous: string[]): string[] => [...previous, value];

export const serveCommand = () =>
  new Command('serve')
    .description('serve images over NBD (leaves read-write, frozen images read-only) until SIGINT/SIGTERM')
    .argument('[names...]', 'images to export (default: every image, opened on demand)')
    .option('--socket <path>', 'listen on a Unix socket (mode 0600)')
    .option('--listen <host:port>', `listen on TCP (default 127.0.0.1:${DEFAULT_PORT})`)
    .option('--allow-remote', 'allow --listen on an address other than loopback')
    .option('--iops-limit <n>', 'per export: requests per second (token bucket, 1 s burst)')
    .option('--bandwidth-limit <bytes>', 'per export: bytes per second, e.g. 100M')
    .option('-e, --shared <n>', 'serve at most this many clients at once, refusing more in the handshake (default 16; 0 for no limit)')
    .option('--inflight-limit <bytes>', 'request and reply data held in memory over all clients; a client past it waits (default 128M)')
    .option('--tls-cert <file>', 'PEM certificate: require TLS (STARTTLS)')
    .option('--tls-key <file>', 'PEM private key for --tls-cert')
    .option('--tls-ca <file>', 'PEM CA bundle to verify client certificates')
    .option('--bitmap <snapshot>', 'offer qemu:dirty-bitmap:SNAPSHOT on every export: blocks that may differ from that frozen image (repeatable)', collect, [])
    .action(async (names: string[], o: ServeOptions, cmd: Command) =>
      runCommand(
        cmd,
        async (ctx) => {
          if (o.socket && o.listen) throw badInput('give either --socket or --listen, not both');
          if (!!o.tlsCert !== !!o.tlsKey) throw badInput('--tls-cert and --tls-key go together');
          const listen = o.socket ? undefined : parseListen(o.listen ?? `127.0.0.1:${DEFAULT_PORT}`, !!o.allowRemote);
          if (listen && !LOOPBACK.test(listen.host)) ctx.warn(`serving on ${listen.host}, reachable beyond this machine`);
          const iops = o.iopsLimit === undefined ? undefined : parseCount(o.iopsLimit, '--iops-limit', 'requests per second');
          const bandwidth = o.bandwidthLimit === undefined ? undefined : parseBytes(o.bandwidthLimit, 'bandwidth limit');
          if (iops === 0 || bandwidth === 0) throw badInput(`--${iops === 0 ? 'iops' : 'bandwidth'}-limit must be above 0 (leave it out for no limit)`);
          if (o.shared !== undefined && !/^\d+$/.test(o.shared)) throw badInput(`invalid --shared ${JSON.stringify(o.shared)}: expected a whole number of clients (0 for no limit)`);
          const maxConnections = o.shared === undefined ? undefined : Number(o.shared);
          const inflightLimit = o.inflightLimit === undefined ? undefined : parseBytes(o.inflightLimit, 'in-flight limit');
          if (o.tlsCa && !o.tlsCert) throw badInput('--tls-ca goes with --tls-cert and --tls-key');
          const tls = o.tlsCert && o.tlsKey ? (await import('../../nbd/tls-files.js')).readTlsFiles({ cert: o.tlsCert, key: o.tlsKey, ca: o.tlsCa }) : undefined;

          const [{ startNbdServer }, { storeCatalog }, { controlPath, startControl }, { LazyFetcher }, { openRemote }] = await Promise.all([
            import('../../nbd/server.js'),
            import('../../nbd/store-catalog.js'),
            import('../../nbd/control.js'),
            import('../../remote/store-side/lazy.js'),
            import('../../remote/remote.js'),
          ]);
          // A server lives long and its peak RSS is what a host budgets per served disk: give freed
          // buffers back to the kernel, and keep SQLite's and the segment cache small (the working
          // set of one served image's map is a few MiB).
          tuneMalloc();
          const store = await ctx.store({ sqliteCacheBytes: 4 * 1024 * 1024, cacheSegments: 1024 });
          // Other processes ask this server for snapshots of the leaves it writes through this socket.
          // Blocks of lazy clones still in a bucket are fetched on first read; remotes open on first need.
          const fetcher = new LazyFetcher(store, (name) => openRemote(store.dir, name), { log: ctx.logger });
          const catalog = storeCatalog(store, names, { control: controlPath(store.dir), remoteBlocks: fetcher, bitmaps: o.bitmap });
          let server;
          let control;
          try {
            control = await startControl(catalog.controlPath!, (req, conn) => catalog.control(req, conn));
            server = await startNbdServer({
              catalog,
              // The URI printed is for other processes, in other directories: absolute.
              socketPath: o.socket === undefined ? undefined : path.resolve(o.socket),
              host: listen?.host,
              port: listen?.port,
              iopsLimit: iops,
              bandwidthLimit: bandwidth,
              maxConnections,
              inflightLimit,
              tls,
              logger: ctx.logger,
            });
          } catch (e) {
            await control?.close();
            catalog.closeAll();
            fetcher.close();
            throw e;
          }
          // Listen for the stop signals before saying anything: whoever reads the "serving" line may
          // stop the server at once, and a signal with no listener kills the process unflushed.
          const stopped = new Promise<string>((resolve) => {
            process.once('SIGINT', () => resolve('SIGINT'));
            process.once('SIGTERM', () => resolve('SIGTERM'));
          });
          const bitmaps = [...new Set(o.bitmap)].map(bitmapContextName);
          // `bitmaps` only where --bitmap gave some: a plain server's line stays as it was.
          const exports = catalog.list().map((e) => ({ name: e.name, uri: server.uri(e.name), ...(e.bitmaps?.length ? { bitmaps: e.bitmaps.map(bitmapContextName) } : {}) }));
          // One write, so a reader that sees the first line sees every export's URI with it, and
          // the TLS and limits the server applies: a script sees its options took effect.
          if (ctx.json) process.stdout.write(JSON.stringify({ address: server.address, exports, ...server.terms }) + '\n');
          else process.stdout.write(renderServing(names.length ? exports.map((e) => e.name).join(', ') : 'all images', server.address, exports, bitmaps));
          ctx.logger.info({ address: server.address, exports: exports.map((e) => e.name) }, 'nbd server listening');
          faultPoint('serve.after-announce');
          const signal = await stopped;
          ctx.logger.info({ signal }, 'stopping: flushing and closing exports');
          await server.close();
          await control.close();
          catalog.closeAll();
          // What the exports held may now go back under the remotes' cache limits.
          await fetcher.trim();
          fetcher.close();
          // What lazy clones cost the bucket while this server ran (every request has been answered):
          // blocks fetched, bytes of the ranged GETs (compressed fragments and the gaps read across).
          const f = fetcher.stats;
          ctx.logger.info({ fetchedBlocks: f.blocks, fetchedBytes: f.bytes, gets: f.gets }, 'stopped');
          return undefined;
        },
        () => undefined,
      ),
    );
