/** --listen HOST:PORT for the servers (serve, ui): loopback unless --allow-remote. */
import { badInput } from '../errors.js';

export const LOOPBACK = /^(127\.\d+\.\d+\.\d+|::1|localhost)$/;

export function parseListen(raw: string, allowRemote: boolean, what = 'serve disks to the network (and consider --tls-cert)'): { host: string; port: number } {
  const m = /^\[?([^\]]*?)\]?:(\d+)$/.exec(raw) ?? /^()(\d+)$/.exec(raw);
  if (!m) throw badInput(`invalid --listen ${JSON.stringify(raw)}: expected HOST:PORT, such as 127.0.0.1:10809`);
  const host = m[1] || '127.0.0.1';
  const port = Number(m[2]);
  if (port > 65535) throw badInput(`invalid port ${port} in --listen`);
  if (!LOOPBACK.test(host) && !allowRemote) {
    throw badInput(`refusing to listen on ${host}, which is not loopback: pass --allow-remote to ${what}`);
  }
  return { host, port };
}
