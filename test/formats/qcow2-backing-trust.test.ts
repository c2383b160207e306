/**
 * `import --with-backing` of qcow2 files made by someone else: a backing
 * file name may point anywhere, and strata follows it only to a regular
 * file in or below the top file's directory (symlinks resolved), or below
 * a directory named with --backing-dir. Whatever is refused leaves the
 * store as it was; a legitimate chain imports byte for byte as qemu-img
 * converts it, and the import names every file it read.
 */
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { strata, strataOk } from '../helpers/cli.js';
import { requireTool } from '../helpers/tools.js';
import { tmpDir } from '../helpers/tmp.js';

const haveQemu = requireTool('qemu-img') && requireTool('qemu-io') && requireTool('mkfifo');

function q(cmd: string, args: string[], cwd: string): string {
  return execFileSync(cmd, args, { cwd, encoding: 'utf8' });
}

/** A qcow2 overlay naming `backing` as written, without qemu-img opening it (-u). */
function overlay(dir: string, file: string, backing: string, format: 'raw' | 'qcow2'): string {
  q('qemu-img', ['create', '-q', '-f', 'qcow2', '-u', '-b', backing, '-F', format, file, '1M'], dir);
  return path.join(dir, file);
}

const OUTSIDE_RULE = "strata follows backing files only in or below the top file's directory";
const REGULAR_RULE = 'not a regular file; strata reads backing files only from regular files';

/** A downloads directory holding the top files, with `outside/` beside it; real paths, as messages print them. */
function layout() {
  const root = fs.realpathSync(tmpDir());
  const dl = path.join(root, 'dl');
  const outside = path.join(root, 'outside');
  fs.mkdirSync(dl);
  fs.mkdirSync(outside);
  const store = path.join(root, 'store');
  strataOk(store, ['init']);
  return { root, dl, outside, store };
}

