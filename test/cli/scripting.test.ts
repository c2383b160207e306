/**
 * Output a script can rely on: exit statuses that mean something, JSON on
 * stdout with --json and JSON errors on stderr, nothing stray.
 */
import { beforeAll, describe, expect, it } from 'vitest';
import fs from 'node:fs';
import path from 'node:path';
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

describe('one JSON vocabulary', () => {
  /** Every key of the README's JSON table (any `word` in its section). */
  function documentedKeys(): Set<string> {
    const readme = fs.readFileSync(path.resolve('README.md'), 'utf8');
    const section = readme.slice(readme.indexOf('### JSON output'), readme.indexOf('\n## ', readme.indexOf('### JSON output')));
    return new Set([...section.matchAll(/`([A-Za-z][A-Za-z0-9]*)`/g)].map((m) => m[1]));
  }

  /** Keys of `v` at every depth; label keys are the user's, not ours. */
  function keysOf(v: unknown, out = new Set<string>()): Set<string> {
    if (Array.isArray(v)) v.forEach((x) => keysOf(x, out));
    else if (v && typeof v === 'object') {
      for (const [k, x] of Object.entries(v)) {
        out.add(k);
        if (k !== 'labels') keysOf(x, out);
      }
    }
    return out;
  }

  it('every key any command prints with --json is in the README table, and the shared ones are spelt one way', () => {
    const top = fs.mkdtempSync('/tmp/strata-vocab-');
    // The store is a directory of its own: one holding other files is not made a store.
    const s = path.join(top, 'store');
    try {
      const raw = path.join(top, 'disk.raw');
      fs.writeFileSync(raw, Buffer.concat([Buffer.alloc(4096, 1), Buffer.alloc(8192)]));
      const j = (...args: string[]) => {
        const r = strata(s, ['--json', ...args]);
        expect(r.status === 0 || (args[0] === 'diff' && r.status === 1), `${args.join(' ')}: ${r.stderr}`).toBe(true);
        return JSON.parse(r.stdout);
      };
      const out: Record<string, unknown> = {};
      out.init = j('init');
      out.create = j('create', 'base', '--from', raw);
      out.import = j('import', raw, 'layer', '--parent', 'base');
      out.clone = j('clone', 'layer', 'vm');
      out.resize = j('resize', 'vm', '16K');
      out.write = j('write', 'vm', '--offset', '4096', raw);
      out.snapshot = j('snapshot', 'vm');
      out.ls = j('ls');
      out.info = j('info', 'vm');
      out.store = j('info');
      out.tree = j('tree');
      out.du = j('du');
      out.sharing = j('du', 'vm', '--sharing');
      out.stats = j('stats');
      out.map = j('map', 'vm');
      out.diff = j('diff', 'base', 'vm');
      out.export = j('export', 'vm', path.join(s, 'out.raw'));
      out.commit = j('commit', 'vm', '--force');
      out.flatten = j('flatten', 'vm');
      out.rebase = j('rebase', 'vm', '--onto', 'layer');
      out.rollback = j('rollback', 'vm');
      out.rename = j('rename', 'vm', 'vm2');
      out.freeze = j('freeze', 'vm2');
      out.rm = j('rm', 'vm2');
      out.check = j('check');
      out.gc = j('gc');

      const documented = documentedKeys();
      for (const [cmd, v] of Object.entries(out)) {
        const missing = [...keysOf(v)].filter((k) => !documented.has(k));
        expect(missing, `${cmd} --json keys not in the README's JSON table`).toEqual([]);
      }
      // The image a command acted on is `name`; its size `virtualSize`; its time `createdAt`, ISO-8601 UTC.
      const ls = out.ls as Record<string, unknown>[];
      expect(Object.keys(ls[0])).toEqual(['name', 'kind', 'parent', 'virtualSize', 'ownBytes', 'createdAt']);
      expect(ls[0].createdAt).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/);
      expect(out.info).toMatchObject({ name: 'vm', kind: 'leaf', parent: 'vm@snap1', virtualSize: 16384 });
      expect(out.write).toEqual({ name: 'vm', offset: 4096, length: 12288 });
      expect(out.map).toMatchObject({ name: 'vm', virtualSize: 16384 });
      expect((out.map as { extents: unknown[] }).extents[0]).toEqual({ offset: 0, length: 4096, kind: 'data', depth: 3, layer: 'base' });
      expect(out.export).toMatchObject({ name: 'vm', virtualSize: 16384, files: [path.join(s, 'out.raw')] });
      for (const k of ['commit', 'resize', 'flatten', 'rebase'] as const) expect(out[k], k).toMatchObject({ name: 'vm' });
      expect(out.diff).toMatchObject({ a: 'base', b: 'vm', virtualSizeA: 12288, virtualSizeB: 16384 });
      expect(out.sharing).toMatchObject({ name: 'vm', sharedWith: [] });
      expect(out.check).toHaveProperty('elapsedMs');
      expect(out.gc).toHaveProperty('allocatedBytesBefore');
    } finally {
      fs.rmSync(top, { recursive: true, force: true });
    }
  });
});
