/**
 * qcow2 files in and out of a store through the CLI, with qemu-img as the
 * oracle: imports equal `qemu-img convert -O raw`, exports pass
 * `qemu-img check` and compare identical, chains and snapshots survive.
 */
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { ERROR_CODES } from '../../src/errors.js';
import { strata, strataOk } from '../helpers/cli.js';
import { requireTool } from '../helpers/tools.js';
import { tmpDir } from '../helpers/tmp.js';

const haveQemu = requireTool('qemu-img') && requireTool('qemu-io');

function q(cmd: string, args: string[], cwd: string): string {
  return execFileSync(cmd, args, { cwd, encoding: 'utf8' });
}

/** A three-deep chain with data, zeros over parent data, and an internal snapshot on top. */
function makeChain(dir: string) {
  q('qemu-img', ['create', '-q', '-f', 'qcow2', 'base.qcow2', '64M'], dir);
  q('qemu-io', ['-c', 'write -P 0x11 0 1M', '-c', 'write -P 0x22 8M 64k', '-c', 'write -P 0x66 63M 1M', 'base.qcow2'], dir);
  q('qemu-img', ['create', '-q', '-f', 'qcow2', '-b', 'base.qcow2', '-F', 'qcow2', 'mid.qcow2'], dir);
  q('qemu-io', ['-c', 'write -P 0x33 4k 8k', '-c', 'write -z 8M 4k', 'mid.qcow2'], dir);
  q('qemu-img', ['create', '-q', '-f', 'qcow2', '-b', 'mid.qcow2', '-F', 'qcow2', 'top.qcow2'], dir);
  q('qemu-io', ['-c', 'write -P 0x44 60M 1M', 'top.qcow2'], dir);
  q('qemu-img', ['snapshot', '-c', 'snap1', 'top.qcow2'], dir);
  q('qemu-io', ['-c', 'write -P 0x55 0 4k', '-c', 'discard 60M 64k', 'top.qcow2'], dir);
  q('qemu-img', ['convert', '-O', 'raw', 'top.qcow2', 'top.raw'], dir);
}

