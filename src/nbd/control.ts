/**
 * The control socket of `strata serve`: how another strata process asks the
 * server to act on a leaf the server is writing. Only the writer can take a
 * snapshot of a live disk between two of its writes, so `strata snapshot`
 * and `strata clone` of a served leaf send the request here (the socket's
 * path is in the server's lease row) instead of failing with E_BUSY.
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

export type ControlRequest = { op: 'snapshot'; image: string; snapshot?: string } | { op: 'clone'; image: string; names: string[] };

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

function replyTo(handle: (req: ControlRequest) => unknown, line: string): ControlReply {
  try {
    const req = JSON.parse(line) as ControlRequest;
    if (!req || typeof req !== 'object' || typeof req.image !== 'string') throw new StrataError('E_PROTOCOL', 'control request without an image');
    return { ok: true, result: handle(req) };
  } catch (e) {
    if (e instanceof StrataError) return { ok: false, error: { code: e.code, message: e.message } };
    if (e instanceof SyntaxError) return { ok: false, error: { code: 'E_PROTOCOL', message: 'control request is not JSON' } };
    return { ok: false, error: { code: 'E_INTERNAL', message: (e as Error).message } };
  }
}

export async function startControl(socketPath: string, handle: (req: ControlRequest) => unknown): Promise<ControlServer> {
  const server = net.createServer((sock) => {
    let buf = '';
    sock.setEncoding('utf8');
    sock.on('error', () => sock.destroy());
    sock.on('data', (d: string) => {
      buf += d;
      if (buf.length > MAX_LINE) return sock.destroy();
      for (let nl = buf.indexOf('\n'); nl >= 0; nl = buf.indexOf('\n')) {
        const line = buf.slice(0, nl);
        buf = buf.slice(nl + 1);
        sock.write(JSON.stringify(replyTo(handle, line)) + '\n');
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
export function askHolder(socketPath: string, req: ControlRequest, timeoutMs = 60_000): Promise<unknown> {
  return new Promise((resolve, reject) => {
    const sock = net.connect(socketPath);
    let buf = '';
    const fail = (e: StrataError) => {
      sock.destroy();
      reject(e);
    };
    const timer = setTimeout(() => fail(new StrataError('E_BUSY', `the process holding ${req.image} did not answer within ${timeoutMs / 1000} s`)), timeoutMs);
    sock.setEncoding('utf8');
    sock.on('connect', () => sock.write(JSON.stringify(req) + '\n'));
    sock.on('error', (e: NodeJS.ErrnoException) => {
      clearTimeout(timer);
      fail(new StrataError('E_BUSY', `image ${req.image} is held by a server that cannot be reached at ${socketPath} (${e.code}); retry, or stop that server`, { image: req.image }));
    });
    sock.on('data', (d: string) => {
      buf += d;
      const nl = buf.indexOf('\n');
      if (nl < 0) return;
      clearTimeout(timer);
      sock.end();
      const reply = JSON.parse(buf.slice(0, nl)) as ControlReply;
      if (reply.ok) resolve(reply.result);
      else reject(new StrataError(reply.error.code in ERROR_CODES ? reply.error.code : 'E_INTERNAL', reply.error.message, { image: req.image }));
    });
  });
}
