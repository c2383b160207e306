/**
 * The small frictions of issue #25 item 7, each as a user meets it: the
 * command run as typed, its words on stdout/stderr and its exit status.
 */
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { ERROR_CODES } from '../../src/errors.js';
import { strata, strataOk, strataSpawn } from '../helpers/cli.js';
import { faultChannel } from '../helpers/fault.js';
import { hasScript, strataInPty } from '../helpers/pty.js';
import { tmpDir } from '../helpers/tmp.js';

/** Exactly one line on stderr, `strata: ` and then `message`, and the status. */
function expectError(r: { status: number; stderr: string }, status: number, message: string) {
  expect(r.stderr).toBe(`strata: ${message}\n`);
  expect(r.status).toBe(status);
}

describe('small frictions (#25 item 7)', () => {
  it('init says whether it made the store or found one, and keeps what the store holds', () => {
    const store = tmpDir();
    expect(strataOk(store, ['init']).stdout).toBe(`created a new store at ${store} (compression: none)\n`);
    strataOk(store, ['create', 'a', '--size', '1M']);
    expect(strataOk(store, ['init']).stdout).toBe(`store at ${store} already exists, images kept (compression: none)\n`);
    expect(JSON.parse(strataOk(store, ['init', '--json']).stdout)).toEqual({ store, created: false, compression: 'none' });
    expect(JSON.parse(strataOk(store, ['ls', '--json']).stdout).map((i: { name: string }) => i.name)).toEqual(['a']);
  });

  it('the main --help does not claim that every command makes the store', () => {
    const r = strataOk(tmpDir(), ['--help']);
    expect(r.stdout).not.toContain('done on first use by every command');
    expect(r.stdout.replace(/\s+/g, ' ')).toContain('create the store (create, import and demo also make one when it is missing; other commands need it)');
  });

  it('help of an unknown command says so, with exit 2, and suggests the near one; help import shows import', () => {
    const store = tmpDir();
    expectError(strata(store, ['help', 'nosuch']), ERROR_CODES.E_BAD_INPUT, "unknown command 'nosuch'");
    expectError(strata(store, ['help', 'imprt']), ERROR_CODES.E_BAD_INPUT, "unknown command 'imprt'; did you mean import?");
    const ok = strataOk(store, ['help', 'import']);
    expect(ok.stdout).toMatch(/^Usage: strata import \[options\] <file> \[name\]\n/);
  });

  it('"did you mean" has its own JSON field, never inside message; as text it follows on the same line', () => {
    const store = tmpDir();
    strataOk(store, ['create', 'debian', '--size', '1M']);
    const cmd = strata(store, ['--json', 'lss']);
    expect(cmd.status).toBe(ERROR_CODES.E_BAD_INPUT);
    expect(JSON.parse(cmd.stderr)).toEqual({ error: 'E_BAD_INPUT', message: "unknown command 'lss'", hint: 'did you mean ls?' });
    expectError(strata(store, ['lss']), ERROR_CODES.E_BAD_INPUT, "unknown command 'lss'; did you mean ls?");

    expectError(strata(store, ['info', 'Debian']), ERROR_CODES.E_NOT_FOUND, 'no image named Debian; did you mean debian?');
    const j = strata(store, ['--json', 'info', 'Debian']);
    expect(j.status).toBe(ERROR_CODES.E_NOT_FOUND);
    expect(JSON.parse(j.stderr)).toEqual({ error: 'E_NOT_FOUND', message: 'no image named Debian', hint: 'did you mean debian?' });
    // Nothing near: no hint at all.
    expectError(strata(store, ['info', 'zzzzzz']), ERROR_CODES.E_NOT_FOUND, 'no image named zzzzzz');
  });

  it('warnings are in the --json document too, as "warnings"', () => {
    const dir = tmpDir();
    const store = path.join(dir, 'st');
    const file = path.join(dir, 'notes.raw');
    fs.writeFileSync(file, 'just some text\n'.repeat(400));
    const r = strataOk(store, ['import', file, 'notes', '--json']);
    const warning = `${file} looks like a text file, not a disk image; importing it as raw all the same`;
    expect(r.stderr).toBe(`strata: warning: ${warning}\n`);
    expect(JSON.parse(r.stdout).warnings).toEqual([warning]);
    // And none when there are none.
    fs.writeFileSync(path.join(dir, 'disk.raw'), crypto.randomBytes(8192));
    expect(JSON.parse(strataOk(store, ['import', path.join(dir, 'disk.raw'), '--json']).stdout)).not.toHaveProperty('warnings');
  });

  it('import drops a .bin/.iso/.dd extension from the default name, as the README says', () => {
    const dir = tmpDir();
    const store = path.join(dir, 'st');
    for (const f of ['odd.bin', 'cd.iso', 'sdb.dd']) fs.writeFileSync(path.join(dir, f), crypto.randomBytes(8192));
    for (const [f, name] of [['odd.bin', 'odd'], ['cd.iso', 'cd'], ['sdb.dd', 'sdb']]) {
      expect(strataOk(store, ['import', path.join(dir, f)]).stdout).toBe(`imported ${name}: base, 8 KiB virtual, 8 KiB in this layer\n`);
    }
  });

  it('--name-prefix without --with-backing is refused, and nothing is imported', () => {
    const dir = tmpDir();
    const store = path.join(dir, 'st');
    fs.writeFileSync(path.join(dir, 'a.raw'), crypto.randomBytes(8192));
    expectError(strata(store, ['import', path.join(dir, 'a.raw'), '--name-prefix', 'x-']), ERROR_CODES.E_BAD_INPUT, '--name-prefix goes with --with-backing: it names the backing layers, and without it there are none');
    expect(strataOk(store, ['ls', '--json']).stdout.trim()).toBe('[]');
  });

  it('two imports to one name: the second is refused at its start while the first runs, and the first completes', async () => {
    const dir = tmpDir();
    const store = path.join(dir, 'st');
    const file = path.join(dir, 'disk.raw');
    const data = crypto.randomBytes(64 * 1024);
    fs.writeFileSync(file, data);
    strataOk(store, ['init']);
    const fault = faultChannel();
    const first = strataSpawn(store, ['import', file, 'vm'], { env: fault.env('import.after-create') });
    const exit = first.exited.then((e) => e.code);
    await fault.reached('import.after-create', { exited: exit });
    const second = strata(store, ['import', file, 'vm']);
    expectError(second, ERROR_CODES.E_EXISTS, 'another import is already making an image named vm; wait for it, or import under another name');
    fault.release();
    expect(await exit).toBe(0);
    expect(strataOk(store, ['read', 'vm']).out.equals(data)).toBe(true);
    // The label that marked the import in progress is gone from the finished image.
    expect(JSON.parse(strataOk(store, ['info', 'vm', '--json']).stdout).labels ?? {}).toEqual({});
  });

  it('resize +SIZE grows by that much, as qemu-img resize does', () => {
    const store = tmpDir();
    strataOk(store, ['create', 'vm', '--size', '1M']);
    expect(strataOk(store, ['resize', 'vm', '+1G']).stdout).toBe('vm is now 1.00 GiB (1074790400 bytes)\n');
    expect(strataOk(store, ['resize', 'vm', '--shrink', '--', '-1G']).stdout).toBe('vm is now 1 MiB (1048576 bytes)\n');
    expectError(strata(store, ['resize', 'vm', '--shrink', '--', '-2M']), ERROR_CODES.E_BAD_INPUT, 'cannot shrink vm (1 MiB, 1048576 bytes) by 2 MiB, 2097152 bytes: that is more than its size');
  });

  it('freeze of a frozen image says nothing changed', () => {
    const store = tmpDir();
    strataOk(store, ['create', 'g', '--size', '1M']);
    expect(strataOk(store, ['freeze', 'g']).stdout).toBe('g is now a read-only base\n');
    expect(strataOk(store, ['freeze', 'g']).stdout).toBe('g was already a read-only base; nothing changed\n');
    expect(JSON.parse(strataOk(store, ['freeze', 'g', '--json']).stdout)).toEqual({ name: 'g', kind: 'base', changed: false });
  });

  it('--iops-limit abc speaks of requests, not bytes', () => {
    const store = tmpDir();
    strataOk(store, ['create', 'a', '--size', '1M']);
    expectError(strata(store, ['serve', 'a', '--iops-limit', 'abc', '--socket', path.join(store, 's.sock')]), ERROR_CODES.E_BAD_INPUT, 'invalid --iops-limit "abc": expected a whole number of requests per second');
  });

  it('serve --socket rel.sock prints an absolute nbd+unix URI', async () => {
    const dir = tmpDir();
    const store = path.join(dir, 'st');
    strataOk(store, ['create', 'a', '--size', '1M']);
    const p = strataSpawn(store, ['serve', 'a', '--socket', 'rel.sock'], { cwd: dir });
    try {
      const m = await p.waitFor(/^\s+a\s+(\S+)$/m, 'stdout');
      expect(m[1]).toBe(`nbd+unix:///a?socket=${path.join(dir, 'rel.sock')}`);
    } finally {
      await p.kill();
    }
  });

  it('ls PATTERN and tree NAME pick images; a missing plain name is E_NOT_FOUND', () => {
    const store = tmpDir();
    strataOk(store, ['create', 'base', '--size', '1M']);
    strataOk(store, ['freeze', 'base']);
    strataOk(store, ['clone', 'base', 'web1', 'web2', 'db1']);
    strataOk(store, ['create', 'other', '--size', '1M']);
    const names = (args: string[]) => JSON.parse(strataOk(store, ['ls', '--json', ...args]).stdout).map((i: { name: string }) => i.name);
    expect(names(['web*'])).toEqual(['web1', 'web2']);
    expect(names(['db1', 'web?'])).toEqual(['db1', 'web1', 'web2']);
    expect(strataOk(store, ['ls', 'x*']).stdout).toBe('no images match x*\n');
    expectError(strata(store, ['ls', 'web3']), ERROR_CODES.E_NOT_FOUND, 'no image named web3; did you mean web1 or web2?');
    expect(strataOk(store, ['tree', 'base']).stdout).toBe(
      ['base  base  1 MiB  own 0 B', '├── db1  leaf (writable)  1 MiB  own 0 B', '├── web1  leaf (writable)  1 MiB  own 0 B', '└── web2  leaf (writable)  1 MiB  own 0 B', ''].join('\n'),
    );
    expect(strataOk(store, ['tree', 'web2']).stdout).toBe('web2  leaf (writable)  1 MiB  own 0 B\n');
    expectError(strata(store, ['tree', 'nope']), ERROR_CODES.E_NOT_FOUND, 'no image named nope');
  });

  it('export - | head: the pipe closing early ends the export quietly, status 0, as read | head does', async () => {
    const store = tmpDir();
    strataOk(store, ['create', 'a', '--size', '64M']);
    strataOk(store, ['write', 'a'], { input: crypto.randomBytes(1 << 20) });
    for (const args of [['export', 'a', '-'], ['read', 'a']]) {
      const p = strataSpawn(store, args);
      await new Promise<void>((resolve) => p.child.stdout!.once('data', () => resolve()));
      p.child.stdout!.destroy();
      const e = await p.exited;
      expect({ args, code: e.code, stderr: p.stderr }).toEqual({ args, code: 0, stderr: '' });
    }
  });

  it('the busy error names a strata serve as the page does', async () => {
    const dir = tmpDir();
    const store = path.join(dir, 'st');
    strataOk(store, ['create', 'a', '--size', '1M']);
    const p = strataSpawn(store, ['serve', 'a', '--socket', path.join(dir, 's.sock')]);
    try {
      await p.waitFor(/^serving /m, 'stdout');
      expectError(strata(store, ['write', 'a'], { input: 'x' }), ERROR_CODES.E_BUSY, `image a is open for writing by strata serve ${p.pid}`);
    } finally {
      await p.kill();
    }
  });

  it('--log-level info logs what clone and rm did', () => {
    const store = tmpDir();
    strataOk(store, ['create', 'base', '--size', '1M']);
    strataOk(store, ['freeze', 'base']);
    const c = strataOk(store, ['--log-level', 'info', 'clone', 'base', 'vm1']);
    expect(c.stderr.trim().split('\n').map((l) => JSON.parse(l))).toMatchObject([{ level: 30, msg: 'cloned', source: 'base', parent: 'base', clones: ['vm1'] }]);
    const r = strataOk(store, ['--log-level', 'info', 'rm', 'vm1']);
    expect(r.stderr.trim().split('\n').map((l) => JSON.parse(l))).toMatchObject([{ level: 30, msg: 'removed', removed: ['vm1'], freedBytes: 0 }]);
    // Quiet without --log-level, as before.
    expect(strataOk(store, ['clone', 'base', 'vm2']).stderr).toBe('');
  });

  it('demo run again leaves no image of the user\'s behind silently: it refuses, and keeps everything', () => {
    const store = tmpDir();
    strataOk(store, ['demo']);
    strataOk(store, ['clone', 'demo-vm1', 'mine']);
    const before = strataOk(store, ['ls', '--json']).stdout;
    const r = strata(store, ['demo']);
    expect(r.status).toBe(ERROR_CODES.E_HAS_CHILDREN);
    expect(r.stderr).toMatch(/^strata: the demo would remove its images and with them (demo-vm1@\S+, )?mine, which it did not make; remove those first, or run the demo on another store \(--store DIR\)\n$/);
    expect(strataOk(store, ['ls', '--json']).stdout).toBe(before);
    // Its own images alone: run again as before.
    strataOk(store, ['rm', 'mine']);
  });

  it.runIf(hasScript())('the progress of a sparse import counts its data, not its holes: "/ 16 MiB" of an 80 MiB file', async () => {
    const dir = tmpDir();
    const store = path.join(dir, 'st');
    const file = path.join(dir, 'sparse.raw');
    // Four runs of 4 MiB of data, each after a 16 MiB hole.
    const fd = fs.openSync(file, 'w');
    for (let k = 0; k < 4; k++) fs.writeSync(fd, crypto.randomBytes(4 * 1024 * 1024), 0, 4 * 1024 * 1024, (k + 1) * 16 * 1024 * 1024 + k * 4 * 1024 * 1024);
    fs.closeSync(fd);
    expect(fs.statSync(file).size).toBe(80 * 1024 * 1024);
    strataOk(store, ['init']);
    // Each progress callback sleeps, so the line is drawn before the import ends.
    const run = strataInPty(store, ['import', file, 'sp'], { STRATA_FAULT: 'progress:sleep:150' });
    await run.waitFor(/\rimporting sparse\.raw.*\d+%  [\d.]+ (B|KiB|MiB) \/ 16 MiB/);
    expect(await run.exit).toBe(0);
    expect(run.output()).not.toMatch(/\/ 80 MiB/);
  });

  it.runIf(hasScript())('read to a terminal and write from one are refused with the way to do it; - asks for it', async () => {
    const store = tmpDir();
    strataOk(store, ['create', 'a', '--size', '1M']);
    const read = strataInPty(store, ['read', 'a']);
    expect(await read.exit).toBe(ERROR_CODES.E_BAD_INPUT);
    expect(read.output().replace(/\r/g, '')).toBe('strata: stdout is a terminal: pipe strata read a into xxd or a file, or name the output (strata read a FILE; - for this terminal)\n');
    const write = strataInPty(store, ['write', 'a']);
    expect(await write.exit).toBe(ERROR_CODES.E_BAD_INPUT);
    expect(write.output().replace(/\r/g, '')).toBe('strata: stdin is a terminal: pipe or redirect data into strata write a, or name the input (strata write a FILE; - to type it here, ending with Ctrl-D)\n');
    // Asked for with -: 16 bytes to the terminal.
    const asked = strataInPty(store, ['read', 'a', '-', '--length', '16']);
    expect(await asked.exit).toBe(0);
  });
});
