/**
 * Snapshots named like ZFS, as an operator uses them: IMAGE@SNAP is scoped
 * to its image and accepted wherever an image is named; `snapshots` lists
 * them flat; rm takes an image's own snapshots with it (keeping, and naming,
 * those a clone stands on); rename takes them along; tree folds a long run
 * of daily snapshots and info keeps a deep chain on one readable line.
 */
import { randomBytes } from 'node:crypto';
import path from 'node:path';
import Database from 'better-sqlite3';
import { describe, expect, it } from 'vitest';
import { ERROR_CODES } from '../../src/errors.js';
import { strata, strataOk } from '../helpers/cli.js';
import { tmpDir } from '../helpers/tmp.js';

const KiB = 1024;
const read = (store: string, name: string) => strataOk(store, ['read', name]).out;
const names = (store: string) => (JSON.parse(strataOk(store, ['ls', '--json']).stdout) as { name: string }[]).map((i) => i.name);
function expectClean(store: string): void {
  const r = strata(store, ['check']);
  expect(r.status, r.stdout + r.stderr).toBe(0);
}
function fails(store: string, args: string[], status: number, message: string): void {
  const r = strata(store, args);
  expect(r.status, args.join(' ')).toBe(status);
  expect(r.stderr).toBe(`strata: ${message}\n`);
}

describe('IMAGE@SNAP', () => {
  it('snapshot vm02 good makes vm02@good beside an image called good, and every command takes the name', () => {
    const store = tmpDir();
    strataOk(store, ['create', 'vm02', '--size', '64K']);
    strataOk(store, ['create', 'good', '--size', '64K']);
    const a = randomBytes(64 * KiB);
    strataOk(store, ['write', 'vm02'], { input: a });
    expect(strataOk(store, ['snapshot', 'vm02', 'good']).stdout).toBe('snapshot vm02@good (base) taken; vm02 goes on above it\n');
    // The zfs form, and a second image with a snapshot of the same name.
    strataOk(store, ['write', 'vm02', '--offset', '0'], { input: Buffer.alloc(4 * KiB, 0x42) });
    expect(JSON.parse(strataOk(store, ['snapshot', 'vm02@after', '--json']).stdout)).toEqual({ snapshot: 'vm02@after', kind: 'layer', leaf: 'vm02' });
    expect(JSON.parse(strataOk(store, ['snapshot', 'good', 'good', '--json']).stdout).snapshot).toBe('good@good');
    expect(names(store)).toEqual(['good', 'good@good', 'vm02', 'vm02@after', 'vm02@good']);

    expect(read(store, 'vm02@good').equals(a)).toBe(true);
    expect(JSON.parse(strataOk(store, ['info', 'vm02', '--json']).stdout).chain).toEqual(['vm02', 'vm02@after', 'vm02@good']);
    const diff = strata(store, ['diff', 'vm02@good', 'vm02@after']);
    expect(diff.status, diff.stderr).toBe(1); // they differ, as diff(1) says
    expect(diff.stdout).toContain('4 KiB');
    strataOk(store, ['clone', 'vm02@good', 'web1']);
    expect(read(store, 'web1').equals(a)).toBe(true);
    expect(JSON.parse(strataOk(store, ['du', 'vm02@good', '--json']).stdout)[0]).toMatchObject({ name: 'vm02@good', ownBytes: 64 * KiB });
    expectClean(store);
  });

  it('a name that is wrong says so in one line with a stable code, and what was meant where it can tell', () => {
    const store = tmpDir();
    strataOk(store, ['create', 'vm02', '--size', '64K']);
    strataOk(store, ['snapshot', 'vm02', 'good']);
    strataOk(store, ['snapshot', 'vm02']);
    const before = strataOk(store, ['ls', '--json']).stdout;
    fails(store, ['info', 'vm02@nope'], ERROR_CODES.E_NOT_FOUND, 'vm02 has no snapshot nope; its snapshots: good, snap1');
    fails(store, ['read', 'vm03@good'], ERROR_CODES.E_NOT_FOUND, 'no image named vm03 (in vm03@good); did you mean vm02@good?');
    // The global name a snapshot had before: the error names the scoped one.
    fails(store, ['clone', 'good', 'x'], ERROR_CODES.E_NOT_FOUND, 'no image named good; did you mean vm02@good?');
    fails(store, ['snapshot', 'vm02', 'other@x'], ERROR_CODES.E_BAD_INPUT, 'snapshot name other@x names image other: a snapshot of vm02 is vm02@x');
    fails(store, ['snapshot', 'vm02', 'good'], ERROR_CODES.E_EXISTS, 'an image named vm02@good already exists');
    fails(store, ['snapshot', 'vm02@'], ERROR_CODES.E_BAD_INPUT, 'snapshot name is empty (in vm02@)');
    fails(store, ['create', 'a@b', '--size', '4K'], ERROR_CODES.E_BAD_INPUT, 'invalid image name "a@b": use 1-128 characters from A-Z a-z 0-9 . _ + -, starting with a letter or digit, without ".." ("@" names a snapshot: IMAGE@SNAP)');
    expect(strataOk(store, ['ls', '--json']).stdout).toBe(before);
  });

  it('rollback takes vm@snap, or a snapshot name within the leaf', () => {
    const store = tmpDir();
    strataOk(store, ['create', 'vm', '--size', '16K']);
    const a = randomBytes(16 * KiB);
    strataOk(store, ['write', 'vm'], { input: a });
    strataOk(store, ['snapshot', 'vm', 'clean']);
    strataOk(store, ['write', 'vm'], { input: randomBytes(16 * KiB) });
    strataOk(store, ['snapshot', 'vm']);
    strataOk(store, ['write', 'vm'], { input: randomBytes(4 * KiB) });
    expect(strataOk(store, ['rollback', 'vm@clean']).stdout).toBe('rolled vm back to vm@clean (dropped 4 KiB of its own changes)\nkept vm@snap1 as image of its own (strata rm to drop)\n');
    expect(read(store, 'vm').equals(a)).toBe(true);
    strataOk(store, ['write', 'vm'], { input: randomBytes(4 * KiB) });
    expect(JSON.parse(strataOk(store, ['rollback', 'vm', 'clean', '--json']).stdout)).toMatchObject({ leaf: 'vm', to: 'vm@clean', discardedBytes: 4 * KiB });
    expect(read(store, 'vm').equals(a)).toBe(true);
  });
});

