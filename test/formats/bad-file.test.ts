/**
 * A malformed file the user hands in is the user's to fix, not damage to
 * strata: E_BAD_FILE (exit 17), one line naming the file and what is wrong
 * with it, in text and --json, and the store as it was. E_CORRUPT is kept
 * for damage to strata's own store or a bucket.
 */
import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { ERROR_CODES } from '../../src/errors.js';
import { strata, strataOk } from '../helpers/cli.js';
import { tmpDir } from '../helpers/tmp.js';

/** Runs `args` against a store holding one image, and checks the failure is E_BAD_FILE in one line and changed nothing. */
function refusedAsBadFile(args: string[]): string {
  const dir = tmpDir();
  const store = path.join(dir, 'st');
  strataOk(store, ['create', 'keep', '--size', '1M']);
  const before = strataOk(store, ['--json', 'ls']).stdout;
  const r = strata(store, args);
  expect({ status: r.status, lines: r.stderr.trimEnd().split('\n').length }).toEqual({ status: ERROR_CODES.E_BAD_FILE, lines: 1 });
  const j = strata(store, ['--json', ...args]);
  expect(j.status).toBe(17);
  expect(JSON.parse(j.stderr)).toEqual({ error: 'E_BAD_FILE', message: r.stderr.slice('strata: '.length, -1) });
  expect(strataOk(store, ['--json', 'ls']).stdout).toBe(before);
  expect(strata(store, ['check']).status).toBe(0);
  return r.stderr;
}

describe('malformed input files: E_BAD_FILE', () => {
  it('a qcow2 file cut inside its header', () => {
    const f = path.join(tmpDir(), 'bad.qcow2');
    fs.writeFileSync(f, Buffer.from([0x51, 0x46, 0x49, 0xfb, 0, 0, 0, 3, 0, 0]));
    expect(refusedAsBadFile(['import', f, 'bad'])).toBe(`strata: ${f}: file truncated: header needs 72 bytes, file has 10\n`);
  });

  it('an OCI layout whose oci-layout file is not JSON', () => {
    const dir = path.join(tmpDir(), 'lay');
    fs.mkdirSync(dir);
    fs.writeFileSync(path.join(dir, 'oci-layout'), '{bad');
    expect(refusedAsBadFile(['import', `oci:${dir}`, 'app'])).toBe(`strata: ${dir}/oci-layout is not valid JSON\n`);
  });

  it('a docker-archive that is not a tar archive', () => {
    const f = path.join(tmpDir(), 'app.tar');
    fs.writeFileSync(f, Buffer.alloc(4096, 0x41));
    expect(refusedAsBadFile(['import', `docker-archive:${f}`, 'app'])).toMatch(new RegExp(`^strata: ${f} is not a tar archive \\(bad header checksum at byte 0\\)\\n$`));
  });
});
