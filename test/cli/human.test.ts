/**
 * Output for people: tables within 80 columns in human units (exact bytes
 * with -p), local times with their zone, map naming the layer of each
 * extent, info saying where an image came from.
 */
import fs from 'node:fs';
import path from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { sourceText } from '../../src/cli/commands/info.js';
import { strataOk } from '../helpers/cli.js';

let store: string;
let raw: string;
const MiB = 1024 * 1024;
const lines = (...l: string[]) => l.join('\n') + '\n';
const widest = (text: string) => Math.max(...text.split('\n').map((l) => l.length));

beforeAll(() => {
  const top = fs.mkdtempSync('/tmp/strata-human-');
  // The store is a directory of its own: one holding other files is not made a store.
  store = path.join(top, 'store');
  raw = path.join(top, 'debian-bookworm.raw');
  // A 64 MiB disk: 3 MiB of distinct blocks, then a hole.
  const data = Buffer.alloc(3 * MiB);
  for (let i = 0; i < data.length; i += 4096) data.writeUInt32LE(i + 1, i);
  fs.writeFileSync(raw, data);
  fs.truncateSync(raw, 64 * MiB);
  strataOk(store, ['create', 'debian-bookworm', '--from', raw]);
  strataOk(store, ['clone', 'debian-bookworm', 'web-frontend-01', 'web-frontend-02']);
  strataOk(store, ['write', 'web-frontend-01', '--offset', '1M'], { input: Buffer.alloc(8192, 0x77) });
  strataOk(store, ['snapshot', 'web-frontend-01', 'pre-upgrade']);
  strataOk(store, ['write', 'web-frontend-01', '--offset', '40M'], { input: Buffer.alloc(4096, 0x55) });
  return () => fs.rmSync(top, { recursive: true, force: true });
});

describe('human output', () => {
  it('du: human units within 80 columns; -p prints exact byte counts', () => {
    const du = strataOk(store, ['du']).stdout;
    expect(du).toBe(
      lines(
        'NAME                         KIND   REFERENCED  OWN    EXCLUSIVE  SHARED',
        'debian-bookworm              base   3 MiB       3 MiB  3 MiB      0 B',
        'web-frontend-01              leaf   3.00 MiB    4 KiB  4 KiB      0 B',
        'web-frontend-01@pre-upgrade  layer  3 MiB       8 KiB  8 KiB      0 B',
        'web-frontend-02              leaf   3 MiB       0 B    0 B        0 B',
      ),
    );
    expect(widest(du)).toBeLessThanOrEqual(80);
    expect(strataOk(store, ['du', '-p', 'web-frontend-01']).stdout).toBe(
      lines('NAME             KIND  REFERENCED  OWN   EXCLUSIVE  SHARED', 'web-frontend-01  leaf  3149824     4096  4096       0'),
    );
  });

  it('stats: every line within 80 columns; --bytes prints exact byte counts', () => {
    const s = strataOk(store, ['stats']).stdout;
    expect(widest(s)).toBeLessThanOrEqual(80);
    expect(s).toContain('\nlogical (raw copies):         256 MiB\n');
    expect(s).toContain('\nstored on disk:               3.01 MiB, 1.2% of logical, 96.3% of qcow2\n');
    const p = strataOk(store, ['stats', '--bytes']).stdout;
    expect(widest(p)).toBeLessThanOrEqual(80);
    expect(p).toContain('\nlogical (raw copies):         268435456\n');
    expect(p).toContain('\ndata files (allocated):       3153920, 3153920 apparent, 1 file(s)\n');
  });

  it('map names the layer that supplies each extent', () => {
    expect(strataOk(store, ['map', 'web-frontend-01']).stdout).toBe(
      lines(
        'START     LENGTH    KIND  DEPTH  LAYER',
        '0         1048576   data  2      debian-bookworm',
        '1048576   8192      data  1      web-frontend-01@pre-upgrade',
        '1056768   2088960   data  2      debian-bookworm',
        '3145728   38797312  hole  -      -',
        '41943040  4096      data  0      web-frontend-01',
        '41947136  25161728  hole  -      -',
      ),
    );
  });

  it('ls and info show local times with their zone; JSON keeps UTC', () => {
    const created = JSON.parse(strataOk(store, ['ls', '--json']).stdout)[0].createdAt as string;
    expect(created).toMatch(/Z$/);
    const at = new Date(created);
    // India is UTC+05:30 all year: no daylight saving to make the test depend on the date.
    const kolkata = new Date(at.getTime() + 330 * 60_000).toISOString().slice(0, 19).replace('T', ' ') + ' +05:30';
    const ls = strataOk(store, ['ls'], { env: { TZ: 'Asia/Kolkata' } }).stdout;
    expect(ls.split('\n')[1]).toBe(`debian-bookworm              base   -                            64 MiB  3 MiB  ${kolkata}`);
    const utc = strataOk(store, ['ls', '-p'], { env: { TZ: 'UTC' } }).stdout;
    expect(utc.split('\n')[1]).toBe(`debian-bookworm              base   -                            67108864  3145728  ${created.slice(0, 19).replace('T', ' ')} UTC`);
    const info = strataOk(store, ['info', 'debian-bookworm'], { env: { TZ: 'Asia/Kolkata' } }).stdout;
    expect(info).toContain(`\ncreated:      ${kolkata}\n`);
  });

  it('info shows where an image came from as text', () => {
    const info = strataOk(store, ['info', 'debian-bookworm']).stdout;
    expect(info).toContain(`\nsource:       raw file ${raw} (64 MiB)\n`);
    expect(strataOk(store, ['info', 'web-frontend-02']).stdout).not.toContain('source:');
    expect(sourceText({ format: 'qcow2', file: '/srv/vm.qcow2', clusterSize: 65536, version: 3, snapshot: 'before-upgrade' })).toBe(
      'qcow2 v3 file /srv/vm.qcow2, 64 KiB clusters, snapshot before-upgrade',
    );
  });
});
