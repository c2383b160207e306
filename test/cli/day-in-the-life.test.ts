/**
 * The README's "A day in the life": import, clone, serve, a live snapshot,
 * rollback, a container image removed and pruned, a push. Each step is one
 * line of that README block, run here as written (a test store, socket and
 * bucket in place of the README's paths), and the block must list exactly
 * these steps, in this order, so the README cannot drift from what runs.
 */
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { strataOk } from '../helpers/cli.js';
import { bytes, ociImage, type Entry } from '../helpers/oci.js';
import { freshBucket, haveRgw, rgw } from '../helpers/rgw.js';
import { startServe, type Served } from '../helpers/serve.js';
import { requireTool, run } from '../helpers/tools.js';
import { tmpDir } from '../helpers/tmp.js';

const MiB = 1024 * 1024;

/** The commands of the README block, comments dropped. */
function readmeBlock(): string[] {
  const readme = fs.readFileSync('README.md', 'utf8');
  const at = readme.indexOf('### A day in the life');
  expect(at, 'README has no "A day in the life" section').toBeGreaterThan(0);
  const start = readme.indexOf('```sh\n', at) + '```sh\n'.length;
  const block = readme.slice(start, readme.indexOf('```', start));
  return block
    .split('\n')
    .map((l) => l.replace(/\s+#.*$/, '').trim())
    .filter((l) => l.length > 0);
}

const APP: Entry[][] = [
  [{ type: 'dir', name: 'usr/' }, { type: 'file', name: 'usr/lib.so', data: bytes('day-lib', 300_000), mode: 0o755 }],
  [{ type: 'dir', name: 'app/' }, { type: 'file', name: 'app/server', data: bytes('day-app', 200_000), mode: 0o755 }],
];

describe.skipIf(!requireTool('qemu-io') || !requireTool('umoci') || !haveRgw())('a day in the life (README)', () => {
  it('every command of the README block runs as written and does what its comment says', { timeout: 300_000 }, async () => {
    const dir = tmpDir('strata-day-');
    const store = path.join(dir, 'store');
    const raw = path.join(dir, 'debian.raw');
    fs.writeFileSync(raw, Buffer.concat([randomBytes(2 * MiB), Buffer.alloc(2 * MiB)]));
    const layout = path.join(dir, 'app-layout');
    ociImage(layout, 'app', APP, dir);
    const { endpoint } = rgw();
    const bucket = freshBucket('day');
    let srv: Served | undefined;
    const qemuIo = async (cmd: string) => {
      const r = await run('qemu-io', ['-f', 'raw', '-c', cmd, srv!.uri('web1')]);
      expect(r.code, r.stderr + r.stdout).toBe(0);
    };
    const web1 = () => strataOk(store, ['read', 'web1', '--length', '1M']).out;

    const steps: [string, () => Promise<void> | void][] = [
      ['strata import debian.raw', () => {
        expect(strataOk(store, ['import', raw]).stdout).toMatch(/\bdebian\b/);
      }],
      ['strata clone debian web1', () => void strataOk(store, ['clone', 'debian', 'web1'])],
      ['strata serve web1 --socket /run/web1.sock &', async () => {
        srv = await startServe(store, ['web1']);
      }],
      ["qemu-io -f raw -c 'write -P 0x11 0 1M' 'nbd+unix:///web1?socket=/run/web1.sock'", () => qemuIo('write -P 0x11 0 1M')],
      ['strata snapshot web1 before-upgrade', () => {
        expect(strataOk(store, ['snapshot', 'web1', 'before-upgrade']).stdout).toContain('web1@before-upgrade');
      }],
      ["qemu-io -f raw -c 'write -P 0x22 0 1M' 'nbd+unix:///web1?socket=/run/web1.sock'", () => qemuIo('write -P 0x22 0 1M')],
      ['kill %1', async () => {
        expect((await srv!.stop('SIGTERM')).code).toBe(0);
        expect(web1().equals(Buffer.alloc(MiB, 0x22))).toBe(true);
      }],
      ['strata rollback web1@before-upgrade', () => {
        strataOk(store, ['rollback', 'web1@before-upgrade']);
        expect(web1().equals(Buffer.alloc(MiB, 0x11))).toBe(true);
      }],
      ['strata import oci:app-layout:app app', () => void strataOk(store, ['import', `oci:${layout}:app`, 'app'])],
      ['strata rm app', () => {
        expect(strataOk(store, ['rm', 'app']).stdout).toMatch(/\n2 container layers, [\d.]+ KiB, no longer used: strata prune\n$/);
      }],
      ['strata prune', () => {
        expect(strataOk(store, ['prune']).stdout).toMatch(/^removed 2 container layers; freed [\d.]+ KiB/m);
      }],
      ['strata remote add fleet s3://images --endpoint http://rgw.local:7480 --create', () => {
        strataOk(store, ['remote', 'add', 'fleet', `s3://${bucket}`, '--endpoint', endpoint, '--create']);
      }],
      ['strata push debian fleet', () => {
        expect(strataOk(store, ['push', 'debian', 'fleet']).stdout).toMatch(/uploaded 512 block\(s\)/);
      }],
      ['strata check', () => {
        expect(strataOk(store, ['check']).stdout).toContain('No errors were found on the store.');
      }],
    ];
    expect(readmeBlock()).toEqual(steps.map(([line]) => line));
    for (const [, step] of steps) await step();
    expect(JSON.parse(strataOk(store, ['ls', '--json']).stdout).map((i: { name: string }) => i.name)).toEqual(['debian', 'web1', 'web1@before-upgrade']);
  });
});
