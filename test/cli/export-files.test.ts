/**
 * Where an export writes, and what it never does to files: it writes under a
 * temporary name and renames at the end; --chain never writes over a file
 * of its own chain and overwrites nothing it did not create without
 * --force; devices, pipes, /dev/null and stdout work or fail in one line.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { ERROR_CODES } from '../../src/errors.js';
import { available } from '../helpers/available.js';
import { strata, strataAsync, strataOk, strataSpawn } from '../helpers/cli.js';
import { spawnTracked } from '../helpers/processes.js';
import { requireTool } from '../helpers/tools.js';
import { tmpDir } from '../helpers/tmp.js';

const MiB = 1024 * 1024;
const haveQemu = requireTool('qemu-img');

/** base (8 MiB, data at 1 MiB) with leaf top over it (data at 2 MiB). */
function fixture(): { dir: string; store: string } {
  const dir = tmpDir();
  const store = path.join(dir, 'st');
  strataOk(store, ['create', 'base', '--size', '8M']);
  strataOk(store, ['write', 'base', '--offset', '1M'], { input: crypto.randomBytes(64 * 1024) });
  strataOk(store, ['freeze', 'base']);
  strataOk(store, ['clone', 'base', 'top']);
  strataOk(store, ['write', 'top', '--offset', '2M'], { input: crypto.randomBytes(8192) });
  return { dir, store };
}

const files = (dir: string) => fs.readdirSync(dir).sort();

describe('export --chain and the files it writes', () => {
  it('the output named like a lower layer\'s file is refused, with or without --force, and that file is kept', () => {
    const { dir, store } = fixture();
    const out = path.join(dir, 'out');
    fs.mkdirSync(out);
    fs.writeFileSync(path.join(out, 'base.qcow2'), 'an earlier base');
    for (const extra of [[], ['--force']]) {
      const r = strata(store, ['export', 'top', path.join(out, 'base.qcow2'), '--format', 'qcow2', '--chain', ...extra]);
      expect(r.status).toBe(ERROR_CODES.E_BAD_INPUT);
      expect(r.stderr).toBe(`strata: ${path.join(out, 'base.qcow2')} is also where --chain writes layer base; name the output differently\n`);
    }
    // A symlink to the lower layer's file is the same file.
    fs.symlinkSync('base.qcow2', path.join(out, 'link.qcow2'));
    const r = strata(store, ['export', 'top', path.join(out, 'link.qcow2'), '--format', 'qcow2', '--chain', '--force']);
    expect(r.stderr).toBe(`strata: ${path.join(out, 'link.qcow2')} is also where --chain writes layer base; name the output differently\n`);
    expect(fs.readFileSync(path.join(out, 'base.qcow2'), 'utf8')).toBe('an earlier base');
    expect(files(out)).toEqual(['base.qcow2', 'link.qcow2']);
  });

  it.skipIf(!haveQemu)('files of the lower layers are overwritten only with --force', () => {
    const { dir, store } = fixture();
    strataOk(store, ['export', 'top', path.join(dir, 'top.raw')]);
    fs.writeFileSync(path.join(dir, 'base.qcow2'), 'not mine');
    const r = strata(store, ['export', 'top', path.join(dir, 'top.qcow2'), '--format', 'qcow2', '--chain']);
    expect(r.status).toBe(ERROR_CODES.E_EXISTS);
    expect(r.stderr).toBe(
      `strata: export --chain would overwrite ${path.join(dir, 'base.qcow2')} (layer base), which it did not create; pass --force to overwrite, or export into another directory\n`,
    );
    expect(fs.readFileSync(path.join(dir, 'base.qcow2'), 'utf8')).toBe('not mine');
    expect(fs.existsSync(path.join(dir, 'top.qcow2'))).toBe(false);
    strataOk(store, ['export', 'top', path.join(dir, 'top.qcow2'), '--format', 'qcow2', '--chain', '--force']);
    execFileSync('qemu-img', ['check', path.join(dir, 'base.qcow2')]);
    execFileSync('qemu-img', ['compare', path.join(dir, 'top.qcow2'), path.join(dir, 'top.raw')]);
    // Nothing but the outputs: no temporary file is left beside them.
    expect(files(dir)).toEqual(['base.qcow2', 'st', 'top.qcow2', 'top.raw']);
  });

  it.skipIf(!haveQemu)('a leaf smaller than its parent, and one grown again over it, export as chains qemu reads the same', () => {
    const { dir, store } = fixture();
    strataOk(store, ['resize', 'top', '1536K', '--shrink']);
    strataOk(store, ['export', 'top', path.join(dir, 'small.raw')]);
    strataOk(store, ['export', 'top', path.join(dir, 'small.qcow2'), '--format', 'qcow2', '--chain']);
    execFileSync('qemu-img', ['check', path.join(dir, 'small.qcow2')]);
    execFileSync('qemu-img', ['compare', path.join(dir, 'small.qcow2'), path.join(dir, 'small.raw')]);
    // Grown again on a snapshot of the small one: the bytes past 1.5 MiB read zero in strata and in qemu.
    strataOk(store, ['snapshot', 'top', 'top.small']);
    strataOk(store, ['resize', 'top', '8M']);
    strataOk(store, ['export', 'top', path.join(dir, 'grown.raw')]);
    expect(fs.readFileSync(path.join(dir, 'grown.raw')).subarray(1536 * 1024).equals(Buffer.alloc(8 * MiB - 1536 * 1024))).toBe(true);
    fs.mkdirSync(path.join(dir, 'g'));
    strataOk(store, ['export', 'top', path.join(dir, 'g', 'grown.qcow2'), '--format', 'qcow2', '--chain']);
    execFileSync('qemu-img', ['compare', path.join(dir, 'g', 'grown.qcow2'), path.join(dir, 'grown.raw')]);
    expect(JSON.parse(execFileSync('qemu-img', ['info', '--backing-chain', '--output=json', path.join(dir, 'g', 'grown.qcow2')], { encoding: 'utf8' })).map((i: { 'virtual-size': number }) => i['virtual-size'])).toEqual([
      8 * MiB,
      1536 * 1024,
      8 * MiB,
    ]);
  });
});

