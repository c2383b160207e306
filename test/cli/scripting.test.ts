/**
 * Output a script can rely on: exit statuses that mean something, JSON on
 * stdout with --json and JSON errors on stderr, nothing stray.
 */
import { beforeAll, describe, expect, it } from 'vitest';
import fs from 'node:fs';
import { ERROR_CODES } from '../../src/errors.js';
import { strata, strataOk } from '../helpers/cli.js';

let store: string;

beforeAll(() => {
  store = fs.mkdtempSync('/tmp/strata-scripting-');
  strataOk(store, ['create', 'a', '--size', '1M']);
  strataOk(store, ['write', 'a', '--offset', '8192'], { input: Buffer.alloc(4096, 7) });
  return () => fs.rmSync(store, { recursive: true, force: true });
});

describe('errors for scripts', () => {
  it('with --json, an error is one JSON object on stderr with the same exit status', () => {
    const r = strata(store, ['--json', 'info', 'nope']);
    expect(r.status).toBe(ERROR_CODES.E_NOT_FOUND);
    expect(r.stdout).toBe('');
    expect(r.stderr).toBe('{"error":"E_NOT_FOUND","message":"no image named nope"}\n');
    // After the command too, and for usage errors caught by the parser.
    const u = strata(store, ['frobnicate', '--json']);
    expect(u.status).toBe(ERROR_CODES.E_BAD_INPUT);
    expect(JSON.parse(u.stderr)).toEqual({ error: 'E_BAD_INPUT', message: "unknown command 'frobnicate'" });
    const m = strata(store, ['create', '--json']);
    expect(m.status).toBe(ERROR_CODES.E_BAD_INPUT);
    expect(JSON.parse(m.stderr)).toEqual({ error: 'E_BAD_INPUT', message: "missing required argument 'name'" });
    // --debug puts the stack in the object, not beside it.
    const d = strata(store, ['--json', '--debug', 'info', 'nope']);
    const err = JSON.parse(d.stderr);
    expect(err).toMatchObject({ error: 'E_NOT_FOUND', message: 'no image named nope' });
    expect(err.stack).toMatch(/at getImage/);
  });

  it("a subcommand's usage error is one `strata:` line like every other error", () => {
    const r = strata(store, ['create']);
    expect(r.status).toBe(ERROR_CODES.E_BAD_INPUT);
    expect(r.stderr).toBe("strata: missing required argument 'name'\n");
  });

  it('read --json is refused: raw bytes are not JSON, and no stray text is printed', () => {
    const r = strata(store, ['read', 'a', '--json', '--length', '4096']);
    expect(r.status).toBe(ERROR_CODES.E_BAD_INPUT);
    expect(r.stdout).toBe('');
    expect(JSON.parse(r.stderr)).toEqual({
      error: 'E_BAD_INPUT',
      message: 'read writes raw bytes to stdout and has no --json output: pipe it to xxd or base64, or see map --json',
    });
    // Without --json the bytes alone, nothing after them.
    expect(strataOk(store, ['read', 'a', '--offset', '8192', '--length', '4096']).out.equals(Buffer.alloc(4096, 7))).toBe(true);
  });
});

describe('exit statuses that mean something', () => {
  it('diff exits 0 for the same content and 1 when the images differ, like cmp and qemu-img compare', () => {
    strataOk(store, ['clone', 'a', 'b']); // a is snapshotted, so a and b start equal
    let r = strata(store, ['diff', 'a', 'b']);
    expect(r.status).toBe(0);
    expect(r.stdout).toBe('a and b have the same content\n');
    strataOk(store, ['write', 'b', '--offset', '4096'], { input: 'x' });
    r = strata(store, ['diff', 'a', 'b']);
    expect(r.status).toBe(1);
    expect(r.stdout).toBe('START  LENGTH\n4096   4096\n4 KiB differ in 1 extent(s)\n');
    r = strata(store, ['--json', 'diff', 'a', 'b']);
    expect(r.status).toBe(1);
    expect(JSON.parse(r.stdout).differingBytes).toBe(4096);
    expect(r.stderr).toBe('');
    // An error is not "different": it keeps its own status.
    expect(strata(store, ['diff', 'a', 'nope']).status).toBe(ERROR_CODES.E_NOT_FOUND);
  });
});
