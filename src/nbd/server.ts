/**
 * The NBD server: listens on a Unix socket or TCP, runs one Connection per
 * client, and shares one BlockDevice per export name among them.
 *
 * Usage:
 *   const srv = await startNbdServer({ catalog, socketPath: '/run/strata.sock' });
 *   // qemu-img info 'nbd+unix:///leaf?socket=/run/strata.sock'
 *   await srv.close();
 */
import { chmod, unlink } from 'node:fs/promises';
import * as net from 'node:net';
import * as tls from 'node:tls';
import { StrataError, badInput } from '../errors.js';
import { Connection } from './connection.js';
import { ExportRegistry, type ExportCatalog } from './exports.js';
import { silentLogger, type Logger } from '../log.js';

export type { ExportCatalog } from './exports.js';
export type { Logger } from '../log.js';

export interface NbdServerOptions {
  catalog: ExportCatalog;
  /** Unix socket, created mode 0600. */
  socketPath?: string;
  /** Default 127.0.0.1:10809 when no socketPath. */
  host?: string;
  port?: number;
  /** Per export, token buckets with one second of burst. */
  iopsLimit?: number;
  bandwidthLimit?: number;
  /** Largest READ/WRITE accepted; default 32 MiB. */
  maxPayload?: number;
  logger?: Logger;
  /** When set, clients must NBD_OPT_STARTTLS before anything else. */
  tls?: { cert: Buffer; key: Buffer; ca?: Buffer };
}

export interface NbdServer {
  /** An NBD URI for nbdinfo/qemu (append the export name after the last '/'). */
  address: string;
  /** Stops accepting, ends every connection, flushes and closes all devices. */
  close(): Promise<void>;
}

export const DEFAULT_PORT = 10809;
export const DEFAULT_MAX_PAYLOAD = 32 * 1024 * 1024;
/** Graceful end of connections at close() before they are destroyed. */
const CLOSE_GRACE_MS = 2000;

export async function startNbdServer(opts: NbdServerOptions): Promise<NbdServer> {
  const maxPayload = opts.maxPayload ?? DEFAULT_MAX_PAYLOAD;
  if (!Number.isInteger(maxPayload) || maxPayload < 4096 || maxPayload > 0x7fffffff) {
    throw badInput('maxPayload must be an integer between 4096 and 2^31-1', { maxPayload });
  }
  for (const k of ['iopsLimit', 'bandwidthLimit'] as const) {
    const v = opts[k];
    if (v !== undefined && !(v > 0)) throw badInput(`${k} must be positive`, { [k]: v });
  }
  const logger = opts.logger ?? silentLogger;
  const secureContext = opts.tls ? tls.createSecureContext({ cert: opts.tls.cert, key: opts.tls.key, ca: opts.tls.ca }) : null;
  const registry = new ExportRegistry(opts.catalog, { iopsLimit: opts.iopsLimit, bandwidthLimit: opts.bandwidthLimit }, logger);

  let shuttingDown = false;
  let nextId = 1;
  const connections = new Set<Connection>();
  const deps = { registry, maxPayload, tls: secureContext, logger, isShuttingDown: () => shuttingDown };

  const server = net.createServer((socket) => {
    if (shuttingDown) {
      socket.destroy();
      return;
    }
    const conn = new Connection(socket, nextId++, deps);
    connections.add(conn);
    void conn.finished.finally(() => connections.delete(conn));
  });
  server.on('error', (e) => logger.error({ err: String(e) }, 'nbd server error'));

  let address: string;
  if (opts.socketPath) {
    await listenUnix(server, opts.socketPath);
    address = `nbd+unix:///?socket=${opts.socketPath}`;
    if (secureContext) address = address.replace(/^nbd\+unix/, 'nbds+unix');
  } else {
    const host = opts.host ?? '127.0.0.1';
    await listen(server, { host, port: opts.port ?? DEFAULT_PORT });
    const port = (server.address() as net.AddressInfo).port;
    address = `${secureContext ? 'nbds' : 'nbd'}://${host.includes(':') ? `[${host}]` : host}:${port}/`;
  }
  logger.info({ address }, 'nbd server listening');

  let closing: Promise<void> | null = null;
  const close = () => {
    closing ??= (async () => {
      shuttingDown = true;
      const stopped = new Promise<void>((resolve) => server.close(() => resolve()));
      registry.stopLimiters();
      // Let the ESHUTDOWN replies of limited requests be queued before ending sockets.
      await new Promise((resolve) => setImmediate(resolve));
      for (const c of connections) c.shutdown();
      const all = Promise.all([...connections].map((c) => c.finished));
      const grace = setTimeout(() => connections.forEach((c) => c.destroy()), CLOSE_GRACE_MS);
      await all;
      clearTimeout(grace);
      await stopped;
      registry.closeAll();
      if (opts.socketPath) await unlink(opts.socketPath).catch(() => {});
      logger.info({ address }, 'nbd server closed');
    })();
    return closing;
  };
  return { address, close };
}

function listen(server: net.Server, options: net.ListenOptions): Promise<void> {
  return new Promise((resolve, reject) => {
    const onError = (e: Error) => reject(e);
    server.once('error', onError);
    server.listen(options, () => {
      server.off('error', onError);
      resolve();
    });
  });
}

/**
 * Listens on a Unix socket and restricts it to the owner. A leftover socket
 * file from a crashed server is replaced; a live one is an error (E_BUSY).
 */
async function listenUnix(server: net.Server, path: string): Promise<void> {
  try {
    await listen(server, { path });
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'EADDRINUSE') throw e;
    if (await isLive(path)) throw new StrataError('E_BUSY', `another server is listening on ${path}`, { path });
    await unlink(path);
    await listen(server, { path });
  }
  // The socket exists with umask permissions for a moment; the directory is
  // what callers should protect if that window matters.
  await chmod(path, 0o600);
}

function isLive(path: string): Promise<boolean> {
  return new Promise((resolve) => {
    const s = net.connect({ path });
    s.once('connect', () => {
      s.destroy();
      resolve(true);
    });
    s.once('error', () => resolve(false));
  });
}