describe('strata snapshots', () => {
  it('lists every snapshot flat, or one image’s, with the clones on each', () => {
    const store = tmpDir();
    strataOk(store, ['create', 'vm01', '--size', '1M']);
    strataOk(store, ['create', 'vm02', '--size', '2M']);
    strataOk(store, ['write', 'vm01'], { input: Buffer.alloc(8 * KiB, 1) });
    strataOk(store, ['snapshot', 'vm01', 'monday']);
    strataOk(store, ['clone', 'vm01', 'test1']); // vm01@snap1, with test1 on it
    strataOk(store, ['snapshot', 'vm02', 'empty']);
    const all = JSON.parse(strataOk(store, ['snapshots', '--json']).stdout) as Record<string, unknown>[];
    expect(all.map((s) => [s.name, s.image, s.snapshot, s.ownBytes, s.virtualSize, s.dependents])).toEqual([
      ['vm01@monday', 'vm01', 'monday', 8 * KiB, 1024 * KiB, []],
      ['vm01@snap1', 'vm01', 'snap1', 0, 1024 * KiB, ['test1']],
      ['vm02@empty', 'vm02', 'empty', 0, 2048 * KiB, []],
    ]);
    for (const s of all) expect(s.takenAt).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/);
    const text = strataOk(store, ['snapshots', 'vm01', '-p']).stdout.split('\n');
    expect(text[0]).toMatch(/^NAME +TAKEN +OWN +SIZE +CLONES$/);
    expect(text.slice(1, 3).map((l) => l.split(/ {2,}/).filter((_c, i) => i !== 1))).toEqual([
      ['vm01@monday', '8192', '1048576', '-'],
      ['vm01@snap1', '0', '1048576', 'test1'],
    ]);
    expect(text).toHaveLength(4);
    expect(strataOk(store, ['snapshots', 'test1']).stdout).toBe('test1 has no snapshots (take one: strata snapshot test1 [NAME])\n');
    fails(store, ['snapshots', 'vm9'], ERROR_CODES.E_NOT_FOUND, 'no image named vm9');
  });
});

