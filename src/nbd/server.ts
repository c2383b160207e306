/**
 * The NBD server: listens on a Unix socket or TCP, runs one Connection per
 * client, and shares one BlockDevice per export name among them.
 *
 * Usage:
 *   const srv = await startNbdServer({ catalog, socketPath: '/run/strata.sock' });
 *   // qemu-img info 'nbd+unix:///leaf?socket=/run/strata.sock'
 *   await srv.close();
 */
import { existsSync } from 'node:fs';
import { chmod, lstat, unlink } from 'node:fs/promises';
import { dirname } from 'node:path';
import * as net from 'node:net';
import * as tls from 'node:tls';
import { StrataError, badInput } from '../errors.js';
import { Connection, refuseConnection } from './connection.js';
import { InflightLimit } from './inflight.js';
import { DEFAULT_STALL_MS, StallWatch } from './stalls.js';
import { ExportRegistry, type ExportCatalog } from './exports.js';
import { silentLogger, type Logger } from '../log.js';
import { humanBytes } from '../units.js';

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
  /** Clients served at once (qemu-nbd's --shared); more are refused in the handshake. Default 16; 0 for no limit. */
  maxConnections?: number;
  /**
   * Bytes of WRITE payloads and READ replies held in memory at once, over all
   * connections; a request that does not fit waits, and its connection is not
   * read meanwhile. Default 128 MiB; at least maxPayload.
   */
  inflightLimit?: number;
  /** A client holding part of that budget without progress this long, while others wait for it, is dropped. Default 60 s. */
  stallMs?: number;
  logger?: Logger;
  /** When set, clients must NBD_OPT_STARTTLS before anything else. */
  tls?: { cert: Buffer; key: Buffer; ca?: Buffer };
}

export interface NbdServer {
  /** The server's NBD URI, naming no export (nbdinfo --list takes it). */
  address: string;
  /** The URI of one export, as qemu, nbdinfo and nbdcopy take it. */
  uri(exportName: string): string;
  /** Stops accepting, ends every connection, flushes and closes all devices. */
  close(): Promise<void>;
  /** What a client meets, as this server applies it: for the listening log and `serve --json`. */
  terms: ServerTerms;
}

export interface ServerTerms {
  /** 'required': STARTTLS before anything else; 'client-certificates': and a certificate the CA signed. */
  tls: 'off' | 'required' | 'client-certificates';
  /** Per export; null for none. */
  limits: { iops: number | null; bandwidth: number | null };
}

export const DEFAULT_PORT = 10809;
export const DEFAULT_MAX_PAYLOAD = 32 * 1024 * 1024;
/**
 * qemu-nbd serves one client unless told --shared; a strata server exports a
 * whole store, each VM holds a connection and nbdcopy opens four per side,
 * so one would refuse ordinary use. Sixteen covers a host's few VMs and a
 * copy; memory does not depend on it (DEFAULT_INFLIGHT_LIMIT bounds that).
 */
export const DEFAULT_MAX_CONNECTIONS = 16;
/** Four maximum-size requests at once; 1 MiB requests at queue depth 16 on eight connections. */
export const DEFAULT_INFLIGHT_LIMIT = 128 * 1024 * 1024;
/** Graceful end of connections at close() before they are destroyed. */
const CLOSE_GRACE_MS = 2000;