describe('export writes under a temporary name', () => {
  it('a failed export leaves no file, and an existing file as it was', () => {
    const { dir, store } = fixture();
    const out = path.join(dir, 'out');
    fs.mkdirSync(out);
    fs.writeFileSync(path.join(out, 'top.raw'), 'yesterday');
    // The data file loses the slots the export needs: the read fails part-way.
    fs.truncateSync(path.join(store, 'data', '000000.dat'), 4096);
    for (const args of [['export', 'top', path.join(out, 'top.raw')], ['export', 'top', path.join(out, 'new.raw')], ['export', 'top', path.join(out, 'top.qcow2'), '--format', 'qcow2']]) {
      const r = strata(store, args);
      expect(r.status, args.join(' ')).toBe(ERROR_CODES.E_CORRUPT);
    }
    expect(files(out)).toEqual(['top.raw']);
    expect(fs.readFileSync(path.join(out, 'top.raw'), 'utf8')).toBe('yesterday');
  });

  it('an export killed before its rename leaves only a hidden .part file, never one that looks complete', () => {
    const { dir, store } = fixture();
    const r = strata(store, ['export', 'top', path.join(dir, 'top.raw')], { env: { STRATA_FAULT: 'export.before-rename' } });
    expect(r.status).toBe(-1); // SIGKILLed
    const left = files(dir).filter((f) => f !== 'st');
    expect(left).toHaveLength(1);
    expect(left[0]).toMatch(/^\.top\.raw\.strata-\d+-[a-z0-9]+\.part$/);
  });

  it('the new file keeps the mode of the one it replaces; a symlink stays a symlink to the new content', () => {
    const { dir, store } = fixture();
    fs.writeFileSync(path.join(dir, 'real.raw'), 'old');
    fs.chmodSync(path.join(dir, 'real.raw'), 0o600);
    fs.symlinkSync('real.raw', path.join(dir, 'link.raw'));
    strataOk(store, ['export', 'top', path.join(dir, 'link.raw')]);
    expect(fs.lstatSync(path.join(dir, 'link.raw')).isSymbolicLink()).toBe(true);
    expect(fs.statSync(path.join(dir, 'real.raw')).mode & 0o777).toBe(0o600);
    expect(fs.statSync(path.join(dir, 'real.raw')).size).toBe(8 * MiB);
  });
});

