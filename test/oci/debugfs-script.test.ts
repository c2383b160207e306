/**
 * The ext4 writer's debugfs scripts: every line is a verb strata uses with
 * arguments it quoted, never a command an image wrote. Strings at ext4's own
 * limits, and names that mean something to debugfs or a shell (`<2>`, `!x`,
 * `#x`, `-f`, quotes, backslashes), are written exactly; what cannot fit a
 * debugfs line is refused as unsupported before anything is built.
 */
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DebugfsScript, checkLine, fsPath, staged, value, word } from '../../src/formats/oci/debugfs-script.js';
import { StrataError } from '../../src/errors.js';
import { STRATA_BIN, strata, strataOk } from '../helpers/cli.js';
import { ext4Listing } from '../helpers/fs-listing.js';
import { ociImage, sh, type Entry } from '../helpers/oci.js';
import { requireTool } from '../helpers/tools.js';
import { scriptProblems } from '../setup/debugfs-scripts.js';

const code = (f: () => unknown) => {
  try {
    f();
  } catch (e) {
    return e instanceof StrataError ? `${e.code}: ${e.message}` : `not a StrataError: ${String(e)}`;
  }
  return 'no error';
};

describe('the debugfs script builder', () => {
  it('refuses, as an internal error, a control character in any argument', () => {
    expect(code(() => new DebugfsScript().add('evil', 'symlink', fsPath('evil'), value('x\ndump /etc/os-release /tmp/out')))).toMatch(/^E_INTERNAL: debugfs script: value "x\\ndump .*" holds a control character/);
    expect(code(() => new DebugfsScript().add('a\rb', 'rm', fsPath('a\rb')))).toMatch(/^E_INTERNAL: .*path .* holds a control character/);
    expect(code(() => value('a\0b'))).toMatch(/^E_INTERNAL/);
    expect(code(() => word('1 2'))).toMatch(/^E_INTERNAL: debugfs script: word "1 2" is not a plain word/);
  });

  it('names staged files relative to the scratch directory, and only those', () => {
    expect(staged('/tmp/scratch/c0-1', '/tmp/scratch').text).toBe('"c0-1"');
    expect(code(() => staged('/etc/shadow', '/tmp/scratch'))).toMatch(/^E_INTERNAL: debugfs script: "\/etc\/shadow" is not a file staged in the scratch directory/);
    expect(code(() => staged('/tmp/scratch/-f', '/tmp/scratch'))).toMatch(/^E_INTERNAL/);
  });

  it('refuses a line beyond debugfs\'s 8,191-byte buffer as unsupported, naming the path', () => {
    const s = new DebugfsScript().add('ok', 'symlink', fsPath('ok'), value('t'.repeat(8190 - 'symlink "/ok" ""'.length)));
    expect(Buffer.byteLength(s.text())).toBe(8191);
    // Quotes count twice once quoted.
    expect(code(() => new DebugfsScript().add('q', 'symlink', fsPath('q'), value('"'.repeat(4095))))).toBe(
      'E_UNSUPPORTED: /q: its path or link target is too long for the ext4 writer (debugfs takes command lines of at most 8190 bytes, this one is 8205 once quoted); nothing imported',
    );
  });

  it('the line check knows only strata\'s verbs', () => {
    for (const l of ['!touch /tmp/x', 'dump /etc/os-release /tmp/x', '#comment', ' rm "/a"', 'rdump / /tmp']) expect(code(() => checkLine(l))).toMatch(/^E_INTERNAL: debugfs script: line starts with/);
    expect(code(() => checkLine('rm "/a"'))).toBe('no error');
  });

  it('the suite\'s script check flags what 612f89f wrote for a hostile symlink target', () => {
    // What ext4.ts wrote at 612f89f for the target "x\ndump /etc/os-release /tmp/out\n#", and a cut line.
    expect(scriptProblems(Buffer.from('symlink "/evil" "x\ndump /etc/os-release /tmp/out\n#"\n'))).toEqual([
      'line 2 starts with "dump", not a verb strata uses',
      'line 3 starts with "#\\"", not a verb strata uses',
    ]);
    expect(scriptProblems(Buffer.from(`symlink "/evil" "${'a'.repeat(9000)}"\n`))).toEqual(['line 1 is 9018 bytes, beyond debugfs\'s 8,191-byte buffer']);
    expect(scriptProblems(Buffer.from('sif "/a\rb" mode 0100644\n'))).toEqual(['line 1 holds the control byte 0xd']);
    expect(scriptProblems(Buffer.from('rm "/a"\nrm "/b"\n'))).toEqual([]);
  });
});