export async function startNbdServer(opts: NbdServerOptions): Promise<NbdServer> {
  const maxPayload = opts.maxPayload ?? DEFAULT_MAX_PAYLOAD;
  if (!Number.isInteger(maxPayload) || maxPayload < 4096 || maxPayload > 0x7fffffff) {
    throw badInput('maxPayload must be an integer between 4096 and 2^31-1', { maxPayload });
  }
  const maxConnections = opts.maxConnections ?? DEFAULT_MAX_CONNECTIONS;
  if (!Number.isInteger(maxConnections) || maxConnections < 0) throw badInput('maxConnections must be a whole number (0 for no limit)', { maxConnections });
  const inflightLimit = opts.inflightLimit ?? Math.max(DEFAULT_INFLIGHT_LIMIT, maxPayload);
  if (!Number.isInteger(inflightLimit) || inflightLimit < maxPayload) {
    throw badInput(`the in-flight limit (${humanBytes(inflightLimit)}) is below the largest request a client may send (${humanBytes(maxPayload)}): raise --inflight-limit`, { inflightLimit, maxPayload });
  }
  const stallMs = opts.stallMs ?? DEFAULT_STALL_MS;
  if (!(stallMs > 0)) throw badInput('stallMs must be positive', { stallMs });
  for (const k of ['iopsLimit', 'bandwidthLimit'] as const) {
    const v = opts[k];
    if (v !== undefined && !(v > 0)) throw badInput(`${k} must be positive`, { [k]: v });
  }
  const logger = opts.logger ?? silentLogger;
  const secureContext = opts.tls ? tls.createSecureContext({ cert: opts.tls.cert, key: opts.tls.key, ca: opts.tls.ca }) : null;
  const registry = new ExportRegistry(opts.catalog, { iopsLimit: opts.iopsLimit, bandwidthLimit: opts.bandwidthLimit }, logger);
  const terms: ServerTerms = {
    tls: secureContext ? (opts.tls?.ca ? 'client-certificates' : 'required') : 'off',
    limits: { iops: opts.iopsLimit ?? null, bandwidth: opts.bandwidthLimit ?? null },
  };

  let shuttingDown = false;
  let nextId = 1;
  const connections = new Set<Connection>();
  // One budget for all connections: a client that never reads its replies holds at most its
  // share of it, and the server's memory does not grow with the number of such clients.
  const budget = new InflightLimit(inflightLimit, Infinity);
  const stalls = new StallWatch(budget, stallMs, logger);
  const deps = { registry, maxPayload, budget, stalls, tls: secureContext, logger, isShuttingDown: () => shuttingDown };
  let refusing = 0;

  const server = net.createServer((socket) => {
    if (shuttingDown) {
      socket.destroy();
      return;
    }
    if (maxConnections > 0 && connections.size >= maxConnections) {
      logger.warn({ clients: connections.size, maxConnections }, 'connection refused: the server serves at most this many clients');
      // Refusals are bounded too: past as many again, the socket is just closed.
      if (refusing >= maxConnections) {
        socket.destroy();
        return;
      }
      refusing++;
      const why = `too many clients: this server serves at most ${maxConnections} at once (strata serve --shared); try again when one has disconnected`;
      void refuseConnection(socket, why).finally(() => refusing--);
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
    // The path is a query value: percent-encode what would end or change it (space, &, #, %).
    address = `${secureContext ? 'nbds+unix' : 'nbd+unix'}:///?socket=${encodeURIComponent(opts.socketPath).replace(/%2F/g, '/')}`;
  } else {
    const host = opts.host ?? '127.0.0.1';
    const asked = opts.port ?? DEFAULT_PORT;
    await listen(server, { host, port: asked }).catch((e) => {
      throw tcpListenError(e, host, asked);
    });
    const port = (server.address() as net.AddressInfo).port;
    address = `${secureContext ? 'nbds' : 'nbd'}://${host.includes(':') ? `[${host}]` : host}:${port}/`;
  }
  logger.info({ address, ...terms }, 'nbd server listening');

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
      stalls.stop();
      registry.closeAll();
      if (opts.socketPath) await unlink(opts.socketPath).catch(() => {});
      logger.info({ address }, 'nbd server closed');
    })();
    return closing;
  };
  // The export name goes in the path: after the authority, before any query.
  const uri = (exportName: string) => address.replace(/\/(\?|$)/, `/${encodeURIComponent(exportName)}$1`);
  return { address, uri, close, terms };
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
  // The kernel keeps 107 bytes of a socket's path; a longer one would be cut, and clients given the full path miss it.
  if (Buffer.byteLength(path) > MAX_SOCKET_PATH) {
    throw badInput(`socket path ${path} is ${Buffer.byteLength(path)} bytes long, over the ${MAX_SOCKET_PATH} a Unix socket allows: use a shorter path`, { path });
  }
  try {
    await listen(server, { path });
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'EADDRINUSE') throw unixListenError(e, path);
    if (await isLive(path)) throw new StrataError('E_BUSY', `another server is listening on ${path}: stop it, or choose another socket path`, { path });
    // Only a leftover socket is replaced: a file that happens to sit at the path is someone's data.
    if (!(await lstat(path)).isSocket()) throw new StrataError('E_EXISTS', `${path} exists and is not a socket: choose another socket path`, { path });
    await unlink(path);
    await listen(server, { path });
  }
  // The socket exists with umask permissions for a moment; the directory is
  // what callers should protect if that window matters.
  await chmod(path, 0o600);
}

/** The Linux limit on sun_path, less its terminating NUL. */
const MAX_SOCKET_PATH = 107;

/** A failed TCP listen as a typed error naming the address and what to do. */
function tcpListenError(e: unknown, host: string, port: number): unknown {
  const code = (e as NodeJS.ErrnoException).code;
  const where = `${host.includes(':') ? `[${host}]` : host}:${port}`;
  if (code === 'EADDRINUSE') return new StrataError('E_BUSY', `${where} is in use by another process: stop it, or serve on another port (--listen HOST:PORT)`, { host, port });
  if (code === 'EADDRNOTAVAIL') return badInput(`cannot listen on ${where}: ${host} is not an address of this machine`, { host, port });
  if (code === 'ENOTFOUND' || code === 'EAI_AGAIN') return badInput(`cannot listen on ${where}: no such host ${host}`, { host, port });
  if (code === 'EACCES') return new StrataError('E_IO', `not allowed to listen on ${where}: ports below 1024 need root (CAP_NET_BIND_SERVICE); use a higher port`, { host, port });
  return e;
}

/** A failed Unix-socket listen as a typed error naming the path and what to do. */
function unixListenError(e: unknown, path: string): unknown {
  const code = (e as NodeJS.ErrnoException).code;
  const dir = dirname(path);
  // A missing directory shows up as EACCES (libuv) or ENOENT.
  if ((code === 'EACCES' || code === 'ENOENT') && !existsSync(dir)) {
    return new StrataError('E_NOT_FOUND', `cannot create socket ${path}: no such directory ${dir} (create it first)`, { path });
  }
  if (code === 'ENOTDIR') return badInput(`cannot create socket ${path}: a part of ${dir} is a file, not a directory`, { path });
  if (code === 'EACCES' || code === 'EPERM' || code === 'EROFS') {
    return new StrataError('E_IO', `cannot create socket ${path}: ${code === 'EROFS' ? 'read-only file system' : 'permission denied'} in ${dir}; choose a directory you can write to`, { path });
  }
  return e;
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
