/**
 * What `strata import` makes of the file it is given: `-` is stdin, a
 * missing NAME comes from the file name, a file that looks like something
 * else than it is imported as gets a warning, and a qcow2 overlay goes only
 * over the parent its backing file stands for; a second overlay on the same
 * backing file shares the layer already imported from it.
 */
import { execFileSync, type ChildProcessWithoutNullStreams } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import zlib from 'node:zlib';
import { describe, expect, it } from 'vitest';
import { ERROR_CODES } from '../../src/errors.js';
import { strata, strataOk, strataSpawn } from '../helpers/cli.js';
import { faultChannel } from '../helpers/fault.js';
import { signalDelivered } from '../helpers/proc.js';
import { requireTool } from '../helpers/tools.js';
import { tmpDir } from '../helpers/tmp.js';

const haveQemu = requireTool('qemu-img') && requireTool('qemu-io');
const names = (store: string): string[] => JSON.parse(strataOk(store, ['ls', '--json']).stdout).map((i: { name: string }) => i.name);
const info = (store: string, name: string) => JSON.parse(strataOk(store, ['info', name, '--json']).stdout);

/** A raw disk: an MBR-like first sector and data further in. */
function disk(bytes = 1024 * 1024): Buffer {
  const b = Buffer.alloc(bytes);
  b[510] = 0x55;
  b[511] = 0xaa;
  crypto.randomBytes(8192).copy(b, 65536);
  return b;
}