describe('export to devices, pipes and stdout', () => {
  it('/dev/null, a named pipe and stdout (-) get every byte; read NAME FILE and read NAME - too', async () => {
    const { dir, store } = fixture();
    strataOk(store, ['export', 'top', path.join(dir, 'top.raw')]);
    const want = fs.readFileSync(path.join(dir, 'top.raw'));
    expect(strataOk(store, ['export', 'top', '/dev/null']).stdout).toBe('exported top to /dev/null (8 MiB virtual, 72 KiB written)\n');
    const stdout = strataOk(store, ['export', 'top', '-']);
    expect(stdout.out.equals(want)).toBe(true);
    expect(strataOk(store, ['export', 'top', '-', '--json']).out.equals(want)).toBe(true);
    const fifo = path.join(dir, 'fifo');
    execFileSync('mkfifo', [fifo]);
    // The reader of the pipe is another process: the export blocks until it reads.
    const reader = spawnTracked('sh', ['-c', `cat "${fifo}" > "${path.join(dir, 'from-fifo')}"`]);
    const exported = await strataAsync(store, ['export', 'top', fifo]);
    expect(exported.status, exported.err).toBe(0);
    expect((await reader.exited).code, reader.stderr).toBe(0);
    expect(fs.readFileSync(path.join(dir, 'from-fifo')).equals(want)).toBe(true);
    expect(strataOk(store, ['read', 'top', '-', '--offset', '1M', '--length', '64K']).out.equals(want.subarray(MiB, MiB + 65536))).toBe(true);
    expect(strataOk(store, ['read', 'top', path.join(dir, 'part.bin'), '--offset', '2M', '--length', '8K']).stdout).toBe(
      `read 8192 bytes of top at offset 2097152 into ${path.join(dir, 'part.bin')}\n`,
    );
    expect(fs.readFileSync(path.join(dir, 'part.bin')).equals(want.subarray(2 * MiB, 2 * MiB + 8192))).toBe(true);
  });

  it('what cannot work says why in one line', () => {
    const { dir, store } = fixture();
    const cases: [string[], number, string][] = [
      [['export', 'top', '-', '--format', 'qcow2'], ERROR_CODES.E_BAD_INPUT, 'strata: qcow2 needs an output it can seek in, and - is stdout; export --format raw to stream\n'],
      [['export', 'top', '/dev/null', '--format', 'qcow2'], ERROR_CODES.E_BAD_INPUT, 'strata: qcow2 needs an output it can seek in, and /dev/null is a character device; export --format raw to stream\n'],
      [['export', 'top', dir], ERROR_CODES.E_BAD_INPUT, `strata: ${dir} is a directory: give the file to write, such as ${path.join(dir, 'top.raw')}\n`],
      [['export', 'top', path.join(dir, 'no', 'such.raw')], ERROR_CODES.E_NOT_FOUND, `strata: cannot create ${path.join(dir, 'no', 'such.raw')}: no such directory ${path.join(dir, 'no')} (create it first)\n`],
      [['export', 'top', '/dev/null', '--format', 'qcow2', '--chain'], ERROR_CODES.E_BAD_INPUT, 'strata: --chain writes regular files, and /dev/null is a character device; export without --chain\n'],
    ];
    for (const [args, status, stderr] of cases) {
      const r = strata(store, args);
      expect(r.status, args.join(' ')).toBe(status);
      expect(r.stderr, args.join(' ')).toBe(stderr);
    }
  });

  it('the reading end of a pipe closing early ends the export quietly with status 0, as `cat | head` and `read | head` do', async () => {
    const { store } = fixture();
    const p = strataSpawn(store, ['export', 'top', '-']);
    // Take the first bytes, then close the pipe, as `| head -c 10` does.
    await new Promise<void>((resolve) => p.child.stdout!.once('data', () => resolve()));
    p.child.stdout!.destroy();
    const status = (await p.exited).code;
    expect(status).toBe(0);
    expect(p.stderr).toBe('');
  });
});

/** A loop device over a file of `bytes`, or undefined where that cannot be made (not root, no loop support). */
function loopDevice(dir: string, bytes: number): { dev: string; detach: () => void } | undefined {
  if (!requireTool('losetup') || process.getuid?.() !== 0) return undefined;
  const backing = path.join(dir, `loop-${bytes}.img`);
  fs.writeFileSync(backing, crypto.randomBytes(bytes)); // old data the export must overwrite
  const r = spawnSync('losetup', ['-f', '--show', backing], { encoding: 'utf8' });
  if (r.status !== 0) return undefined;
  const dev = r.stdout.trim();
  return { dev, detach: () => void spawnSync('losetup', ['-d', dev]) };
}

describe('export to a block device', () => {
  it.skipIf(!haveQemu)('raw and qcow2 onto a loop device: every byte, zeros included; a device too small is refused', (ctx) => {
    const { dir, store } = fixture();
    const big = loopDevice(dir, 12 * MiB);
    if (!available(big !== undefined, 'no loop device (needs root and losetup)') || !big) return ctx.skip();
    const small = loopDevice(dir, 4 * MiB);
    try {
      strataOk(store, ['export', 'top', path.join(dir, 'top.raw')]);
      const want = fs.readFileSync(path.join(dir, 'top.raw'));
      strataOk(store, ['export', 'top', big.dev]);
      const fd = fs.openSync(big.dev, 'r');
      const got = Buffer.alloc(8 * MiB);
      fs.readSync(fd, got, 0, got.length, 0);
      fs.closeSync(fd);
      expect(got.equals(want)).toBe(true);
      strataOk(store, ['export', 'top', big.dev, '--format', 'qcow2']);
      execFileSync('qemu-img', ['check', '-f', 'qcow2', big.dev]);
      execFileSync('qemu-img', ['compare', '-f', 'qcow2', '-F', 'raw', big.dev, path.join(dir, 'top.raw')]);
      if (small) {
        const r = strata(store, ['export', 'top', small.dev]);
        expect(r.status).toBe(ERROR_CODES.E_NO_SPACE);
        expect(r.stderr).toBe(`strata: ${small.dev} holds 4194304 bytes, less than image top (8388608 bytes)\n`);
      }
    } finally {
      big.detach();
      small?.detach();
    }
  });
});
