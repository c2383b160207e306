/**
 * `strata ui`'s HTTP server (node:http): the page and its JSON, read from a
 * store opened read-only. It never writes to the store, so it runs beside
 * anything else that uses it: a `strata serve`, clones, imports, rm, gc.
 *
 * Loopback by default. A page on loopback can still be reached by a web site
 * the user visits, through DNS rebinding (a name of the attacker's that
 * resolves to 127.0.0.1); the Host header gives that away, so on loopback a
 * request must name a loopback host. With --allow-remote any Host is taken.
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { StrataError } from '../errors.js';
import type { Store } from '../store/core/index.js';
import { loadAssets, type Asset } from './assets.js';
import { errorReply, route, type Reply } from './routes.js';
import { StoreWatch } from './watch.js';

export interface UiServerOptions {
  store: Store;
  host: string;
  port: number;
  /** Accept requests naming any Host (the server listens beyond loopback). */
  allowRemote?: boolean;
  /** Told about failures that are not the client's. */
  onError?: (e: unknown) => void;
  assets?: ReadonlyMap<string, Asset>;
}

export interface UiServer {
  /** http://HOST:PORT/ */
  readonly url: string;
  readonly port: number;
  close(): Promise<void>;
}

const LOOPBACK_HOST = /^(127\.\d+\.\d+\.\d+|\[::1\]|localhost)(:\d+)?$/i;

function send(res: http.ServerResponse, method: string, r: Reply): void {
  res.writeHead(r.status, { ...r.headers, 'content-length': String(Buffer.byteLength(r.body)) });
  res.end(method === 'HEAD' ? undefined : r.body);
}

export async function startUiServer(o: UiServerOptions): Promise<UiServer> {
  const assets = o.assets ?? loadAssets();
  const watch = new StoreWatch(o.store);
  const onError = o.onError ?? (() => undefined);
  const server = http.createServer({ maxHeaderSize: 16 * 1024, requestTimeout: 30_000, headersTimeout: 10_000 }, (req, res) => {
    const method = req.method ?? 'GET';
    try {
      if (!o.allowRemote && !LOOPBACK_HOST.test(req.headers.host ?? '')) {
        send(res, method, errorReply(403, 'E_BAD_INPUT', 'this page answers only requests to a loopback host (127.0.0.1, localhost, [::1])'));
        return;
      }
      send(res, method, route({ watch, assets, onError }, method, req.url ?? ''));
    } catch (e) {
      // route() answers every error itself; this is a last guard so no request can stop the server.
      onError(e);
      if (!res.headersSent) send(res, method, errorReply(500, 'E_INTERNAL', 'internal error'));
      else res.destroy();
    }
  });
  // Bytes that are not HTTP: one 400 and the connection closes; the server goes on.
  server.on('clientError', (err: NodeJS.ErrnoException, socket) => {
    if (err.code === 'ECONNRESET' || !socket.writable) {
      socket.destroy();
      return;
    }
    const body = JSON.stringify({ error: 'E_BAD_INPUT', message: 'malformed HTTP request' });
    socket.end(`HTTP/1.1 400 Bad Request\r\ncontent-type: application/json\r\ncontent-length: ${body.length}\r\nconnection: close\r\n\r\n${body}`);
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', (e: NodeJS.ErrnoException) => {
      const where = `${o.host}:${o.port}`;
      if (e.code === 'EADDRINUSE') reject(new StrataError('E_BUSY', `cannot listen on ${where}: the port is in use (give another with --listen 127.0.0.1:PORT)`, { address: where }));
      else if (e.code === 'EADDRNOTAVAIL' || e.code === 'ENOTFOUND' || e.code === 'EAI_AGAIN') reject(new StrataError('E_BAD_INPUT', `cannot listen on ${where}: no such local address`, { address: where }));
      else reject(new StrataError('E_IO', `cannot listen on ${where}: ${e.code ?? e.message}`, { address: where }));
    });
    server.listen(o.port, o.host, () => resolve());
  });
  server.on('error', onError);
  // Read the figures now, so a page opened in a moment (--open) finds them ready.
  setImmediate(() => {
    try {
      watch.current();
    } catch (e) {
      onError(e);
    }
  });
  const port = (server.address() as AddressInfo).port;
  const host = o.host.includes(':') ? `[${o.host}]` : o.host;
  return {
    url: `http://${host}:${port}/`,
    port,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}