describe('rm and rename of an image with snapshots', () => {
  it('rm removes the image’s own snapshots, keeps and names the one a clone stands on, and frees their space', () => {
    const store = tmpDir();
    strataOk(store, ['create', 'vm', '--size', '64K']);
    for (let i = 0; i < 3; i++) {
      strataOk(store, ['write', 'vm', '--offset', String(i * 16 * KiB)], { input: randomBytes(16 * KiB) });
      strataOk(store, ['snapshot', 'vm']);
    }
    strataOk(store, ['clone', 'vm@snap2', 'keep']);
    const dry = strataOk(store, ['rm', 'vm', '-n']).stdout;
    expect(dry).toBe('would remove vm\nwould remove vm@snap3\nwould keep vm@snap1: vm@snap2 stands on it\nwould keep vm@snap2: keep stands on it\nwould free 16 KiB (16384 bytes)\n');
    const r = JSON.parse(strataOk(store, ['rm', 'vm', '--json']).stdout);
    expect(r).toMatchObject({
      removed: ['vm', 'vm@snap3'],
      kept: [
        { name: 'vm@snap1', dependents: ['vm@snap2'] },
        { name: 'vm@snap2', dependents: ['keep'] },
      ],
      freedBytes: 16 * KiB,
    });
    expect(names(store)).toEqual(['keep', 'vm@snap1', 'vm@snap2']);
    // With the clone gone, nothing stands on them: rm of the clone leaves them to prune, and says so.
    const out = strataOk(store, ['rm', 'keep']).stdout;
    expect(out).toBe('removed keep\nfreed 0 B: no stored block was used by these images alone\n2 snapshots, 32 KiB, no longer used: strata prune\n');
    expectClean(store);
  });

  it('clone vm06 t1; snapshot t1; rm t1 leaves no orphan, so commit vm06 goes through', () => {
    const store = tmpDir();
    strataOk(store, ['create', 'vm06', '--size', '64K']);
    strataOk(store, ['write', 'vm06'], { input: randomBytes(64 * KiB) });
    strataOk(store, ['clone', 'vm06', 't1']);
    strataOk(store, ['write', 't1'], { input: randomBytes(8 * KiB) });
    strataOk(store, ['snapshot', 't1']);
    expect(strataOk(store, ['rm', 't1']).stdout).toBe('removed t1\nremoved t1@snap1\nfreed 8 KiB (8192 bytes), returned to the file system\n');
    expect(names(store)).toEqual(['vm06', 'vm06@snap1']);
    const want = randomBytes(4 * KiB);
    strataOk(store, ['write', 'vm06'], { input: want });
    const c = strata(store, ['commit', 'vm06', '--force']);
    expect(c.status, c.stderr).toBe(0);
    expect(read(store, 'vm06@snap1').subarray(0, 4 * KiB).equals(want)).toBe(true);
    expectClean(store);
  });

  it('rename takes the snapshots along; a snapshot is renamed within its image', () => {
    const store = tmpDir();
    strataOk(store, ['create', 'vm02', '--size', '16K']);
    strataOk(store, ['snapshot', 'vm02', 'good']);
    strataOk(store, ['snapshot', 'vm02']);
    strataOk(store, ['rename', 'vm02', 'vm03']);
    expect(names(store)).toEqual(['vm03', 'vm03@good', 'vm03@snap1']);
    expect(strataOk(store, ['rename', 'vm03@good', 'better']).stdout).toBe('renamed vm03@good to vm03@better\n');
    fails(store, ['rename', 'vm03@better', 'vm04@x'], ERROR_CODES.E_BAD_INPUT, 'snapshot name vm04@x names image vm04: a snapshot of vm03 is vm03@x');
    expect(JSON.parse(strataOk(store, ['info', 'vm03', '--json']).stdout).chain).toEqual(['vm03', 'vm03@snap1', 'vm03@better']);
    // Still vm03's: rm takes them with it.
    strataOk(store, ['rm', 'vm03']);
    expect(names(store)).toEqual([]);
  });
});