describe.skipIf(!requireTool('umoci'))('strings debugfs or a shell would read are written exactly', () => {
  let work: string;
  let layout: string;
  let store: string;
  let log: string;
  const target = `../${'t'.repeat(1000)}/"quoted" \\back\\slash #!<2> ${'x'.repeat(2900)}`.padEnd(4095, 'e');
  const long = 'n'.repeat(255);
  const T = 1_700_000_000;

  beforeAll(() => {
    work = fs.mkdtempSync(path.join(os.tmpdir(), 'strata-oci-debugfs-'));
    layout = path.join(work, 'oci');
    store = path.join(work, 'store');
    log = path.join(work, 'scripts');
    fs.mkdirSync(log);
    const layer: Entry[] = [
      { type: 'dir', name: 'd/', mtime: T },
      { type: 'file', name: `d/${long}`, data: 'longest name', mtime: T },
      { type: 'symlink', name: 'd/link', target, mtime: T },
      { type: 'file', name: 'd/<2>', data: 'not the root inode', mtime: T },
      { type: 'file', name: 'd/!touch x', data: 'not a shell', mtime: T },
      { type: 'file', name: 'd/#hash', data: 'not a comment', mtime: T },
      { type: 'fifo', name: 'd/-f', mtime: T },
      { type: 'file', name: 'd/x', data: 'x', mtime: T, xattrs: { 'user.a "quoted" #!<2>': Buffer.from('v\n"') } },
    ];
    // A whiteout of a 255-byte name is 259 bytes long, and legal.
    const gone = 'w'.repeat(255);
    layer.push({ type: 'file', name: `d/${gone}`, data: 'whited out', mtime: T });
    ociImage(layout, 'edge', [layer, [{ type: 'file', name: `d/.wh.${gone}` }]], work);
  });
  afterAll(() => fs.rmSync(work, { recursive: true, force: true }));

  it('imports them, and every script line it wrote passes the suite\'s check', () => {
    strataOk(store, ['import', `oci:${layout}:edge`, 'edge'], { env: { STRATA_DEBUGFS_SCRIPT_LOG: log } });
    const img = path.join(work, 'edge.ext4');
    strataOk(store, ['export', 'edge', img]);
    expect(sh('e2fsck', ['-fn', img])).toMatch(/Pass 5/);
    const got = ext4Listing(img, fs.mkdtempSync(path.join(work, 'dump-')));
    expect(got[`/d/${long}`]).toMatchObject({ type: 'file', size: 12 });
    expect(got['/d/link']).toMatchObject({ type: 'symlink', target });
    expect(got['/d/<2>']).toMatchObject({ type: 'file', size: 18 });
    expect(got['/d/!touch x']).toMatchObject({ type: 'file', size: 11 });
    expect(got['/d/#hash']).toMatchObject({ type: 'file', size: 13 });
    expect(got['/d/-f']).toMatchObject({ type: 'fifo' });
    expect(got[`/d/${'w'.repeat(255)}`]).toBeUndefined();
    expect(got['/']?.mode ?? '755').toBe('755');
    const scripts = fs.readdirSync(log);
    expect(scripts).toHaveLength(2);
    for (const f of scripts) expect(scriptProblems(fs.readFileSync(path.join(log, f)))).toEqual([]);
  });

  it('a relative TMPDIR works, though debugfs runs in the scratch directory', () => {
    // A store of its own, so the layers are built again.
    fs.mkdirSync(path.join(work, 'rel-tmp'));
    const r = spawnSync(process.execPath, [STRATA_BIN, '--store', 'store-rel', 'import', `oci:${layout}:edge`, 'edge'], { cwd: work, env: { ...process.env, TMPDIR: 'rel-tmp' }, encoding: 'utf8' });
    expect(r.stderr).toBe('');
    expect(r.status).toBe(0);
    expect(fs.readdirSync(path.join(work, 'rel-tmp'))).toEqual([]);
  });

  it('a path and link target too long for one debugfs line are refused as unsupported, and nothing changes', () => {
    // A 4,095-byte path (16 components of 255) and a 4,095-byte target: each within ext4's limits, 8,204 bytes together.
    const deep = Array.from({ length: 16 }, (_, i) => `${i}`.padEnd(255, 'p')).join('/');
    expect(Buffer.byteLength(deep)).toBe(4095);
    ociImage(layout, 'too-long', [[{ type: 'symlink', name: deep, target: 'q'.repeat(4095) }]], work);
    const before = strataOk(store, ['--json', 'ls']).stdout;
    const r = strata(store, ['import', `oci:${layout}:too-long`, 'too-long']);
    expect(r.stderr.trim().split('\n')).toHaveLength(1);
    expect(r.stderr).toMatch(/: its path or link target is too long for the ext4 writer \(debugfs takes command lines of at most 8190 bytes, this one is 8204 once quoted\); nothing imported$/m);
    expect(r.status).toBe(11);
    expect(strataOk(store, ['--json', 'ls']).stdout).toBe(before);
  });
});
