/**
 * Which commands may make a store: init, create, import and demo. Every other
 * command needs one that exists, so a mistyped --store is one line, not a new
 * empty store; and a path that is a file, or a directory of other things, is
 * never made into a store.
 */
import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { ERROR_CODES } from '../../src/errors.js';
import { strata, strataOk } from '../helpers/cli.js';
import { tmpDir } from '../helpers/tmp.js';

const READ_ONLY: string[][] = [['ls'], ['info'], ['info', 'x'], ['tree'], ['du'], ['stats'], ['map', 'x'], ['check'], ['serve', '--socket', 'unused.sock'], ['read', 'x'], ['export', 'x', 'x.raw'], ['diff', 'x', 'y']];
const OTHERS: string[][] = [['rm', 'x'], ['gc'], ['clone', 'x', 'y'], ['snapshot', 'x'], ['rename', 'x', 'y'], ['freeze', 'x'], ['write', 'x']];

describe('the store path', () => {
  it('commands that need a store never create one: a missing store is one line naming it', () => {
    const dir = tmpDir();
    const missing = path.join(dir, 'typo');
    for (const args of [...READ_ONLY, ...OTHERS]) {
      const r = strata(missing, args, { input: '' });
      expect(r.status, args.join(' ')).toBe(ERROR_CODES.E_NOT_FOUND);
      expect(r.stderr, args.join(' ')).toBe(`strata: no strata store at ${missing} (strata init creates one)\n`);
      expect(fs.existsSync(missing), args.join(' ')).toBe(false);
    }
    // An existing empty directory is not a store either, and is left empty.
    const empty = path.join(dir, 'empty');
    fs.mkdirSync(empty);
    expect(strata(empty, ['ls']).stderr).toBe(`strata: no strata store at ${empty} (strata init creates one)\n`);
    expect(fs.readdirSync(empty)).toEqual([]);
  });

  it('init, create and import make a store in a new or empty directory', () => {
    const dir = tmpDir();
    strataOk(path.join(dir, 'a'), ['init']);
    strataOk(path.join(dir, 'b'), ['create', 'x', '--size', '1M']);
    fs.writeFileSync(path.join(dir, 'disk.raw'), Buffer.alloc(4096, 1));
    strataOk(path.join(dir, 'c'), ['import', path.join(dir, 'disk.raw'), 'x']);
    fs.mkdirSync(path.join(dir, 'd'));
    strataOk(path.join(dir, 'd'), ['init']);
    for (const s of ['a', 'b', 'c', 'd']) expect(strataOk(path.join(dir, s), ['ls', '--json']).status).toBe(0);
  });

  it('a store path that is a file, or a directory holding other files, is refused and left alone', () => {
    const dir = tmpDir();
    const file = path.join(dir, 'notes.txt');
    fs.writeFileSync(file, 'keep me\n');
    for (const args of [['init'], ['create', 'x', '--size', '1M'], ['ls']]) {
      const r = strata(file, args);
      expect(r.status, args.join(' ')).toBe(ERROR_CODES.E_BAD_INPUT);
      expect(r.stderr).toBe(`strata: store path ${file} is a file, not a strata store directory (give --store a directory, or a path to create one)\n`);
    }
    expect(fs.readFileSync(file, 'utf8')).toBe('keep me\n');
    const inside = path.join(file, 'store');
    expect(strata(inside, ['init']).stderr).toBe(`strata: store path ${inside} is inside ${file}, which is a file, not a directory (give --store a directory, or a path to create one)\n`);

    const home = path.join(dir, 'home');
    fs.mkdirSync(home);
    fs.writeFileSync(path.join(home, '.bashrc'), '');
    fs.mkdirSync(path.join(home, 'src'));
    for (const args of [['init'], ['create', 'x', '--size', '1M'], ['ls']]) {
      const r = strata(home, args);
      expect(r.status, args.join(' ')).toBe(ERROR_CODES.E_BAD_INPUT);
      expect(r.stderr).toBe(`strata: ${home} is not a strata store and holds other files (.bashrc, src); give a new or empty directory\n`);
    }
    expect(fs.readdirSync(home).sort()).toEqual(['.bashrc', 'src']);
  });
});