describe('a dozen daily snapshots', () => {
  it('tree folds the run into one line and stays narrow; --all draws them all; info keeps the chain on one short line', () => {
    const store = tmpDir();
    strataOk(store, ['create', 'base', '--size', '64K']);
    strataOk(store, ['freeze', 'base']);
    strataOk(store, ['clone', 'base', 'vm']);
    for (let d = 1; d <= 12; d++) strataOk(store, ['snapshot', 'vm', `day${String(d).padStart(2, '0')}`]);
    const tree = strataOk(store, ['tree']).stdout.split('\n');
    expect(tree.map((l) => l.replace(/(\S) {2}.*$/, '$1'))).toEqual([
      'base',
      '└── vm@day01',
      '    └── … 9 more snapshots of vm (strata snapshots vm, or strata tree --all)',
      '        └── vm@day11',
      '            └── vm@day12',
      '                └── vm',
      '',
    ]);
    expect(Math.max(...tree.map((l) => l.length))).toBeLessThanOrEqual(100);
    const all = strataOk(store, ['tree', '--all']).stdout;
    for (let d = 1; d <= 12; d++) expect(all).toContain(`vm@day${String(d).padStart(2, '0')}  layer`);
    const info = strataOk(store, ['info', 'vm']).stdout;
    expect(info).toContain('\nchain:        vm -> vm@day12 -> vm@day11 -> … 9 more snapshots … -> vm@day01 -> base\n');
    expect(JSON.parse(strataOk(store, ['info', 'vm', '--json']).stdout).chain).toHaveLength(14);
    expect(JSON.parse(strataOk(store, ['snapshots', 'vm', '--json']).stdout)).toHaveLength(12);
  });
});

describe('a store whose snapshots were named before IMAGE@SNAP', () => {
  it('keeps LEAF.snapN working, lists it as the leaf’s, numbers on past it, and removes it with the leaf', () => {
    const store = tmpDir();
    strataOk(store, ['create', 'vm', '--size', '16K']);
    const a = randomBytes(16 * KiB);
    strataOk(store, ['write', 'vm'], { input: a });
    strataOk(store, ['snapshot', 'vm']);
    // What an older strata wrote for that snapshot: the same row, under its old global name.
    const db = new Database(path.join(store, 'strata.db'));
    try {
      db.prepare("UPDATE images SET name = 'vm.snap1' WHERE name = 'vm@snap1'").run();
    } finally {
      db.close();
    }
    expect(read(store, 'vm.snap1').equals(a)).toBe(true);
    expect((JSON.parse(strataOk(store, ['snapshots', 'vm', '--json']).stdout) as { name: string; image: string }[]).map((s) => [s.name, s.image])).toEqual([['vm.snap1', 'vm']]);
    expect(JSON.parse(strataOk(store, ['snapshot', 'vm', '--json']).stdout).snapshot).toBe('vm@snap2');
    expect(strataOk(store, ['rm', 'vm']).stdout).toBe('removed vm\nremoved vm@snap2\nremoved vm.snap1\nfreed 16 KiB (16384 bytes), returned to the file system\n');
    expect(names(store)).toEqual([]);
  });
});
