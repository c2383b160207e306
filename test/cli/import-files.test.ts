/**
 * What `strata import` makes of the file it is given: `-` is stdin, a
 * missing NAME comes from the file name, a file that looks like something
 * else than it is imported as gets a warning.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import zlib from 'node:zlib';
import { describe, expect, it } from 'vitest';
import { ERROR_CODES } from '../../src/errors.js';
import { STRATA_BIN, strata, strataOk } from '../helpers/cli.js';
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
    const r = spawnSync(process.execPath, [STRATA_BIN, '--store', store, 'import', '-', 'redirected'], { stdio: [fd, 'pipe', 'pipe'] });
    fs.closeSync(fd);
    expect(r.status, r.stderr.toString()).toBe(0);
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
