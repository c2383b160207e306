/**
 * `strata serve` prints a URI for every export it serves, and each one
 * works as printed: nbdinfo opens it and sees the image's size.
 */
import fs from 'node:fs';
import path from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { strataOk } from '../helpers/cli.js';
import { startServe, type Served } from '../helpers/serve.js';
import { requireTool, runOk } from '../helpers/tools.js';

let store: string;
const SIZES: Record<string, number> = { a: 1048576, b: 2097152, 'c.snap1': 3 * 1048576 };

beforeAll(() => {
  store = fs.mkdtempSync('/tmp/strata-uris-');
  for (const [name, size] of Object.entries(SIZES)) strataOk(store, ['create', name, '--size', String(size)]);
  strataOk(store, ['freeze', 'b']);
  return () => fs.rmSync(store, { recursive: true, force: true });
});

/** The server's stdout once it holds `lines` lines (they come in one write, but may arrive in pieces). */
async function printed(srv: Served, lines: number): Promise<string[]> {
  await srv.waitFor(new RegExp(`^(?:.*\\n){${lines}}`), 'stdout');
  return srv.stdout.trimEnd().split('\n');
}

async function nbdSize(uri: string): Promise<number> {
  return Number((await runOk('nbdinfo', ['--size', uri], { timeoutMs: 20_000 })).stdout.trim());
}

describe.runIf(requireTool('nbdinfo'))('serve prints a working URI for every export', () => {
  it('on a Unix socket whose path needs escaping: one line per export, each opens with nbdinfo', async () => {
    const dir = fs.mkdtempSync('/tmp/strata uri & co-');
    try {
      const sock = path.join(dir, 's.sock');
      const q = encodeURIComponent(sock).replace(/%2F/g, '/');
      const srv = await startServe(store, ['a', 'b'], { listenArgs: ['--socket', sock] });
      expect(await printed(srv, 3)).toEqual([`serving a, b on nbd+unix:///?socket=${q}`, `  a  nbd+unix:///a?socket=${q}`, `  b  nbd+unix:///b?socket=${q}`]);
      expect(srv.address).toBe(`nbd+unix:///?socket=${q}`);
      expect(await nbdSize(`nbd+unix:///a?socket=${q}`)).toBe(SIZES.a);
      expect(await nbdSize(`nbd+unix:///b?socket=${q}`)).toBe(SIZES.b);
      expect((await srv.stop()).code).toBe(0);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  it('on TCP, every image: the printed URIs, and the same in --json, each open with nbdinfo', async () => {
    const srv = await startServe(store, [], { listenArgs: ['--listen', '127.0.0.1:0'] });
    const lines = await printed(srv, 4);
    const port = /^serving all images on nbd:\/\/127\.0\.0\.1:(\d+)\/$/.exec(lines[0])![1];
    expect(lines.slice(1)).toEqual(Object.keys(SIZES).map((n) => `  ${n.padEnd(7)}  nbd://127.0.0.1:${port}/${n}`));
    for (const line of lines.slice(1)) {
      const [, name, uri] = /^ {2}(\S+) +(\S+)$/.exec(line)!;
      expect(await nbdSize(uri)).toBe(SIZES[name]);
    }
    expect((await srv.stop()).code).toBe(0);

    const js = await startServe(store, ['c.snap1'], { listenArgs: ['--listen', '127.0.0.1:0', '--json'] });
    const doc = JSON.parse((await printed(js, 1))[0]) as { address: string; exports: { name: string; uri: string }[] };
    expect(doc.exports.map((e) => e.name)).toEqual(['c.snap1']);
    expect(doc.exports[0].uri).toBe(`${doc.address}c.snap1`);
    expect(await nbdSize(doc.exports[0].uri)).toBe(SIZES['c.snap1']);
    expect((await js.stop()).code).toBe(0);
    expect(js.stdout.trimEnd().split('\n')).toHaveLength(1); // nothing printed at exit
  });
});
