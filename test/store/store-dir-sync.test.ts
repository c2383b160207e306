/**
 * A new store's own name is made durable before the first command that made
 * it says it succeeded (#22 item 8): every directory the store added an
 * entry to is fsynced after the entry was made, the one above the highest
 * new directory included. Observed with strace, since an fsync is invisible
 * from JavaScript.
 */
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { STRATA_BIN } from '../helpers/cli.js';
import { requireTool } from '../helpers/tools.js';
import { tmpDir } from '../helpers/tmp.js';

describe.skipIf(!requireTool('strace'))('a new store directory', () => {
  it('init fsyncs the parent directory and the new directories after making them, before exiting 0', () => {
    const dir = tmpDir();
    const made = path.join(dir, 'new'); // made by strata too: --store names a path two levels down
    const store = path.join(made, 'st');
    const trace = path.join(dir, 'trace.txt');
    const r = spawnSync(
      'strace',
      ['-f', '-y', '-s', '256', '-o', trace, '-e', 'trace=mkdir,mkdirat,openat,fsync,fdatasync,exit_group', process.execPath, STRATA_BIN, '--store', store, 'init'],
      { encoding: 'utf8', timeout: 60_000 },
    );
    expect(r.status, r.stderr).toBe(0);
    expect(fs.existsSync(path.join(store, 'strata.db'))).toBe(true);
    const lines = fs.readFileSync(trace, 'utf8').split('\n');
    const at = (re: RegExp, from = 0) => {
      const i = lines.findIndex((l, n) => n >= from && re.test(l));
      return i === -1 ? Infinity : i;
    };
    const esc = (p: string) => p.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
    const exit = at(/exit_group\(0\)/);
    expect(exit).toBeLessThan(Infinity);
    // Each new name is made, then the directory holding it is synced, before the process exits 0.
    const created = (p: string, how: string) => at(new RegExp(`${how}\\(.*"${esc(p)}".* = \\d+`));
    for (const [name, parent, how] of [
      [made, dir, 'mkdir(at)?'],
      [store, made, 'mkdir(at)?'],
      [path.join(store, 'data'), store, 'mkdir(at)?'],
      [path.join(store, 'strata.db'), store, 'openat'],
    ]) {
      const creation = created(name, how);
      expect(creation, `creation of ${name}`).toBeLessThan(Infinity);
      expect(at(new RegExp(`\\bfsync\\(\\d+<${esc(parent)}>\\) = 0$`), creation), `fsync of ${parent} after ${name} was made`).toBeLessThan(exit);
    }
  });

  it.skipIf(process.getuid?.() !== 0 || !requireTool('setpriv'))('init in a directory the user may write but not list still makes the store (its entry cannot be synced)', () => {
    const work = tmpDir();
    fs.chmodSync(work, 0o711);
    const drop = path.join(work, 'drop'); // root's, 0733: others may make entries, not list them
    fs.mkdirSync(drop);
    fs.chmodSync(drop, 0o733);
    const store = path.join(drop, 'st');
    const r = spawnSync('setpriv', ['--reuid=65534', '--regid=65534', '--clear-groups', process.execPath, STRATA_BIN, '--store', store, 'init'], {
      encoding: 'utf8',
      cwd: '/',
      env: { ...process.env, HOME: '/nonexistent' },
    });
    expect(r.stderr).toBe('');
    expect(r.status).toBe(0);
    expect(fs.statSync(path.join(store, 'strata.db')).uid).toBe(65534);
  });
});