describe.skipIf(!haveQemu)('qcow2 through the CLI, against qemu-img', () => {
  it('files of each kind import to exactly the bytes of qemu-img convert -O raw', () => {
    const dir = tmpDir();
    const store = path.join(dir, 'st');
    const cases: [string, string[]][] = [
      ['c512', ['-o', 'cluster_size=512']],
      ['c2m', ['-o', 'cluster_size=2M']],
      ['v2', ['-o', 'compat=0.10']],
      ['ext', ['-o', 'extended_l2=on']],
    ];
    for (const [name, opts] of cases) {
      q('qemu-img', ['create', '-q', '-f', 'qcow2', ...opts, `${name}.qcow2`, '16M'], dir);
      q('qemu-io', ['-c', 'write -P 0x5a 1000 300000', '-c', 'write -z 64k 64k', '-c', 'write -P 0x7e 15M 1M', `${name}.qcow2`], dir);
      q('qemu-img', ['convert', '-O', 'raw', `${name}.qcow2`, `${name}.raw`], dir);
      strataOk(store, ['import', path.join(dir, `${name}.qcow2`), name]);
      strataOk(store, ['export', name, path.join(dir, `${name}.out`)]);
      expect(fs.readFileSync(path.join(dir, `${name}.out`)).equals(fs.readFileSync(path.join(dir, `${name}.raw`))), name).toBe(true);
    }
    // Compressed by qemu-img -c.
    q('qemu-img', ['convert', '-c', '-O', 'qcow2', 'c2m.raw', 'comp.qcow2'], dir);
    strataOk(store, ['import', path.join(dir, 'comp.qcow2'), 'comp']);
    strataOk(store, ['export', 'comp', path.join(dir, 'comp.out')]);
    expect(fs.readFileSync(path.join(dir, 'comp.out')).equals(fs.readFileSync(path.join(dir, 'c2m.raw')))).toBe(true);
    const info = JSON.parse(strataOk(store, ['info', 'c512', '--json']).stdout);
    expect(info.source).toMatchObject({ format: 'qcow2', clusterSize: 512, file: path.join(dir, 'c512.qcow2') });
  });

  it('a backing chain: refused without --with-backing, imported as layers with it, exported as a qcow2 chain', () => {
    const dir = tmpDir();
    const store = path.join(dir, 'st');
    makeChain(dir);
    const top = path.join(dir, 'top.qcow2');
    const r = strata(store, ['import', top, 'top']);
    expect(r.status).toBe(ERROR_CODES.E_BAD_INPUT);
    expect(r.stderr).toMatch(/has a backing file \(mid\.qcow2\); import the chain with --with-backing/);
    expect(strataOk(store, ['ls', '--json']).stdout.trim()).toBe('[]');

    strataOk(store, ['import', top, 'top', '--with-backing', '--name-prefix', 'img-']);
    const chain = JSON.parse(strataOk(store, ['info', 'top', '--json']).stdout).chain;
    expect(chain).toEqual(['top', 'img-mid', 'img-base']);
    strataOk(store, ['export', 'top', path.join(dir, 'top.out')]);
    expect(fs.readFileSync(path.join(dir, 'top.out')).equals(fs.readFileSync(path.join(dir, 'top.raw')))).toBe(true);

    // Exported back as a chain: qemu-img sees the same tree, checks each file clean, and reads the same bytes.
    const out = path.join(dir, 'x', 'top-out.qcow2');
    fs.mkdirSync(path.dirname(out));
    strataOk(store, ['export', 'top', out, '--format', 'qcow2', '--chain']);
    const infos = JSON.parse(q('qemu-img', ['info', '--backing-chain', '--output=json', out], dir));
    expect(infos.map((i: { filename: string }) => path.basename(i.filename))).toEqual(['top-out.qcow2', 'img-mid.qcow2', 'img-base.qcow2']);
    expect(infos[0]['backing-filename-format']).toBe('qcow2');
    for (const f of ['top-out.qcow2', 'img-mid.qcow2', 'img-base.qcow2']) q('qemu-img', ['check', path.join(dir, 'x', f)], dir);
    q('qemu-img', ['compare', out, path.join(dir, 'top.raw')], dir);
  });

  it('an internal snapshot imports its own state; --list-snapshots lists it', () => {
    const dir = tmpDir();
    const store = path.join(dir, 'st');
    makeChain(dir);
    const list = JSON.parse(strataOk(store, ['import', path.join(dir, 'top.qcow2'), '--list-snapshots', '--json']).stdout);
    expect(list.map((s: { name: string }) => s.name)).toEqual(['snap1']);
    strataOk(store, ['import', path.join(dir, 'top.qcow2'), 'then', '--with-backing', '--name-prefix', 's-', '--snapshot', 'snap1']);
    q('qemu-img', ['convert', '-l', 'snapshot.name=snap1', '-O', 'raw', 'top.qcow2', 'snap.raw'], dir);
    strataOk(store, ['export', 'then', path.join(dir, 'then.out')]);
    expect(fs.readFileSync(path.join(dir, 'then.out')).equals(fs.readFileSync(path.join(dir, 'snap.raw')))).toBe(true);
    const r = strata(store, ['import', path.join(dir, 'top.qcow2'), 'nope', '--with-backing', '--name-prefix', 'n-', '--snapshot', 'missing']);
    expect(r.status).toBe(ERROR_CODES.E_BAD_INPUT);
    // The failed import leaves no layers behind.
    expect(JSON.parse(strataOk(store, ['ls', '--json']).stdout).map((i: { name: string }) => i.name).filter((n: string) => n.startsWith('n-'))).toEqual([]);
  });

  it('a backing file whose format is not declared is refused, never probed', () => {
    const dir = tmpDir();
    const store = path.join(dir, 'st');
    q('qemu-img', ['create', '-q', '-f', 'qcow2', 'b.qcow2', '1M'], dir);
    q('qemu-img', ['create', '-q', '-f', 'qcow2', '-b', 'b.qcow2', '-F', 'qcow2', 't.qcow2'], dir);
    // Rename the backing-format header extension (0xe2792aca) to an unknown, skipped one.
    const f = path.join(dir, 't.qcow2');
    const buf = fs.readFileSync(f);
    const at = buf.indexOf(Buffer.from([0xe2, 0x79, 0x2a, 0xca]));
    expect(at).toBeGreaterThan(0);
    buf.writeUInt32BE(0x0badf00d, at);
    fs.writeFileSync(f, buf);
    const r = strata(store, ['import', path.join(dir, 't.qcow2'), 't', '--with-backing']);
    expect(r.status).toBe(ERROR_CODES.E_UNSUPPORTED);
    expect(r.stderr).toMatch(/format of its backing file b\.qcow2 is not declared/);
  });

  it('exports: qemu-img check clean, compare identical, info and map as expected; round trip of a qemu-img file', () => {
    const dir = tmpDir();
    const store = path.join(dir, 'st');
    q('qemu-img', ['create', '-q', '-f', 'qcow2', 'src.qcow2', '32M'], dir);
    q('qemu-io', ['-c', 'write -P 0x61 0 2M', '-c', 'write -P 0x62 5M 100k', '-c', 'write -P 0x63 20M 64k', 'src.qcow2'], dir);
    strataOk(store, ['import', path.join(dir, 'src.qcow2'), 'src']);
    strataOk(store, ['clone', 'src', 'vm']);
    strataOk(store, ['write', 'vm', '--offset', '20M'], { input: Buffer.alloc(65536) }); // zeros over data
    strataOk(store, ['export', 'vm', path.join(dir, 'vm.raw')]);
    for (const extra of [[], ['--compress'], ['--cluster-size', '4K']]) {
      const out = path.join(dir, `vm${extra.join('')}.qcow2`);
      strataOk(store, ['export', 'vm', out, '--format', 'qcow2', ...extra]);
      q('qemu-img', ['check', out], dir);
      q('qemu-img', ['compare', out, path.join(dir, 'vm.raw')], dir);
      const info = JSON.parse(q('qemu-img', ['info', '--output=json', out], dir));
      expect(info['virtual-size']).toBe(32 * 1024 * 1024);
      expect(info['cluster-size']).toBe(extra[0] === '--cluster-size' ? 4096 : 65536);
    }
    const map = JSON.parse(q('qemu-img', ['map', '--output=json', path.join(dir, 'vm.qcow2')], dir)) as { start: number; length: number; data: boolean; zero: boolean }[];
    const at20M = map.find((m) => m.start <= 20 * 1024 * 1024 && m.start + m.length > 20 * 1024 * 1024)!;
    expect(at20M).toMatchObject({ data: false, zero: true });
    // Round trip: qemu-img's file -> strata -> qcow2 compares identical with the original.
    strataOk(store, ['export', 'src', path.join(dir, 'rt.qcow2'), '--format', 'qcow2']);
    q('qemu-img', ['compare', path.join(dir, 'rt.qcow2'), path.join(dir, 'src.qcow2')], dir);
  });

  it('a hostile file is refused with one line and leaves the store unchanged', () => {
    const dir = tmpDir();
    const store = path.join(dir, 'st');
    strataOk(store, ['create', 'keep', '--size', '1M']);
    q('qemu-img', ['create', '-q', '-f', 'qcow2', 'bad.qcow2', '16M'], dir);
    const f = path.join(dir, 'bad.qcow2');
    const buf = fs.readFileSync(f);
    buf.writeUInt32BE(40, 20); // cluster_bits out of range
    fs.writeFileSync(f, buf);
    const before = strataOk(store, ['ls', '--json']).stdout;
    const r = strata(store, ['import', f, 'bad']);
    expect(r.status).toBe(ERROR_CODES.E_BAD_FILE);
    expect(r.stderr.trim().split('\n')).toHaveLength(1);
    expect(r.stderr).toMatch(/cluster_bits/);
    expect(strataOk(store, ['ls', '--json']).stdout).toBe(before);
    expect(strata(store, ['check']).status).toBe(0);
  });
});
