/**
 * Starts an NBD server over memory devices on a Unix socket in a temp dir,
 * and tears both down. Every test that needs a server goes through here so
 * none is left running.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { afterEach } from 'vitest';
import type { RawClient } from './nbd-raw-client.js';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { notFound } from '../../src/errors.js';
import { startNbdServer, type NbdServerOptions } from '../../src/nbd/server.js';
import type { MemoryDevice } from './memory-device.js';

export interface Fixture {
  dir: string;
  socketPath: string;
  address: string;
  /** nbd URI of one export, for qemu and libnbd tools. */
  uri(name: string): string;
  opened: string[];
  close(): Promise<void>;
}

export async function startFixture(
  devices: Record<string, MemoryDevice>,
  opts: Omit<NbdServerOptions, 'catalog' | 'socketPath'> = {},
): Promise<Fixture> {
  const dir = mkdtempSync(join(tmpdir(), 'strata-nbd-'));
  const socketPath = join(dir, 'nbd.sock');
  const opened: string[] = [];
  const catalog = {
    list: () => Object.keys(devices).map((name) => ({ name, description: `test export ${name}` })),
    open: (name: string) => {
      const d = devices[name];
      if (!d) throw notFound(`no export ${name}`);
      opened.push(name);
      // The same image may be opened again after its last connection closed it.
      d.closed = false;
      return d;
    },
  };
  const server = await startNbdServer({ ...opts, catalog, socketPath });
  return {
    dir,
    socketPath,
    address: server.address,
    opened,
    uri: (name) => `nbd+unix:///${name}?socket=${socketPath}`,
    close: async () => {
      await server.close();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/**
 * A test file's fixture and raw clients, closed after each test: assign
 * `scope.fx` in a test and push clients to `scope.clients`.
 */
export function fixtureScope(): { fx: Fixture | null; clients: RawClient[] } {
  const scope = { fx: null as Fixture | null, clients: [] as RawClient[] };
  afterEach(async () => {
    for (const c of scope.clients.splice(0)) c.close();
    await scope.fx?.close();
    scope.fx = null;
  });
  return scope;
}
