/**
 * Formats strata does not parse are recognised by their magic and imported
 * through qemu-nbd (read-only, format given, on a private socket, stopped
 * afterwards), byte for byte what `qemu-img convert -O raw` makes of them;
 * without qemu-nbd, or for what cannot be imported safely, one line says
 * which format it is and the way in.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { ERROR_CODES } from '../../src/errors.js';
import { detectFormat, probeFile } from '../../src/formats/magic.js';
import { strata, strataOk, strataSpawn } from '../helpers/cli.js';
import { faultChannel } from '../helpers/fault.js';
import { pidGone, signalDelivered } from '../helpers/proc.js';
import { qemuImgCreateLuks, requireTool } from '../helpers/tools.js';
import { tmpDir } from '../helpers/tmp.js';

const haveQemu = requireTool('qemu-img') && requireTool('qemu-io') && requireTool('qemu-nbd');

/** A qemu-img file of `format` with data at three places, and qemu-img's raw conversion of it. */
function sample(dir: string, file: string, format: string, opts: string[] = []): { file: string; raw: Buffer } {
  const f = path.join(dir, file);
  execFileSync('qemu-img', ['create', '-q', '-f', format, ...opts, f, '6M']);
  execFileSync('qemu-io', ['-f', format, '-c', 'write -P 0xa5 0 100k', '-c', 'write -P 0x3c 2M 64k', '-c', 'write -P 0x7e 5M 1M', f], { stdio: 'ignore' });
  const raw = path.join(dir, `${file}.oracle`);
  execFileSync('qemu-img', ['convert', '-f', format, '-O', 'raw', f, raw]);
  const bytes = fs.readFileSync(raw);
  fs.rmSync(raw);
  return { file: f, raw: bytes };
}

/** qemu-nbd processes serving `file`: none may outlive an import. */
function qemuNbdFor(file: string): string[] {
  const r = spawnSync('pgrep', ['-af', 'qemu-nbd'], { encoding: 'utf8' });
  return r.stdout.split('\n').filter((l) => l.includes(file));
}

