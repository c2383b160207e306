/**
 * The CLI as a user meets it: the built binary, its exit status and its one
 * line on stderr for each way a command can be wrong. Each failure leaves the
 * store as it was.
 */
import fs from 'node:fs';
import path from 'node:path';
import { beforeEach, describe, expect, it } from 'vitest';
import { ERROR_CODES } from '../../src/errors.js';
import { strata, strataOk } from '../helpers/cli.js';
import { startServe } from '../helpers/serve.js';
import { tmpDir } from '../helpers/tmp.js';

let store: string;

beforeEach(() => {
  store = tmpDir();
  strataOk(store, ['create', 'base', '--size', '1M']);
  strataOk(store, ['write', 'base', '--offset', '4096'], { input: Buffer.alloc(8192, 0x5a) });
  strataOk(store, ['freeze', 'base']);
  strataOk(store, ['clone', 'base', 'web1']);
});

/** One line on stderr, starting with "strata: ", no stack trace. */
function expectOneLine(stderr: string, pattern: RegExp) {
  const lines = stderr.trimEnd().split('\n');
  expect(lines).toHaveLength(1);
  expect(lines[0]).toMatch(/^strata: /);
  expect(lines[0]).toMatch(pattern);
}

function listing() {
  return JSON.parse(strataOk(store, ['ls', '--json']).stdout);
}

describe('CLI errors', () => {
  it('an unknown image: E_NOT_FOUND, named in the message', () => {
    const before = listing();
    const r = strata(store, ['info', 'nope']);
    expect(r.status).toBe(ERROR_CODES.E_NOT_FOUND);
    expectOneLine(r.stderr, /no image named nope/);
    expect(listing()).toEqual(before);
  });

  it('an existing name: E_EXISTS, and the existing image is untouched', () => {
    const before = strataOk(store, ['read', 'web1']).out;
    const r = strata(store, ['clone', 'base', 'web1']);
    expect(r.status).toBe(ERROR_CODES.E_EXISTS);
    expectOneLine(r.stderr, /image named web1 already exists/);
    expect(strataOk(store, ['read', 'web1']).out.equals(before)).toBe(true);
  });

  it('a write to a frozen image: E_READONLY, and its bytes are unchanged', () => {
    const r = strata(store, ['write', 'base', '--offset', '0'], { input: 'hello' });
    expect(r.status).toBe(ERROR_CODES.E_READONLY);
    expectOneLine(r.stderr, /image base is frozen \(base\)/);
    expect(strataOk(store, ['read', 'base', '--length', '5']).out.equals(Buffer.alloc(5))).toBe(true);
  });

  it('rm of an image with children: E_HAS_CHILDREN naming them; -r removes the subtree', () => {
    const r = strata(store, ['rm', 'base']);
    expect(r.status).toBe(ERROR_CODES.E_HAS_CHILDREN);
    expectOneLine(r.stderr, /image base has 1 child image\(s\) \(web1\)/);
    expect(listing().map((i: { name: string }) => i.name)).toEqual(['base', 'web1']);
    strataOk(store, ['rm', '-r', 'base']);
    expect(listing()).toEqual([]);
  });

  it('a bad size string: E_BAD_INPUT quoting it, and nothing is created', () => {
    for (const size of ['12Q', '-5', 'ten', '1.5', '99999999999999999999T']) {
      const r = strata(store, ['create', 'x', '--size', size]);
      expect(r.status, size).toBe(ERROR_CODES.E_BAD_INPUT);
      expectOneLine(r.stderr, /invalid size/);
    }
    expect(listing().map((i: { name: string }) => i.name)).toEqual(['base', 'web1']);
  });

  it('an offset beyond the image: E_RANGE, and nothing is written', () => {
    const before = strataOk(store, ['read', 'web1']).out;
    let r = strata(store, ['write', 'web1', '--offset', '2M'], { input: 'x' });
    expect(r.status).toBe(ERROR_CODES.E_RANGE);
    expectOneLine(r.stderr, /^strata: offset 2097152 is beyond the end of image web1 \(1 MiB, 1048576 bytes\)$/);
    // Input running past the end: refused, and the part that fitted is not kept either.
    r = strata(store, ['write', 'web1', '--offset', String(1024 * 1024 - 10)], { input: Buffer.alloc(100, 1) });
    expect(r.status).toBe(ERROR_CODES.E_RANGE);
    // A file that does not fit is refused before any of it is written, however large.
    const big = path.join(store, 'big.bin');
    fs.writeFileSync(big, Buffer.alloc(1024 * 1024 + 1, 7));
    r = strata(store, ['write', 'web1', big]);
    expect(r.status).toBe(ERROR_CODES.E_RANGE);
    expectOneLine(r.stderr, /big\.bin \(1\.00 MiB, 1048577 bytes\) runs past the end of image web1 \(1 MiB, 1048576 bytes\) at offset 0$/);
    r = strata(store, ['read', 'web1', '--offset', '1M', '--length', '1']);
    expect(r.status).toBe(ERROR_CODES.E_RANGE);
    expectOneLine(r.stderr, /^strata: range 1048576\+1 is beyond the end of image web1 \(1 MiB, 1048576 bytes\)$/);
    expect(strataOk(store, ['read', 'web1']).out.equals(before)).toBe(true);
  });

  it('a second writer on the same leaf: E_BUSY naming the holder', async () => {
    const server = await startServe(store, ['web1']);
    try {
      const r = strata(store, ['write', 'web1'], { input: 'x' });
      expect(r.status).toBe(ERROR_CODES.E_BUSY);
      expectOneLine(r.stderr, new RegExp(`image web1 is open for writing by strata serve ${server.pid}`));
      // Removing it from under the server is refused too.
      expect(strata(store, ['rm', 'web1']).status).toBe(ERROR_CODES.E_BUSY);
    } finally {
      await server.stop('SIGTERM');
    }
    // Once the server is gone, the leaf is writable again.
    strataOk(store, ['write', 'web1'], { input: 'x' });
  });

  it('invalid image names are refused before any work', () => {
    for (const name of ['a/b', '..', 'x..y', '.hidden', 'tab\tname', 'x'.repeat(200)]) {
      const r = strata(store, ['create', name, '--size', '1M']);
      expect(r.status, name).toBe(ERROR_CODES.E_BAD_INPUT);
      expectOneLine(r.stderr, /invalid image name/);
    }
  });

  it('usage errors exit with E_BAD_INPUT; a stack trace appears only with --debug', () => {
    const r = strata(store, ['frobnicate']);
    expect(r.status).toBe(ERROR_CODES.E_BAD_INPUT);
    expectOneLine(r.stderr, /unknown command 'frobnicate'/);
    const d = strata(store, ['info', 'nope', '--debug']);
    expect(d.status).toBe(ERROR_CODES.E_NOT_FOUND);
    expect(d.stderr).toMatch(/at getImage/);
  });

  it('a file that does not exist: E_NOT_FOUND naming it', () => {
    const r = strata(store, ['create', 'x', '--from', path.join(store, 'missing.raw')]);
    expect(r.status).toBe(ERROR_CODES.E_NOT_FOUND);
    expectOneLine(r.stderr, /no such file: .*missing\.raw/);
    expect(fs.existsSync(path.join(store, 'missing.raw'))).toBe(false);
  });
});
