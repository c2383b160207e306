/**
 * `strata ui`'s server as a client meets it: loopback unless --allow-remote,
 * nothing served outside the page's files, a malformed request answered with
 * 400 (never a crash), the store never written, and no 500 while other
 * processes clone and remove images beside it.
 */
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { ERROR_CODES } from '../../src/errors.js';
import { strata, strataAsync, strataOk } from '../helpers/cli.js';
import { startServe } from '../helpers/serve.js';
import { tmpDir } from '../helpers/tmp.js';
import { waitForFile } from '../helpers/wait.js';

/** The parts of `GET /api/state` these tests read. */
interface UiState {
  version: number;
  images: { name: string }[];
  open: unknown[];
}

let store: string;

beforeAll(() => {
  const top = fs.mkdtempSync('/tmp/strata-ui-server-');
  store = path.join(top, 'store');
  const raw = path.join(top, 'base.raw');
  fs.writeFileSync(raw, Buffer.concat([Buffer.alloc(8192, 1), Buffer.alloc(8192), Buffer.alloc(4096, 2)]));
  strataOk(store, ['create', 'base', '--from', raw]);
  strataOk(store, ['clone', 'base', 'vm1', 'vm2']);
  strataOk(store, ['write', 'vm1', '--offset', '4096'], { input: Buffer.alloc(4096, 9) });
  return () => fs.rmSync(top, { recursive: true, force: true });
});

const startUi = (s: string, args: string[] = ['--listen', '127.0.0.1:0'], env?: NodeJS.ProcessEnv) => startServe(s, [], { command: 'ui', listenArgs: args, env });

/** One raw HTTP exchange: what a browser would never send, a script or an attacker might. */
function rawRequest(port: number, bytes: string): Promise<{ status: number; text: string }> {
  return new Promise((resolve, reject) => {
    const sock = net.connect(port, '127.0.0.1');
    let text = '';
    sock.setEncoding('latin1');
    sock.on('data', (d: string) => (text += d));
    sock.on('error', reject);
    sock.on('close', () => resolve({ status: Number(/^HTTP\/1\.1 (\d{3})/.exec(text)?.[1] ?? 0), text }));
    sock.end(bytes);
  });
}

const get = (port: number, target: string, headers = 'Host: 127.0.0.1\r\n') => rawRequest(port, `GET ${target} HTTP/1.1\r\n${headers}Connection: close\r\n\r\n`);
const portOf = (url: string) => Number(new URL(url).port);