describe.skipIf(!haveQemu)('foreign formats through qemu-nbd', () => {
  it('VHD (dynamic and fixed), VHDX, VMDK (sparse and a descriptor with a flat extent), VDI and QED import bit-exact, named after the file', () => {
    const dir = tmpDir();
    const store = path.join(dir, 'st');
    const cases: [string, string, string[], string][] = [
      ['disk.vhd', 'vpc', [], 'vpc'],
      ['fixed.vhd', 'vpc', ['-o', 'subformat=fixed'], 'vpc'],
      ['disk.vhdx', 'vhdx', [], 'vhdx'],
      ['sparse.vmdk', 'vmdk', [], 'vmdk'],
      ['flat.vmdk', 'vmdk', ['-o', 'subformat=monolithicFlat'], 'vmdk'],
      ['disk.vdi', 'vdi', [], 'vdi'],
      ['disk.qed', 'qed', [], 'qed'],
    ];
    for (const [file, format, opts, detected] of cases) {
      const s = sample(dir, file, format, opts);
      const fd = fs.openSync(s.file, 'r');
      expect(detectFormat(probeFile(fd, fs.fstatSync(fd).size)), file).toBe(detected);
      fs.closeSync(fd);
      const name = file.replace('.', '-');
      const r = strataOk(store, ['import', s.file, name]);
      expect(r.stderr, file).toBe('');
      strataOk(store, ['export', name, path.join(dir, `${name}.out`)]);
      expect(fs.readFileSync(path.join(dir, `${name}.out`)).equals(s.raw), file).toBe(true);
      expect(JSON.parse(strataOk(store, ['info', name, '--json']).stdout).source).toMatchObject({ format, file: s.file, via: 'qemu-nbd' });
      expect(qemuNbdFor(s.file), file).toEqual([]);
    }
    // Without a NAME the image is named after the file; zero runs are stored as nothing.
    strataOk(store, ['import', path.join(dir, 'disk.vdi')]);
    const vdi = JSON.parse(strataOk(store, ['info', 'disk', '--json']).stdout);
    expect(vdi.virtualSize).toBe(6 * 1024 * 1024);
    expect(vdi.ownBytes).toBe(100 * 1024 + 64 * 1024 + 1024 * 1024); // the data only: the rest is zero runs
    expect(strataOk(store, ['check']).status).toBe(0);
  });

  it('without qemu-nbd: refused, naming the format and the way in; the store is unchanged', () => {
    const dir = tmpDir();
    const store = path.join(dir, 'st');
    const s = sample(dir, 'disk.vmdk', 'vmdk');
    const empty = path.join(dir, 'empty-path');
    fs.mkdirSync(empty);
    const r = strata(store, ['import', s.file, 'vm'], { env: { PATH: empty } });
    expect(r.status).toBe(ERROR_CODES.E_UNSUPPORTED);
    expect(r.stderr).toBe(
      `strata: ${s.file} is a VMDK image, which strata reads through qemu-nbd, and qemu-nbd is not installed: install qemu-utils (qemu-nbd) to import it directly, or convert it first: qemu-img convert -f vmdk -O raw ${s.file} disk.vmdk.raw\n`,
    );
    expect(strataOk(store, ['ls', '--json']).stdout.trim()).toBe('[]');
  });

  it('a damaged VHD (like qemu\'s afl5.img sample) is refused in one line, never taken for a raw disk', () => {
    const dir = tmpDir();
    const store = path.join(dir, 'st');
    const f = path.join(dir, 'afl5.img');
    const b = Buffer.alloc(1028);
    b.write('conectix', 0, 'latin1');
    b.fill(0xff, 8, 64);
    fs.writeFileSync(f, b);
    strataOk(store, ['create', 'keep', '--size', '1M']);
    const r = strata(store, ['import', f]);
    expect(r.status).toBe(ERROR_CODES.E_BAD_FILE);
    expect(r.stderr).toMatch(new RegExp(`^strata: qemu-img cannot read ${f} as VHD: .+\\n$`));
    expect(JSON.parse(strataOk(store, ['ls', '--json']).stdout).map((i: { name: string }) => i.name)).toEqual(['keep']);
    expect(qemuNbdFor(f)).toEqual([]);
  });

  it('a file with a backing file, a LUKS volume, and a wrong --format are refused in one line', () => {
    const dir = tmpDir();
    const store = path.join(dir, 'st');
    fs.writeFileSync(path.join(dir, 'base.raw'), Buffer.alloc(1024 * 1024));
    execFileSync('qemu-img', ['create', '-q', '-f', 'qed', '-b', 'base.raw', '-F', 'raw', path.join(dir, 'top.qed')], { cwd: dir });
    let r = strata(store, ['import', path.join(dir, 'top.qed'), 'top']);
    expect(r.status).toBe(ERROR_CODES.E_UNSUPPORTED);
    expect(r.stderr).toBe(`strata: ${path.join(dir, 'top.qed')} (QED) has a backing file, base.raw; strata imports QED files whole only: flatten it first with qemu-img convert -f qed -O raw\n`);

    qemuImgCreateLuks(['--object', 'secret,id=s0,data=pw', '-f', 'luks', '-o', 'key-secret=s0,iter-time=100', path.join(dir, 'vol.luks'), '1M']);
    r = strata(store, ['import', path.join(dir, 'vol.luks'), 'vol']);
    expect(r.status).toBe(ERROR_CODES.E_UNSUPPORTED);
    expect(r.stderr).toBe(`strata: ${path.join(dir, 'vol.luks')} is a LUKS encrypted volume; strata does not import encrypted images\n`);

    const s = sample(dir, 'disk.qed', 'qed');
    r = strata(store, ['import', s.file, 'x', '--format', 'vhd']);
    expect(r.status).toBe(ERROR_CODES.E_BAD_FILE);
    expect(r.stderr).toMatch(new RegExp(`^strata: qemu-img cannot read ${s.file} as VHD: `));
    r = strata(store, ['import', s.file, 'x', '--format', 'iso']);
    expect(r.status).toBe(ERROR_CODES.E_BAD_INPUT);
    expect(r.stderr).toBe('strata: unknown format "iso": use raw, qcow2, or one qemu-nbd reads: vhd, vhdx, vmdk, vdi, qed, qcow, parallels, dmg, bochs, cloop\n');
    expect(strataOk(store, ['ls', '--json']).stdout.trim()).toBe('[]');
  });

  it('--format vmdk imports a VMDK whose magic was damaged only where strata looks', () => {
    const dir = tmpDir();
    const store = path.join(dir, 'st');
    const s = sample(dir, 'flat.vmdk', 'vmdk', ['-o', 'subformat=monolithicFlat']);
    // A descriptor with a blank first line: no "# Disk DescriptorFile" at 0, still a valid VMDK to qemu.
    fs.writeFileSync(s.file, '\n' + fs.readFileSync(s.file, 'utf8'));
    const plain = strata(store, ['import', s.file, 'asraw']);
    expect(plain.stderr).toBe(`strata: warning: ${s.file} looks like a text file, not a disk image; importing it as raw all the same\n`);
    strataOk(store, ['import', s.file, 'vm', '--format', 'vmdk']);
    expect(strataOk(store, ['read', 'vm']).out.equals(s.raw)).toBe(true);
  });

  it('Ctrl-C part-way: exit 130, nothing imported, and qemu-nbd is gone', async () => {
    const dir = tmpDir();
    const store = path.join(dir, 'st');
    const s = sample(dir, 'slow.vdi', 'vdi');
    // Held with the hidden image made and qemu-nbd started: the interrupt is in before the import reads on.
    const fault = faultChannel();
    const child = strataSpawn(store, ['import', s.file, 'slow'], { env: fault.env('import.after-create') });
    const exit = child.exited.then((e) => e.code);
    await fault.reached('import.after-create', { exited: exit });
    expect(qemuNbdFor(s.file)).toHaveLength(1);
    await signalDelivered(child.child.pid!, 'SIGINT');
    fault.release();
    expect(await exit).toBe(130);
    expect(child.stderr).toBe('strata: interrupted: nothing imported\n');
    expect(qemuNbdFor(s.file)).toEqual([]);
    expect(strataOk(store, ['ls', '--json']).stdout.trim()).toBe('[]');
    expect(strataOk(store, ['check']).status).toBe(0);
  });

  it('qemu-nbd dying part-way is an I/O error in one line, and nothing is imported', async () => {
    const dir = tmpDir();
    const store = path.join(dir, 'st');
    const s = sample(dir, 'dies.vdi', 'vdi');
    // Held before it reads: qemu-nbd dies, then the import runs on into it.
    const fault = faultChannel();
    const child = strataSpawn(store, ['import', s.file, 'dies'], { env: fault.env('import.after-create') });
    const exit = child.exited.then((e) => e.code);
    await fault.reached('import.after-create', { exited: exit });
    const server = qemuNbdFor(s.file);
    expect(server).toHaveLength(1);
    const qemuPid = Number(server[0].split(' ')[0]);
    process.kill(qemuPid, 'SIGKILL');
    await pidGone(qemuPid);
    fault.release();
    expect(await exit).toBe(ERROR_CODES.E_IO);
    expect(child.stderr).toMatch(new RegExp(`^strata: reading ${s.file} through qemu-nbd failed: .+\\n$`));
    expect(strataOk(store, ['ls', '--json']).stdout.trim()).toBe('[]');
    expect(strataOk(store, ['check']).status).toBe(0);
  });
});