describe('import FILE [NAME]', () => {
  it('without NAME, the image is named after the file', () => {
    const dir = tmpDir();
    const store = path.join(dir, 'st');
    for (const [file, name] of [
      ['debian-12.raw', 'debian-12'],
      ['web server.img', 'web-server'],
      ['plain', 'plain'],
    ]) {
      fs.writeFileSync(path.join(dir, file), disk(65536));
      expect(strataOk(store, ['import', path.join(dir, file)]).stdout).toMatch(new RegExp(`^imported ${name}: base`));
    }
    expect(names(store)).toEqual(['debian-12', 'plain', 'web-server']);
  });

  it('- reads stdin: a pipe of any length, raw, as sparse as from a file', () => {
    const dir = tmpDir();
    const store = path.join(dir, 'st');
    const bytes = Buffer.concat([disk(3 * 1024 * 1024), crypto.randomBytes(1000)]); // not a whole block at the end
    const r = strataOk(store, ['import', '-', 'piped'], { input: bytes });
    expect(r.stderr).toBe('strata: warning: stdin is 3146728 bytes, not a whole number of 512-byte sectors, so probably not a disk image; importing it as raw all the same\n');
    expect(strataOk(store, ['read', 'piped']).out.equals(bytes)).toBe(true);
    const i = info(store, 'piped');
    expect(i.virtualSize).toBe(bytes.length);
    expect(i.ownBytes).toBe(4 * 4096); // the first sector's block, 8 KiB of data in two blocks, the tail's block
    expect(i.source).toEqual({ format: 'raw', file: '-' });
    // Growing it later shows zeros past the old end, not what followed in the last block.
    strataOk(store, ['clone', 'piped', 'grown']);
    strataOk(store, ['resize', 'grown', '4M']);
    expect(strataOk(store, ['read', 'grown', '--offset', String(bytes.length)]).out.equals(Buffer.alloc(4 * 1024 * 1024 - bytes.length))).toBe(true);
    // An empty pipe is a zero-length image.
    strataOk(store, ['import', '-', 'nothing'], { input: Buffer.alloc(0) });
    expect(info(store, 'nothing').virtualSize).toBe(0);
    expect(strataOk(store, ['check']).status).toBe(0);
  });

  it('- redirected from a file is that file, any format', () => {
    const dir = tmpDir();
    const store = path.join(dir, 'st');
    const f = path.join(dir, 'disk.raw');
    fs.writeFileSync(f, disk());
    const fd = fs.openSync(f, 'r');
    const r = strata(store, ['import', '-', 'redirected'], { stdinFd: fd });
    fs.closeSync(fd);
    expect(r.status, r.stderr).toBe(0);
    expect(info(store, 'redirected').source).toMatchObject({ format: 'raw', file: f });
    expect(strataOk(store, ['read', 'redirected']).out.equals(fs.readFileSync(f))).toBe(true);
  });

  it('- refuses what a pipe cannot carry, and needs a NAME', () => {
    const dir = tmpDir();
    const store = path.join(dir, 'st');
    strataOk(store, ['init']);
    const qcow2Head = Buffer.concat([Buffer.from([0x51, 0x46, 0x49, 0xfb, 0, 0, 0, 3]), Buffer.alloc(8192)]);
    let r = strata(store, ['import', '-', 'q'], { input: qcow2Head });
    expect(r.status).toBe(ERROR_CODES.E_UNSUPPORTED);
    expect(r.stderr).toBe('strata: stdin holds a qcow2 image, which cannot be read from a pipe: save it to a file and import that file\n');
    // A fixed VHD shows what it is only at its end, after the data has been read: refused all the same, nothing kept.
    const footer = Buffer.alloc(512);
    footer.write('conectix', 0, 'latin1');
    r = strata(store, ['import', '-', 'v'], { input: Buffer.concat([disk(65536), footer]) });
    expect(r.status).toBe(ERROR_CODES.E_UNSUPPORTED);
    expect(r.stderr).toBe('strata: stdin holds a VHD image, which cannot be read from a pipe: save it to a file and import that file\n');
    r = strata(store, ['import', '-'], { input: disk() });
    expect(r.status).toBe(ERROR_CODES.E_BAD_INPUT);
    expect(r.stderr).toBe('strata: import from stdin (-) needs a name for the new image: strata import - NAME\n');
    r = strata(store, ['import', '-', 'x', '--format', 'qcow2'], { input: disk() });
    expect(r.stderr).toBe('strata: --format qcow2 needs a file: only raw images can be read from a pipe\n');
    expect(names(store)).toEqual([]);
    expect(strataOk(store, ['check']).status).toBe(0);
  });

  it('files that look like no disk, or like another format than --format says, import with a warning', () => {
    const dir = tmpDir();
    const store = path.join(dir, 'st');
    const put = (f: string, b: Buffer | string) => (fs.writeFileSync(path.join(dir, f), b), path.join(dir, f));
    const cases: [string, string][] = [
      [put('notes.txt', 'these are my notes\n'.repeat(100)), 'looks like a text file, not a disk image'],
      [put('disk.raw.gz', zlib.gzipSync(disk())), 'looks like gzip-compressed data (decompress it first), not a disk image'],
      [put('vm.ova', Buffer.concat([Buffer.alloc(257), Buffer.from('ustar\0'), Buffer.alloc(1024 - 263)])), 'looks like a tar archive (an OVA holds its disks inside: extract them first), not a disk image'],
      [put('odd.raw', Buffer.concat([disk(4096), Buffer.from([1, 2, 3])])), 'is 4099 bytes, not a whole number of 512-byte sectors, so probably not a disk image'],
    ];
    for (const [file, why] of cases) {
      const r = strataOk(store, ['import', file, path.basename(file).replace(/\W/g, '-')]);
      expect(r.stderr).toBe(`strata: warning: ${file} ${why}; importing it as raw all the same\n`);
    }
    // A plain raw disk, and an all-zero one, import without a word.
    expect(strataOk(store, ['import', put('good.raw', disk()), 'good']).stderr).toBe('');
    expect(strataOk(store, ['import', put('zeros.raw', Buffer.alloc(65536)), 'zeros']).stderr).toBe('');
    expect(strataOk(store, ['import', put('erased.raw', Buffer.alloc(65536, 0xff)), 'erased']).stderr).toBe('');
  });

  it.skipIf(!haveQemu)('--format raw on a qcow2 file warns, and imports its bytes as they are', () => {
    const dir = tmpDir();
    const store = path.join(dir, 'st');
    const f = path.join(dir, 'vm.qcow2');
    execFileSync('qemu-img', ['create', '-q', '-f', 'qcow2', f, '1M']);
    const r = strataOk(store, ['import', f, 'asraw', '--format', 'raw']);
    expect(r.stderr).toBe(`strata: warning: ${f} looks like a qcow2 image, but --format raw imports its bytes as they are\n`);
    expect(strataOk(store, ['read', 'asraw']).out.equals(fs.readFileSync(f))).toBe(true);
  });
});