describe('strata ui: the server', () => {
  it('refuses a non-loopback listen without --allow-remote, a missing store, and a port in use, each with its own status', async () => {
    const missing = strata(path.join(tmpDir(), 'nope'), ['ui', '--listen', '127.0.0.1:0']);
    expect(missing.status).toBe(ERROR_CODES.E_NOT_FOUND);
    expect(missing.stderr).toMatch(/^strata: no strata store at \S+ \(strata init creates one\)\n$/);
    const r = strata(store, ['ui', '--listen', '0.0.0.0:0']);
    expect(r.status).toBe(ERROR_CODES.E_BAD_INPUT);
    expect(r.stderr).toBe("strata: refusing to listen on 0.0.0.0, which is not loopback: pass --allow-remote to show the store's page to the network\n");
    const ui = await startUi(store);
    const busy = strata(store, ['ui', '--listen', `127.0.0.1:${portOf(ui.address)}`]);
    expect(busy.status).toBe(ERROR_CODES.E_BUSY);
    expect(busy.stderr).toMatch(/^strata: cannot listen on 127\.0\.0\.1:\d+: the port is in use/);
    // With --allow-remote it listens, and says the page is reachable from elsewhere; --json names the URL and the store.
    const remote = await startUi(store, ['--listen', '0.0.0.0:0', '--allow-remote', '--json']);
    expect(JSON.parse(remote.stdout)).toEqual({ address: remote.address, store });
    expect(remote.stderr).toMatch(/warning: the page is served on 0\.0\.0\.0, reachable beyond this machine/);
    expect((await get(portOf(remote.address), '/api/state', 'Host: strata.example:8411\r\n')).status).toBe(200);
    expect(await remote.stop()).toEqual({ code: 0, signal: null });
    expect(await ui.stop()).toEqual({ code: 0, signal: null });
  });

  it('serves no path outside its files, answers malformed requests with 400, and keeps serving', async () => {
    const ui = await startUi(store);
    const port = portOf(ui.address);
    const page = await get(port, '/');
    expect(page.status).toBe(200);
    expect(page.text).toContain('<title>strata</title>');
    expect((await get(port, '/vendor/d3-hierarchy.min.mjs')).status).toBe(200);
    const secrets = [/root:.*:0:0:/, /"name": ?"strata-disk"/, /SQLite format 3/, /compilerOptions/];
    for (const target of [
      '/../package.json',
      '/..%2fpackage.json',
      '/%2e%2e/%2e%2e/%2e%2e/etc/passwd',
      '/vendor/../../../../../../etc/passwd',
      '/vendor/..%2f..%2f..%2f..%2fpackage.json',
      '//etc/passwd',
      '/strata.db',
      `/${path.join(store, 'strata.db')}`,
      '/api/../strata.db',
      '/dist/ui/page/app.js',
      '/..\\..\\package.json',
      '/app.js%00.html',
      '/app.js/',
      'http://127.0.0.1/etc/passwd',
      '*',
      'app.js',
    ]) {
      const r = await get(port, target);
      expect([400, 404], target).toContain(r.status);
      for (const s of secrets) expect(r.text, target).not.toMatch(s);
    }
    // Malformed requests: 400 with a JSON error, whether HTTP itself or our parameters are wrong.
    const malformed: [string, number][] = [
      ['\x00\x01\x02 not http at all\r\n\r\n', 400],
      ['GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: nope\r\n\r\n', 400],
      [`GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Big: ${'a'.repeat(20_000)}\r\n\r\n`, 400],
      [`GET /${'a'.repeat(5000)} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n`, 400],
      ['GET /api/state?since=abc HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n', 400],
      ['GET /api/state?since=1&since=2 HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n', 400],
      ['GET /api/state?what=1 HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n', 400],
      ['GET /api/image HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n', 400],
      [`GET /api/image?name=${'x'.repeat(200)} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n`, 400],
      ['GET /api/image?name=nope HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n', 404],
      ['GET /api/image?name=%ff%fe HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n', 404],
      ['GET /api/image?name=.import-x HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n', 404],
      ['POST /api/state HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 2\r\nConnection: close\r\n\r\n{}', 405],
      ['DELETE /api/image?name=vm1 HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n', 405],
      // DNS rebinding: a page of another site reaching 127.0.0.1 under its own name.
      ['GET /api/state HTTP/1.1\r\nHost: attacker.example\r\nConnection: close\r\n\r\n', 403],
      ['GET /api/state HTTP/1.0\r\n\r\n', 403],
    ];
    for (const [bytes, status] of malformed) {
      const r = await rawRequest(port, bytes);
      expect(r.status, JSON.stringify(bytes.slice(0, 60))).toBe(status);
      expect(JSON.parse(r.text.slice(r.text.indexOf('\r\n\r\n') + 4)), bytes.slice(0, 60)).toHaveProperty('error');
    }
    // Still serving, and vm1 is still there: nothing was removed by the DELETE.
    const state = await get(port, '/api/state');
    expect(state.status).toBe(200);
    expect(JSON.parse(state.text.slice(state.text.indexOf('\r\n\r\n') + 4)).images.map((i: { name: string }) => i.name)).toContain('vm1');
    expect(ui.stderr).toBe('');
    expect(await ui.stop()).toEqual({ code: 0, signal: null });
  });

  it('answers 204 while the store is unchanged and shows what other processes change; never writes to the store', async () => {
    const s = tmpDir();
    const st = path.join(s, 'store');
    strataOk(st, ['create', 'a', '--size', '1M']);
    strataOk(st, ['freeze', 'a']);
    // A read-only SQLite connection may create an empty WAL file: no content, so hashed as if absent.
    const files = () => ['strata.db', 'strata.db-wal'].map((f) => createHash('sha256').update(fs.existsSync(path.join(st, f)) ? fs.readFileSync(path.join(st, f)) : '').digest('hex')).join();
    const before = files();
    const ui = await startUi(st);
    const base = ui.address;
    const first = (await (await fetch(`${base}api/state`)).json()) as UiState;
    expect(first.images.map((i: { name: string }) => i.name)).toEqual(['a']);
    expect((await fetch(`${base}api/state?since=${first.version}`)).status).toBe(204);
    for (let i = 0; i < 5; i++) expect((await fetch(`${base}api/image?name=a`)).status).toBe(200);
    expect(files()).toBe(before);
    strataOk(st, ['clone', 'a', 'b']);
    const next = await fetch(`${base}api/state?since=${first.version}`);
    expect(next.status).toBe(200);
    const changed = (await next.json()) as UiState;
    expect(changed.version).toBeGreaterThan(first.version);
    expect(changed.images.map((i: { name: string }) => i.name)).toEqual(['a', 'b']);
    expect(await ui.stop()).toEqual({ code: 0, signal: null });
  });

  it('--open hands the URL to the browser ($BROWSER), and says so when there is none', async () => {
    const dir = tmpDir();
    const opener = path.join(dir, 'browser.sh');
    fs.writeFileSync(opener, `#!/bin/sh\necho "$1" > ${dir}/opened\n`, { mode: 0o755 });
    const ui = await startUi(store, ['--listen', '127.0.0.1:0', '--open'], { BROWSER: opener });
    await waitForFile(path.join(dir, 'opened'), /\n/);
    expect(fs.readFileSync(path.join(dir, 'opened'), 'utf8').trim()).toBe(ui.address);
    await ui.stop();
    const none = await startUi(store, ['--listen', '127.0.0.1:0', '--open'], { BROWSER: path.join(dir, 'no-such-browser') });
    await none.waitFor(/yourself\n/, 'stderr');
    expect(none.stderr).toContain(`could not open a browser (${path.join(dir, 'no-such-browser')} is not installed); open ${none.address} yourself`);
    expect(await none.stop()).toEqual({ code: 0, signal: null });
  });

  it('beside a server and other processes cloning, writing and removing images, every answer is a 200 or 204', async () => {
    const s = tmpDir();
    const st = path.join(s, 'store');
    strataOk(st, ['create', 'base', '--size', '4M']);
    strataOk(st, ['write', 'base'], { input: Buffer.alloc(65536, 5) });
    strataOk(st, ['clone', 'base', 'served']);
    const served = await startServe(st, ['served']);
    const ui = await startUi(st);
    let stop = false;
    const statuses = new Map<string, number>();
    const count = (what: string) => statuses.set(what, (statuses.get(what) ?? 0) + 1);
    let seenVersions = 0;
    // The page's requests, as fast as they answer: the state and one image's details.
    const poller = (async () => {
      let version = 0;
      while (!stop) {
        const r = await fetch(`${ui.address}api/state${version ? `?since=${version}` : ''}`);
        count(`state ${r.status}`);
        if (r.status === 200) {
          const body = (await r.json()) as UiState;
          version = body.version;
          seenVersions++;
          const some = body.images[body.images.length - 1]?.name;
          if (some) {
            const d = await fetch(`${ui.address}api/image?name=${encodeURIComponent(some)}`);
            // It may have been removed in between: 404 is the honest answer then.
            count(`image ${d.status}`);
            await d.arrayBuffer();
          }
        }
      }
    })();
    // Another process changing the store the whole time.
    for (let i = 0; i < 6; i++) {
      expect((await strataAsync(st, ['clone', 'base', `c${i}`, `d${i}`])).status).toBe(0);
      expect((await strataAsync(st, ['write', `c${i}`, '--offset', '8192'], { input: Buffer.alloc(4096, i + 1) })).status).toBe(0);
      expect((await strataAsync(st, ['rm', `d${i}`])).status).toBe(0);
      if (i % 2) expect((await strataAsync(st, ['rm', `c${i - 1}`])).status).toBe(0);
    }
    stop = true;
    await poller;
    expect([...statuses.keys()].filter((k) => !['state 200', 'state 204', 'image 200', 'image 404'].includes(k)), JSON.stringify([...statuses])).toEqual([]);
    expect(seenVersions).toBeGreaterThan(3);
    const final = (await (await fetch(`${ui.address}api/state`)).json()) as UiState;
    const ls = JSON.parse(strataOk(st, ['--json', 'ls']).stdout);
    expect(final.images).toEqual(ls);
    expect(final.open).toMatchObject([{ name: 'served', mode: 'write', server: true, pid: served.pid }]);
    expect(ui.stderr).toBe('');
    expect(await ui.stop()).toEqual({ code: 0, signal: null });
    await served.stop();
  });
});
