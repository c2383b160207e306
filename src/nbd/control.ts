/**
 * The control socket of `strata serve`: how another strata process asks the
 * server to act on a leaf the server is writing. Only the writer can take a
 * snapshot of a live disk between two of its writes, so `strata snapshot`
 * and `strata clone` of a served leaf send the request here (the socket's
 * path is in the server's lease row) instead of failing with E_BUSY, and
 * `strata export`/`read` of one ask it for a point-in-time view.
 *
 * One JSON request per line, one JSON reply per line:
 *   {"op":"snapshot","image":"vm01","snapshot":"before-upgrade"}
 *   {"ok":true,"result":{...}}  or  {"ok":false,"error":{"code":"E_EXISTS","message":"..."}}
 *
 * The socket is a file in STORE/run (mode 0600 in a 0700 directory), so any
 * process that can open the store, in any container sharing its volume, can
 * reach it, and nobody else can.
 */
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { ERROR_CODES, StrataError, type ErrorCode } from '../errors.js';

export type ControlRequest =
  | { op: 'snapshot'; image: string; snapshot?: string }
  | { op: 'clone'; image: string; names: string[] }
  /** A point-in-time view (image/views.ts) that the server holds for as long as this connection stays open. */
  | { op: 'view'; image: string };

/** The connection a request came on: what the server holds for the asker ends when it closes. */
export interface ControlConnection {
  onClose(release: () => void): void;
}

type ControlReply = { ok: true; result: unknown } | { ok: false; error: { code: ErrorCode; message: string } };

export interface ControlServer {
  readonly path: string;
  close(): Promise<void>;
}

/** Longest path a Unix socket address holds on Linux, less its NUL. */
const SUN_PATH_MAX = 107;
/** A request line longer than this is not one of ours. */
const MAX_LINE = 64 * 1024;

/** Where a server's control socket goes: STORE/run, or the temp dir when that path is too long for a socket. */
export function controlPath(storeDir: string): string {
  const id = `${process.pid}-${Math.random().toString(36).slice(2, 8)}.sock`;
  const runDir = path.join(storeDir, 'run');
  if (path.join(runDir, id).length <= SUN_PATH_MAX) {
    fs.mkdirSync(runDir, { recursive: true, mode: 0o700 });
    return path.join(runDir, id);
  }
  return path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'strata-ctl-')), id);
}

type Handler = (req: ControlRequest, conn: ControlConnection) => unknown;

function replyTo(handle: Handler, line: string, conn: ControlConnection): ControlReply {
  try {
    const req = JSON.parse(line) as ControlRequest;
    if (!req || typeof req !== 'object' || typeof req.image !== 'string') throw new StrataError('E_PROTOCOL', 'control request without an image');
    return { ok: true, result: handle(req, conn) };
  } catch (e) {
    if (e instanceof StrataError) return { ok: false, error: { code: e.code, message: e.message } };
    if (e instanceof SyntaxError) return { ok: false, error: { code: 'E_PROTOCOL', message: 'control request is not JSON' } };
    return { ok: false, error: { code: 'E_INTERNAL', message: (e as Error).message } };
  }
}

export async function startControl(socketPath: string, handle: Handler): Promise<ControlServer> {
  const server = net.createServer((sock) => {
    let buf = '';
    const releases: (() => void)[] = [];
    const conn: ControlConnection = { onClose: (r) => releases.push(r) };
    // However the asker goes (done, killed), what it was lent goes back.
    sock.on('close', () => {
      for (const r of releases.splice(0)) {
        try {
          r();
        } catch {
          // One release failing (a store error) must not keep the others, nor stop the server.
        }
      }
    });
    sock.setEncoding('utf8');
    sock.on('error', () => sock.destroy());
    sock.on('data', (d: string) => {
      buf += d;
      if (buf.length > MAX_LINE) return sock.destroy();
      for (let nl = buf.indexOf('\n'); nl >= 0; nl = buf.indexOf('\n')) {
        const line = buf.slice(0, nl);
        buf = buf.slice(nl + 1);
        sock.write(JSON.stringify(replyTo(handle, line, conn)) + '\n');
      }
    });
  });
  fs.rmSync(socketPath, { force: true });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(socketPath, () => resolve());
  });
  fs.chmodSync(socketPath, 0o600);
  return {
    path: socketPath,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        fs.rmSync(socketPath, { force: true });
      }),
  };
}

/** Sends one request to the holder's control socket; its error comes back as the same StrataError. */
export async function askHolder(socketPath: string, req: ControlRequest, timeoutMs = 60_000): Promise<unknown> {
  const held = await askAndHold(socketPath, req, timeoutMs);
  held.release();
  return held.result;
}

/**
 * Like askHolder, but the connection stays open until `release()`: what the
 * server lent for it (a view's lease) lasts that long, and ends if this
 * process dies.
 */
export function askAndHold(socketPath: string, req: ControlRequest, timeoutMs = 60_000): Promise<{ result: unknown; release(): void }> {
  return new Promise((resolve, reject) => {
    const sock = net.connect(socketPath);
    let buf = '';
    let answered = false;
    const fail = (e: StrataError) => {
      answered = true;
      sock.destroy();
      reject(e);
    };
    const timer = setTimeout(() => fail(new StrataError('E_BUSY', `the process holding ${req.image} did not answer within ${timeoutMs / 1000} s`)), timeoutMs);
    sock.setEncoding('utf8');
    sock.on('connect', () => sock.write(JSON.stringify(req) + '\n'));
    sock.on('error', (e: NodeJS.ErrnoException) => {
      clearTimeout(timer);
      if (answered) return;
      fail(new StrataError('E_BUSY', `image ${req.image} is held by a server that cannot be reached at ${socketPath} (${e.code}); retry, or stop that server`, { image: req.image }));
    });
    // A server that dies (or closes) before its answer would otherwise leave us to the timer.
    sock.on('close', () => {
      if (answered) return;
      clearTimeout(timer);
      fail(new StrataError('E_BUSY', `the server holding ${req.image} closed its control connection at ${socketPath} without answering; retry, or see that server's log`, { image: req.image }));
    });
    sock.on('data', (d: string) => {
      if (answered) return;
      buf += d;
      const nl = buf.indexOf('\n');
      if (nl < 0) return;
      answered = true;
      clearTimeout(timer);
      const reply = JSON.parse(buf.slice(0, nl)) as ControlReply;
      if (reply.ok) resolve({ result: reply.result, release: () => sock.end() });
      else {
        sock.end();
        reject(new StrataError(reply.error.code in ERROR_CODES ? reply.error.code : 'E_INTERNAL', reply.error.message, { image: req.image }));
      }
    });
  });
}