describe.skipIf(!haveQemu)('qcow2 overlays and the parent they go over', () => {
  /** base.qcow2 and other.qcow2 (different data), overlays o1 and o2 on base. */
  function files(dir: string) {
    const q = (...a: string[]) => execFileSync(a[0], a.slice(1), { cwd: dir, stdio: 'ignore' });
    q('qemu-img', 'create', '-q', '-f', 'qcow2', 'base.qcow2', '4M');
    q('qemu-io', '-c', 'write -P 0x11 0 1M', 'base.qcow2');
    q('qemu-img', 'create', '-q', '-f', 'qcow2', 'other.qcow2', '4M');
    q('qemu-io', '-c', 'write -P 0x99 0 2M', 'other.qcow2');
    for (const [o, p] of [
      ['o1', '0x22'],
      ['o2', '0x33'],
    ]) {
      q('qemu-img', 'create', '-q', '-f', 'qcow2', '-b', 'base.qcow2', '-F', 'qcow2', `${o}.qcow2`);
      q('qemu-io', '-c', `write -P ${p} 3M 64k`, `${o}.qcow2`);
      q('qemu-img', 'convert', '-O', 'raw', `${o}.qcow2`, `${o}.raw`);
    }
  }

  it('--parent must be the layer imported from the backing file, unless --force', () => {
    const dir = tmpDir();
    const store = path.join(dir, 'st');
    files(dir);
    strataOk(store, ['import', path.join(dir, 'base.qcow2')]);
    strataOk(store, ['import', path.join(dir, 'other.qcow2')]);
    const o1 = path.join(dir, 'o1.qcow2');
    const r = strata(store, ['import', o1, 'wrong', '--parent', 'other']);
    expect(r.status).toBe(ERROR_CODES.E_BAD_INPUT);
    expect(r.stderr).toBe(
      `strata: ${o1} is backed by ${path.join(dir, 'base.qcow2')}, but other was imported from ${path.join(dir, 'other.qcow2')}; pass --force to import it over other all the same\n`,
    );
    expect(names(store)).toEqual(['base', 'other']);
    strataOk(store, ['import', o1, 'forced', '--parent', 'other', '--force']);
    strataOk(store, ['import', o1, 'right', '--parent', 'base']);
    expect(strataOk(store, ['read', 'right']).out.equals(fs.readFileSync(path.join(dir, 'o1.raw')))).toBe(true);
    // A parent whose source the store does not know cannot be checked, and is taken at the user's word.
    strataOk(store, ['create', 'blank', '--size', '4M']);
    strataOk(store, ['freeze', 'blank']);
    strataOk(store, ['import', o1, 'unknown', '--parent', 'blank']);
    // Without flags, the refusal names the layer that stands for the backing file.
    const hint = strata(store, ['import', o1, 'bare']);
    expect(hint.stderr).toBe(`strata: ${o1} has a backing file (base.qcow2); import the chain with --with-backing, or name a --parent to store it over (base was imported from it: --parent base)\n`);
  });

  it('a second overlay on the same backing file shares the layer imported from it; a changed backing file is not taken for it', () => {
    const dir = tmpDir();
    const store = path.join(dir, 'st');
    files(dir);
    strataOk(store, ['import', path.join(dir, 'o1.qcow2'), '--with-backing']);
    strataOk(store, ['import', path.join(dir, 'o2.qcow2'), '--with-backing']);
    expect(strataOk(store, ['tree']).stdout.split('\n').map((l) => l.split(/\s+/).slice(0, 2).join(' '))).toEqual(['base base', '├── o1', '└── o2', '']);
    for (const o of ['o1', 'o2']) expect(strataOk(store, ['read', o]).out.equals(fs.readFileSync(path.join(dir, `${o}.raw`))), o).toBe(true);
    // base.qcow2 changes: the layer imported from it is no longer what it holds.
    execFileSync('qemu-io', ['-c', 'write -P 0x44 2M 64k', path.join(dir, 'base.qcow2')], { stdio: 'ignore' });
    const r = strata(store, ['import', path.join(dir, 'o1.qcow2'), 'o1-again', '--with-backing']);
    expect(r.status).toBe(ERROR_CODES.E_EXISTS);
    expect(r.stderr).toBe(`strata: ${path.join(dir, 'base.qcow2')} changed since it was imported as base; use --name-prefix to import the chain again under other names\n`);
    strataOk(store, ['import', path.join(dir, 'o1.qcow2'), 'o1-again', '--with-backing', '--name-prefix', 'new-']);
    expect(names(store)).toEqual(['base', 'new-base', 'o1', 'o1-again', 'o2']);
  });
});

describe('Ctrl-C during an import that reads as it goes', () => {
  it('from a pipe: exit 130, one line, no image left', async () => {
    const dir = tmpDir();
    const store = path.join(dir, 'st');
    strataOk(store, ['init']);
    const fault = faultChannel();
    // The import stops reading when interrupted: the rest of a write, the first one too, meets EPIPE (which the tracked spawner ignores).
    const p = strataSpawn(store, ['import', '-', 'piped'], { env: fault.env('import.after-create'), keepStdin: true });
    const child = p.child as ChildProcessWithoutNullStreams;
    const exit = p.exited.then((e) => e.code);
    child.stdin.write(disk(1024 * 1024));
    await fault.reached('import.after-create', { exited: exit });
    // Held with the hidden image made: the interrupt is in before the import reads on, and it sees it at its next chunk.
    await signalDelivered(child.pid!, 'SIGINT');
    fault.release();
    child.stdin.write(disk(1024 * 1024));
    expect(await exit).toBe(130);
    expect(p.stderr).toBe('strata: interrupted: nothing imported\n');
    expect(names(store)).toEqual([]);
    expect(strata(store, ['check']).status).toBe(0);
  });
});
