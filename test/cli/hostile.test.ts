/**
 * Hostile names and numbers, beyond test/cli/errors.test.ts: every command
 * that takes a new name or a byte count refuses bad ones with E_BAD_INPUT
 * before doing any work, so the store is byte-for-byte as it was.
 */
import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { ERROR_CODES } from '../../src/errors.js';
import { createImage } from '../../src/image/lifecycle.js';
import { openStore } from '../../src/store/core/store.js';
import { strata, strataOk } from '../helpers/cli.js';
import { tmpDir } from '../helpers/tmp.js';
import { sqlOf } from '../helpers/sql.js';

const BAD_NAMES = ['a/b', '/abs', '..', '../up', 'x..y', '-dash', 'ctl\x01x', 'new\nline', 'esc\x1b[31m', 'del\x7f', 'sp ace', 'ünï', 'x'.repeat(129)];

function fixture(): string {
  const store = tmpDir();
  strataOk(store, ['create', 'base', '--size', '1M']);
  strataOk(store, ['write', 'base'], { input: Buffer.alloc(8192, 0x5a) });
  strataOk(store, ['freeze', 'base']);
  strataOk(store, ['clone', 'base', 'web1']);
  return store;
}

/** What a user can see of the store: the listing and every image's bytes. */
const snapshot = (store: string) => Buffer.concat([strataOk(store, ['ls', '--json']).out, strataOk(store, ['read', 'base']).out, strataOk(store, ['read', 'web1']).out]);

describe('hostile input', () => {
  it('bad names for create, clone, snapshot, rename and import: E_BAD_INPUT, nothing changed', () => {
    const store = fixture();
    const raw = path.join(store, 'f.raw');
    fs.writeFileSync(raw, Buffer.alloc(4096, 1));
    const db = snapshot(store);
    const commands = [(n: string) => ['create', n, '--size', '1M'], (n: string) => ['clone', 'base', 'ok1', n], (n: string) => ['snapshot', 'web1', n], (n: string) => ['rename', 'web1', n], (n: string) => ['import', raw, n]];
    let tried = 0;
    // Each bad name against one command (rotating), so every command meets several kinds of bad name.
    BAD_NAMES.forEach((bad, i) => {
      const args = commands[i % commands.length](bad);
      const r = strata(store, bad.startsWith('-') ? [...args.slice(0, -1), `--`, bad].filter((a, _j, all) => !(a === '--' && all[0] === 'create')) : args);
      expect(r.status, `${args.join(' ')}`).toBe(ERROR_CODES.E_BAD_INPUT);
      expect(r.stderr.trimEnd().split('\n')).toHaveLength(1);
      tried++;
    });
    expect(tried).toBe(BAD_NAMES.length);
    // A name of 128 characters is the longest allowed.
    expect(snapshot(store).equals(db)).toBe(true);
    strataOk(store, ['create', 'x'.repeat(128), '--size', '4K']);
  });

  it('names with NUL and other bytes argv cannot carry are refused by the API', async () => {
    const store = await openStore(tmpDir());
    try {
      for (const bad of ['a\0b', '\0', '', 'x\u2028y', 'a\\b']) expect(() => createImage(store, bad, 4096), JSON.stringify(bad)).toThrow(expect.objectContaining({ code: 'E_BAD_INPUT' }));
      expect(sqlOf(store).prepare('SELECT count(*) FROM images').pluck().get()).toBe(0);
    } finally {
      store.close();
    }
  });

  it('bad sizes and offsets: negative, not a number, 2^63 and above, past 2^53, beyond the image', () => {
    const store = fixture();
    const db = snapshot(store);
    const bad = ['-1', 'abc', '0x10', '', 'NaN', '9223372036854775808', '18446744073709551616', '16E', '9007199254740993', '1.5'];
    const commands = [(v: string) => ['write', 'web1', `--offset=${v}`], (v: string) => ['read', 'web1', `--offset=${v}`], (v: string) => ['read', 'web1', `--length=${v}`], (v: string) => ['resize', 'web1', v], (v: string) => ['create', 'n1', `--size=${v}`]];
    bad.forEach((v, i) => {
      for (const args of [commands[i % commands.length](v), commands[(i + 2) % commands.length](v)]) {
        const r = strata(store, args, { input: 'x' });
        expect(r.status, `${args.join(' ')}: ${r.stderr}`).toBe(ERROR_CODES.E_BAD_INPUT);
        expect(r.stderr.trimEnd().split('\n'), args.join(' ')).toHaveLength(1);
      }
    });
    for (const args of [['read', 'web1', '--offset', '1M', '--length', '1'], ['read', 'web1', '--length', '2M'], ['write', 'web1', '--offset', '1048577']]) {
      expect(strata(store, args, { input: 'x' }).status, args.join(' ')).toBe(ERROR_CODES.E_RANGE);
    }
    expect(snapshot(store).equals(db)).toBe(true);
  });
});