describe.skipIf(!haveQemu)('import --with-backing: which backing files strata follows', () => {
  it('refuses backing files outside the top directory, through symlinks, and anything but a regular file, leaving the store unchanged', () => {
    const { dl, outside, store } = layout();
    fs.writeFileSync(path.join(outside, 'secret.raw'), Buffer.alloc(1 << 20, 0x53));
    fs.symlinkSync('../outside/secret.raw', path.join(dl, 'link.raw'));
    execFileSync('mkfifo', [path.join(dl, 'pipe')]);
    const before = strataOk(store, ['ls', '--json']).stdout;

    const cases: [string, string, 'raw' | 'qcow2', string][] = [
      ['passwd.qcow2', '/etc/passwd', 'raw', `backing file /etc/passwd is outside ${dl}: ${OUTSIDE_RULE}; if you trust it, allow its directory with --backing-dir /etc`],
      [
        'up.qcow2',
        '../outside/secret.raw',
        'raw',
        `backing file ../outside/secret.raw (${outside}/secret.raw) is outside ${dl}: ${OUTSIDE_RULE}; if you trust it, allow its directory with --backing-dir ${outside}`,
      ],
      ['link.qcow2', 'link.raw', 'raw', `backing file link.raw (${outside}/secret.raw) is outside ${dl}: ${OUTSIDE_RULE}; if you trust it, allow its directory with --backing-dir ${outside}`],
      ['fifo.qcow2', 'pipe', 'raw', `backing file pipe (${dl}/pipe) is a FIFO, ${REGULAR_RULE}`],
      ['zero.qcow2', '/dev/zero', 'raw', `backing file /dev/zero is a character device, ${REGULAR_RULE}`],
      ['dir.qcow2', '.', 'qcow2', `backing file . (${dl}) is a directory, ${REGULAR_RULE}`],
    ];
    for (const [file, backing, format, why] of cases) {
      const top = overlay(dl, file, backing, format);
      for (const json of [false, true]) {
        const r = strata(store, ['import', top, 'evil', '--with-backing', ...(json ? ['--json'] : [])]);
        expect(r.status, `${file}: ${r.stderr}`).toBe(2);
        if (json) expect(JSON.parse(r.stderr)).toEqual({ error: 'E_BAD_INPUT', message: `${top}: ${why}` });
        else expect(r.stderr).toBe(`strata: ${top}: ${why}\n`);
        expect(r.stdout).toBe('');
      }
    }
    // Allowing a directory never makes a device or a FIFO a disk.
    const zero = strata(store, ['import', path.join(dl, 'zero.qcow2'), 'evil', '--with-backing', '--backing-dir', '/dev']);
    expect([zero.status, zero.stderr]).toEqual([2, `strata: ${dl}/zero.qcow2: backing file /dev/zero is a character device, ${REGULAR_RULE}\n`]);
    expect(strataOk(store, ['ls', '--json']).stdout).toBe(before);
  });

  it('imports a chain in the top directory and below it, byte-identical to qemu-img convert, and names the files it read', () => {
    const { dl, store } = layout();
    fs.mkdirSync(path.join(dl, 'sub'));
    q('qemu-img', ['create', '-q', '-f', 'qcow2', 'base.qcow2', '8M'], dl);
    q('qemu-io', ['-c', 'write -P 0x11 0 1M', '-c', 'write -P 0x22 7M 64k', 'base.qcow2'], dl);
    // sub/mid.qcow2 names ../base.qcow2: up from sub/, still inside dl/.
    q('qemu-img', ['create', '-q', '-f', 'qcow2', '-b', '../base.qcow2', '-F', 'qcow2', 'sub/mid.qcow2'], dl);
    q('qemu-io', ['-c', 'write -P 0x33 4k 8k', 'sub/mid.qcow2'], dl);
    q('qemu-img', ['create', '-q', '-f', 'qcow2', '-b', 'sub/mid.qcow2', '-F', 'qcow2', 'top.qcow2'], dl);
    q('qemu-io', ['-c', 'write -P 0x44 6M 1M', 'top.qcow2'], dl);
    q('qemu-img', ['convert', '-O', 'raw', 'top.qcow2', 'top.raw'], dl);

    const r = strataOk(store, ['import', path.join(dl, 'top.qcow2'), 'vm', '--with-backing']);
    expect(r.stdout).toBe(
      'imported vm: layer, 8 MiB virtual, 1 MiB in this layer over mid\n' +
        `  vm    ${dl}/top.qcow2 (qcow2)\n` +
        `  mid   ${dl}/sub/mid.qcow2 (qcow2)\n` +
        `  base  ${dl}/base.qcow2 (qcow2)\n`,
    );
    strataOk(store, ['export', 'vm', path.join(dl, 'vm.out')]);
    expect(fs.readFileSync(path.join(dl, 'vm.out')).equals(fs.readFileSync(path.join(dl, 'top.raw')))).toBe(true);

    // Again over the same files: the lower layers are shared, and --json says so.
    const again = JSON.parse(strataOk(store, ['import', path.join(dl, 'top.qcow2'), 'vm2', '--with-backing', '--json']).stdout);
    expect(again.files).toEqual([
      { image: 'vm2', file: `${dl}/top.qcow2`, format: 'qcow2', reused: false },
      { image: 'mid', file: `${dl}/sub/mid.qcow2`, format: 'qcow2', reused: true },
      { image: 'base', file: `${dl}/base.qcow2`, format: 'qcow2', reused: true },
    ]);
  });

  it('--backing-dir allows a backing file in another directory', () => {
    const { dl, outside, store } = layout();
    q('qemu-img', ['create', '-q', '-f', 'qcow2', 'base.qcow2', '4M'], outside);
    q('qemu-io', ['-c', 'write -P 0x66 0 2M', 'base.qcow2'], outside);
    q('qemu-img', ['create', '-q', '-f', 'qcow2', '-b', '../outside/base.qcow2', '-F', 'qcow2', 'top.qcow2'], dl);
    q('qemu-io', ['-c', 'write -P 0x77 1M 4k', 'top.qcow2'], dl);
    q('qemu-img', ['convert', '-O', 'raw', 'top.qcow2', 'top.raw'], dl);
    const top = path.join(dl, 'top.qcow2');

    const refused = strata(store, ['import', top, 'vm', '--with-backing']);
    expect(refused.status).toBe(2);
    expect(refused.stderr).toBe(
      `strata: ${top}: backing file ../outside/base.qcow2 (${outside}/base.qcow2) is outside ${dl}: ${OUTSIDE_RULE}; if you trust it, allow its directory with --backing-dir ${outside}\n`,
    );
    const alone = strata(store, ['import', top, 'vm', '--backing-dir', outside]);
    expect([alone.status, alone.stderr]).toEqual([2, 'strata: --backing-dir goes with --with-backing: it names where backing files may be\n']);

    const r = JSON.parse(strataOk(store, ['import', top, 'vm', '--with-backing', '--backing-dir', outside, '--json']).stdout);
    expect(r.files.map((f: { file: string }) => f.file)).toEqual([top, `${outside}/base.qcow2`]);
    strataOk(store, ['export', 'vm', path.join(dl, 'vm.out')]);
    expect(fs.readFileSync(path.join(dl, 'vm.out')).equals(fs.readFileSync(path.join(dl, 'top.raw')))).toBe(true);
  });
});
