/**
 * Who can reach what: serving beyond loopback needs --allow-remote, a server
 * of named images exports nothing else, a served image cannot be removed or
 * reshaped from under it, and a frozen image is never writable by any path.
 */
import path from 'node:path';
import { beforeEach, describe, expect, it } from 'vitest';
import { ERROR_CODES, StrataError } from '../../src/errors.js';
import { openImage } from '../../src/image/image.js';
import { CMD } from '../../src/nbd/protocol.js';
import { openStore } from '../../src/store/core/store.js';
import { strata, strataOk } from '../helpers/cli.js';
import { RawClient } from '../helpers/nbd-raw-client.js';
import { startServe, type Served } from '../helpers/serve.js';
import { tmpDir } from '../helpers/tmp.js';
import { requireTool, run } from '../helpers/tools.js';

let store: string;

beforeEach(() => {
  store = tmpDir();
  strataOk(store, ['create', 'base', '--size', '1M']);
  strataOk(store, ['write', 'base'], { input: Buffer.alloc(8192, 0x5a) });
  strataOk(store, ['freeze', 'base']);
  strataOk(store, ['create', 'other', '--size', '1M']);
  strataOk(store, ['freeze', 'other']);
  strataOk(store, ['clone', 'base', 'web1']);
});

/** Starts `strata serve ARGS` (names and where to listen) and resolves once it is listening. */
const serve = (args: string[]): Promise<Served> => startServe(store, args, { listenArgs: [] });

describe('access', () => {
  it('serving on a non-loopback address needs --allow-remote; with it, a warning on stderr', async () => {
    for (const listen of ['0.0.0.0:10999', '192.0.2.1:10999', '[::]:10999']) {
      const r = strata(store, ['serve', '--listen', listen]);
      expect(r.status, listen).toBe(ERROR_CODES.E_BAD_INPUT);
      expect(r.stderr).toMatch(/^strata: refusing to listen on .* which is not loopback: pass --allow-remote/);
    }
    const s = await serve(['web1', '--listen', '0.0.0.0:0', '--allow-remote']);
    expect(s.stderr).toMatch(/warning: serving on 0\.0\.0\.0, reachable beyond this machine/);
  });

  it.skipIf(!requireTool('nbdinfo'))('a server of named images lists and opens only those', async () => {
    const sock = path.join(store, 'nbd.sock');
    await serve(['web1', '--socket', sock]);
    const list = await run('nbdinfo', ['--list', '--json', `nbd+unix:///?socket=${sock}`]);
    expect(list.code, list.stderr).toBe(0);
    expect((JSON.parse(list.stdout).exports as { 'export-name': string }[]).map((e) => e['export-name'])).toEqual(['web1']);
    expect((await run('nbdinfo', [`nbd+unix:///web1?socket=${sock}`])).code).toBe(0);
    for (const other of ['base', 'other', '.import-x', '../web1', 'web1/']) {
      const r = await run('nbdinfo', [`nbd+unix:///${encodeURIComponent(other)}?socket=${sock}`]);
      expect(r.code, other).not.toBe(0);
    }
  });

  it('rm, commit, flatten and rebase of an image a server has open fail with E_BUSY, and change nothing', async () => {
    await serve(['web1', '--socket', path.join(store, 'nbd.sock')]);
    const before = strataOk(store, ['ls', '--json']).stdout;
    for (const args of [['rm', 'web1'], ['commit', 'web1'], ['flatten', 'web1'], ['rebase', 'web1', '--onto', 'other'], ['rm', '-r', 'base'], ['flatten', 'base']]) {
      const r = strata(store, args);
      expect(r.status, `${args.join(' ')}: ${r.stderr}`).toBe(ERROR_CODES.E_BUSY);
      expect(r.stderr.trimEnd().split('\n')).toHaveLength(1);
      expect(r.stderr).toMatch(/image (web1|base) is open by strata serve \d+/);
    }
    expect(strataOk(store, ['ls', '--json']).stdout).toBe(before);
  });

  it('a frozen image is never writable: API open → E_READONLY, CLI write → E_READONLY, NBD write → EPERM', async () => {
    const s = await openStore(store);
    try {
      expect(() => openImage(s, 'base', { writable: true })).toThrow(expect.objectContaining({ code: 'E_READONLY' }));
      const ro = openImage(s, 'base');
      expect(() => ro.write(0, Buffer.alloc(10))).toThrow(StrataError);
      expect(() => ro.writeZeroes(0, 4096)).toThrow(expect.objectContaining({ code: 'E_READONLY' }));
      ro.close();
    } finally {
      s.close();
    }
    expect(strata(store, ['write', 'base'], { input: 'x' }).status).toBe(ERROR_CODES.E_READONLY);
    expect(strata(store, ['resize', 'base', '2M']).status).toBe(ERROR_CODES.E_READONLY);
    const sock = path.join(store, 'nbd.sock');
    // Served by name and served on demand: neither path takes a write.
    await serve(['--socket', sock]);
    for (const name of ['base', 'other']) {
      const c = await RawClient.open(sock, name);
      for (const [cmd, payload] of [[CMD.WRITE, Buffer.alloc(4096, 1)], [CMD.WRITE_ZEROES, undefined], [CMD.TRIM, undefined]] as const) {
        const r = await c.call(cmd, 0, 4096, 0, payload);
        expect(r.error, `${name} cmd ${cmd}`).toBe(1); // NBD_EPERM
      }
      c.close();
    }
    expect(strataOk(store, ['read', 'base', '--length', '8192']).out.equals(Buffer.alloc(8192, 0x5a))).toBe(true);
  });
});
